# The amber CLI end to end needs the binary and the wings adapter built.
if(TARGET test_cli)
  add_dependencies(test_cli amber adapter_wings)
endif()
