# The toml-test suite driven through `amber config toml-decode`, as toml-test's own
# runner drives a decoder (TOML on stdin, tagged JSON on stdout).
add_test(NAME toml_test_suite_decoder
         COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/tools/toml_test_run.py
                 --decoder "$<TARGET_FILE:amber> config toml-decode"
                 --suite ${AMBER_SHARED_DIR}/vectors/toml-test)
