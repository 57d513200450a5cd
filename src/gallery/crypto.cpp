#include "gallery/crypto.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "facekit/error.hpp"

namespace facekit {
namespace fs = std::filesystem;

namespace {

void init_sodium() {
  // Thread-safe and idempotent; it fails only when the system has no source of randomness.
  if (sodium_init() < 0) throw Error(ErrorCode::kInternal, "libsodium could not be initialised");
}

}  // namespace

GalleryKey GalleryKey::generate() {
  init_sodium();
  GalleryKey k;
  randombytes_buf(k.bytes_.data(), k.bytes_.size());
  return k;
}

GalleryKey GalleryKey::from_hex(const std::string& text, const std::string& what) {
  init_sodium();
  std::string hex;
  for (char c : text)
    if (!std::isspace(static_cast<unsigned char>(c))) hex += c;
  GalleryKey k;
  std::size_t len = 0;
  const bool ok = hex.size() == 64 && sodium_hex2bin(k.bytes_.data(), k.bytes_.size(), hex.data(), hex.size(), nullptr,
                                                     &len, nullptr) == 0 && len == k.bytes_.size();
  sodium_memzero(hex.data(), hex.size());
  if (!ok) throw Error(ErrorCode::kInvalidArgument, what + " is not a gallery key (64 hexadecimal digits)");
  return k;
}

GalleryKey GalleryKey::from_file(const fs::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) throw Error(ErrorCode::kNotFound, "no key file " + file.string());
  if (!S_ISREG(st.st_mode)) throw Error(ErrorCode::kInvalidArgument, "key file " + file.string() + " is not a regular file");
  // A key others can read is no longer secret; one others can write could be swapped for theirs.
  if (st.st_mode & 077) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw Error(ErrorCode::kInvalidArgument, "key file " + file.string() + " has mode " + mode +
                                                 ": group and others must have no access (chmod 600 " + file.string() + ")");
  }
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) throw Error(ErrorCode::kInvalidArgument, "cannot read key file " + file.string());
  std::string s = text.str();
  try {
    GalleryKey k = from_hex(s, "key file " + file.string());
    sodium_memzero(s.data(), s.size());
    return k;
  } catch (...) {
    sodium_memzero(s.data(), s.size());
    throw;
  }
}

void GalleryKey::write_file(const fs::path& file) const {
  // O_EXCL: an existing key (perhaps the only copy of one in use) is never replaced.
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) {
    const int e = errno;
    throw Error(e == EEXIST ? ErrorCode::kInvalidArgument : ErrorCode::kStorage,
                "cannot create key file " + file.string() + ": " + std::strerror(e));
  }
  char hex[65];
  sodium_bin2hex(hex, sizeof hex, bytes_.data(), bytes_.size());
  hex[64] = '\n';
  const bool ok = ::write(fd, hex, sizeof hex) == static_cast<ssize_t>(sizeof hex) && ::fsync(fd) == 0;
  sodium_memzero(hex, sizeof hex);
  ::close(fd);
  if (!ok) {
    ::unlink(file.c_str());
    throw Error(ErrorCode::kStorage, "cannot write key file " + file.string());
  }
}

GalleryKey::~GalleryKey() { sodium_memzero(bytes_.data(), bytes_.size()); }

std::optional<GalleryKey> gallery_key_from_environment() {
  if (const char* f = std::getenv("FACEKIT_GALLERY_KEY_FILE"); f && *f) return GalleryKey::from_file(f);
  if (const char* k = std::getenv("FACEKIT_GALLERY_KEY"); k && *k) return GalleryKey::from_hex(k, "$FACEKIT_GALLERY_KEY");
  return std::nullopt;
}

namespace detail {

std::string seal(const GalleryKey& key, std::string_view plain) {
  init_sodium();
  std::string out(crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + plain.size(), '\0');
  auto* p = reinterpret_cast<unsigned char*>(out.data());
  randombytes_buf(p, crypto_secretbox_NONCEBYTES);
  crypto_secretbox_easy(p + crypto_secretbox_NONCEBYTES, reinterpret_cast<const unsigned char*>(plain.data()),
                        plain.size(), p, key.bytes().data());
  return out;
}

std::optional<std::string> unseal(const GalleryKey& key, std::string_view sealed) {
  init_sodium();
  if (sealed.size() < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES) return std::nullopt;
  const auto* p = reinterpret_cast<const unsigned char*>(sealed.data());
  std::string out(sealed.size() - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES, '\0');
  if (crypto_secretbox_open_easy(reinterpret_cast<unsigned char*>(out.data()), p + crypto_secretbox_NONCEBYTES,
                                 sealed.size() - crypto_secretbox_NONCEBYTES, p, key.bytes().data()) != 0)
    return std::nullopt;
  return out;
}

std::string to_hex(std::string_view bytes) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) out += d[c >> 4], out += d[c & 15];
  return out;
}

std::string from_hex(std::string_view hex, const std::string& what) {
  if (hex.size() % 2 || hex.find_first_not_of("0123456789abcdef") != std::string_view::npos)
    throw Error(ErrorCode::kInvalidArgument, what + " is not hexadecimal");
  std::string out;
  const auto v = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  for (std::size_t i = 0; i < hex.size(); i += 2) out += static_cast<char>(v(hex[i]) << 4 | v(hex[i + 1]));
  return out;
}

static_assert(sizeof(crypto_generichash_state) <= 384, "Checksum's state buffer is too small");

Checksum::Checksum() {
  init_sodium();
  crypto_generichash_init(reinterpret_cast<crypto_generichash_state*>(state_), nullptr, 0, 16);
}

Checksum& Checksum::add(std::string_view bytes) {
  add(static_cast<std::int64_t>(bytes.size()));
  crypto_generichash_update(reinterpret_cast<crypto_generichash_state*>(state_),
                            reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  return *this;
}

Checksum& Checksum::add(std::int64_t v) {
  unsigned char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(static_cast<std::uint64_t>(v) >> (8 * i));
  crypto_generichash_update(reinterpret_cast<crypto_generichash_state*>(state_), b, 8);
  return *this;
}

Checksum& Checksum::add(double v) {
  std::int64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  return add(bits);
}

std::string Checksum::digest() {
  std::string out(16, '\0');
  crypto_generichash_final(reinterpret_cast<crypto_generichash_state*>(state_),
                           reinterpret_cast<unsigned char*>(out.data()), out.size());
  return out;
}

}  // namespace detail
}  // namespace facekit
