// safetensors decoding of hostile headers: byte counts that overflow, the header size and nesting limits,
// and JSON that is well-formed but not a safetensors header. (Round trips and checkpoints are in
// test_optim_checkpoint.cpp.)
#include <catch2/catch.hpp>
#include <string>

#include "core/safetensors.h"

using namespace nl;
using Catch::Contains;
using namespace std::string_literals;

namespace {

// A safetensors file: the 8-byte little-endian length, the header padded with spaces to 8 bytes, the data.
std::string safetensors_file(std::string header, const std::string& data = "") {
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string out;
  const uint64_t n = header.size();
  for (int k = 0; k < 8; ++k) out += static_cast<char>((n >> (8 * k)) & 0xFF);
  return out + header + data;
}

// A file whose length field says `n` bytes, followed by `follow` bytes.
std::string length_field(uint64_t n, size_t follow) {
  std::string out;
  for (int k = 0; k < 8; ++k) out += static_cast<char>((n >> (8 * k)) & 0xFF);
  return out + std::string(follow, ' ');
}

std::string nested_arrays(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

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

TEST_CASE("safetensors: the header length limit is checked before anything is read or allocated",
          "[core][safetensors][errors][limits]") {
  // One byte over the limit: rejected by the length field alone.
  CHECK_THROWS_WITH(decode_safetensors(length_field(100'000'001, 16), "big"),
                    Contains("load_safetensors: big: the header length field says 100000001 bytes") &&
                        Contains("more than the 100000000 allowed"));
  // At the limit the length is accepted, and the file is then too short for it.
  CHECK_THROWS_WITH(
      decode_safetensors(length_field(100'000'000, 16), "short"),
      Contains("truncated: the header length field says 100000000 bytes but only 16 follow it"));
  CHECK_THROWS_WITH(decode_safetensors(length_field(~uint64_t{0}, 16), "huge"),
                    Contains("more than the 100000000 allowed"));
  CHECK_THROWS_WITH(decode_safetensors(std::string(5, '\0'), "tiny"),
                    Contains("fewer than the 8-byte header length"));
}

TEST_CASE("safetensors: JSON nested more than 64 levels below the top object is rejected",
          "[core][safetensors][errors][limits]") {
  // 64 levels parse (the header is then the wrong kind of JSON); 65 do not.
  const auto at_limit = "{\"__metadata__\":" + nested_arrays(64) + "}";
  CHECK_THROWS_WITH(decode_safetensors(safetensors_file(at_limit), "deep"),
                    Contains("__metadata__ is an array, expected an object"));
  const auto over_limit = "{\"__metadata__\":" + nested_arrays(65) + "}";
  CHECK_THROWS_WITH(decode_safetensors(safetensors_file(over_limit), "deep"),
                    Contains("load_safetensors: deep: corrupt header: nesting too deep") &&
                        Contains("at byte 80 of the JSON header"));
  // Far deeper than a recursive parser's stack would take.
  CHECK_THROWS_WITH(decode_safetensors(safetensors_file(nested_arrays(1'000'000)), "deeper"),
                    Contains("nesting too deep"));
}

TEST_CASE("safetensors: JSON errors name the problem and where it is", "[core][safetensors][errors]") {
  auto error_of = [](const std::string& header) {
    try {
      decode_safetensors(safetensors_file(header), "h.safetensors");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK_THAT(error_of(R"({"a": tru})"),
             Contains("load_safetensors: h.safetensors: corrupt header: ") && Contains("at byte"));
  CHECK_THAT(error_of(R"({"a":{}} x)"), Contains("corrupt header") && Contains("at byte"));
  CHECK_THAT(error_of(R"([1, 2])"),
             Contains("corrupt header: the JSON header is an array, expected an object"));
  CHECK_THAT(error_of(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{}})"),
             Contains("duplicate key \"a\""));
  CHECK_THAT(error_of(R"({"__metadata__":{"k":"v","k":"w"}})"), Contains("duplicate key \"k\""));
  CHECK_THAT(error_of(R"({"__metadata__":{"k":1}})"),
             Contains("__metadata__ entry \"k\" is an integer, expected a string"));
  CHECK_THAT(error_of(R"({"a":[]})"), Contains("tensor 'a' is an array, expected an object"));
  CHECK_THAT(error_of(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})"),
             Contains("tensor 'a' has a shape entry that is not an integer >= 0"));
  CHECK_THAT(error_of(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})"),
             Contains("tensor 'a' has a shape entry that is not an integer >= 0"));
  CHECK_THAT(error_of(R"({"a":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,4]}})"),
             Contains("tensor 'a' has a shape entry that is not an integer >= 0"));
  CHECK_THAT(error_of(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})"),
             Contains("tensor 'a' has an unknown field \"x\""));
  CHECK_THAT(error_of(R"({"a":{"dtype":"F32","shape":[1]}})"),
             Contains("tensor 'a' lacks one of \"dtype\", \"shape\", \"data_offsets\""));
  CHECK_THAT(error_of(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})"),
             Contains("has data_offsets that are not [begin, end] with 0 <= begin <= end"));
  CHECK_THAT(error_of(R"({"a":{"dtype":7,"shape":[1],"data_offsets":[0,4]}})"),
             Contains("tensor 'a' has a dtype that is not a string"));
}

TEST_CASE("safetensors: names and metadata must be UTF-8, and read back exactly",
          "[core][safetensors][errors]") {
  CHECK_THROWS_WITH(encode_safetensors({{"bad\xff", ones({1})}}),
                    Contains("save_safetensors: the tensor name 'bad\xff' is not valid UTF-8"));
  CHECK_THROWS_WITH(encode_safetensors({{"x", ones({1})}}, {{"k", "\xc3"}}),
                    Contains("save_safetensors: the value of metadata key 'k' is not valid UTF-8"));
  // Escapes and characters beyond the Basic Multilingual Plane survive the round trip.
  const std::string name = "tab\t nul\0 emoji \xf0\x9f\x98\x80 \"quoted\" \\"s;
  const SafetensorsContents back = decode_safetensors(encode_safetensors({{name, ones({2})}}), "memory");
  REQUIRE(back.tensors.size() == 1);
  CHECK(back.tensors[0].first == name);
  // A surrogate pair written as \u escapes decodes to the same UTF-8.
  const SafetensorsContents escaped = decode_safetensors(
      safetensors_file(R"({"\ud83d\ude00":{"dtype":"F32","shape":[],"data_offsets":[0,4]}})",
                       std::string(4, '\0')),
      "escaped");
  REQUIRE(escaped.tensors.size() == 1);
  CHECK(escaped.tensors[0].first == "\xf0\x9f\x98\x80");
}
