// Compiles Boost.Asio and Boost.Beast once for possync-bench (separate compilation, enabled by
// BOOST_ASIO_SEPARATE_COMPILATION / BOOST_BEAST_SEPARATE_COMPILATION in bench/CMakeLists.txt).
// The bench does not link possync_core, so it carries its own copy.
#include <boost/asio/impl/src.hpp>
#include <boost/beast/src.hpp>
