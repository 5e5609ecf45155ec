// Compiles Boost.Asio (with its SSL support) and Boost.Beast once for the whole program (separate
// compilation, enabled by BOOST_ASIO_SEPARATE_COMPILATION / BOOST_BEAST_SEPARATE_COMPILATION on
// the possync_boost library in CMakeLists.txt) instead of in every translation unit that uses
// them: it roughly halves build time. Third-party code only: it belongs to no layer, and every
// layer that uses Asio (auth's hasher pool, transport, app) links it.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
