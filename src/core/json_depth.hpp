#pragma once
// JSON from outside (metadata, export lines, manifests) is checked for nesting depth before it is parsed:
// nlohmann::json parses deep nesting iteratively, but copying, comparing and dumping the result recurse, so a
// document nested 60,000 deep overflows the stack later, far from where it came in.
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "facekit/error.hpp"

namespace facekit {

/// Deeper than this is refused everywhere facekit reads JSON it did not write itself.
inline constexpr int kMaxJsonDepth = 64;

/// Throws Error(kInvalidArgument) naming `what` when arrays and objects in `text` nest deeper than `max_depth`
/// (brackets inside strings do not count). Malformed JSON is left for the parser to report.
inline void check_json_depth(std::string_view text, const std::string& what, int max_depth = kMaxJsonDepth) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth)
        throw Error(ErrorCode::kInvalidArgument,
                    what + " nests arrays and objects deeper than " + std::to_string(max_depth) + " levels");
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

/// check_json_depth, then nlohmann::json::parse (whose exceptions pass through).
inline nlohmann::json parse_json_limited(std::string_view text, const std::string& what, int max_depth = kMaxJsonDepth) {
  check_json_depth(text, what, max_depth);
  return nlohmann::json::parse(text);
}

}  // namespace facekit
