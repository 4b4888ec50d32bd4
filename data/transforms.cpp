// Transforms (data/transforms.h): plain loops over contiguous data, one pass per operation.
#include "data/transforms.h"

#include <cmath>

namespace nl {
namespace {

void check_mean_std(const std::vector<double>& mean, const std::vector<double>& stddev, const char* op) {
  check(!mean.empty() && mean.size() == stddev.size(), op,
        ": mean and stddev need the same number (>= 1) of ", "entries, got ", mean.size(), " and ",
        stddev.size());
  for (size_t c = 0; c < stddev.size(); ++c)
    check(std::isfinite(stddev[c]) && stddev[c] > 0, op, ": stddev[", c, "] must be finite and > 0, got ",
          stddev[c]);
}

}  // namespace

Tensor to_float(const Tensor& x, double scale) {
  const Tensor src = x.contiguous();
  Tensor y = empty(src.shape(), kFloat32);
  float* out = y.data<float>();
  visit_dtype(src.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* in = src.data<T>();
    for (int64_t i = 0, n = src.numel(); i < n; ++i)
      out[i] = static_cast<float>(static_cast<double>(in[i]) * scale);
  });
  return y;
}

Tensor normalize_channels(const Tensor& x, const std::vector<double>& mean,
                          const std::vector<double>& stddev) {
  check(x.dim() >= 3, "normalize_channels: expected (..., C, H, W) with the channels at dim -3, got shape ",
        x.shape());
  check_mean_std(mean, stddev, "normalize_channels");
  const int64_t channels = x.size(-3);
  const int64_t given = static_cast<int64_t>(mean.size());
  check(given == channels || given == 1, "normalize_channels: input ", x.shape(), " has ", channels,
        " channels but mean and stddev have ", given, " entries");
  const int64_t plane = x.size(-2) * x.size(-1);
  const int64_t outer = numel_of(Shape(x.shape().begin(), x.shape().end() - 3));
  const Tensor src = x.contiguous();
  Tensor y = empty(src.shape(), src.dtype());
  visit_floating(src.dtype(), "normalize_channels", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* in = src.data<T>();
    T* out = y.data<T>();
    for (int64_t n = 0; n < outer; ++n)
      for (int64_t c = 0; c < channels; ++c) {
        const double m = mean[given == 1 ? 0 : c], s = stddev[given == 1 ? 0 : c];
        const int64_t base = (n * channels + c) * plane;
        for (int64_t i = 0; i < plane; ++i)
          out[base + i] = static_cast<T>((static_cast<double>(in[base + i]) - m) / s);
      }
  });
  return y;
}

Tensor pad_and_crop(const Tensor& x, int64_t top, int64_t left, int64_t height, int64_t width,
                    int64_t padding) {
  check(x.dim() >= 2, "pad_and_crop: expected (..., H, W), got shape ", x.shape());
  check(height >= 1 && width >= 1 && padding >= 0,
        "pad_and_crop: need height, width >= 1 and padding >= 0, got ", height, ", ", width, ", ", padding);
  const int64_t in_h = x.size(-2), in_w = x.size(-1);
  const int64_t padded_h = in_h + 2 * padding, padded_w = in_w + 2 * padding;
  check(top >= 0 && top + height <= padded_h && left >= 0 && left + width <= padded_w, "pad_and_crop: a ",
        height, "x", width, " window at (top ", top, ", left ", left, ") does not fit in the ", padded_h, "x",
        padded_w, " padded input (input ", x.shape(), ", padding ", padding, ")");
  Shape out_shape = x.shape();
  out_shape[out_shape.size() - 2] = height;
  out_shape[out_shape.size() - 1] = width;
  const Tensor src = x.contiguous();
  Tensor y = empty(out_shape, src.dtype());
  const int64_t planes = numel_of(Shape(x.shape().begin(), x.shape().end() - 2));
  visit_dtype(src.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* in = src.data<T>();
    T* out = y.data<T>();
    for (int64_t p = 0; p < planes; ++p)
      for (int64_t i = 0; i < height; ++i) {
        // Row i of the window is row top + i of the padded image, i.e. row top + i − padding of the input.
        const int64_t r = top + i - padding;
        T* out_row = out + (p * height + i) * width;
        for (int64_t j = 0; j < width; ++j) {
          const int64_t c = left + j - padding;
          out_row[j] = (r >= 0 && r < in_h && c >= 0 && c < in_w) ? in[(p * in_h + r) * in_w + c] : T(0);
        }
      }
  });
  return y;
}

Tensor flip_horizontal(const Tensor& x) {
  check(x.dim() >= 1, "flip_horizontal: expected a tensor with at least one axis, got shape ", x.shape());
  const Tensor src = x.contiguous();
  Tensor y = empty(src.shape(), src.dtype());
  const int64_t width = src.size(-1);
  const int64_t rows = numel_of(Shape(x.shape().begin(), x.shape().end() - 1));
  visit_dtype(src.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* in = src.data<T>();
    T* out = y.data<T>();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < width; ++j) out[r * width + j] = in[r * width + (width - 1 - j)];
  });
  return y;
}

Tensor ToFloat::operator()(const Tensor& x, Generator&) const { return to_float(x, scale_); }

Normalize::Normalize(std::vector<double> mean, std::vector<double> stddev)
    : mean_(std::move(mean)), stddev_(std::move(stddev)) {
  check_mean_std(mean_, stddev_, "Normalize");
}

Tensor Normalize::operator()(const Tensor& x, Generator&) const {
  return normalize_channels(x, mean_, stddev_);
}

RandomCrop::RandomCrop(int64_t height, int64_t width, int64_t padding)
    : height_(height), width_(width), padding_(padding) {
  check(height >= 1 && width >= 1 && padding >= 0,
        "RandomCrop: need height, width >= 1 and padding >= 0, got ", height, ", ", width, ", ", padding);
}

Tensor RandomCrop::operator()(const Tensor& x, Generator& gen) const {
  check(x.dim() >= 2, "RandomCrop: expected (..., H, W), got shape ", x.shape());
  const int64_t padded_h = x.size(-2) + 2 * padding_, padded_w = x.size(-1) + 2 * padding_;
  check(height_ <= padded_h && width_ <= padded_w, "RandomCrop: a ", height_, "x", width_,
        " crop does not fit in input ", x.shape(), " padded by ", padding_, " (", padded_h, "x", padded_w,
        ")");
  const int64_t top = gen.next_int(0, padded_h - height_ + 1);
  const int64_t left = gen.next_int(0, padded_w - width_ + 1);
  return pad_and_crop(x, top, left, height_, width_, padding_);
}

RandomHorizontalFlip::RandomHorizontalFlip(double p) : p_(p) {
  check(p >= 0 && p <= 1, "RandomHorizontalFlip: probability must be in [0, 1], got ", p);
}

Tensor RandomHorizontalFlip::operator()(const Tensor& x, Generator& gen) const {
  const bool flip = gen.next_double() < p_;
  return flip ? flip_horizontal(x) : x;
}

Compose::Compose(std::vector<std::shared_ptr<const Transform>> steps) : steps_(std::move(steps)) {
  for (size_t i = 0; i < steps_.size(); ++i) check(steps_[i] != nullptr, "Compose: step ", i, " is null");
}

Tensor Compose::operator()(const Tensor& x, Generator& gen) const {
  Tensor y = x;
  for (const auto& step : steps_) y = (*step)(y, gen);
  return y;
}

}  // namespace nl
