// Synthetic data sets: shapes, the documented formulas, determinism under a seed, and learnable structure.
#include <algorithm>
#include <cmath>

#include <catch2/catch.hpp>

#include "core/random.h"
#include "data/synthetic.h"

using namespace nl;
using Catch::Contains;

namespace {

std::vector<int64_t> grouped(int64_t per_class, int64_t classes) {
  std::vector<int64_t> y;
  for (int64_t k = 0; k < classes; ++k) y.insert(y.end(), per_class, k);
  return y;
}

// Fraction of `test` classified correctly by the nearest class mean of `train` (squared distance).
double nearest_mean_accuracy(const TensorDataset& train, const TensorDataset& test, int64_t classes) {
  const int64_t dims = numel_of(train.example_shape());
  std::vector<double> means(static_cast<size_t>(classes * dims), 0.0);
  std::vector<int64_t> counts(static_cast<size_t>(classes), 0);
  const float* x = train.inputs().data<float>();
  const int64_t* y = train.labels().data<int64_t>();
  for (int64_t i = 0; i < train.size(); ++i) {
    ++counts[y[i]];
    for (int64_t d = 0; d < dims; ++d) means[y[i] * dims + d] += x[i * dims + d];
  }
  for (int64_t k = 0; k < classes; ++k)
    for (int64_t d = 0; d < dims; ++d) means[k * dims + d] /= static_cast<double>(counts[k]);
  int64_t correct = 0;
  const float* tx = test.inputs().data<float>();
  const int64_t* ty = test.labels().data<int64_t>();
  for (int64_t i = 0; i < test.size(); ++i) {
    int64_t best = 0;
    double best_distance = INFINITY;
    for (int64_t k = 0; k < classes; ++k) {
      double distance = 0;
      for (int64_t d = 0; d < dims; ++d) {
        const double diff = tx[i * dims + d] - means[k * dims + d];
        distance += diff * diff;
      }
      if (distance < best_distance) best_distance = distance, best = k;
    }
    correct += best == ty[i];
  }
  return static_cast<double>(correct) / static_cast<double>(test.size());
}

}  // namespace

TEST_CASE("make_blobs: k Gaussian clusters in d dimensions", "[data][synthetic]") {
  const TensorDataset blobs =
      make_blobs({.samples_per_class = 400, .classes = 3, .dims = 5, .stddev = 0.5, .seed = 2});
  REQUIRE(blobs.inputs().shape() == Shape{1200, 5});
  CHECK(blobs.labels().to_vector<int64_t>() == grouped(400, 3));
  // Centers drawn first from U[-5, 5), in order; each cluster's sample mean is near its center and its spread
  // near stddev.
  Generator gen(2);
  const float* x = blobs.inputs().data<float>();
  for (int64_t k = 0; k < 3; ++k)
    for (int64_t d = 0; d < 5; ++d) {
      double sum = 0, sum2 = 0;
      for (int64_t i = 0; i < 400; ++i) {
        const double v = x[(k * 400 + i) * 5 + d];
        sum += v;
        sum2 += v * v;
      }
      const double mean = sum / 400, sd = std::sqrt(sum2 / 400 - mean * mean);
      const double center = -5.0 + 10.0 * gen.next_double();
      CHECK(mean == Approx(center).margin(0.1));
      CHECK(sd == Approx(0.5).margin(0.06));
    }
  const TensorDataset again =
      make_blobs({.samples_per_class = 400, .classes = 3, .dims = 5, .stddev = 0.5, .seed = 2});
  CHECK(again.inputs().to_vector<float>() == blobs.inputs().to_vector<float>());
  const TensorDataset other =
      make_blobs({.samples_per_class = 400, .classes = 3, .dims = 5, .stddev = 0.5, .seed = 3});
  CHECK(other.inputs().to_vector<float>() != blobs.inputs().to_vector<float>());
  REQUIRE_THROWS_WITH(make_blobs({.dims = 0}), Contains("make_blobs: dims must be >= 1, got 0"));
  REQUIRE_THROWS_WITH(make_blobs({.stddev = -1}), Contains("stddev must be >= 0"));
}

