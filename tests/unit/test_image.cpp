// Image input: header probing, decoding to RGB, limits, EXIF orientation, error codes, saving.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "facekit/error.hpp"
#include "facekit/image.hpp"

namespace {

namespace fs = std::filesystem;
using facekit::Error;
using facekit::ErrorCode;

// ---- byte helpers ----

std::string be16(std::uint32_t v) { return {char(v >> 8), char(v)}; }
std::string le16(std::uint32_t v) { return {char(v), char(v >> 8)}; }
std::string be32(std::uint32_t v) { return be16(v >> 16) + be16(v & 0xFFFF); }
std::string le32(std::uint32_t v) { return le16(v & 0xFFFF) + le16(v >> 16); }

std::uint32_t crc32(std::string_view data) {
  std::uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char byte : data) {
    crc ^= byte;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

std::string encode(const std::string& ext, const cv::Mat& bgr, const std::vector<int>& params = {}) {
  std::vector<uchar> buf;
  EXPECT_TRUE(cv::imencode(ext, bgr, buf, params)) << ext;
  return {buf.begin(), buf.end()};
}

// Offset of the first segment with `marker` in an encoder-written JPEG (no fill bytes), or npos.
std::size_t find_jpeg_marker(const std::string& jpeg, unsigned char marker) {
  std::size_t pos = 2;
  while (pos + 4 <= jpeg.size() && static_cast<unsigned char>(jpeg[pos]) == 0xFF) {
    if (static_cast<unsigned char>(jpeg[pos + 1]) == marker) return pos;
    pos += 2 + (static_cast<unsigned char>(jpeg[pos + 2]) << 8 | static_cast<unsigned char>(jpeg[pos + 3]));
  }
  return std::string::npos;
}

// Rewrites the frame size in a JPEG's SOF0 header.
std::string with_jpeg_size(std::string jpeg, int width, int height) {
  const std::size_t sof = find_jpeg_marker(jpeg, 0xC0);
  EXPECT_NE(sof, std::string::npos);
  jpeg.replace(sof + 5, 4, be16(height) + be16(width));
  return jpeg;
}

// An APP1 segment holding a minimal EXIF block: a TIFF header and IFD0 with a single Orientation tag.
std::string exif_app1(int orientation, bool little_endian) {
  const auto u16 = little_endian ? le16 : be16;
  const auto u32 = little_endian ? le32 : be32;
  // TIFF header (byte order, 42, offset of IFD0 = 8), then IFD0: one entry, Orientation (0x0112), type SHORT,
  // count 1, value left-justified in its 4-byte field; then no next IFD.
  const std::string tiff = std::string(little_endian ? "II" : "MM") + u16(42) + u32(8) + u16(1) +
                           u16(0x0112) + u16(3) + u32(1) + u16(orientation) + u16(0) + u32(0);
  const std::string payload = std::string("Exif\0\0", 6) + tiff;
  return "\xFF\xE1" + be16(payload.size() + 2) + payload;
}

// A PNG with a valid signature and IHDR (CRC included) and nothing else.
std::string png_header_only(std::uint32_t width, std::uint32_t height) {
  const std::string ihdr = "IHDR" + be32(width) + be32(height) + std::string("\x08\x02\x00\x00\x00", 5);
  return "\x89PNG\r\n\x1a\n" + be32(13) + ihdr + be32(crc32(ihdr));
}

// ---- image helpers ----

// BGR (OpenCV order): left half pure red, right half pure green.
cv::Mat red_green(int width, int height) {
  cv::Mat bgr(height, width, CV_8UC3, cv::Scalar(0, 255, 0));
  bgr(cv::Rect(0, 0, width / 2, height)).setTo(cv::Scalar(0, 0, 255));
  return bgr;
}

::testing::AssertionResult near_rgb(const cv::Mat& rgb, int row, int col, cv::Vec3b want, int tolerance) {
  const cv::Vec3b got = rgb.at<cv::Vec3b>(row, col);
  for (int c = 0; c < 3; ++c) {
    if (std::abs(got[c] - want[c]) > tolerance) {
      return ::testing::AssertionFailure()
             << "pixel (" << row << "," << col << ") is " << got << ", want " << want << " +- " << tolerance;
    }
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult mentions(const std::string& message, const std::string& part) {
  if (message.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "message \"" << message << "\" does not mention \"" << part << "\"";
}

// Runs `f`, which must throw facekit::Error with `code`; returns the message for further checks.
template <class F>
std::string error_of(F&& f, ErrorCode code) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no facekit::Error thrown";
  return {};
}

class ImageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("facekit_test_image_" + std::to_string(std::random_device{}()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(const std::string& name, const std::string& bytes) const {
    const fs::path path = dir_ / name;
    std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return path;
  }

  fs::path dir_;
};

// ---- round trips and probing, per format ----

struct FormatCase {
  const char* ext;
  std::vector<int> params;
  const char* format;  // what probe_image should call it
  int tolerance;       // lossy codecs move colours a little
};

const FormatCase kFormats[] = {
    {".jpg", {cv::IMWRITE_JPEG_QUALITY, 95}, "jpeg", 12},
    {".jpg", {cv::IMWRITE_JPEG_PROGRESSIVE, 1}, "jpeg", 16},  // SOF2 rather than SOF0
    {".png", {}, "png", 0},
    {".bmp", {}, "bmp", 0},
    {".webp", {cv::IMWRITE_WEBP_QUALITY, 90}, "webp", 16},  // lossy: "VP8 " chunk
    {".webp", {cv::IMWRITE_WEBP_QUALITY, 101}, "webp", 0},  // lossless: "VP8L" chunk
    {".ppm", {}, "pnm", 0},
};

void PrintTo(const FormatCase& fc, std::ostream* os) { *os << fc.format << " (" << fc.ext << ")"; }

class FormatTest : public ImageTest, public ::testing::WithParamInterface<FormatCase> {};

TEST_P(FormatTest, FileRoundTripsAsRgb) {
  const FormatCase& fc = GetParam();
  const fs::path path = write(std::string("img") + fc.ext, encode(fc.ext, red_green(32, 24), fc.params));

  const cv::Mat rgb = facekit::load_image(path);
  ASSERT_EQ(rgb.type(), CV_8UC3);
  ASSERT_EQ(rgb.cols, 32);
  ASSERT_EQ(rgb.rows, 24);
  EXPECT_TRUE(near_rgb(rgb, 0, 0, {255, 0, 0}, fc.tolerance));  // red in RGB order
  EXPECT_TRUE(near_rgb(rgb, 23, 3, {255, 0, 0}, fc.tolerance));
  EXPECT_TRUE(near_rgb(rgb, 12, 28, {0, 255, 0}, fc.tolerance));  // green
}

TEST_P(FormatTest, ProbeReadsSizeWithoutDecoding) {
  const FormatCase& fc = GetParam();
  const std::string bytes = encode(fc.ext, red_green(38, 21), fc.params);  // non-square, odd height
  const facekit::ImageInfo info = facekit::probe_image(bytes);
  EXPECT_EQ(info.format, fc.format);
  EXPECT_EQ(info.width, 38);
  EXPECT_EQ(info.height, 21);
}

// Every prefix of a valid file either still holds the whole header (and probes to the true size) or is
// reported as a bad image; nothing else may happen. Run under sanitizers this also checks the bounds.
TEST_P(FormatTest, ProbeOfEveryPrefixIsExactOrBadImage) {
  const FormatCase& fc = GetParam();
  const std::string bytes = encode(fc.ext, red_green(38, 21), fc.params);
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    try {
      const facekit::ImageInfo info = facekit::probe_image(bytes.substr(0, n));
      EXPECT_EQ(info.width, 38) << "prefix " << n;
      EXPECT_EQ(info.height, 21) << "prefix " << n;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kBadImage) << "prefix " << n << ": " << e.what();
    }
  }
}

// Damaged header bytes give some size or a bad-image error, never a crash or a foreign exception.
TEST_P(FormatTest, ProbeOfDamagedHeaderIsSizeOrBadImage) {
  const FormatCase& fc = GetParam();
  const std::string bytes = encode(fc.ext, red_green(38, 21), fc.params);
  for (std::size_t i = 0; i < std::min<std::size_t>(bytes.size(), 200); ++i) {
    for (const unsigned char value : {0x00, 0x01, 0x7F, 0xFF}) {
      std::string damaged = bytes;
      damaged[i] = static_cast<char>(value);
      try {
        const facekit::ImageInfo info = facekit::probe_image(damaged);
        EXPECT_GT(info.width, 0);
        EXPECT_GT(info.height, 0);
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::kBadImage) << "byte " << i << ": " << e.what();
      }
    }
  }
}

// A truncated file decodes (decoders may pad a partial image) or is a bad image; it never crashes.
TEST_P(FormatTest, DecodeOfTruncatedFileIsImageOrBadImage) {
  const FormatCase& fc = GetParam();
  const std::string bytes = encode(fc.ext, red_green(38, 21), fc.params);
  for (int part = 1; part < 16; ++part) {
    const std::size_t n = bytes.size() * part / 16;
    try {
      const cv::Mat rgb = facekit::decode_image(bytes.substr(0, n));
      EXPECT_EQ(rgb.type(), CV_8UC3);
      EXPECT_EQ(rgb.size(), cv::Size(38, 21));
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kBadImage) << "prefix " << n << ": " << e.what();
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, FormatTest, ::testing::ValuesIn(kFormats),
                         [](const ::testing::TestParamInfo<FormatCase>& info) {
                           return std::string(info.param.format) + "_" + std::to_string(info.index);
                         });

// ---- probing details ----

TEST(ProbeImage, JpegMarkerWalkSkipsSegmentsFillBytesAndNonFrameMarkers) {
  // SOI; fill bytes; TEM (standalone); an APP0 whose payload contains FF C0 (must be skipped as a whole);
  // DHT (C4) and DAC (CC), which sit in the SOF range but are not frames; a stray byte; then SOF0.
  const std::string jpeg = std::string("\xFF\xD8", 2) + "\xFF\xFF\xFF\x01" + "\xFF\xE0" + be16(8) +
                           "\xFF\xC0\x01\x02\x03\x04" + "\xFF\xC4" + be16(6) + "\x10\x20\x30\x40" +
                           "\xFF\xCC" + be16(4) + "\x01\x02" + "x" + "\xFF\xFF\xC0" + be16(17) + "\x08" +
                           be16(480) + be16(640) + "\x03" + std::string(9, '\x01');
  const facekit::ImageInfo info = facekit::probe_image(jpeg);
  EXPECT_EQ(info.format, "jpeg");
  EXPECT_EQ(info.width, 640);
  EXPECT_EQ(info.height, 480);
}

TEST(ProbeImage, JpegScanBeforeFrameIsBadImage) {
  const std::string jpeg = std::string("\xFF\xD8\xFF\xDA", 4) + be16(8) + std::string(6, '\0');
  EXPECT_TRUE(mentions(error_of([&] { facekit::probe_image(jpeg); }, ErrorCode::kBadImage), "frame header"));
}

TEST(ProbeImage, WebpExtendedHeader) {
  // Lossy with a half-transparent alpha channel makes libwebp write the extended (VP8X) container.
  const std::string webp =
      encode(".webp", cv::Mat(21, 38, CV_8UC4, cv::Scalar(10, 20, 30, 128)), {cv::IMWRITE_WEBP_QUALITY, 90});
  ASSERT_EQ(webp.substr(12, 4), "VP8X");
  const facekit::ImageInfo info = facekit::probe_image(webp);
  EXPECT_EQ(info.format, "webp");
  EXPECT_EQ(info.width, 38);
  EXPECT_EQ(info.height, 21);
}

TEST(ProbeImage, BmpCoreHeader) {
  // BITMAPFILEHEADER (14 bytes, contents unread) + BITMAPCOREHEADER: size 12, 16-bit width and height.
  const std::string bmp =
      "BM" + std::string(12, '\0') + le32(12) + le16(300) + le16(200) + le16(1) + le16(24);
  const facekit::ImageInfo info = facekit::probe_image(bmp);
  EXPECT_EQ(info.format, "bmp");
  EXPECT_EQ(info.width, 300);
  EXPECT_EQ(info.height, 200);
}

TEST(ProbeImage, BmpTopDownHasPositiveHeightAndDecodes) {
  std::string bmp = encode(".bmp", red_green(38, 21));
  bmp.replace(22, 4, le32(static_cast<std::uint32_t>(-21)));  // negative height: rows stored top-down
  const facekit::ImageInfo info = facekit::probe_image(bmp);
  EXPECT_EQ(info.width, 38);
  EXPECT_EQ(info.height, 21);
  EXPECT_EQ(facekit::decode_image(bmp).size(), cv::Size(38, 21));
}

TEST(ProbeImage, PnmWithCommentsAndAsciiBitmap) {
  std::string ppm = "P6\n# written by hand\n38 # width\n# height next\n21\n255\n";
  for (int i = 0; i < 38 * 21; ++i) ppm += std::string("\xFF\x00\x00", 3);  // RGB red
  const facekit::ImageInfo info = facekit::probe_image(ppm);
  EXPECT_EQ(info.format, "pnm");
  EXPECT_EQ(info.width, 38);
  EXPECT_EQ(info.height, 21);
  EXPECT_TRUE(near_rgb(facekit::decode_image(ppm), 20, 37, {255, 0, 0}, 0));

  // P1: 1 is black. 2 wide, 3 tall.
  const std::string pbm = "P1\n# bitmap\n2 3\n0 1\n1 0\n0 0\n";
  const facekit::ImageInfo pbm_info = facekit::probe_image(pbm);
  EXPECT_EQ(pbm_info.width, 2);
  EXPECT_EQ(pbm_info.height, 3);
  const cv::Mat rgb = facekit::decode_image(pbm);
  EXPECT_TRUE(near_rgb(rgb, 0, 0, {255, 255, 255}, 0));
  EXPECT_TRUE(near_rgb(rgb, 0, 1, {0, 0, 0}, 0));
}

TEST(ProbeImage, UnknownAndEmptyInputAreBadImages) {
  EXPECT_TRUE(mentions(error_of([] { facekit::probe_image("hello, world\n"); }, ErrorCode::kBadImage),
                       "not a supported image (JPEG, PNG, BMP, WebP, PNM)"));
  // RIFF that is not WebP (a WAV header).
  EXPECT_TRUE(mentions(
      error_of([] { facekit::probe_image(std::string("RIFF\x24\0\0\0WAVEfmt ", 16)); }, ErrorCode::kBadImage),
      "not a supported image"));
  EXPECT_TRUE(mentions(error_of([] { facekit::probe_image(""); }, ErrorCode::kBadImage), "empty"));
  EXPECT_TRUE(mentions(error_of([] { facekit::probe_image("\x89PNG\r\n\x1a\n"); }, ErrorCode::kBadImage),
                       "truncated PNG header"));
  // A PNG signature mangled by a text-mode transfer (CRLF -> LF).
  EXPECT_TRUE(
      mentions(error_of([] { facekit::probe_image("\x89PNG\n\x1a\n" + png_header_only(1, 1).substr(8)); },
                        ErrorCode::kBadImage),
               "signature"));
}

TEST(ProbeImage, ZeroSizedHeaderIsBadImage) {
  EXPECT_TRUE(
      mentions(error_of([] { facekit::probe_image(png_header_only(0, 10)); }, ErrorCode::kBadImage), "0x10"));
  EXPECT_TRUE(mentions(error_of([] { facekit::probe_image("P5 0 7 255\n"); }, ErrorCode::kBadImage), "0x7"));
}

// ---- decoding details ----

TEST(DecodeImage, GreyAlphaAndSixteenBitBecomeEightBitRgb) {
  const cv::Mat grey = facekit::decode_image(encode(".pgm", cv::Mat(4, 6, CV_8UC1, cv::Scalar(77))));
  ASSERT_EQ(grey.type(), CV_8UC3);
  EXPECT_TRUE(near_rgb(grey, 3, 5, {77, 77, 77}, 0));

  const cv::Mat rgba =
      facekit::decode_image(encode(".png", cv::Mat(4, 6, CV_8UC4, cv::Scalar(255, 0, 0, 100))));
  ASSERT_EQ(rgba.type(), CV_8UC3);
  EXPECT_TRUE(near_rgb(rgba, 0, 0, {0, 0, 255}, 0));  // BGRA blue -> RGB blue, alpha dropped

  const cv::Mat deep =
      facekit::decode_image(encode(".png", cv::Mat(4, 6, CV_16UC3, cv::Scalar(65535, 32768, 0))));
  ASSERT_EQ(deep.type(), CV_8UC3);
  EXPECT_TRUE(near_rgb(deep, 0, 0, {0, 128, 255}, 0));
}

TEST(DecodeImage, OutOfRangeDimensionsAreTooLargeBeforeDecoding) {
  facekit::ImageLimits limits;
  limits.max_width = 37;
  EXPECT_TRUE(
      mentions(error_of([&] { facekit::decode_image(encode(".png", red_green(38, 21)), limits, "a.png"); },
                        ErrorCode::kImageTooLarge),
               "a.png is 38x21, wider than the limit of 37 pixels"));
  limits = {};
  limits.max_height = 20;
  EXPECT_TRUE(mentions(error_of([&] { facekit::decode_image(encode(".png", red_green(38, 21)), limits); },
                                ErrorCode::kImageTooLarge),
                       "taller than the limit of 20"));
  limits = {};
  limits.max_pixels = 797;
  EXPECT_TRUE(mentions(error_of([&] { facekit::decode_image(encode(".png", red_green(38, 21)), limits); },
                                ErrorCode::kImageTooLarge),
                       "798 pixels, over the limit of 797"));
  limits.max_pixels = 798;
  EXPECT_NO_THROW(facekit::decode_image(encode(".png", red_green(38, 21)), limits));
}

// ---- EXIF orientation ----

struct ExifCase {
  int orientation;
  bool little_endian;
};

void PrintTo(const ExifCase& ec, std::ostream* os) {
  *os << "orientation " << ec.orientation << (ec.little_endian ? " II" : " MM");
}

class ExifTest : public ::testing::TestWithParam<ExifCase> {};

// Where the stored pixel (r, c) of an h x w image is displayed, per EXIF orientation (TIFF 6.0 / EXIF 2.3).
cv::Point displayed_at(int orientation, int r, int c, int h, int w) {  // returns (x = col, y = row)
  switch (orientation) {
    case 2:
      return {w - 1 - c, r};  // mirrored left-right
    case 3:
      return {w - 1 - c, h - 1 - r};  // rotated 180
    case 4:
      return {c, h - 1 - r};  // mirrored top-bottom
    case 5:
      return {r, c};  // transposed
    case 6:
      return {h - 1 - r, c};  // rotated 90 clockwise
    case 7:
      return {h - 1 - r, w - 1 - c};  // transversed
    case 8:
      return {r, w - 1 - c};  // rotated 90 counter-clockwise
    default:
      return {c, r};
  }
}

TEST_P(ExifTest, OrientationIsApplied) {
  const auto [orientation, little_endian] = GetParam();
  // 3 x 2 cells of 8 x 8 pixels (aligned to JPEG blocks, so colours stay clean), each a different colour.
  const cv::Vec3b cell_rgb[2][3] = {{{255, 0, 0}, {0, 255, 0}, {0, 0, 255}},
                                    {{255, 255, 255}, {0, 0, 0}, {255, 255, 0}}};
  cv::Mat bgr(16, 24, CV_8UC3);
  for (int cr = 0; cr < 2; ++cr) {
    for (int cc = 0; cc < 3; ++cc) {
      const cv::Vec3b& c = cell_rgb[cr][cc];
      bgr(cv::Rect(cc * 8, cr * 8, 8, 8)).setTo(cv::Scalar(c[2], c[1], c[0]));
    }
  }
  std::string jpeg = encode(".jpg", bgr, {cv::IMWRITE_JPEG_QUALITY, 100});
  jpeg.insert(2, exif_app1(orientation, little_endian));  // right after SOI

  const cv::Mat rgb = facekit::decode_image(jpeg);
  const bool swapped = orientation >= 5;
  ASSERT_EQ(rgb.size(), swapped ? cv::Size(16, 24) : cv::Size(24, 16));
  for (int cr = 0; cr < 2; ++cr) {
    for (int cc = 0; cc < 3; ++cc) {
      const cv::Point at = displayed_at(orientation, cr * 8 + 4, cc * 8 + 4, 16, 24);
      EXPECT_TRUE(near_rgb(rgb, at.y, at.x, cell_rgb[cr][cc], 40)) << "cell (" << cr << "," << cc << ")";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllOrientations, ExifTest,
                         ::testing::Values(ExifCase{1, false}, ExifCase{2, false}, ExifCase{3, false},
                                           ExifCase{4, false}, ExifCase{5, false}, ExifCase{6, false},
                                           ExifCase{7, false}, ExifCase{8, false}, ExifCase{6, true},
                                           ExifCase{8, true}),
                         [](const ::testing::TestParamInfo<ExifCase>& info) {
                           return "orientation" + std::to_string(info.param.orientation) +
                                  (info.param.little_endian ? "_II" : "_MM");
                         });

// ---- files and errors ----

TEST_F(ImageTest, JpegCutAfterFrameHeaderIsBadImage) {
  // The header (and so probing) is intact, but the tables and the scan are gone: the decoder must fail.
  const std::string jpeg = encode(".jpg", red_green(32, 24));
  const std::size_t sof = find_jpeg_marker(jpeg, 0xC0);
  ASSERT_NE(sof, std::string::npos);
  const std::size_t sof_end =
      sof + 2 + (static_cast<unsigned char>(jpeg[sof + 2]) << 8 | static_cast<unsigned char>(jpeg[sof + 3]));
  const fs::path path = write("cut.jpg", jpeg.substr(0, sof_end));
  ASSERT_EQ(facekit::probe_image(jpeg.substr(0, sof_end)).width, 32);

  const std::string message = error_of([&] { facekit::load_image(path); }, ErrorCode::kBadImage);
  EXPECT_TRUE(mentions(message, "could not decode " + path.string()));
  EXPECT_TRUE(mentions(message, "corrupt or truncated JPEG"));
}

TEST_F(ImageTest, JpegWithGarbageScanDataIsImageOrBadImage) {
  // libjpeg recovers from damaged entropy data with a warning and grey fill; either outcome is acceptable,
  // a crash or a foreign exception is not.
  std::string jpeg = encode(".jpg", red_green(32, 24));
  const std::size_t sos = find_jpeg_marker(jpeg, 0xDA);
  ASSERT_NE(sos, std::string::npos);
  std::mt19937 rng(7);
  for (std::size_t i = sos + 14; i + 2 < jpeg.size(); ++i) jpeg[i] = static_cast<char>(rng());
  try {
    const cv::Mat rgb = facekit::load_image(write("garbage.jpg", jpeg));
    EXPECT_EQ(rgb.size(), cv::Size(32, 24));
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kBadImage) << e.what();
  }
}

TEST_F(ImageTest, TextFileIsBadImage) {
  const fs::path path = write("notes.jpg", "this is not an image\n");
  const std::string message = error_of([&] { facekit::load_image(path); }, ErrorCode::kBadImage);
  EXPECT_TRUE(mentions(message, path.string()));
  EXPECT_TRUE(mentions(message, "not a supported image"));
}

TEST_F(ImageTest, EmptyFileIsBadImage) {
  const fs::path path = write("empty.png", "");
  EXPECT_TRUE(mentions(error_of([&] { facekit::load_image(path); }, ErrorCode::kBadImage), "empty file"));
}

TEST_F(ImageTest, DirectoryIsBadImage) {
  EXPECT_TRUE(mentions(error_of([&] { facekit::load_image(dir_); }, ErrorCode::kBadImage), "directory"));
}

TEST_F(ImageTest, MissingFileIsNotFound) {
  const fs::path path = dir_ / "absent.jpg";
  EXPECT_TRUE(mentions(error_of([&] { facekit::load_image(path); }, ErrorCode::kNotFound),
                       "no such file: " + path.string()));
}

TEST_F(ImageTest, HugePngHeaderIsTooLarge) {
  const std::string png = png_header_only(30000, 30000);
  ASSERT_EQ(facekit::probe_image(png).width, 30000);
  const std::string message =
      error_of([&] { facekit::load_image(write("huge.png", png)); }, ErrorCode::kImageTooLarge);
  EXPECT_TRUE(mentions(message, "30000x30000"));
  EXPECT_TRUE(mentions(message, "limit of 16384"));
}

TEST_F(ImageTest, HugeJpegHeaderIsTooLarge) {
  const std::string jpeg = with_jpeg_size(encode(".jpg", red_green(32, 24)), 30000, 30000);
  ASSERT_EQ(facekit::probe_image(jpeg).height, 30000);
  const std::string message =
      error_of([&] { facekit::load_image(write("huge.jpg", jpeg)); }, ErrorCode::kImageTooLarge);
  EXPECT_TRUE(mentions(message, "30000x30000"));
  EXPECT_TRUE(mentions(message, "limit"));
}

TEST_F(ImageTest, FileOverByteLimitIsTooLarge) {
  const std::string png = encode(".png", red_green(32, 24));
  facekit::ImageLimits limits;
  limits.max_file_bytes = static_cast<std::int64_t>(png.size()) - 1;
  const fs::path path = write("big.png", png);
  EXPECT_TRUE(mentions(error_of([&] { facekit::load_image(path, limits); }, ErrorCode::kImageTooLarge),
                       std::to_string(png.size()) + " bytes, over the limit"));
  limits.max_file_bytes = static_cast<std::int64_t>(png.size());
  EXPECT_NO_THROW(facekit::load_image(path, limits));
}

// ---- damaged files (issue 15: partly decoded images were used as whole ones) ----

// A real photo shipped by Debian (libdlib19.1), or "" when the package is absent.
std::string dlib_photo(const char* name) {
  std::ifstream in(std::string("/usr/share/doc/libdlib19.1/examples/faces/") + name, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

TEST(DamagedJpeg, CutShortIsRefusedWithLibjpegsReason) {
  const std::string jpeg = dlib_photo("2008_002470.jpg");
  if (jpeg.empty()) GTEST_SKIP() << "libdlib19.1 examples absent";
  for (const double part : {0.33, 0.5, 0.9}) {
    const std::string cut = jpeg.substr(0, static_cast<std::size_t>(jpeg.size() * part));
    const std::string message = error_of([&] { facekit::decode_image(cut, {}, "cut.jpg"); }, ErrorCode::kBadImage);
    EXPECT_TRUE(mentions(message, "Premature end of JPEG file")) << part;
    EXPECT_TRUE(mentions(message, "cut.jpg"));
  }
}

TEST(DamagedJpeg, EndMarkerHalfWayIsRefused) {
  std::string jpeg = dlib_photo("2008_002470.jpg");
  if (jpeg.empty()) GTEST_SKIP() << "libdlib19.1 examples absent";
  jpeg.replace(jpeg.size() / 2, 2, "\xFF\xD9");
  EXPECT_TRUE(mentions(error_of([&] { facekit::decode_image(jpeg); }, ErrorCode::kBadImage), "Corrupt JPEG data"));
}

TEST(DamagedJpeg, RandomBytesInTheMiddleAreRefused) {
  std::string jpeg = dlib_photo("2008_002470.jpg");
  if (jpeg.empty()) GTEST_SKIP() << "libdlib19.1 examples absent";
  std::mt19937 rng(15);
  for (std::size_t i = jpeg.size() / 2; i < jpeg.size() / 2 + 1024; ++i) jpeg[i] = static_cast<char>(rng());
  EXPECT_TRUE(mentions(error_of([&] { facekit::decode_image(jpeg); }, ErrorCode::kBadImage), "Corrupt JPEG data"));
}

TEST(DamagedJpeg, ProgressiveScansCutAtAnEndMarkerAreRefused) {
  // libjpeg gives no warning when a progressive file ends between scans: the unfinished coefficients say it.
  cv::Mat bgr(96, 128, CV_8UC3);
  cv::randu(bgr, 0, 256);
  const std::string jpeg = encode(".jpg", bgr, {cv::IMWRITE_JPEG_PROGRESSIVE, 1});
  std::vector<std::size_t> scans;
  for (std::size_t i = 2; i + 1 < jpeg.size(); ++i)
    if (static_cast<unsigned char>(jpeg[i]) == 0xFF && static_cast<unsigned char>(jpeg[i + 1]) == 0xDA) scans.push_back(i);
  ASSERT_GE(scans.size(), 3u);
  const std::string cut = jpeg.substr(0, scans[2]) + "\xFF\xD9";  // two scans, then the end
  EXPECT_TRUE(mentions(error_of([&] { facekit::decode_image(cut); }, ErrorCode::kBadImage), "progressive"));
  EXPECT_EQ(facekit::decode_image(jpeg).size(), cv::Size(128, 96));  // the whole file still decodes
}

TEST(DamagedJpeg, AHeaderClaimingMorePixelsThanTheBytesHoldIsRefusedBeforeDecoding) {
  const std::string small = encode(".jpg", red_green(64, 64));
  const std::string big = with_jpeg_size(small, 8000, 8000);  // 64 Mpx claimed over a few hundred bytes
  EXPECT_TRUE(mentions(error_of([&] { facekit::decode_image(big); }, ErrorCode::kBadImage), "needs at least"));
  EXPECT_GT(facekit::probe_image(big).min_bytes, 100000);
  // PNG: deflate cannot pack 8000 x 8000 RGB into a header.
  EXPECT_TRUE(mentions(error_of([&] { facekit::decode_image(png_header_only(8000, 8000)); }, ErrorCode::kBadImage),
                       "needs at least"));
}

TEST(DamagedJpeg, AcceptedOnlyWhenAskedAndThenReported) {
  const std::string jpeg = dlib_photo("2008_002470.jpg");
  if (jpeg.empty()) GTEST_SKIP() << "libdlib19.1 examples absent";
  facekit::ImageLimits limits;
  limits.accept_damaged = true;
  std::vector<std::string> reports;
  limits.on_damage = [&](const std::string& m) { reports.push_back(m); };
  const cv::Mat rgb = facekit::decode_image(jpeg.substr(0, jpeg.size() / 2), limits, "half.jpg");
  EXPECT_EQ(rgb.size(), facekit::decode_image(jpeg).size());
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_TRUE(mentions(reports[0], "half.jpg is damaged"));
  EXPECT_TRUE(mentions(reports[0], "Premature end"));
}

// The libjpeg path decodes every real photo exactly as OpenCV does (same pixels, in RGB order).
TEST(WholeJpeg, RealPhotosDecodeToOpenCvsPixels) {
  int photos = 0;
  for (const char* dir : {"/usr/share/doc/libdlib19.1/examples/faces", FACEKIT_TEST_DATA "/../../models/face-api/demo"}) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      if (e.path().extension() != ".jpg") continue;
      std::ifstream in(e.path(), std::ios::binary);
      const std::string bytes{std::istreambuf_iterator<char>(in), {}};
      const cv::Mat ours = facekit::decode_image(bytes, {}, e.path().string());
      const cv::Mat bgr = cv::imdecode(cv::Mat(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data())),
                                       cv::IMREAD_COLOR);
      cv::Mat rgb;
      cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
      ASSERT_EQ(ours.size(), rgb.size()) << e.path();
      EXPECT_EQ(cv::norm(ours, rgb, cv::NORM_INF), 0) << e.path();
      ++photos;
    }
  }
  if (photos == 0) GTEST_SKIP() << "no real photos found";
}

// ---- saving ----

TEST_F(ImageTest, SavedPngLoadsBackIdentical) {
  cv::Mat rgb(24, 32, CV_8UC3);
  cv::randu(rgb, 0, 256);
  const fs::path path = dir_ / "out.png";
  facekit::save_image(path, rgb);
  const cv::Mat back = facekit::load_image(path);
  ASSERT_EQ(back.size(), rgb.size());
  EXPECT_EQ(cv::norm(back, rgb, cv::NORM_INF), 0);

  // The file itself is in OpenCV's BGR order, so the RGB->BGR swap happened on the way out.
  const cv::Mat file_bgr = cv::imread(path.string(), cv::IMREAD_COLOR);
  EXPECT_EQ(file_bgr.at<cv::Vec3b>(0, 0),
            (cv::Vec3b{rgb.at<cv::Vec3b>(0, 0)[2], rgb.at<cv::Vec3b>(0, 0)[1], rgb.at<cv::Vec3b>(0, 0)[0]}));
}

TEST_F(ImageTest, SaveRejectsUnknownExtensionBadPathAndWrongType) {
  const cv::Mat rgb(8, 8, CV_8UC3, cv::Scalar(1, 2, 3));
  EXPECT_TRUE(
      mentions(error_of([&] { facekit::save_image(dir_ / "out.tif", rgb); }, ErrorCode::kInvalidArgument),
               "unsupported extension '.tif'"));
  error_of([&] { facekit::save_image(dir_ / "no_extension", rgb); }, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(mentions(
      error_of([&] { facekit::save_image(dir_ / "missing" / "out.png", rgb); }, ErrorCode::kInvalidArgument),
      "could not write"));
  error_of([&] { facekit::save_image(dir_ / "grey.png", cv::Mat(8, 8, CV_8UC1)); },
           ErrorCode::kInvalidArgument);
}

}  // namespace

// Found by scripts/fuzz: "P1 888#888888..." is 888 x 1 to a parser that takes '#' as a comment, but OpenCV's
// PNM reader swallows the byte after a number and reads 888 x 888888 (2.4 GB). A number not followed by white
// space is refused before anything is decoded.
TEST(ProbeImage, PnmNumberRunningIntoACommentIsRefused) {
  const std::string bytes("P1\t888#888888'v/1\x01&\r1P\0\xff\0" "14\t\0", 29);
  try {
    facekit::decode_image(bytes);
    FAIL() << "decoded";
  } catch (const facekit::Error& e) {
    EXPECT_EQ(e.code(), facekit::ErrorCode::kBadImage);
    EXPECT_NE(std::string(e.what()).find("white space"), std::string::npos) << e.what();
  }
  EXPECT_EQ(facekit::probe_image("P6 4 3\n255\n").width, 4);  // the ordinary form still reads
}

TEST(FaceRegion, GrowsTheBoxByItsLongerSideAndClipsToTheImage) {
  const facekit::Image img(80, 100, CV_8UC3, cv::Scalar(1, 2, 3));
  // 20 x 10 box, margin 0.25 of 20: 5 px on every side.
  facekit::Image r = facekit::face_region(img, {10, 10, 20, 10}, 0.25f);
  EXPECT_EQ(r.cols, 30);
  EXPECT_EQ(r.rows, 20);
  EXPECT_EQ(r.data, img.ptr(5, 5));  // a view into the image
  // At a corner: clipped.
  r = facekit::face_region(img, {0, 0, 20, 20}, 0.5f);
  EXPECT_EQ(r.cols, 30);
  EXPECT_EQ(r.rows, 30);
  // Outside the image: empty.
  EXPECT_TRUE(facekit::face_region(img, {200, 200, 20, 20}, 0.25f).empty());
}

// A greyscale photo stays greyscale through JPEG (chroma rounding stays within the rule's tolerance); a
// colour photo, or one with a coloured patch over a few percent of it, is not.
TEST(IsGreyscale, GreyPhotosThroughJpegAndColourPhotos) {
  cv::Mat rgb(120, 160, CV_8UC3);
  cv::randu(rgb, cv::Scalar::all(0), cv::Scalar::all(255));
  cv::GaussianBlur(rgb, rgb, {7, 7}, 2);  // photo-like: neighbouring pixels alike
  EXPECT_FALSE(facekit::is_greyscale(rgb));
  cv::Mat g, grey;
  cv::cvtColor(rgb, g, cv::COLOR_RGB2GRAY);
  cv::cvtColor(g, grey, cv::COLOR_GRAY2RGB);
  EXPECT_TRUE(facekit::is_greyscale(grey));
  std::vector<uchar> jpeg;
  cv::Mat bgr;
  cv::cvtColor(grey, bgr, cv::COLOR_RGB2BGR);
  ASSERT_TRUE(cv::imencode(".jpg", bgr, jpeg, {cv::IMWRITE_JPEG_QUALITY, 75}));
  const facekit::Image decoded = facekit::decode_image(std::string(jpeg.begin(), jpeg.end()));
  EXPECT_TRUE(facekit::is_greyscale(decoded));
  cv::Mat patched = grey.clone();
  patched(cv::Rect(0, 0, 40, 20)).setTo(cv::Scalar(200, 40, 40));  // 4% of the pixels red
  EXPECT_FALSE(facekit::is_greyscale(patched));
  EXPECT_FALSE(facekit::is_greyscale(facekit::Image()));
}
