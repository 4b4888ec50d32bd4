// Transforms: hand-checked small cases, composition, and determinism under a seed.
#include <catch2/catch.hpp>

#include "data/transforms.h"

using namespace nl;
using Catch::Contains;

namespace {

// (1, 3, 3) holding 1..9 row by row.
Tensor small_image() { return from_vector<float>({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 3, 3}); }

std::vector<float> values(const Tensor& t) { return t.to_vector<float>(); }

}  // namespace

TEST_CASE("to_float converts any dtype to float32 and scales", "[data][transforms]") {
  const Tensor bytes = from_vector<int64_t>({0, 255, 51}, {3});
  const Tensor y = to_float(bytes, 1.0 / 255);
  CHECK(y.dtype() == kFloat32);
  CHECK(values(y) == std::vector<float>{0.0f, 1.0f, 0.2f});
  Generator gen(1);
  CHECK(values(ToFloat(2.0)(from_vector<double>({1.5, -1}, {2}), gen)) == std::vector<float>{3.0f, -2.0f});
}

TEST_CASE("normalize_channels subtracts the mean and divides by the stddev of each channel",
          "[data][transforms]") {
  // (2, 1, 2): channel 0 = {1, 3}, channel 1 = {2, 10}.
  const Tensor x = from_vector<float>({1, 3, 2, 10}, {2, 1, 2});
  CHECK(values(normalize_channels(x, {1, 2}, {2, 4})) == std::vector<float>{0, 1, 0, 2});
  // A whole (N, C, H, W) batch at once, the same per image.
  const Tensor batch = from_vector<float>({1, 3, 2, 10, 1, 3, 2, 10}, {2, 2, 1, 2});
  CHECK(values(normalize_channels(batch, {1, 2}, {2, 4})) == std::vector<float>{0, 1, 0, 2, 0, 1, 0, 2});
  // One entry applies to every channel; float64 stays float64.
  const Tensor y = normalize_channels(x.to(kFloat64), {1}, {0.5});
  CHECK(y.dtype() == kFloat64);
  CHECK(y.to_vector<double>() == std::vector<double>{0, 4, 2, 18});
  Generator gen(1);
  CHECK(values(Normalize({1, 2}, {2, 4})(x, gen)) == std::vector<float>{0, 1, 0, 2});

  REQUIRE_THROWS_WITH(normalize_channels(x, {0, 0, 0}, {1, 1, 1}),
                      Contains("input [2, 1, 2] has 2 channels but mean and stddev have 3 entries"));
  REQUIRE_THROWS_WITH(normalize_channels(x, {0, 0}, {1, 0}),
                      Contains("stddev[1] must be finite and > 0, got 0"));
  REQUIRE_THROWS_WITH(normalize_channels(zeros({2, 2}), {0}, {1}), Contains("channels at dim -3"));
  REQUIRE_THROWS_WITH(normalize_channels(zeros({2, 2, 2}, kInt64), {0}, {1}),
                      Contains("expected a float32 or float64 tensor, got int64"));
  REQUIRE_THROWS_WITH(Normalize({0, 1}, {1}), Contains("Normalize: mean and stddev need the same number"));
}

TEST_CASE("pad_and_crop cuts a window out of the zero-padded image", "[data][transforms]") {
  const Tensor x = small_image();
  CHECK(values(pad_and_crop(x, 0, 0, 3, 3, 1)) == std::vector<float>{0, 0, 0, 0, 1, 2, 0, 4, 5});
  CHECK(values(pad_and_crop(x, 2, 2, 3, 3, 1)) == std::vector<float>{5, 6, 0, 8, 9, 0, 0, 0, 0});
  CHECK(values(pad_and_crop(x, 1, 1, 3, 3, 1)) == values(x));
  CHECK(values(pad_and_crop(x, 1, 0, 2, 2, 0)) == std::vector<float>{4, 5, 7, 8});
  const Tensor two_channels = from_vector<float>({1, 2, 3, 4, 5, 6, 7, 8}, {2, 2, 2});
  const Tensor crop = pad_and_crop(two_channels, 0, 1, 2, 2, 1);
  CHECK(crop.shape() == Shape{2, 2, 2});
  CHECK(values(crop) == std::vector<float>{0, 0, 1, 2, 0, 0, 5, 6});
  REQUIRE_THROWS_WITH(pad_and_crop(x, 1, 0, 3, 3, 0),
                      Contains("a 3x3 window at (top 1, left 0) does not fit"));
  REQUIRE_THROWS_WITH(pad_and_crop(x, 0, 0, 1, 1, -1), Contains("padding >= 0"));
}

