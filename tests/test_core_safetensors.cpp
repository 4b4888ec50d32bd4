// safetensors decoding of hostile headers. (Round trips and checkpoints are in test_optim_checkpoint.cpp.)
#include <catch2/catch.hpp>
#include <string>

#include "core/safetensors.h"

using namespace nl;
using Catch::Contains;

namespace {

// A safetensors file: the 8-byte little-endian length, the header padded with spaces to 8 bytes, the data.
std::string safetensors_file(std::string header, const std::string& data = "") {
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string out;
  const uint64_t n = header.size();
  for (int k = 0; k < 8; ++k) out += static_cast<char>((n >> (8 * k)) & 0xFF);
  return out + header + data;
}

}  // namespace

TEST_CASE("safetensors: a shape whose byte count wraps past 2^64 is rejected, not loaded",
          "[core][safetensors][errors]") {
  // 2^62 float32 elements are 2^64 bytes, which wrapped to 0 and so matched the empty data_offsets span.
  const std::string wraps =
      safetensors_file(R"({"x":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}})");
  CHECK(wraps.size() < 100);
  CHECK_THROWS_WITH(decode_safetensors(wraps, "wrap.safetensors"),
                    Contains("load_safetensors: wrap.safetensors: ") && Contains("tensor 'x'") &&
                        Contains("[4611686018427387904]"));
  // 2^61 float64 elements wrap the same way; 2^32 · 2^32 elements wrap the element count itself.
  CHECK_THROWS_WITH(
      decode_safetensors(
          safetensors_file(R"({"y":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]}})"),
          "wrap.safetensors"),
      Contains("tensor 'y'") && Contains("[2305843009213693952]"));
  CHECK_THROWS_WITH(
      decode_safetensors(
          safetensors_file(R"({"z":{"dtype":"I64","shape":[4294967296,4294967296],"data_offsets":[0,0]}})"),
          "wrap.safetensors"),
      Contains("tensor 'z'") && Contains("[4294967296, 4294967296]"));
  // An empty tensor is fine, however its zero is placed.
  const SafetensorsContents empty_ok = decode_safetensors(
      safetensors_file(R"({"e":{"dtype":"F32","shape":[3,0,5],"data_offsets":[0,0]}})"), "empty");
  REQUIRE(empty_ok.tensors.size() == 1);
  CHECK(empty_ok.tensors[0].second.shape() == Shape{3, 0, 5});
}
