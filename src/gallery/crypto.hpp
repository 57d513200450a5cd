#pragma once
// libsodium behind the gallery: secretbox sealing of templates and caches, and BLAKE2b row checksums.
#include <optional>
#include <string>
#include <string_view>

#include "facekit/gallery.hpp"

namespace facekit::detail {

/// nonce (24 bytes) || secretbox(plain) with a fresh random nonce.
std::string seal(const GalleryKey& key, std::string_view plain);
/// The plain text, or nothing when `sealed` was not sealed by this key (or was changed since).
std::optional<std::string> unseal(const GalleryKey& key, std::string_view sealed);

/// Lower-case hexadecimal, for sealed values kept in text (meta, export headers).
std::string to_hex(std::string_view bytes);
/// Throws Error(kInvalidArgument) naming `what` unless `hex` is lower-case hexadecimal of even length.
std::string from_hex(std::string_view hex, const std::string& what);

/// A 16-byte BLAKE2b digest of the parts, each length-prefixed so that ("ab","c") and ("a","bc") differ.
class Checksum {
 public:
  Checksum();
  Checksum& add(std::string_view bytes);
  Checksum& add(std::int64_t v);
  Checksum& add(double v);
  std::string digest();

 private:
  alignas(64) unsigned char state_[384];
};

}  // namespace facekit::detail
