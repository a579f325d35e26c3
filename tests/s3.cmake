# The s3 adapter's tests (tests/s3/): the SigV4 suite, then checks against a live
# @20minutes/s3rver started by each script (installed by scripts/setup into .peers/).
add_executable(sigv4_vectors ${CMAKE_CURRENT_SOURCE_DIR}/s3/sigv4_vectors.c)
target_link_libraries(sigv4_vectors PRIVATE amber_sigv4 PkgConfig::JANSSON)
add_test(NAME s3_sigv4_vectors COMMAND sigv4_vectors)
set_tests_properties(s3_sigv4_vectors PROPERTIES ENVIRONMENT "${AMBER_TEST_ENV}")

# The adapter's methods the CLI does not expose (presign, the multipart group).
add_executable(s3_tool ${CMAKE_CURRENT_SOURCE_DIR}/s3/s3_tool.c)
target_link_libraries(s3_tool PRIVATE ambercore)

set(AMBER_S3_TEST_ENV ${AMBER_TEST_ENV}
  "AMBER_S3_ADAPTER=${AMBER_ADAPTER_BUILD_DIR}/s3.so"
  "AMBER_S3_TOOL=$<TARGET_FILE:s3_tool>")

# The SDK's conformance runner against the s3 adapter and a live s3rver, with 5MiB
# parts so its 64 MiB object goes multipart with parts in flight.
add_test(NAME conformance_s3
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/tools/run-conformance.sh
                 $<TARGET_FILE:amber-conformance> s3 ${AMBER_ADAPTER_BUILD_DIR}/s3.so)

# The amber CLI end to end against s3rver, checked with aws s3api, curl and tar.
add_test(NAME s3_cli_roundtrip COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/s3/cli_roundtrip.sh)
# Faults injected by a proxy in front of s3rver (drops, 500/503; and a permanent failure).
add_test(NAME s3_fault_injection COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/s3/fault_injection.sh)
set_tests_properties(conformance_s3 s3_cli_roundtrip s3_fault_injection PROPERTIES
  ENVIRONMENT "${AMBER_S3_TEST_ENV}" TIMEOUT 120)
