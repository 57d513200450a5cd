// Records from outside the store, checked before they go in: person names, metadata, and the person lines of an
// export. Pure functions (no store, no files), so the fuzzer can drive them directly.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <random>
#include <stdexcept>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/json_depth.hpp"
#include "facekit/error.hpp"
#include "facekit/gallery.hpp"
#include "gallery/base64.hpp"
#include "gallery/crypto.hpp"
#include "gallery/store_common.hpp"

namespace facekit {
using nlohmann::json;

// ---- names and metadata ------------------------------------------------------------------------------------

namespace {

// Decodes one UTF-8 sequence at `i` (advancing it); -1 for anything malformed (overlong, surrogate, > U+10FFFF).
long next_code_point(const std::string& s, std::size_t& i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  int n = 0;
  long cp = 0, min = 0;
  if (c < 0x80) return ++i, c;
  if ((c & 0xE0) == 0xC0) n = 1, cp = c & 0x1F, min = 0x80;
  else if ((c & 0xF0) == 0xE0) n = 2, cp = c & 0x0F, min = 0x800;
  else if ((c & 0xF8) == 0xF0) n = 3, cp = c & 0x07, min = 0x10000;
  else return -1;
  for (int k = 1; k <= n; ++k) {
    if (i + k >= s.size() || (b(i + k) & 0xC0) != 0x80) return -1;
    cp = cp << 6 | (b(i + k) & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
  i += n + 1;
  return cp;
}

bool is_space(long cp) { return cp == ' ' || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x202F || cp == 0x205F || cp == 0x3000; }
// C0, DEL, C1, line and paragraph separators, bidirectional overrides and isolates (they reorder what a
// terminal shows), the byte-order mark.
bool is_control(long cp) {
  return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029 || (cp >= 0x202A && cp <= 0x202E) ||
         (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200E || cp == 0x200F || cp == 0xFEFF;
}

}  // namespace

void check_person_name(const std::string& name) {
  const auto bad = [&](const std::string& why) {
    return Error(ErrorCode::kInvalidArgument, "invalid name: " + why);
  };
  if (name.empty()) throw bad("a person needs a non-empty name");
  if (name.size() > 1000) throw bad("longer than 1000 bytes");
  std::vector<long> cps;
  for (std::size_t i = 0; i < name.size();) {
    const long cp = next_code_point(name, i);
    if (cp < 0) throw bad("not valid UTF-8 (byte " + std::to_string(i) + ")");
    if (is_control(cp)) {
      char buf[16];
      std::snprintf(buf, sizeof buf, "U+%04lX", cp);
      throw bad(std::string("holds a control character (") + buf + ")");
    }
    cps.push_back(cp);
  }
  if (std::all_of(cps.begin(), cps.end(), is_space)) throw bad("blank");
  if (is_space(cps.front()) || is_space(cps.back())) throw bad("'" + name + "' starts or ends with white space");
  if (name.find_first_not_of("0123456789") == std::string::npos)
    throw bad("'" + name + "' is all digits, which reads as a person id");
}

void check_metadata(const std::string& metadata_json) { detail::parse_metadata(metadata_json); }

namespace detail {

json parse_metadata(const std::string& text) {
  json j;
  try {
    j = parse_json_limited(text.empty() ? "{}" : text, "metadata");
  } catch (const json::exception& e) {
    throw Error(ErrorCode::kInvalidArgument, std::string("metadata is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw Error(ErrorCode::kInvalidArgument, "metadata must be a JSON object, got: " + text);
  return j;
}

CheckedPeople check_new_people(const std::vector<NewPerson>& people) {
  CheckedPeople out;
  for (const auto& p : people) {
    if (p.name.empty()) throw Error(ErrorCode::kInvalidArgument, "a person needs a non-empty name");
    check_person_name(p.name);
    if (p.templates.empty())
      throw Error(ErrorCode::kInvalidArgument, "person '" + p.name + "' has no templates; nothing stored");
    out.metadata.push_back(parse_metadata(p.metadata));
    for (const auto& t : p.templates) {
      if (t.embedder.name.empty())
        throw Error(ErrorCode::kInvalidArgument, "a template of '" + p.name + "' names no embedder");
      if (t.embedding.empty())
        throw Error(ErrorCode::kInvalidArgument, "a template of '" + p.name + "' has an empty embedding");
      double norm = 0;
      for (float v : t.embedding) {
        if (!std::isfinite(v))
          throw Error(ErrorCode::kInvalidArgument, "a template of '" + p.name + "' has a non-finite value");
        norm += double(v) * v;
      }
      // Templates are L2-normalised; anything else (1e30, all zeros) would poison every search it is part of.
      norm = std::sqrt(norm);
      if (std::abs(norm - 1.0) > 1e-3)
        throw Error(ErrorCode::kInvalidArgument, "a template of '" + p.name + "' has length " + std::to_string(norm) +
                                                     ", not 1 (embeddings are L2-normalised); nothing stored");
      auto [it, fresh] = out.dims.emplace(t.embedder, t.embedding.size());
      if (!fresh && it->second != t.embedding.size())
        throw Error(ErrorCode::kInvalidArgument, "embeddings of " + t.embedder.str() + " differ in length");
    }
  }
  return out;
}

std::string random_uuid() {
  std::random_device rd;
  std::uniform_int_distribution<int> d(0, 15);
  std::string s;
  const char* hex = "0123456789abcdef";
  for (int i = 0; i < 32; ++i) {
    if (i == 8 || i == 12 || i == 16 || i == 20) s += '-';
    s += hex[d(rd)];
  }
  return s;
}

std::int64_t now_seconds() { return static_cast<std::int64_t>(std::time(nullptr)); }

}  // namespace detail

namespace {

Embedding floats_of(const std::string& bytes) {
  if (bytes.empty() || bytes.size() % sizeof(float))
    throw Error(ErrorCode::kInvalidArgument, "embedding is not a whole number of float32");
  Embedding e(bytes.size() / sizeof(float));
  std::memcpy(e.data(), bytes.data(), bytes.size());
  return e;
}

}  // namespace

NewPerson parse_export_person(const std::string& line, const std::optional<GalleryKey>& key) {
  json j;
  try {
    j = parse_json_limited(line, "the record");
  } catch (const json::exception& e) {
    throw Error(ErrorCode::kInvalidArgument, std::string("not JSON (") + e.what() + ")");
  }
  NewPerson p;
  try {
    p.name = j.at("name").get<std::string>();
    check_person_name(p.name);
    p.metadata = j.value("metadata", json::object()).dump();
    check_metadata(p.metadata);
    for (const auto& t : j.at("templates")) {
      NewTemplate nt;
      nt.embedder = {t.at("embedder").get<std::string>(), t.at("embedder_version").get<std::string>()};
      if (t.contains("embedding_sealed")) {
        if (!key) throw Error(ErrorCode::kInvalidArgument, "a sealed embedding, and no key to open it");
        const auto plain = detail::unseal(*key, base64_decode(t.at("embedding_sealed").get<std::string>()));
        if (!plain) throw Error(ErrorCode::kInvalidArgument, "a sealed embedding does not open with the key (damaged?)");
        nt.embedding = floats_of(*plain);
      } else {
        nt.embedding = floats_of(base64_decode(t.at("embedding").get<std::string>()));
      }
      double norm = 0;
      for (float v : nt.embedding) norm += double(v) * v;
      norm = std::sqrt(norm);
      if (!std::isfinite(norm) || std::abs(norm - 1.0) > 1e-3)
        throw Error(ErrorCode::kInvalidArgument, "a template of '" + p.name + "' has length " + std::to_string(norm) +
                                                     ", not 1 (embeddings are L2-normalised)");
      nt.quality = t.value("quality", 0.f);
      nt.source_sha256 = t.value("source_sha256", "");
      nt.kind = t.value("kind", "imported");
      p.templates.push_back(std::move(nt));
    }
  } catch (const json::exception& e) {
    throw Error(ErrorCode::kInvalidArgument, std::string("malformed record (") + e.what() + ")");
  } catch (const std::invalid_argument& e) {
    throw Error(ErrorCode::kInvalidArgument, e.what());
  }
  if (p.templates.empty()) throw Error(ErrorCode::kInvalidArgument, "person '" + p.name + "' has no templates");
  return p;
}

}  // namespace facekit
