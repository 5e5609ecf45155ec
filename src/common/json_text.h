// JSON text <-> boost::json values, for every piece of JSON possync writes or reads back (server
// messages, REST responses, stored records and change data, possync-bench's reports). Pure
// functions; thread-safe.
//
// Writing is boost::json::serialize's output except for doubles, which come out as JavaScript's
// JSON.stringify prints the same double (ECMAScript Number::toString): the shortest digits that
// read back as exactly that double, in decimal notation for 1e-7 < |x| < 1e21 (25.5, 0.000001,
// 123456789012345680000) and as d.ddde+XX / d.ddde-XX otherwise (1e-7, 1e+21, 1.5e+300); -0 is
// 0; integral doubles have neither exponent nor ".0" (500). Boost.JSON 1.81 writes 25.5 as 2.55E1.
// Non-finite doubles (never accepted as input) are written as null, as JSON.stringify does.
// int64 and uint64 values are written as integers, so integers beyond 2^53 come out as sent.
//
// Reading is boost::json::parse's, except that a number with a fraction or an exponent becomes the
// double nearest to its decimal value (std::from_chars, as JSON.parse reads it); Boost.JSON 1.81
// reads some numbers of 16-17 significant digits one unit in the last place off and, unlike later
// Boost releases (parse_options::numbers), has no option to read them exactly. Together: a number
// a client sends is stored and sent back as JSON.stringify would print it.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse_options.hpp>
#include <boost/json/value.hpp>
#include <boost/system/error_code.hpp>
#include <cstdint>
#include <string>
#include <string_view>

namespace possync {

// Append JSON text to `out`. The text is built in a buffer on the stack (on the heap beyond 4 KiB)
// and appended in one piece: no allocation per value.
void append_json(std::string& out, const boost::json::value& v);
void append_json(std::string& out, const boost::json::object& o);
void append_json(std::string& out, const boost::json::array& a);
// A JSON string literal: quotes; `"`, `\` and control characters escaped; other bytes as they are.
void append_json_string(std::string& out, std::string_view s);
void append_json_number(std::string& out, double d);
void append_json_number(std::string& out, std::int64_t n);
void append_json_number(std::string& out, std::uint64_t n);

// The same as a new string of exactly its size (the replacement for boost::json::serialize).
std::string json_text(const boost::json::value& v);
std::string json_text(const boost::json::object& o);

// Parses one JSON text (the replacement for boost::json::parse): on error sets `ec` and returns
// null. `options` as for boost::json::parse (nesting depth, extensions).
boost::json::value parse_json(std::string_view text, boost::system::error_code& ec,
                              const boost::json::parse_options& options = {});

}  // namespace possync