TEST_CASE("make_spirals: k arms, radius i/n, seeded angle noise", "[data][synthetic]") {
  const TensorDataset spirals = make_spirals({.samples_per_class = 50, .arms = 4, .noise = 0.2, .seed = 1});
  REQUIRE(spirals.inputs().shape() == Shape{200, 2});
  CHECK(spirals.labels().to_vector<int64_t>() == grouped(50, 4));
  const float* x = spirals.inputs().data<float>();
  for (int64_t k = 0; k < 4; ++k)
    for (int64_t i = 0; i < 50; ++i) {
      const int64_t row = k * 50 + i;
      CHECK(std::hypot(x[row * 2], x[row * 2 + 1]) == Approx(i / 50.0).margin(1e-6));
    }
  // Without noise the angle is exactly 4r + 2πk/K.
  const TensorDataset clean = make_spirals({.samples_per_class = 10, .arms = 2, .noise = 0.0});
  const float* c = clean.inputs().data<float>();
  const double r = 3 / 10.0, angle = 4 * r + M_PI;  // arm 1, sample 3
  CHECK(c[13 * 2] == Approx(r * std::cos(angle)).margin(1e-6));
  CHECK(c[13 * 2 + 1] == Approx(r * std::sin(angle)).margin(1e-6));
  CHECK(make_spirals({.seed = 5}).inputs().to_vector<float>() ==
        make_spirals({.seed = 5}).inputs().to_vector<float>());
  CHECK(make_spirals({.seed = 5}).inputs().to_vector<float>() !=
        make_spirals({.seed = 6}).inputs().to_vector<float>());
  REQUIRE_THROWS_WITH(make_spirals({.arms = 0}), Contains("number of classes must be >= 1, got 0"));
}

TEST_CASE("make_bar_images: (N, 1, 28, 28) oriented bars that a classifier can learn", "[data][synthetic]") {
  const TensorDataset train = make_bar_images({.samples_per_class = 100, .classes = 4, .seed = 1});
  REQUIRE(train.inputs().shape() == Shape{400, 1, 28, 28});
  CHECK(train.labels().to_vector<int64_t>() == grouped(100, 4));
  const std::vector<float> v = train.inputs().to_vector<float>();
  CHECK(*std::min_element(v.begin(), v.end()) >= 0.0f);
  CHECK(*std::max_element(v.begin(), v.end()) <= 1.0f);
  CHECK(*std::max_element(v.begin(), v.end()) > 0.6f);  // the bar is bright
  CHECK(make_bar_images({.samples_per_class = 3, .seed = 1}).inputs().to_vector<float>() ==
        make_bar_images({.samples_per_class = 3, .seed = 1}).inputs().to_vector<float>());
  CHECK(make_bar_images({.samples_per_class = 3, .seed = 1}).inputs().to_vector<float>() !=
        make_bar_images({.samples_per_class = 3, .seed = 2}).inputs().to_vector<float>());

  // Class 0 is horizontal: the bright pixels of a noiseless class-0 image spread along x, not y.
  const TensorDataset clean =
      make_bar_images({.samples_per_class = 1, .classes = 2, .noise = 0.0, .seed = 4});
  const float* img = clean.inputs().data<float>();
  double sx = 0, sy = 0, sxx = 0, syy = 0, total = 0;
  for (int y = 0; y < 28; ++y)
    for (int x = 0; x < 28; ++x) {
      const double w = img[y * 28 + x];
      total += w, sx += w * x, sy += w * y, sxx += w * x * x, syy += w * y * y;
    }
  const double var_x = sxx / total - (sx / total) * (sx / total),
               var_y = syy / total - (sy / total) * (sy / total);
  CHECK(var_x > 4 * var_y);

  // Held-out samples from another seed are classified well by the nearest class mean: the classes differ.
  const TensorDataset test = make_bar_images({.samples_per_class = 100, .classes = 4, .seed = 2});
  CHECK(nearest_mean_accuracy(train, test, 4) > 0.9);
  REQUIRE_THROWS_WITH(make_bar_images({.size = 4}), Contains("size must be >= 8, got 4"));
}
