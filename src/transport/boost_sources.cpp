// Compiles Boost.Asio and Boost.Beast once for the whole program (separate compilation, enabled by
// BOOST_ASIO_SEPARATE_COMPILATION / BOOST_BEAST_SEPARATE_COMPILATION in CMakeLists.txt) instead
// of in every translation unit that uses them: it roughly halves build time.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
