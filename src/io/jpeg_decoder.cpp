// JPEG decoding through libjpeg(-turbo) itself rather than cv::imdecode: OpenCV prints libjpeg's warnings and
// returns whatever was decoded, so a file cut in half came back as a whole image with a grey lower half. Here
// every warning about the data ("Corrupt JPEG data", "Premature end of JPEG file") is damage, and so is a
// progressive file whose scans stop before every coefficient is complete (an end-of-image marker written
// half-way gives no warning at all). The decoder writes RGB directly, which saves OpenCV's BGR-to-RGB pass.
#include "io/jpeg_decoder.hpp"

#include <cstdio>  // jpeglib.h needs FILE and size_t first
#include <csetjmp>
#include <cstring>
#include <opencv2/core.hpp>
#include <string>
#include <string_view>
#include <vector>

#include <jerror.h>
#include <jpeglib.h>

#include "facekit/error.hpp"

namespace facekit::detail {
namespace {

// libjpeg reports through these callbacks; fatal errors longjmp back to decode_jpeg (C code cannot carry a C++
// exception), warnings are recorded and, when damage is refused, also stop decoding at once.
struct ErrorState {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  bool stop_on_damage = true;
  char fatal[JMSG_LENGTH_MAX] = "";
  char damage[JMSG_LENGTH_MAX] = "";  // the first damage warning
};

bool is_damage(int code) {
  // Metadata only: the pixels are unaffected.
  return code != JWRN_JFIF_MAJOR && code != JWRN_ADOBE_XFORM && code != JWRN_BOGUS_ICC;
}

void on_error_exit(j_common_ptr cinfo) {
  auto* st = reinterpret_cast<ErrorState*>(cinfo->err);
  cinfo->err->format_message(cinfo, st->fatal);
  std::longjmp(st->jump, 1);
}

void on_emit_message(j_common_ptr cinfo, int level) {
  if (level >= 0) return;  // trace messages
  auto* st = reinterpret_cast<ErrorState*>(cinfo->err);
  ++cinfo->err->num_warnings;
  if (!is_damage(cinfo->err->msg_code) || st->damage[0]) return;
  cinfo->err->format_message(cinfo, st->damage);
  if (st->stop_on_damage) std::longjmp(st->jump, 1);
}

void on_output_message(j_common_ptr) {}  // nothing is printed; messages reach the caller in the Error

// EXIF orientation (TIFF tag 0x0112 in IFD0 of an APP1 "Exif" segment); 1 when absent or unreadable.
int exif_orientation(std::string_view app1) {
  if (app1.size() < 14 || app1.substr(0, 6) != std::string_view("Exif\0\0", 6)) return 1;
  const std::string_view tiff = app1.substr(6);
  const bool le = tiff.substr(0, 2) == "II";
  if (!le && tiff.substr(0, 2) != "MM") return 1;
  const auto u16 = [&](std::size_t p) -> int {
    if (p + 2 > tiff.size()) return -1;
    const auto a = static_cast<unsigned char>(tiff[p]), b = static_cast<unsigned char>(tiff[p + 1]);
    return le ? (b << 8 | a) : (a << 8 | b);
  };
  const auto u32 = [&](std::size_t p) -> std::int64_t {
    const int a = u16(p), b = u16(p + 2);
    if (a < 0 || b < 0) return -1;
    return le ? (std::int64_t{b} << 16 | a) : (std::int64_t{a} << 16 | b);
  };
  const std::int64_t ifd = u32(4);
  const int entries = ifd < 0 ? -1 : u16(static_cast<std::size_t>(ifd));
  for (int i = 0; i < entries; ++i) {
    const std::size_t e = static_cast<std::size_t>(ifd) + 2 + 12 * static_cast<std::size_t>(i);
    if (u16(e) < 0) return 1;
    if (u16(e) == 0x0112) {
      const int v = u16(e + 8);  // a SHORT value sits left-justified in the 4-byte field
      return v >= 1 && v <= 8 ? v : 1;
    }
  }
  return 1;
}

// As OpenCV applies it (TIFF 6.0 orientation: where row 0 / column 0 of the stored image are displayed).
Image oriented(Image img, int orientation) {
  Image out;
  switch (orientation) {
    case 2: cv::flip(img, out, 1); return out;
    case 3: cv::flip(img, out, -1); return out;
    case 4: cv::flip(img, out, 0); return out;
    case 5: cv::transpose(img, out); return out;
    case 6: cv::rotate(img, out, cv::ROTATE_90_CLOCKWISE); return out;
    case 7: cv::transpose(img, out); cv::flip(out, out, -1); return out;
    case 8: cv::rotate(img, out, cv::ROTATE_90_COUNTERCLOCKWISE); return out;
    default: return img;
  }
}

// Every coefficient of every component refined to its last bit: the progressive scans are all there.
bool progression_complete(const jpeg_decompress_struct& c) {
  if (!c.progressive_mode || !c.coef_bits) return true;
  for (int comp = 0; comp < c.num_components; ++comp)
    for (int k = 0; k < DCTSIZE2; ++k)
      if (c.coef_bits[comp][k] != 0) return false;
  return true;
}

}  // namespace

JpegResult decode_jpeg(const std::string& bytes, bool accept_damaged) {
  jpeg_decompress_struct cinfo;
  ErrorState err;
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = on_error_exit;
  err.pub.emit_message = on_emit_message;
  err.pub.output_message = on_output_message;
  err.stop_on_damage = !accept_damaged;
  // Declared before setjmp so that a longjmp does not skip their construction; destroyed normally after.
  JpegResult result;
  std::vector<unsigned char> cmyk_row;

  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    result.image.release();
    result.error = err.fatal[0] ? err.fatal : "";
    result.damage = err.damage;
    return result;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<unsigned long>(bytes.size()));
  jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
  jpeg_read_header(&cinfo, TRUE);
  // As OpenCV decodes: four components (CMYK, YCCK) come out as CMYK and are converted below, all else as RGB.
  const bool cmyk = cinfo.num_components == 4;
  cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_EXT_RGB;
  jpeg_start_decompress(&cinfo);  // a progressive file is read to its end here
  if (!progression_complete(cinfo) && !err.damage[0]) {
    std::snprintf(err.damage, sizeof err.damage, "%s", "the progressive scans end before the image is complete");
    if (!accept_damaged) std::longjmp(err.jump, 1);
  }
  result.image.create(static_cast<int>(cinfo.output_height), static_cast<int>(cinfo.output_width), CV_8UC3);
  if (cmyk) cmyk_row.resize(std::size_t{cinfo.output_width} * 4);
  while (cinfo.output_scanline < cinfo.output_height) {
    unsigned char* row = result.image.ptr<unsigned char>(static_cast<int>(cinfo.output_scanline));
    JSAMPROW target = cmyk ? cmyk_row.data() : row;
    if (jpeg_read_scanlines(&cinfo, &target, 1) != 1) break;
    if (cmyk) {
      // Adobe writes CMYK inverted; the same conversion as OpenCV's icvCvt_CMYK2BGR, in RGB order.
      for (std::size_t x = 0; x < cinfo.output_width; ++x) {
        const int k = cmyk_row[4 * x + 3];
        for (int ch = 0; ch < 3; ++ch) row[3 * x + ch] = static_cast<unsigned char>(k - ((255 - cmyk_row[4 * x + ch]) * k >> 8));
      }
    }
  }
  // Before jpeg_finish_decompress, which frees the saved markers.
  int orientation = 1;
  for (jpeg_saved_marker_ptr m = cinfo.marker_list; m; m = m->next)
    if (m->marker == JPEG_APP0 + 1) {
      orientation = exif_orientation({reinterpret_cast<const char*>(m->data), m->data_length});
      if (orientation != 1) break;
    }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  result.damage = err.damage;
  result.image = oriented(std::move(result.image), orientation);
  return result;
}

}  // namespace facekit::detail
