# Included by examples/CMakeLists.txt with ${_target} = herald_example_tls.
target_link_libraries(${_target} PRIVATE herald::tls)
