// Header-only probing of the image formats facekit accepts. Nothing here decodes pixels: the point is to
// learn an image's size cheaply so the limits can be enforced before a decoder allocates anything. Input is
// untrusted, so every byte access goes through a bounds-checked reader and every failure is an Error.
#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "facekit/error.hpp"
#include "facekit/image.hpp"

namespace facekit {
namespace {

[[noreturn]] void bad(const std::string& message) { throw Error(ErrorCode::kBadImage, message); }

/// Bounds-checked view of the input: a read past the end throws "truncated <format> header".
class Reader {
 public:
  Reader(std::string_view data, const char* format) : data_(data), format_(format) {}

  std::size_t size() const { return data_.size(); }
  bool has(std::size_t pos, std::size_t n) const { return pos <= data_.size() && n <= data_.size() - pos; }

  std::uint8_t u8(std::size_t pos) const {
    need(pos, 1);
    return static_cast<std::uint8_t>(data_[pos]);
  }
  std::uint32_t be16(std::size_t pos) const {
    need(pos, 2);
    return std::uint32_t{raw(pos)} << 8 | raw(pos + 1);
  }
  std::uint32_t be32(std::size_t pos) const {
    need(pos, 4);
    return std::uint32_t{raw(pos)} << 24 | std::uint32_t{raw(pos + 1)} << 16 |
           std::uint32_t{raw(pos + 2)} << 8 | raw(pos + 3);
  }
  std::uint32_t le16(std::size_t pos) const {
    need(pos, 2);
    return std::uint32_t{raw(pos + 1)} << 8 | raw(pos);
  }
  std::uint32_t le24(std::size_t pos) const {
    need(pos, 3);
    return std::uint32_t{raw(pos + 2)} << 16 | std::uint32_t{raw(pos + 1)} << 8 | raw(pos);
  }
  std::uint32_t le32(std::size_t pos) const {
    need(pos, 4);
    return std::uint32_t{raw(pos + 3)} << 24 | std::uint32_t{raw(pos + 2)} << 16 |
           std::uint32_t{raw(pos + 1)} << 8 | raw(pos);
  }
  bool matches(std::size_t pos, std::string_view text) const {
    need(pos, text.size());
    return data_.substr(pos, text.size()) == text;
  }
  [[noreturn]] void truncated() const { bad(std::string("truncated ") + format_ + " header"); }

 private:
  void need(std::size_t pos, std::size_t n) const {
    if (!has(pos, n)) truncated();
  }
  std::uint8_t raw(std::size_t pos) const { return static_cast<std::uint8_t>(data_[pos]); }

