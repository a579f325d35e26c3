# The gcs adapter's tests (tests/gcs/): the pure parts against fixed vectors, then
# checks against the strict GCS test server (tests/gcs/gcs_test_server.py; NOT real GCS).
add_executable(gcs_unit ${CMAKE_CURRENT_SOURCE_DIR}/gcs/gcs_unit.c)
target_link_libraries(gcs_unit PRIVATE amber_gcs_util)
add_test(NAME gcs_unit COMMAND gcs_unit)
set_tests_properties(gcs_unit PROPERTIES ENVIRONMENT "${AMBER_TEST_ENV}")

set(AMBER_GCS_TEST_ENV ${AMBER_TEST_ENV}
  "AMBER_GCS_ADAPTER=${AMBER_ADAPTER_BUILD_DIR}/gcs.so"
  # s3_tool drives any adapter's presign through the host code (tests/s3/s3_tool.c).
  "AMBER_ADAPTER_TOOL=$<TARGET_FILE:s3_tool>")

# The SDK's conformance runner against the gcs adapter and the strict test server, in
# service-account mode (JSON resumable upload, 256 KiB chunks) and HMAC mode (XML
# multipart, 5 MiB parts).
add_test(NAME conformance_gcs_sa
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/tools/run-conformance.sh
                 $<TARGET_FILE:amber-conformance> gcs ${AMBER_ADAPTER_BUILD_DIR}/gcs.so)
add_test(NAME conformance_gcs_hmac
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/tools/run-conformance.sh
                 $<TARGET_FILE:amber-conformance> gcs-hmac ${AMBER_ADAPTER_BUILD_DIR}/gcs.so)
# The amber CLI end to end (create, list, restore, signed GET with curl, delete).
add_test(NAME gcs_cli_roundtrip COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/gcs/cli_roundtrip.sh)
set_tests_properties(conformance_gcs_sa conformance_gcs_hmac gcs_cli_roundtrip PROPERTIES
  ENVIRONMENT "${AMBER_GCS_TEST_ENV}" TIMEOUT 120)

# The strict test server checks itself against the spec's rules (token flow, resumable
# chunks with a partial store, status queries, ranges, signed URLs, HMAC multipart).
add_test(NAME gcs_test_server_self_test
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/gcs/gcs_test_server.py --self-test)
set_tests_properties(gcs_test_server_self_test PROPERTIES TIMEOUT 120)
