# Included by examples/CMakeLists.txt before herald_example_tls is defined: it serves https and
# wss through herald::TlsServer (herald::tls, OpenSSL). Without OpenSSL it is not built.
if(NOT TARGET herald::tls)
  set(HERALD_EXAMPLE_SKIP "herald::tls is not available (OpenSSL not found, Debian: libssl-dev)")
endif()
