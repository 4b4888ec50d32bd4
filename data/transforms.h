// Transforms: per-example preprocessing and data augmentation for images laid out (..., C, H, W).
//
// Each operation exists twice: a stateless function that does the work with every choice as an argument
// (to_float, normalize_channels, pad_and_crop, flip_horizontal), and a Transform object that holds the
// settings and, for the random ones, draws those choices from a Generator:
//
//   ToFloat(scale)              y = float32(x) · scale                  (e.g. scale = 1/255 for raw bytes)
//   Normalize(mean, stddev)     y[..., c, h, w] = (x[..., c, h, w] − mean[c]) / stddev[c]
//   RandomCrop(h, w, padding)   pad H and W by `padding` zeros on each side, then cut an h×w window at
//                               top ~ U{0 .. H+2p−h}, left ~ U{0 .. W+2p−w} (drawn in that order)
//   RandomHorizontalFlip(p)     reverse the W axis if u < p, u ~ U[0, 1) (one draw per call, always made)
//   Compose{t1, t2, ...}        t1 first, all drawing from the same generator in turn
//
// Determinism. A transform owns no generator: the caller passes one, so the result is a pure function of the
// input and the generator's state. The DataLoader seeds a fresh generator for every (seed, epoch, sample)
// (data/dataloader.h), which makes augmentation reproducible, resumable and independent of threads.
// A transform never modifies its input (dataset examples may be views of the dataset's storage).
#pragma once

#include <memory>
#include <vector>

#include "../core/random.h"
#include "../core/tensor.h"

namespace nl {

// ---- stateless operations
// float32(x) · scale, for an input of any dtype.
Tensor to_float(const Tensor& x, double scale = 1.0);
// Per-channel (x − mean[c]) / stddev[c] on a float tensor of rank >= 3 whose channel axis is dim −3, so
// (C,H,W) examples and whole (N,C,H,W) datasets both work. mean and stddev have C entries, or 1 entry for
// every channel; every stddev must be finite and > 0. The result has x's dtype.
Tensor normalize_channels(const Tensor& x, const std::vector<double>& mean,
                          const std::vector<double>& stddev);
// The height×width window at (top, left) of x padded with `padding` zeros on both sides of its last two
// axes (H, W); leading axes are kept. 0 <= top <= H + 2·padding − height, likewise for left.
Tensor pad_and_crop(const Tensor& x, int64_t top, int64_t left, int64_t height, int64_t width,
                    int64_t padding);
// x with its last axis reversed.
Tensor flip_horizontal(const Tensor& x);

// ---- transform objects
class Transform {
 public:
  virtual ~Transform() = default;
  // The transformed example; random choices are drawn from gen. x is never modified, but the result may
  // share its storage when nothing changes (e.g. a flip that was not drawn).
  virtual Tensor operator()(const Tensor& x, Generator& gen) const = 0;
};

class ToFloat : public Transform {
 public:
  explicit ToFloat(double scale = 1.0) : scale_(scale) {}
  Tensor operator()(const Tensor& x, Generator& gen) const override;

 private:
  double scale_;
};

class Normalize : public Transform {
 public:
  Normalize(std::vector<double> mean, std::vector<double> stddev);
  Tensor operator()(const Tensor& x, Generator& gen) const override;

 private:
  std::vector<double> mean_, stddev_;
};

class RandomCrop : public Transform {
 public:
  RandomCrop(int64_t height, int64_t width, int64_t padding = 0);
  Tensor operator()(const Tensor& x, Generator& gen) const override;

 private:
  int64_t height_, width_, padding_;
};

class RandomHorizontalFlip : public Transform {
 public:
  explicit RandomHorizontalFlip(double p = 0.5);
  Tensor operator()(const Tensor& x, Generator& gen) const override;

 private:
  double p_;
};

class Compose : public Transform {
 public:
  explicit Compose(std::vector<std::shared_ptr<const Transform>> steps);
  Tensor operator()(const Tensor& x, Generator& gen) const override;

 private:
  std::vector<std::shared_ptr<const Transform>> steps_;
};

}  // namespace nl
