# A third party's view: install, then build the example adapter out of tree.
add_test(NAME sdk_example_out_of_tree
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/tools/sdk_out_of_tree.sh
                 ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR})
