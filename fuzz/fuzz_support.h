// Helpers shared by the fuzz targets: an invariant check that aborts (so libFuzzer records the
// input), and splitting fuzz input into JSON values.
#pragma once

#include <boost/json/stream_parser.hpp>
#include <boost/json/value.hpp>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "common/json_text.h"
#include "protocol/codec.h"

namespace possync::fuzz {

// Prints what was violated and aborts; libFuzzer then saves the input as a crash artifact.
[[noreturn]] inline void fail(const char* what, const char* file, int line,
                              const std::string& detail) {
  std::fprintf(stderr, "%s:%d: invariant violated: %s\n%s\n", file, line, what, detail.c_str());
  std::abort();
}

inline std::string show(const boost::json::value& v) {
  return json_text(v);
}

// Reads up to `max_values` JSON values written one after another (whitespace between them). Each
// must be one the server accepts in a message (parse_object: at most 32 levels deep within the
// message, numbers in range); reading stops at the first that is not.
inline std::vector<boost::json::value> json_values(std::string_view text, std::size_t max_values) {
  std::vector<boost::json::value> out;
  while (out.size() < max_values && !text.empty()) {
    boost::json::stream_parser parser;
    boost::system::error_code ec;
    const std::size_t used = parser.write_some(text.data(), text.size(), ec);
    if (!ec && !parser.done()) parser.finish(ec);
    if (ec || !parser.done()) break;
    // As a member of a change's data, the way a record's data arrives (and is validated).
    auto parsed = parse_object(R"({"data_type":"orders","action":"updated","data":{"id":"r","v":)" +
                               std::string(text.substr(0, used)) + "}}");
    if (!parsed) break;
    auto change = decode_change(*parsed, {"r", "d", {}}, {});
    if (!change) break;
    out.push_back(std::move(change->change.data.at("v")));
    text.remove_prefix(used);
  }
  return out;
}

}  // namespace possync::fuzz

// Aborts with the condition's text and `detail` (a std::string expression) when `cond` is false.
#define FUZZ_CHECK(cond, detail) \
  ((cond) ? (void)0 : ::possync::fuzz::fail(#cond, __FILE__, __LINE__, (detail)))
