# amberd end to end over real HTTP: Debian's python3 with requests and PyJWT as the
# panel and the user.
add_test(NAME amberd_e2e
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/amberd_e2e.py
                 $<TARGET_FILE:amberd> $<TARGET_FILE:amber> ${AMBER_ADAPTER_BUILD_DIR}
                 ${CMAKE_SOURCE_DIR})
set_tests_properties(amberd_e2e PROPERTIES ENVIRONMENT "${AMBER_TEST_ENV}" TIMEOUT 600)
