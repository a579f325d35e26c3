# In-tree build of the example, so tests and the conformance runner can load it from
# <build>/examples-out/memory.so (not beside the
# product's adapters, so the build tree's amber does not load it). Include this file from the tree's CMake; third
# parties use Makefile or CMakeLists.txt beside it instead.
amber_add_adapter(NAME memory SOURCES ${CMAKE_CURRENT_LIST_DIR}/memory.c
                  LIBS Threads::Threads NO_INSTALL
                  OUTPUT_DIR ${CMAKE_BINARY_DIR}/examples-out)
