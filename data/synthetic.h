// Synthetic classification sets for tests and quick experiments: deterministic functions of their options
// (seed included), generated with nl::Generator, so every machine makes the same data. Rows are grouped by
// class (all of class 0, then class 1, ...): shuffle with the DataLoader.
//
// Gaussian blobs (inputs (K·n, d)):
//   centers c_k ~ U[−center_range, center_range)^d, drawn class by class; then sample x = c_k + stddev·z,
//   z ~ N(0, I), drawn class by class.
// Spirals (inputs (K·n, 2)), as in examples/demo_spirals_mlp.cpp:
//   sample i of arm k: r = i / n, θ = 4r + 2πk/K + noise·z (z ~ N(0, 1)), x = (r cos θ, r sin θ).
// Bar images (inputs (K·n, 1, S, S), values in [0, 1]): class k is a bright bar at angle πk/K through the
// middle of the picture, with its pose jittered. For each sample, in this order:
//   angle  θ = πk/K + 0.05·z            center  (cx, cy) = (S−1)/2 + U[−S/9, S/9) each
//   half-length  h ~ U[0.25 S, 0.4 S)   brightness  a ~ U[0.7, 1)
//   pixel (x, y) = clamp(a·exp(−d²/(2w²)) + noise·z, 0, 1), w = S/16, d the distance from (x, y) to the
//   segment of half-length h through (cx, cy) at angle θ; the noise is drawn pixel by pixel, row-major.
// Orientation is the only class cue, so the set needs a model that sees shape (a CNN learns it in a few
// epochs), which makes it a stand-in for Fashion-MNIST in tests when the real data set is absent.
#pragma once

#include <cstdint>

#include "dataset.h"

namespace nl {

struct BlobsOptions {
  int64_t samples_per_class = 100;
  int64_t classes = 3;
  int64_t dims = 2;
  double center_range = 5.0;
  double stddev = 1.0;
  uint64_t seed = 0;
};
TensorDataset make_blobs(const BlobsOptions& options = {});

struct SpiralsOptions {
  int64_t samples_per_class = 100;
  int64_t arms = 3;
  double noise = 0.15;
  uint64_t seed = 0;
};
TensorDataset make_spirals(const SpiralsOptions& options = {});

struct BarImagesOptions {
  int64_t samples_per_class = 100;
  int64_t classes = 4;
  int64_t size = 28;  // S: images are S×S
  double noise = 0.1;
  uint64_t seed = 0;
};
TensorDataset make_bar_images(const BarImagesOptions& options = {});

}  // namespace nl
