// IDX reader (data/idx.h): header first, then the body in chunks through zlib, with every size checked.
#include "data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>

namespace nl {
namespace {

std::string hex(uint32_t value, int digits) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%0*X", digits, value);
  return text;
}
std::string hex32(uint32_t value) { return hex(value, 8); }

const char* idx_type_name(uint8_t type) {
  switch (type) {
    case 0x08:
      return "unsigned byte";
    case 0x09:
      return "signed byte";
    case 0x0B:
      return "int16";
    case 0x0C:
      return "int32";
    case 0x0D:
      return "float32";
    case 0x0E:
      return "float64";
    default:
      return "unknown";
  }
}

// A file opened through zlib; gzread passes non-gzip files through unchanged.
class GzReader {
 public:
  explicit GzReader(const std::string& path) : path_(path) {
    errno = 0;
    file_ = gzopen(path.c_str(), "rb");
    if (!file_)
      throw Error(cat_str("read_idx: cannot open ", path, ": ",
                          errno != 0 ? std::strerror(errno) : "zlib could not allocate its state"));
    gzbuffer(file_, 1 << 17);
  }
  ~GzReader() { gzclose(file_); }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;

  // Reads up to n bytes into dst; fewer only at the end of the data.
  size_t read(uint8_t* dst, size_t n) {
    size_t done = 0;
    while (done < n) {
      const unsigned want = static_cast<unsigned>(std::min<size_t>(n - done, 1 << 20));
      const int got = gzread(file_, dst + done, want);
      if (got < 0) {
        int errnum = 0;
        const char* message = gzerror(file_, &errnum);
        throw Error(cat_str("read_idx: ", path_,
                            ": cannot read: ", errnum == Z_ERRNO ? std::strerror(errno) : message,
                            errnum == Z_DATA_ERROR ? " (corrupt gzip data)" : ""));
      }
      if (got == 0) break;
      done += static_cast<size_t>(got);
    }
    return done;
  }

  // True when the data ended because a gzip stream was cut off (zlib reports it as Z_BUF_ERROR).
  bool gzip_truncated() {
    int errnum = 0;
    gzerror(file_, &errnum);
    return errnum == Z_BUF_ERROR;
  }

 private:
  std::string path_;
  gzFile file_ = nullptr;
};

}  // namespace

IdxArray read_idx(const std::string& path, int expected_rank) {
  GzReader in(path);
  const auto truncated_note = [&] { return in.gzip_truncated() ? " (the gzip stream ends early)" : ""; };

  uint8_t magic[4];
  const size_t magic_read = in.read(magic, 4);
  check(magic_read == 4, "read_idx: ", path, ": the data is ", magic_read,
        " bytes long, too short for the 4-byte IDX magic number", truncated_note());
  const uint32_t magic_number = (uint32_t{magic[0]} << 24) | (uint32_t{magic[1]} << 16) |
                                (uint32_t{magic[2]} << 8) | uint32_t{magic[3]};
  check(magic[0] == 0 && magic[1] == 0, "read_idx: ", path, ": wrong magic number ", hex32(magic_number),
        ": not an IDX file (an IDX magic number is 0x0000TTDD with TT the element type and DD the number of "
        "dimensions, e.g. 0x00000803 for images)");
  check(magic[2] == 0x08, "read_idx: ", path, ": magic number ", hex32(magic_number), " has element type ",
        hex(magic[2], 2), " (", idx_type_name(magic[2]),
        "); only unsigned-byte IDX files (type 0x08) are supported");
  const int rank = magic[3];
  check(rank >= 1, "read_idx: ", path, ": magic number ", hex32(magic_number), " declares 0 dimensions");
  if (expected_rank > 0)
    check(rank == expected_rank, "read_idx: ", path, ": wrong magic number ", hex32(magic_number), " (", rank,
          rank == 1 ? " dimension" : " dimensions", "); expected ", hex32(0x0800u + uint32_t(expected_rank)),
          " (unsigned byte, ", expected_rank, expected_rank == 1 ? " dimension)" : " dimensions)");

  std::vector<uint8_t> header(static_cast<size_t>(rank) * 4);
  const size_t header_read = in.read(header.data(), header.size());
  check(header_read == header.size(), "read_idx: ", path, ": truncated header: ", rank, " dimensions need ",
        header.size(), " bytes after the magic number but the data ends after ", header_read,
        truncated_note());
  IdxArray array;
  uint64_t numel = 1;
  bool overflow = false;
  for (int d = 0; d < rank; ++d) {
    const uint8_t* b = &header[static_cast<size_t>(d) * 4];
    const int32_t size = static_cast<int32_t>((uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) |
                                              (uint32_t{b[2]} << 8) | uint32_t{b[3]});
    check(size >= 0, "read_idx: ", path, ": dimension ", d, " is negative (", size, ")");
    array.dims.push_back(size);
    overflow = overflow || __builtin_mul_overflow(numel, static_cast<uint64_t>(size), &numel);
  }
  const size_t header_bytes = 4 + header.size();
  check(!overflow && numel <= static_cast<uint64_t>(INT64_MAX), "read_idx: ", path, ": dimensions ",
        array.dims, " describe more elements than fit in memory");

  // Grow the buffer as data arrives, so a corrupt header with huge dimensions fails on the missing data
  // rather than on one giant allocation.
  const size_t expected = static_cast<size_t>(numel);
  size_t have = 0;
  while (have < expected) {
    const size_t target = std::min(expected, std::max<size_t>(have * 2, size_t(1) << 20));
    array.bytes.resize(target);
    const size_t got = in.read(array.bytes.data() + have, target - have);
    have += got;
    if (have < target) break;
  }
  check(have == expected, "read_idx: ", path, ": truncated data: dimensions ", array.dims, " need ", expected,
        " bytes after the ", header_bytes, "-byte header but only ", have, " follow", truncated_note());
  uint8_t extra[4096];
  size_t extra_bytes = 0;
  for (size_t got; (got = in.read(extra, sizeof extra)) > 0;) extra_bytes += got;
  check(extra_bytes == 0, "read_idx: ", path, ": the file is longer than its dimensions ", array.dims,
        " say: ", expected, " bytes of data expected after the ", header_bytes, "-byte header, found ",
        extra_bytes, " more");
  return array;
}

Tensor read_idx_images(const std::string& path) {
  const IdxArray array = read_idx(path, 3);
  Tensor images = empty({array.dims[0], 1, array.dims[1], array.dims[2]}, kFloat32);
  float* out = images.data<float>();
  for (size_t i = 0; i < array.bytes.size(); ++i) out[i] = static_cast<float>(array.bytes[i]) / 255.0f;
  return images;
}

Tensor read_idx_labels(const std::string& path) {
  const IdxArray array = read_idx(path, 1);
  Tensor labels = empty({array.dims[0]}, kInt64);
  int64_t* out = labels.data<int64_t>();
  for (size_t i = 0; i < array.bytes.size(); ++i) out[i] = array.bytes[i];
  return labels;
}

TensorDataset load_idx_dataset(const std::string& images_path, const std::string& labels_path) {
  const Tensor images = read_idx_images(images_path);
  const Tensor labels = read_idx_labels(labels_path);
  check(images.size(0) == labels.size(0), "load_idx_dataset: ", images_path, " has ", images.size(0),
        " images but ", labels_path, " has ", labels.size(0), " labels");
  return TensorDataset(images, labels);
}

}  // namespace nl
