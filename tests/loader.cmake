# Adapters for the loader tests: each fixture is broken in exactly one way.
set(AMBER_FIXTURE_DIR "${CMAKE_BINARY_DIR}/test-adapters")
set(AMBER_FIXTURES
  "good:good:"
  "noentry:noentry:CASE_NO_ENTRY"
  "abi2:abi2:CASE_ABI2_ENTRY"
  "badmajor:badmajor:CASE_BAD_MAJOR"
  "misnamed:other:"
  "nomethod:nomethod:CASE_MISSING_METHOD"
  "newerhost:newerhost:CASE_NEEDS_NEWER_HOST"
  "shortstruct:shortstruct:CASE_SHORT_STRUCT"
  "presignnomethod:presignnomethod:CASE_PRESIGN_WITHOUT_METHOD"
  "multipartnomethod:multipartnomethod:CASE_MULTIPART_WITHOUT_METHODS"
  "initfails:initfails:CASE_INIT_FAILS"
  "badschema:badschema:CASE_BAD_SCHEMA"
  "BadName:BadName:")
set(AMBER_FIXTURE_TARGETS)
foreach(spec ${AMBER_FIXTURES})
  string(REPLACE ":" ";" parts "${spec}")
  list(GET parts 0 file)
  list(GET parts 1 name)
  list(LENGTH parts len)
  amber_add_adapter(NAME fixture_${file} SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/adapters/fixture.c
                    OUTPUT_DIR ${AMBER_FIXTURE_DIR} NO_INSTALL)
  set_target_properties(adapter_fixture_${file} PROPERTIES OUTPUT_NAME ${file})
  target_compile_definitions(adapter_fixture_${file} PRIVATE FIXTURE_NAME="${name}")
  if(len GREATER 2)
    list(GET parts 2 case)
    if(case)
      target_compile_definitions(adapter_fixture_${file} PRIVATE ${case})
    endif()
  endif()
  list(APPEND AMBER_FIXTURE_TARGETS adapter_fixture_${file})
endforeach()

# The oldest released header's adapter: built against the frozen copy only.
amber_add_adapter(NAME old SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/abi/old_adapter.c
                  OUTPUT_DIR ${AMBER_FIXTURE_DIR} NO_INSTALL)
target_include_directories(adapter_old BEFORE PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/abi/frozen/1.0)
list(APPEND AMBER_FIXTURE_TARGETS adapter_old)

if(TARGET test_loader)
  add_dependencies(test_loader ${AMBER_FIXTURE_TARGETS})
  set_property(TEST loader APPEND PROPERTY ENVIRONMENT "AMBER_FIXTURE_DIR=${AMBER_FIXTURE_DIR}")
endif()

# ABI guards: the frozen layout, and the header alone in strict C11 and in C++.
add_library(abi_layout_1_0 OBJECT abi/layout_1_0.c abi/headertest.c)
target_link_libraries(abi_layout_1_0 PRIVATE amber_sdk)
target_compile_options(abi_layout_1_0 PRIVATE -pedantic -Werror)
find_program(AMBER_CXX NAMES c++ g++)
if(AMBER_CXX)
  add_test(NAME abi_header_cxx
           COMMAND ${AMBER_CXX} -std=c++11 -Wall -Wextra -pedantic -Werror -fsyntax-only
                   -I${CMAKE_SOURCE_DIR}/plugin-sdk/include
                   ${CMAKE_CURRENT_SOURCE_DIR}/abi/headertest.cpp)
endif()
add_test(NAME abi_frozen_header_unchanged_prefix
         COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/tools/abi_append_only.py
                 ${CMAKE_CURRENT_SOURCE_DIR}/abi/frozen/1.0/amber/adapter.h
                 ${CMAKE_SOURCE_DIR}/plugin-sdk/include/amber/adapter.h)
