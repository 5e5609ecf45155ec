// Compiles Boost.Asio and Boost.Beast once for possync-bench (separate compilation, enabled by
// BOOST_ASIO_SEPARATE_COMPILATION / BOOST_BEAST_SEPARATE_COMPILATION in bench/CMakeLists.txt).
// Of the server's libraries the bench links only possync_common (not possync_boost), so it carries
// its own copy.
#include <boost/asio/impl/src.hpp>
#include <boost/beast/src.hpp>
