# amberd end to end over real HTTP: Debian's python3 with requests and PyJWT as the
# panel and the user.
add_test(NAME amberd_e2e
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/amberd_e2e.py
                 $<TARGET_FILE:amberd> $<TARGET_FILE:amber> ${AMBER_ADAPTER_BUILD_DIR}
                 ${CMAKE_SOURCE_DIR})
set_tests_properties(amberd_e2e PROPERTIES ENVIRONMENT "${AMBER_TEST_ENV}" TIMEOUT 600)

find_program(AMBER_VALGRIND_E2E valgrind)
if(AMBER_VALGRIND_E2E AND NOT AMBER_SANITIZE)
  add_test(NAME amberd_valgrind
           COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/amberd_e2e.py
                   $<TARGET_FILE:amberd> $<TARGET_FILE:amber> ${AMBER_ADAPTER_BUILD_DIR}
                   ${CMAKE_SOURCE_DIR})
  set_tests_properties(amberd_valgrind PROPERTIES
    ENVIRONMENT "${AMBER_TEST_ENV};AMBER_E2E_VALGRIND=1" TIMEOUT 900)
endif()

# The client API: two amberd processes (a panel with its local node, and a second node)
# driven by python3-requests, curl and node's fetch.
add_test(NAME client_api_e2e
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/client_api_e2e.py
                 $<TARGET_FILE:amberd> $<TARGET_FILE:amber> ${AMBER_ADAPTER_BUILD_DIR}
                 ${CMAKE_SOURCE_DIR} $<TARGET_FILE:adapter_memory> $<TARGET_FILE:adapter_old>)
set_tests_properties(client_api_e2e PROPERTIES ENVIRONMENT "${AMBER_TEST_ENV}" TIMEOUT 900)

# S3 through amberd in both modes (direct, panel-presigned) against s3rver 5 behind a
# fault-injecting proxy, judged with /usr/bin/aws s3api and GNU tar.
add_test(NAME s3_e2e
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/s3_e2e.py
                 $<TARGET_FILE:amberd> $<TARGET_FILE:amber> ${AMBER_ADAPTER_BUILD_DIR}
                 ${CMAKE_SOURCE_DIR})
set_tests_properties(s3_e2e PROPERTIES ENVIRONMENT "${AMBER_TEST_ENV}" TIMEOUT 600)

# GCS through amberd (service-account and HMAC modes, with faults) against the strict GCS
# test server tests/gcs/gcs_test_server.py (written from gcs-protocol.md; not real GCS).
add_test(NAME gcs_e2e
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/gcs_e2e.py
                 $<TARGET_FILE:amberd> $<TARGET_FILE:amber> ${AMBER_ADAPTER_BUILD_DIR}
                 ${CMAKE_SOURCE_DIR})
set_tests_properties(gcs_e2e PROPERTIES ENVIRONMENT "${AMBER_TEST_ENV}" TIMEOUT 900)
