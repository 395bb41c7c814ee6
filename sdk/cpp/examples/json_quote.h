// A JSON string literal of raw bytes, for the examples that print records as JSON lines. Bytes
// above 0x7f pass through unchanged: the payloads in the examples are UTF-8.
#ifndef NODATA_EXAMPLES_JSON_QUOTE_H_
#define NODATA_EXAMPLES_JSON_QUOTE_H_

#include <cstdio>
#include <string>

inline std::string JsonQuote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

#endif  // NODATA_EXAMPLES_JSON_QUOTE_H_
