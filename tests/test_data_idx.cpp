// IDX reader: files the tests write themselves, plain and gzip-compressed, well-formed and broken.
#include <zlib.h>

#include <catch2/catch.hpp>

#include "core/random.h"
#include "data/idx.h"
#include "test_data_temp_dir.h"

using namespace nl;
using Catch::Contains;

namespace {

// An IDX file: magic 0x0000 <type> <rank>, big-endian int32 dims, then the body.
std::string idx_bytes(uint8_t type, const std::vector<int32_t>& dims, const std::vector<uint8_t>& body) {
  std::string bytes = {0, 0, static_cast<char>(type), static_cast<char>(dims.size())};
  for (const int32_t d : dims) {
    const uint32_t u = static_cast<uint32_t>(d);
    for (int shift = 24; shift >= 0; shift -= 8) bytes += static_cast<char>((u >> shift) & 0xff);
  }
  bytes.append(body.begin(), body.end());
  return bytes;
}

void write_gz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

// Two 2x3 images with pixels 0, 10, ..., 110 and their labels 3 and 7.
const std::vector<uint8_t> kPixels = {0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110};
const std::vector<uint8_t> kLabels = {3, 7};

void check_images(const Tensor& images) {
  REQUIRE(images.dtype() == kFloat32);
  REQUIRE(images.shape() == Shape{2, 1, 2, 3});
  const std::vector<float> values = images.to_vector<float>();
  for (size_t i = 0; i < kPixels.size(); ++i) CHECK(values[i] == static_cast<float>(kPixels[i]) / 255.0f);
}

std::vector<uint8_t> random_bytes(size_t n, uint64_t seed) {
  Generator gen(seed);
  std::vector<uint8_t> bytes(n);
  for (uint8_t& b : bytes) b = static_cast<uint8_t>(gen.next_int(0, 256));
  return bytes;
}

}  // namespace

TEST_CASE("read_idx parses plain IDX image and label files", "[data][idx]") {
  TempDir dir;
  const std::string images = dir.file("images-idx3-ubyte"), labels = dir.file("labels-idx1-ubyte");
  write_bytes(images, idx_bytes(0x08, {2, 2, 3}, kPixels));
  write_bytes(labels, idx_bytes(0x08, {2}, kLabels));

  const IdxArray raw = read_idx(images);
  CHECK(raw.dims == Shape{2, 2, 3});
  CHECK(raw.bytes == kPixels);
  check_images(read_idx_images(images));
  const Tensor y = read_idx_labels(labels);
  REQUIRE(y.dtype() == kInt64);
  CHECK(y.to_vector<int64_t>() == std::vector<int64_t>{3, 7});

  const TensorDataset dataset = load_idx_dataset(images, labels);
  CHECK(dataset.size() == 2);
  CHECK(dataset.get(1).label == 7);
  CHECK(dataset.example_shape() == Shape{1, 2, 3});
}

TEST_CASE("read_idx parses gzip-compressed IDX files", "[data][idx]") {
  TempDir dir;
  const std::string images = dir.file("images-idx3-ubyte.gz"), labels = dir.file("labels-idx1-ubyte.gz");
  write_gz(images, idx_bytes(0x08, {2, 2, 3}, kPixels));
  write_gz(labels, idx_bytes(0x08, {2}, kLabels));
  REQUIRE(read_bytes(images).substr(0, 2) == "\x1f\x8b");  // really compressed

  check_images(read_idx_images(images));
  CHECK(read_idx_labels(labels).to_vector<int64_t>() == std::vector<int64_t>{3, 7});

  // A body larger than zlib's read chunks and buffers round-trips exactly.
  const std::vector<uint8_t> big = random_bytes(3 * 1000 * 700, 11);
  const std::string big_path = dir.file("big-idx3-ubyte.gz");
  write_gz(big_path, idx_bytes(0x08, {3, 1000, 700}, big));
  const IdxArray raw = read_idx(big_path, 3);
  CHECK(raw.dims == Shape{3, 1000, 700});
  CHECK(raw.bytes == big);
}

