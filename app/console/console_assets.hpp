// The console's static files, embedded in the binary at build time (embed.cmake).
#pragma once

#include <string_view>

namespace petrel {

struct console_asset {
  std::string_view path;          // relative to /ui/, e.g. "console.js"
  std::string_view content_type;
  std::string_view body;
  std::string_view etag;          // quoted, from the content's SHA-256
};

const console_asset* find_console_asset(std::string_view path);

}  // namespace petrel
