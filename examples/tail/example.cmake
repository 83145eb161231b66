# Included by examples/CMakeLists.txt with ${_target} = herald_example_tail.
# tail follows https and wss URLs too when OpenSSL was found (herald::tls); otherwise it is built
# without TLS and says so for such URLs.
if(TARGET herald::tls)
  target_link_libraries(${_target} PRIVATE herald::tls)
  target_compile_definitions(${_target} PRIVATE HERALD_EXAMPLE_TLS=1)
endif()