  std::string_view data_;
  const char* format_;
};

ImageInfo make_info(const char* format, std::int64_t width, std::int64_t height) {
  if (width <= 0 || height <= 0 || width > INT_MAX || height > INT_MAX) {
    bad(std::string("invalid ") + format + " header: impossible size " + std::to_string(width) + "x" +
        std::to_string(height));
  }
  return {format, static_cast<int>(width), static_cast<int>(height)};
}

// Huffman-coded JPEG: every 8x8 block of every component costs at least one bit (its DC code), so a frame of
// width x height needs at least this many bytes. `pos` is the first component entry of the frame header.
std::int64_t jpeg_min_bytes(const Reader& r, std::size_t pos, std::uint32_t components, std::int64_t width,
                            std::int64_t height) {
  // Impossible values are left for the decoder to report: the bound is then 0 (none).
  if (components == 0 || components > 4) return 0;
  std::uint32_t h[4], v[4], hmax = 1, vmax = 1;
  for (std::uint32_t c = 0; c < components; ++c) {
    const std::uint32_t sampling = r.u8(pos + 3 * c + 1);
    h[c] = sampling >> 4, v[c] = sampling & 15;
    if (h[c] < 1 || h[c] > 4 || v[c] < 1 || v[c] > 4) return 0;
    hmax = std::max(hmax, h[c]), vmax = std::max(vmax, v[c]);
  }
  const auto ceil_div = [](std::int64_t a, std::int64_t b) { return (a + b - 1) / b; };
  std::int64_t blocks = 0;
  for (std::uint32_t c = 0; c < components; ++c)
    blocks += ceil_div(ceil_div(width * h[c], hmax), 8) * ceil_div(ceil_div(height * v[c], vmax), 8);
  return blocks / 8;
}

// JPEG: walk the marker segments after SOI until the frame header (SOFn) that carries the size.
ImageInfo probe_jpeg(const Reader& r) {
  std::size_t pos = 2;  // past SOI
  for (;;) {
    // libjpeg skips stray bytes before a marker (with a warning) and so do we; then any number of 0xFF fill
    // bytes may precede the marker code.
    while (pos < r.size() && r.u8(pos) != 0xFF) ++pos;
    while (pos < r.size() && r.u8(pos) == 0xFF) ++pos;
    if (pos >= r.size()) bad("truncated JPEG header (no frame header found)");
    const std::uint8_t marker = r.u8(pos++);

    // 0xFF00 is a stuffed data byte, not a marker: skip it as libjpeg does.
    if (marker == 0x00) continue;
    // Standalone markers carry no length: TEM and RST0-RST7.
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;
    if (marker == 0xD8) bad("corrupt JPEG: second start-of-image marker");
    if (marker == 0xD9 || marker == 0xDA) bad("corrupt JPEG: image data before the frame header");

    const std::uint32_t length = r.be16(pos);  // counts itself, not the marker
    if (length < 2) bad("corrupt JPEG: invalid segment length");
    // SOF0-SOF15 hold the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but are not frames.
    if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC) {
      if (length < 8) bad("corrupt JPEG: frame header too short");
      // Layout after the length: precision (1), height (2), width (2), component count (1).
      const std::uint32_t height = r.be16(pos + 3);
      const std::uint32_t width = r.be16(pos + 5);
      // Height 0 means "defined later by a DNL marker", which libjpeg does not support either.
      if (height == 0) bad("unsupported JPEG: height given by a DNL marker");
      ImageInfo info = make_info("jpeg", width, height);
      // Arithmetic coding (SOF9-SOF15) has no per-block floor; Huffman coding spends at least one bit per block.
      if (marker < 0xC9) info.min_bytes = jpeg_min_bytes(r, pos + 8, r.u8(pos + 7), width, height);
      return info;
    }
    pos += length;
  }
}

// PNG: the 8-byte signature, then IHDR must be the first chunk.
ImageInfo probe_png(const Reader& r) {
  // The tail of the signature catches text-mode transfer damage (CRLF / LF conversion).
  if (!r.matches(4, "\r\n\x1a\n")) bad("corrupt PNG signature");
  if (r.be32(8) != 13 || !r.matches(12, "IHDR")) bad("corrupt PNG: first chunk is not a valid IHDR");
  ImageInfo info = make_info("png", r.be32(16), r.be32(20));
  // Samples per pixel by colour type (grey, -, RGB, palette, grey+alpha, -, RGBA); deflate's best is 1032:1.
  static constexpr int kChannels[7] = {1, 0, 3, 1, 2, 0, 4};
  const std::uint32_t depth = r.u8(24), colour = r.u8(25);
  if (colour < 7 && kChannels[colour] > 0 && depth >= 1 && depth <= 16) {
    const std::int64_t row_bits = std::int64_t{info.width} * kChannels[colour] * depth;
    info.min_bytes = (row_bits + 7) / 8 * info.height / 1032;
  }
  return info;
}

// BMP: 14-byte file header, then a DIB header whose size tells its kind.
ImageInfo probe_bmp(const Reader& r) {
  const std::uint32_t header_size = r.le32(14);
  if (header_size == 12) {  // BITMAPCOREHEADER (OS/2 1.x): unsigned 16-bit dimensions
    return make_info("bmp", r.le16(18), r.le16(20));
  }
  if (header_size >= 40) {  // BITMAPINFOHEADER and its extensions (V4, V5, OS/2 2.x)
    const auto width = static_cast<std::int32_t>(r.le32(18));
    const auto height = static_cast<std::int32_t>(r.le32(22));
    // A negative height marks a top-down bitmap; widen first so that INT32_MIN cannot overflow.
    const std::int64_t rows = height < 0 ? -std::int64_t{height} : height;
    return make_info("bmp", width, rows);
  }
  bad("unsupported BMP header (size " + std::to_string(header_size) + ")");
}

// WebP: RIFF container, "WEBP" form type, then the first chunk says which bitstream follows.
ImageInfo probe_webp(const Reader& r) {
  constexpr std::size_t kData = 20;  // after "RIFF" size "WEBP" fourcc chunk-size
  if (r.matches(12, "VP8 ")) {       // lossy: 3-byte frame tag, start code, 14-bit sizes (+2 scale bits)
    if (!r.matches(kData + 3, "\x9d\x01\x2a")) bad("corrupt WebP: bad VP8 start code");
    return make_info("webp", r.le16(kData + 6) & 0x3FFF, r.le16(kData + 8) & 0x3FFF);
  }
  if (r.matches(12, "VP8L")) {  // lossless: signature byte, then 14-bit width-1 and height-1
    if (r.u8(kData) != 0x2F) bad("corrupt WebP: bad VP8L signature");
    const std::uint32_t bits = r.le32(kData + 1);
    return make_info("webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1);
  }
  if (r.matches(12, "VP8X")) {  // extended: flags (1), reserved (3), 24-bit canvas width-1 and height-1
    return make_info("webp", std::int64_t{r.le24(kData + 4)} + 1, std::int64_t{r.le24(kData + 7)} + 1);
  }
  bad("corrupt WebP: unknown first chunk");
}

bool is_pnm_space(std::uint8_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}
bool is_digit(std::uint8_t c) { return c >= '0' && c <= '9'; }

// Reads one decimal PNM header field, skipping whitespace and '#' comments (which run to the line's end).
std::int64_t pnm_field(const Reader& r, std::size_t& pos) {
  for (;;) {
    if (pos >= r.size()) r.truncated();
    const std::uint8_t c = r.u8(pos);
    if (c == '#') {
      while (pos < r.size() && r.u8(pos) != '\n' && r.u8(pos) != '\r') ++pos;
    } else if (is_pnm_space(c)) {
      ++pos;
    } else {
      break;
    }
  }
  if (!is_digit(r.u8(pos))) bad("corrupt PNM header: expected a number");
  std::int64_t value = 0;
  while (pos < r.size() && is_digit(r.u8(pos))) {
    value = value * 10 + (r.u8(pos++) - '0');
    if (value > INT_MAX) bad("invalid PNM header: dimension too large");
  }
  // The number is only known to be complete once something follows it.
  if (pos >= r.size()) r.truncated();
  // White space must end it: OpenCV's reader swallows whatever byte ends a number, so after "888#8888" it reads
  // 8888 as the next field where a comment parser reads what follows the comment; such a header would pass
  // the pixel limit here and allocate gigabytes there (found by scripts/fuzz).
  if (!is_pnm_space(r.u8(pos))) bad("corrupt PNM header: a number must be followed by white space");
  return value;
}

// PNM (P1-P6): magic, then width and height as ASCII decimals. The maxval that follows is not needed here.
ImageInfo probe_pnm(const Reader& r) {
  std::size_t pos = 2;
  const std::int64_t width = pnm_field(r, pos);
  const std::int64_t height = pnm_field(r, pos);
  return make_info("pnm", width, height);
}

}  // namespace

ImageInfo probe_image(const std::string& bytes) {
  if (bytes.empty()) bad("empty input");
  const std::string_view data(bytes);
  const auto starts = [&](std::string_view magic) { return data.substr(0, magic.size()) == magic; };

  if (starts("\xFF\xD8")) return probe_jpeg(Reader(data, "JPEG"));
  if (starts("\x89PNG")) return probe_png(Reader(data, "PNG"));
  if (starts("BM")) return probe_bmp(Reader(data, "BMP"));
  if (starts("RIFF")) {
    const Reader r(data, "WebP");
    // RIFF also wraps WAV, AVI and others: only the WEBP form type is an image.
    if (r.matches(8, "WEBP")) return probe_webp(r);
  } else if (data.size() >= 2 && data[0] == 'P' && data[1] >= '1' && data[1] <= '6' &&
             (data.size() == 2 || is_pnm_space(static_cast<std::uint8_t>(data[2])))) {
    return probe_pnm(Reader(data, "PNM"));
  }
  bad("not a supported image (JPEG, PNG, BMP, WebP, PNM)");
}

}  // namespace facekit
