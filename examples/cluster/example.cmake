# Included by examples/CMakeLists.txt with ${_target} = herald_example_cluster (only when
# requires.cmake found herald::redis).
target_link_libraries(${_target} PRIVATE herald::redis)
