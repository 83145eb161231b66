// Compiles Boost.Asio (with its SSL support) and Boost.Beast once for the test binary.
//
// Only the herald_tests target defines BOOST_ASIO_SEPARATE_COMPILATION and
// BOOST_BEAST_SEPARATE_COMPILATION (tests/CMakeLists.txt); herald::herald, the examples and the
// package consumer stay in Boost's default header-only mode, which is what users build.
// Asio's SSL definitions need OpenSSL linked into the test binary.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