TEST_CASE("flip_horizontal reverses the last axis", "[data][transforms]") {
  const Tensor x = from_vector<float>({1, 2, 3, 4, 5, 6}, {1, 2, 3});
  CHECK(values(flip_horizontal(x)) == std::vector<float>{3, 2, 1, 6, 5, 4});
  CHECK(values(flip_horizontal(flip_horizontal(x))) == values(x));
  // Works on strided views too.
  const Tensor transposed = from_vector<float>({1, 2, 3, 4}, {2, 2}).t();  // [[1, 3], [2, 4]]
  CHECK(values(flip_horizontal(transposed)) == std::vector<float>{3, 1, 4, 2});
}

TEST_CASE("RandomCrop draws top then left from the generator", "[data][transforms]") {
  const Tensor x = small_image();
  const RandomCrop crop(3, 3, 2);
  std::vector<int> seen(25, 0);
  for (uint64_t seed = 0; seed < 400; ++seed) {
    Generator gen(seed), reference(seed);
    const int64_t top = reference.next_int(0, 5), left = reference.next_int(0, 5);
    const Tensor y = crop(x, gen);
    CHECK(values(y) == values(pad_and_crop(x, top, left, 3, 3, 2)));
    CHECK(gen.next_u64() == reference.next_u64());  // exactly two draws were made
    ++seen[top * 5 + left];
  }
  CHECK(std::count(seen.begin(), seen.end(), 0) == 0);                // every offset happens
  CHECK(values(x) == std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8, 9});  // input untouched
  Generator g1(9), g2(9);
  CHECK(values(crop(x, g1)) == values(crop(x, g2)));
  REQUIRE_THROWS_WITH(RandomCrop(4, 4, 0)(x, g1),
                      Contains("a 4x4 crop does not fit in input [1, 3, 3] padded by 0"));
  REQUIRE_THROWS_WITH(RandomCrop(0, 4), Contains("height, width >= 1"));
}

TEST_CASE("RandomHorizontalFlip flips with probability p, one draw per call", "[data][transforms]") {
  const Tensor x = from_vector<float>({1, 2, 3}, {1, 1, 3});
  Generator gen(3);
  for (int i = 0; i < 20; ++i) {
    CHECK(values(RandomHorizontalFlip(1.0)(x, gen)) == std::vector<float>{3, 2, 1});
    CHECK(values(RandomHorizontalFlip(0.0)(x, gen)) == std::vector<float>{1, 2, 3});
  }
  int flips = 0;
  const RandomHorizontalFlip flip(0.5);
  for (uint64_t seed = 0; seed < 1000; ++seed) {
    Generator g(seed), reference(seed);
    const bool expected = reference.next_double() < 0.5;
    const bool flipped = values(flip(x, g))[0] == 3;
    CHECK(flipped == expected);
    CHECK(g.next_u64() == reference.next_u64());
    flips += flipped;
  }
  CHECK(flips > 430);
  CHECK(flips < 570);
  REQUIRE_THROWS_WITH(RandomHorizontalFlip(1.5), Contains("probability must be in [0, 1], got 1.5"));
}

TEST_CASE("Compose applies its steps in order from one generator", "[data][transforms]") {
  const Tensor x = small_image();
  const Compose pipeline({std::make_shared<ToFloat>(2.0), std::make_shared<RandomCrop>(3, 3, 1),
                          std::make_shared<RandomHorizontalFlip>(0.5),
                          std::make_shared<Normalize>(std::vector<double>{1}, std::vector<double>{2})});
  for (uint64_t seed = 0; seed < 30; ++seed) {
    Generator gen(seed), reference(seed);
    Tensor expected = to_float(x, 2.0);
    const int64_t top = reference.next_int(0, 3), left = reference.next_int(0, 3);
    expected = pad_and_crop(expected, top, left, 3, 3, 1);
    if (reference.next_double() < 0.5) expected = flip_horizontal(expected);
    expected = normalize_channels(expected, {1}, {2});
    CHECK(values(pipeline(x, gen)) == values(expected));
  }
  Generator gen(0);
  CHECK(values(Compose({})(x, gen)) == values(x));
  REQUIRE_THROWS_WITH(Compose({nullptr}), Contains("Compose: step 0 is null"));
}
