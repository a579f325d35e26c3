# The SDK's conformance runner against every adapter built here, each with a scratch
# configuration made by the wrapper script.
set(AMBER_CONFORMANCE_RUN ${CMAKE_CURRENT_SOURCE_DIR}/tools/run-conformance.sh)
foreach(case "wings:wings:${AMBER_ADAPTER_BUILD_DIR}/wings.so"
             "memory:memory:${CMAKE_BINARY_DIR}/examples-out/memory.so"
             "old_abi_1_0:old:${CMAKE_BINARY_DIR}/test-adapters/old.so")
  string(REPLACE ":" ";" parts "${case}")
  list(GET parts 0 test)
  list(GET parts 1 type)
  list(GET parts 2 file)
  add_test(NAME conformance_${test}
           COMMAND bash ${AMBER_CONFORMANCE_RUN} $<TARGET_FILE:amber-conformance> ${type} ${file})
  set_tests_properties(conformance_${test} PROPERTIES ENVIRONMENT "${AMBER_TEST_ENV}")
endforeach()
