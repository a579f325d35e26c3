# memcheck over the CLI's real paths; sanitizer builds already instrument themselves.
find_program(AMBER_VALGRIND valgrind)
if(AMBER_VALGRIND AND NOT AMBER_SANITIZE)
  add_test(NAME valgrind_cli
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/tools/valgrind_cli.sh
                   $<TARGET_FILE:amber> ${AMBER_ADAPTER_BUILD_DIR} ${CMAKE_SOURCE_DIR})
endif()

# Each shipped adapter exports exactly its entry symbol.
add_test(NAME adapter_exports_only_entry_symbol
         COMMAND sh -c "for f in ${AMBER_ADAPTER_BUILD_DIR}/*.so; do \
e=$(nm -D --defined-only \"$f\" | awk '{print $3}' | grep -v '^_' | tr '\\n' ' '); \
[ \"$e\" = 'amber_adapter_entry_v1 ' ] || { echo \"$f exports: $e\"; exit 1; }; \
echo \"ok - $f exports only amber_adapter_entry_v1\"; done")
