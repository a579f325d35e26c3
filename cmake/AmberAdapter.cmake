# amber_add_adapter(NAME <name> SOURCES <files...> [LIBS <targets...>] [NO_INSTALL])
# Builds <name>.so as a MODULE with hidden visibility: the entry symbol is its only
# export, and -z,defs proves it needs nothing from the host's binary.
function(amber_add_adapter)
  cmake_parse_arguments(A "NO_INSTALL" "NAME;OUTPUT_DIR" "SOURCES;LIBS" ${ARGN})
  add_library(adapter_${A_NAME} MODULE ${A_SOURCES})
  if(NOT A_OUTPUT_DIR)
    set(A_OUTPUT_DIR "${AMBER_ADAPTER_BUILD_DIR}")
  endif()
  set_target_properties(adapter_${A_NAME} PROPERTIES
    OUTPUT_NAME ${A_NAME} PREFIX ""
    C_VISIBILITY_PRESET hidden
    LIBRARY_OUTPUT_DIRECTORY "${A_OUTPUT_DIR}")
  target_link_libraries(adapter_${A_NAME} PRIVATE amber_sdk ${A_LIBS})
  if(NOT AMBER_SANITIZE)
    target_link_options(adapter_${A_NAME} PRIVATE -Wl,-z,defs)
  endif()
  if(NOT A_NO_INSTALL)
    install(TARGETS adapter_${A_NAME} LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}/amber/adapters"
            PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                        WORLD_READ WORLD_EXECUTE)
  endif()
endfunction()