TEST_CASE("read_idx rejects malformed files with a message naming the file and the problem", "[data][idx]") {
  TempDir dir;
  const std::string path = dir.file("broken-idx3-ubyte");

  SECTION("missing file") {
    const std::string missing = dir.file("no-such-file");
    REQUIRE_THROWS_WITH(read_idx(missing), Contains("cannot open") && Contains(missing) &&
                                               Contains("No such file or directory"));
  }
  SECTION("a folder instead of a file") {
    REQUIRE_THROWS_WITH(read_idx(dir.path.string()), Contains(dir.path.string()) && Contains("cannot read"));
  }
  SECTION("empty file") {
    write_bytes(path, "");
    REQUIRE_THROWS_WITH(read_idx(path),
                        Contains(path) && Contains("0 bytes long") && Contains("magic number"));
  }
  SECTION("wrong magic number") {
    write_bytes(path, std::string("\x12\x34\x56\x78", 4) + std::string(16, '\0'));
    REQUIRE_THROWS_WITH(read_idx(path), Contains(path) && Contains("wrong magic number 0x12345678") &&
                                            Contains("not an IDX file"));
  }
  SECTION("label file where an image file is expected") {
    write_bytes(path, idx_bytes(0x08, {2}, kLabels));
    REQUIRE_THROWS_WITH(read_idx_images(path), Contains(path) && Contains("wrong magic number 0x00000801") &&
                                                   Contains("expected 0x00000803"));
  }
  SECTION("image file where a label file is expected") {
    write_bytes(path, idx_bytes(0x08, {2, 2, 3}, kPixels));
    REQUIRE_THROWS_WITH(read_idx_labels(path), Contains(path) && Contains("wrong magic number 0x00000803") &&
                                                   Contains("expected 0x00000801"));
  }
  SECTION("unsupported element type") {
    write_bytes(path, idx_bytes(0x0D, {2}, std::vector<uint8_t>(8, 0)));
    REQUIRE_THROWS_WITH(read_idx(path), Contains(path) && Contains("element type 0x0D (float32)") &&
                                            Contains("only unsigned-byte"));
  }
  SECTION("zero dimensions") {
    write_bytes(path, std::string("\x00\x00\x08\x00", 4));
    REQUIRE_THROWS_WITH(read_idx(path), Contains(path) && Contains("declares 0 dimensions"));
  }
  SECTION("truncated header") {
    write_bytes(path, idx_bytes(0x08, {2, 2, 3}, {}).substr(0, 4 + 7));
    REQUIRE_THROWS_WITH(read_idx(path), Contains(path) && Contains("truncated header") &&
                                            Contains("3 dimensions need 12 bytes") &&
                                            Contains("ends after 7"));
  }
  SECTION("negative dimension") {
    write_bytes(path, idx_bytes(0x08, {2, -5, 3}, kPixels));
    REQUIRE_THROWS_WITH(read_idx(path), Contains(path) && Contains("dimension 1 is negative (-5)"));
  }
  SECTION("dimensions too large for memory") {
    write_bytes(path, idx_bytes(0x08, {2147483647, 2147483647, 2147483647}, kPixels));
    REQUIRE_THROWS_WITH(read_idx(path), Contains(path) && Contains("more elements than fit in memory"));
  }
  SECTION("truncated body: the dimensions promise more data than the file has") {
    write_bytes(path, idx_bytes(0x08, {2, 2, 3}, std::vector<uint8_t>(kPixels.begin(), kPixels.begin() + 7)));
    REQUIRE_THROWS_WITH(read_idx(path), Contains(path) && Contains("truncated data") &&
                                            Contains("dimensions [2, 2, 3] need 12 bytes") &&
                                            Contains("16-byte header") && Contains("only 7 follow"));
  }
  SECTION("huge dimensions with a short body fail on the missing data") {
    write_bytes(path, idx_bytes(0x08, {100000, 1000, 1000}, kPixels));
    REQUIRE_THROWS_WITH(read_idx(path),
                        Contains(path) && Contains("truncated data") && Contains("only 12 follow"));
  }
  SECTION("the file is longer than the dimensions say") {
    std::vector<uint8_t> body = kPixels;
    body.insert(body.end(), {1, 2, 3});
    write_bytes(path, idx_bytes(0x08, {2, 2, 3}, body));
    REQUIRE_THROWS_WITH(read_idx(path), Contains(path) && Contains("longer than its dimensions [2, 2, 3]") &&
                                            Contains("found 3 more"));
  }
  SECTION("truncated gzip stream") {
    const std::string gz = dir.file("cut-idx3-ubyte.gz");
    write_gz(gz, idx_bytes(0x08, {4, 20, 25}, random_bytes(2000, 3)));  // incompressible body
    const std::string whole = read_bytes(gz);
    write_bytes(gz, whole.substr(0, whole.size() / 2));
    REQUIRE_THROWS_WITH(read_idx(gz),
                        Contains(gz) && Contains("truncated data") && Contains("the gzip stream ends early"));
  }
  SECTION("corrupt gzip data") {
    const std::string gz = dir.file("corrupt-idx3-ubyte.gz");
    write_gz(gz, idx_bytes(0x08, {2, 2, 3}, kPixels));
    std::string bytes = read_bytes(gz);
    bytes[10] = '\xff';  // the first deflate block header now names the reserved block type 3
    write_bytes(gz, bytes);
    REQUIRE_THROWS_WITH(read_idx(gz), Contains(gz) && Contains("corrupt gzip data"));
  }
  SECTION("image count differs from label count") {
    const std::string labels = dir.file("labels-idx1-ubyte");
    write_bytes(path, idx_bytes(0x08, {2, 2, 3}, kPixels));
    write_bytes(labels, idx_bytes(0x08, {3}, {1, 2, 3}));
    REQUIRE_THROWS_WITH(load_idx_dataset(path, labels), Contains(path) && Contains("has 2 images") &&
                                                            Contains(labels) && Contains("has 3 labels"));
  }
}
