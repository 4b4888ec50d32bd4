// Normalizations composed from primitive differentiable ops (mean, var, sub, mul, rsqrt, ...): slow, but
// autograd derives their backward, so they are the oracle for the fused kernels' closed-form backward.
// They follow exactly the formulas in core/normalization.h.
#pragma once

#include <cstdint>
#include <numeric>
#include <vector>

#include "autograd/engine.h"
#include "core/ops.h"

namespace nl::test {

// (1, C, 1, ..., 1) with x's rank, to broadcast a per-channel vector against (N, C, *).
inline Shape channel_shape(const Tensor& x) {
  Shape s(static_cast<size_t>(x.dim()), 1);
  s[1] = x.size(1);
  return s;
}

inline std::vector<int64_t> batch_and_spatial_axes(const Tensor& x) {
  std::vector<int64_t> axes{0};
  for (int64_t d = 2; d < x.dim(); ++d) axes.push_back(d);
  return axes;
}

inline Tensor affine_composed(const Tensor& x_hat, const Tensor& weight, const Tensor& bias,
                              const Shape& shape) {
  Tensor y = x_hat;
  if (weight.defined()) y = y * weight.reshape(shape);
  if (bias.defined()) y = y + bias.reshape(shape);
  return y;
}

// Training-mode BatchNorm: biased batch variance over (N, *), per channel.
inline Tensor batch_norm_composed(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  const auto axes = batch_and_spatial_axes(x);
  const Tensor mu = mean(x, axes, true);
  const Tensor v = var(x, axes, /*unbiased=*/false, true);
  const Tensor x_hat = (x - mu) * rsqrt(v + eps);
  return affine_composed(x_hat, weight, bias, channel_shape(x));
}

// Eval-mode BatchNorm with given statistics (constants).
inline Tensor batch_norm_eval_composed(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                                       const Tensor& weight, const Tensor& bias, double eps) {
  const Shape cs = channel_shape(x);
  const Tensor x_hat = (x - running_mean.reshape(cs)) * rsqrt(running_var.reshape(cs) + eps);
  return affine_composed(x_hat, weight, bias, cs);
}

// Statistics per (sample, channel) over the spatial dims.
inline Tensor instance_norm_composed(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  std::vector<int64_t> axes;
  for (int64_t d = 2; d < x.dim(); ++d) axes.push_back(d);
  const Tensor x_hat = (x - mean(x, axes, true)) * rsqrt(var(x, axes, false, true) + eps);
  return affine_composed(x_hat, weight, bias, channel_shape(x));
}

// Statistics per (sample, group) over (C/G, *): view x as (N, G, C/G·S).
inline Tensor group_norm_composed(const Tensor& x, int64_t groups, const Tensor& weight, const Tensor& bias,
                                  double eps) {
  const Tensor xg = x.reshape({x.size(0), groups, -1});
  const Tensor x_hat =
      ((xg - mean(xg, {2}, true)) * rsqrt(var(xg, {2}, false, true) + eps)).reshape(x.shape());
  return affine_composed(x_hat, weight, bias, channel_shape(x));
}

// Statistics per sample over the last `trailing_dims` dims; per-element affine.
inline Tensor layer_norm_composed(const Tensor& x, int64_t trailing_dims, const Tensor& weight,
                                  const Tensor& bias, double eps) {
  std::vector<int64_t> axes;
  for (int64_t d = x.dim() - trailing_dims; d < x.dim(); ++d) axes.push_back(d);
  const Tensor x_hat = (x - mean(x, axes, true)) * rsqrt(var(x, axes, false, true) + eps);
  Tensor y = x_hat;
  if (weight.defined()) y = y * weight;
  if (bias.defined()) y = y + bias;
  return y;
}

inline Tensor rms_norm_composed(const Tensor& x, int64_t trailing_dims, const Tensor& weight, double eps) {
  std::vector<int64_t> axes;
  for (int64_t d = x.dim() - trailing_dims; d < x.dim(); ++d) axes.push_back(d);
  const Tensor y = x * rsqrt(mean(square(x), axes, true) + eps);
  return weight.defined() ? y * weight : y;
}

// Batch Renormalization in training mode; r and d are computed from detached values (stop_gradient).
inline Tensor batch_renorm_composed(const Tensor& x, const Tensor& running_mean, const Tensor& running_std,
                                    const Tensor& weight, const Tensor& bias, double rmax, double dmax,
                                    double eps) {
  const auto axes = batch_and_spatial_axes(x);
  const Shape cs = channel_shape(x);
  const Tensor mu = mean(x, axes, true);
  const Tensor sigma = sqrt(var(x, axes, false, true) + eps);
  Tensor r, d;
  {
    NoGradGuard constants;
    r = clamp(sigma.detach() / running_std.reshape(cs), 1.0 / rmax, rmax);
    d = clamp((mu.detach() - running_mean.reshape(cs)) / running_std.reshape(cs), -dmax, dmax);
  }
  const Tensor x_hat = (x - mu) / sigma * r + d;
  return affine_composed(x_hat, weight, bias, cs);
}

}  // namespace nl::test
