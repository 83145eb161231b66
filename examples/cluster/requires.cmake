# Included by examples/CMakeLists.txt before herald_example_cluster is defined: a cluster node
# needs the Redis backplane (herald::redis, hiredis). Without it the example is not built.
if(NOT TARGET herald::redis)
  set(HERALD_EXAMPLE_SKIP "herald::redis is not available (hiredis not found, Debian: libhiredis-dev)")
endif()
