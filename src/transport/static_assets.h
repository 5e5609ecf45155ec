// Static files compiled into the binary: the admin console (clients/admin), bundled when the
// server is built (CMakeLists.txt: esbuild, then cmake/embed_files.cmake writes the generated
// source that defines admin_console_assets()). The server needs no files beside it to serve them.
//
// Thread-safety: immutable data with static storage; any thread may read it.
#pragma once

#include <span>
#include <string_view>

namespace possync {

struct StaticAsset {
  std::string_view name;          // file name under its prefix, e.g. "index.html"
  std::string_view content_type;  // e.g. "text/html; charset=utf-8"
  std::string_view etag;          // quoted strong validator (SHA-256 of the content, shortened)
  std::string_view body;
};

// The admin console's files, served under /admin/ (RestApi::admin_console).
std::span<const StaticAsset> admin_console_assets();

}  // namespace possync
