// Normalization ops, forward and backward side by side (the formulas are in core/normalization.h and
// core/kernels_normalization.h).
//
// Every op does the same three things:
//   1. check its arguments and describe its input as a NormLayout (outer, pooled, groups, channels, inner);
//   2. get per-statistic-group statistics: from the batch or from the running buffers, and update the
//      buffers in training mode;
//   3. run the forward kernel and record the one backward kernel: normalize_with_batch_stats() finds the
//      batch statistics and normalizes in one kernel (kernels::normalize_moments_forward, x read once);
//      normalize() takes given statistics (eval mode, and BatchRenorm, whose r and d depend on them).
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "autograd/engine.h"
#include "core/kernels_normalization.h"
#include "core/normalization.h"
#include "core/ops.h"

namespace nl {

using kernels::MaxPoolAfter;
using kernels::NormActivation;
using kernels::NormLayout;
using kernels::NormStats;
using Grads = std::vector<Tensor>;

namespace {

// What the forward keeps for the backward.
struct NormalizeSaved {
  Tensor x;       // contiguous, detached input
  Tensor weight;  // contiguous, detached, flattened; undefined means 1
  NormLayout layout;
  NormStats stats;            // float64 per statistic group: mean, inv_std (and r, d for BatchRenorm)
  bool batch_stats;           // the statistics came from x, so the gradient flows through them
  NormActivation activation;  // a fused ReLU after the affine map, or none
  Tensor bias;  // contiguous, detached; kept only with a fused ReLU, whose mask the backward recomputes
  std::optional<MaxPoolAfter> pool;  // a fused 2×2 max pool after the ReLU, with the forward's argmax
};

// The output of a normalization of x: x's shape, or the pooled (N, C, H/2, W/2) with a fused pool.
Tensor empty_output(const Tensor& x, const std::optional<MaxPoolAfter>& pool) {
  if (!pool) return empty(x.shape(), x.dtype(), x.device());
  return empty({x.size(0), x.size(1), pool->height / 2, pool->width / 2}, x.dtype(), x.device());
}

Tensor dense_detached(const Tensor& t) {
  if (!t.defined()) return t;
  NoGradGuard no_record;
  return t.detach().contiguous();
}

// What a normalization of x keeps for its backward (stats filled in by the caller when they come from x).
// dense_bias: the forward's bias, dense and detached; kept only behind a fused ReLU, whose mask needs it.
NormalizeSaved save_for_backward(const Tensor& x, const Tensor& weight, const NormLayout& layout,
                                 NormStats stats, bool batch_stats, NormActivation activation,
                                 const Tensor& dense_bias, std::optional<MaxPoolAfter> pool) {
  return {dense_detached(x),
          dense_detached(weight),
          layout,
          std::move(stats),
          batch_stats,
          activation,
          activation == NormActivation::relu ? dense_bias : Tensor(),
          std::move(pool)};
}

// Records the closed-form backward for y, the normalization of x described by `saved`.
Tensor record_normalize(const char* op, const Tensor& x, const Tensor& y, NormalizeSaved saved,
                        const Tensor& weight, const Tensor& bias) {
  const bool want_dx = x.requires_grad();
  const bool want_dw = weight.defined() && weight.requires_grad();
  const bool want_db = bias.defined() && bias.requires_grad();
  const Shape w_shape = weight.defined() ? weight.shape() : Shape{};
  const Shape b_shape = bias.defined() ? bias.shape() : Shape{};
  return record(
      y, op, {x, weight, bias},
      [saved = std::move(saved), want_dx, want_dw, want_db, w_shape, b_shape](const Tensor& grad_y) {
        const Tensor dy = grad_y.contiguous();
        const DType dt = saved.x.dtype();
        // dx is fresh and the kernel overwrites it (GradWrite::assign): no zero-fill, no read-back.
        Tensor dx = want_dx ? empty(saved.x.shape(), dt, saved.x.device()) : Tensor();
        Tensor dw = want_dw ? zeros({saved.layout.num_channels()}, dt) : Tensor();
        Tensor db = want_db ? zeros({saved.layout.num_channels()}, dt) : Tensor();
        kernels::normalize_backward(saved.x, dy, saved.layout, saved.stats, saved.weight, saved.batch_stats,
                                    dx, dw, db, kernels::GradWrite::assign, saved.activation, saved.bias,
                                    saved.pool ? &*saved.pool : nullptr);
        return Grads{dx, want_dw ? dw.reshape(w_shape) : Tensor(), want_db ? db.reshape(b_shape) : Tensor()};
      });
}

// y = weight · (r · (x − mean) · inv_std + d) + bias with given statistics (then max(y, 0) with a fused
// ReLU), recorded with the backward.
Tensor normalize(const char* op, const Tensor& x, const NormLayout& layout, NormStats stats,
                 const Tensor& weight, const Tensor& bias, bool batch_stats,
                 NormActivation activation = NormActivation::none,
                 std::optional<MaxPoolAfter> pool = std::nullopt) {
  const Tensor dense_bias = dense_detached(bias);
  NormalizeSaved saved = save_for_backward(x, weight, layout, std::move(stats), batch_stats, activation,
                                           dense_bias, std::move(pool));
  Tensor y = empty_output(x, saved.pool);
  kernels::normalize_forward(saved.x, layout, saved.stats, saved.weight, dense_bias, y, activation,
                             saved.pool ? &*saved.pool : nullptr);
  return record_normalize(op, x, y, std::move(saved), weight, bias);
}

struct Moments {
  Tensor mean, var;  // float64, biased var
};

// Training mode: the statistics of x itself, found by the same kernel that normalizes (x is read once).
// The moments are returned in *moments for the running-statistics update.
Tensor normalize_with_batch_stats(const char* op, const Tensor& x, const NormLayout& layout, double eps,
                                  const Tensor& weight, const Tensor& bias, Moments* moments = nullptr,
                                  NormActivation activation = NormActivation::none,
                                  std::optional<MaxPoolAfter> pool = std::nullopt) {
  const int64_t groups = layout.num_stat_groups();
  Moments m{empty({groups}, kFloat64), empty({groups}, kFloat64)};
  const Tensor dense_bias = dense_detached(bias);
  NormalizeSaved saved =
      save_for_backward(x, weight, layout, {}, true, activation, dense_bias, std::move(pool));
  saved.stats.mean = m.mean;
  saved.stats.inv_std = empty({groups}, kFloat64);
  Tensor y = empty_output(x, saved.pool);
  kernels::normalize_moments_forward(saved.x, layout, eps, saved.weight, dense_bias, m.mean, m.var,
                                     saved.stats.inv_std, y, activation, saved.pool ? &*saved.pool : nullptr);
  if (moments) *moments = m;
  return record_normalize(op, x, y, std::move(saved), weight, bias);
}

// ---- argument checks ------------------------------------------------------------------------------------

void check_input(const char* op, const Tensor& x, int64_t min_rank) {
  check(x.defined(), op, ": input is undefined");
  check(is_floating(x.dtype()), op, ": expected a float32 or float64 input, got ", dtype_name(x.dtype()));
  check(x.dim() >= min_rank, op, ": expected an input of shape (N, C, ...) with at least ", min_rank,
        " dims, got ", x.shape());
}

// A per-channel (or per-element) tensor: undefined, or of `shape` and x's dtype.
void check_param(const char* op, const char* name, const Tensor& t, const Shape& shape, const Tensor& x) {
  if (!t.defined()) return;
  check(t.shape() == shape, op, ": ", name, " must have shape ", shape, " for input ", x.shape(), ", got ",
        t.shape());
  check(t.dtype() == x.dtype(), op, ": ", name, " is ", dtype_name(t.dtype()), " but the input is ",
        dtype_name(x.dtype()));
}

void check_running(const char* op, const Tensor& mean, const Tensor& second, const char* second_name,
                   const Shape& shape, const Tensor& x) {
  check(mean.defined() == second.defined(), op, ": running_mean and ", second_name,
        " must be both defined or both undefined");
  // Buffers may be kept in another float dtype than the input (float32 buffers, float64 gradcheck input).
  for (const auto& [t, name] : {std::pair{mean, "running_mean"}, std::pair{second, second_name}}) {
    if (!t.defined()) continue;
    check(t.shape() == shape, op, ": ", name, " must have shape ", shape, " for input ", x.shape(), ", got ",
          t.shape());
    check(is_floating(t.dtype()), op, ": ", name, " must be float32 or float64, got ", dtype_name(t.dtype()));
  }
}

void check_eps(const char* op, double eps) {
  check(eps >= 0 && std::isfinite(eps), op, ": eps must be finite and >= 0, got ", eps);
}

void check_momentum(const char* op, double momentum) {
  check(momentum >= 0 && momentum <= 1, op, ": momentum must be in [0, 1], got ", momentum);
}

int64_t spatial_size(const Tensor& x) {
  int64_t s = 1;
  for (int64_t d = 2; d < x.dim(); ++d) s *= x.size(d);
  return s;
}

// ---- statistics -----------------------------------------------------------------------------------------

Moments batch_moments(const Tensor& x_dense, const NormLayout& layout) {
  Moments m{empty({layout.num_stat_groups()}, kFloat64), empty({layout.num_stat_groups()}, kFloat64)};
  kernels::normalize_moments(x_dense, layout, m.mean, m.var);
  return m;
}

// 1 / sqrt(var + eps), elementwise, in float64.
Tensor inv_std_of(const Tensor& var64, double eps) {
  Tensor out = empty(var64.shape(), kFloat64);
  const double* v = var64.data<double>();
  double* o = out.data<double>();
  for (int64_t i = 0; i < var64.numel(); ++i) o[i] = 1.0 / std::sqrt(v[i] + eps);
  return out;
}

// A buffer's values as a contiguous float64 tensor, repeated `times` times (one copy per block).
Tensor as_stats(const Tensor& buffer, int64_t times = 1) {
  NoGradGuard no_record;
  const Tensor b = buffer.detach().to(kFloat64).contiguous();
  if (times == 1) return b;
  return b.reshape({1, b.numel()}).expand({times, b.numel()}).contiguous().reshape({times * b.numel()});
}

// running ← (1 − factor)·running + factor·value, computed in float64, written in the buffer's dtype (one
// rounding), in place.
void blend_into(const Tensor& running, const Tensor& value64, double factor) {
  NoGradGuard no_record;
  Tensor target = running.detach();
  if (!target.is_contiguous()) {  // a strided view (functional batch_norm): blend a copy, write it back
    Tensor copy = target.contiguous();
    blend_into(copy, value64, factor);
    target.copy_(copy);
    return;
  }
  const double* pv = value64.data<double>();
  visit_floating(target.dtype(), "batch_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* pr = target.data<T>();
    for (int64_t i = 0; i < target.numel(); ++i)
      pr[i] = static_cast<T>((1.0 - factor) * static_cast<double>(pr[i]) + factor * pv[i]);
  });
}

// Elementwise a·scale over a float64 vector.
Tensor scaled(const Tensor& v64, double scale) {
  Tensor out = v64.clone();
  out.mul_(scale);
  return out;
}

// The mean over blocks of a float64 (blocks·C) vector → (C).
Tensor block_average(const Tensor& v64, int64_t blocks, int64_t channels) {
  Tensor out = zeros({channels}, kFloat64);
  const double* pv = v64.data<double>();
  double* po = out.data<double>();
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t c = 0; c < channels; ++c) po[c] += pv[b * channels + c] / static_cast<double>(blocks);
  return out;
}

}  // namespace

double cumulative_average_factor(int64_t num_batches_tracked) {
  check(num_batches_tracked >= 1, "cumulative_average_factor: num_batches_tracked must be >= 1, got ",
        num_batches_tracked);
  return 1.0 / static_cast<double>(num_batches_tracked);
}

// ---- BatchNorm
// ----------------------------------------------------------------------------------------------

namespace {

// pool_2x2: a fused 2×2 max pool after the (fused) ReLU; x must then be (N, C, H, W).
Tensor batch_norm_with(const char* op, NormActivation activation, const Tensor& x, const Tensor& running_mean,
                       const Tensor& running_var, const Tensor& weight, const Tensor& bias, bool training,
                       double momentum, double eps, bool pool_2x2 = false) {
  check_input(op, x, 2);
  check_eps(op, eps);
  const int64_t N = x.size(0), C = x.size(1), S = spatial_size(x);
  check_param(op, "weight", weight, {C}, x);
  check_param(op, "bias", bias, {C}, x);
  check_running(op, running_mean, running_var, "running_var", {C}, x);
  const NormLayout layout{1, N, C, 1, S, true};
  std::optional<MaxPoolAfter> pool;
  if (pool_2x2) {
    check(x.dim() == 4 && x.size(2) >= 2 && x.size(3) >= 2, op,
          ": expected an input of shape (N, C, H, W) with H and W at least 2 (a 2x2 pool), got ", x.shape());
    pool = MaxPoolAfter{x.size(2), x.size(3), empty({N, C, x.size(2) / 2, x.size(3) / 2}, kInt64)};
  }

  if (!training) {
    check(running_mean.defined(), op, ": running_mean and running_var are required when training is false");
    return normalize(op, x, layout, {as_stats(running_mean), inv_std_of(as_stats(running_var), eps), {}, {}},
                     weight, bias, false, activation, std::move(pool));
  }
  const int64_t M = N * S;
  check(M > 1, op, ": expected more than 1 value per channel when training, got input of shape ", x.shape());
  if (running_mean.defined()) check_momentum(op, momentum);
  Moments m;
  Tensor y = normalize_with_batch_stats(op, x, layout, eps, weight, bias, &m, activation, std::move(pool));
  if (running_mean.defined()) {
    blend_into(running_mean, m.mean, momentum);
    blend_into(running_var, scaled(m.var, static_cast<double>(M) / static_cast<double>(M - 1)), momentum);
  }
  return y;
}

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, double momentum, double eps) {
  return batch_norm_with("batch_norm", NormActivation::none, x, running_mean, running_var, weight, bias,
                         training, momentum, eps);
}

Tensor batch_norm_relu(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                       const Tensor& weight, const Tensor& bias, bool training, double momentum, double eps) {
  return batch_norm_with("batch_norm_relu", NormActivation::relu, x, running_mean, running_var, weight, bias,
                         training, momentum, eps);
}

Tensor batch_norm_relu_max_pool2d(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                                  const Tensor& weight, const Tensor& bias, bool training, double momentum,
                                  double eps) {
  return batch_norm_with("batch_norm_relu_max_pool2d", NormActivation::relu, x, running_mean, running_var,
                         weight, bias, training, momentum, eps, true);
}

// ---- Ghost BatchNorm
// ----------------------------------------------------------------------------------------

Tensor ghost_batch_norm(const Tensor& x, int64_t virtual_batch_size, const Tensor& running_mean,
                        const Tensor& running_var, const Tensor& num_batches_tracked, const Tensor& weight,
                        const Tensor& bias, bool training, std::optional<double> momentum, double eps) {
  const char* op = "ghost_batch_norm";
  check_input(op, x, 2);
  check_eps(op, eps);
  const int64_t N = x.size(0), C = x.size(1), S = spatial_size(x);
  check(virtual_batch_size >= 1, op, ": virtual_batch_size must be >= 1, got ", virtual_batch_size);
  check(N % virtual_batch_size == 0, op, ": virtual_batch_size ", virtual_batch_size,
        " does not divide the batch size ", N, " of input ", x.shape());
  check_param(op, "weight", weight, {C}, x);
  check_param(op, "bias", bias, {C}, x);
  check_running(op, running_mean, running_var, "running_var", {C}, x);
  if (!training) return batch_norm(x, running_mean, running_var, weight, bias, false, 0.0, eps);

  const int64_t V = virtual_batch_size, blocks = N / V, M = V * S;
  check(M > 1, op,
        ": expected more than 1 value per channel in each virtual batch when training, got input of "
        "shape ",
        x.shape(), " with virtual_batch_size ", V);
  const NormLayout layout{blocks, V, C, 1, S, true};
  if (running_mean.defined()) {
    if (momentum) check_momentum(op, *momentum);
    check(momentum || (num_batches_tracked.defined() && num_batches_tracked.dtype() == kInt64 &&
                       num_batches_tracked.numel() == 1),
          op, ": momentum=None needs num_batches_tracked (an int64 scalar)");
  }
  Moments m;
  Tensor y = normalize_with_batch_stats(op, x, layout, eps, weight, bias, &m);
  if (running_mean.defined()) {
    const double bessel = static_cast<double>(M) / static_cast<double>(M - 1);
    for (int64_t b = 0; b < blocks; ++b) {
      NoGradGuard no_record;
      double factor = momentum.value_or(0.0);
      if (num_batches_tracked.defined()) {
        Tensor count = num_batches_tracked.detach();
        count.fill_(count.item() + 1);
        if (!momentum) factor = cumulative_average_factor(static_cast<int64_t>(count.item()));
      }
      blend_into(running_mean, m.mean.narrow(0, b * C, C).contiguous(), factor);
      blend_into(running_var, scaled(m.var.narrow(0, b * C, C).contiguous(), bessel), factor);
    }
  }
  return y;
}

// ---- InstanceNorm
// -------------------------------------------------------------------------------------------

Tensor instance_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                     const Tensor& weight, const Tensor& bias, bool use_input_stats, double momentum,
                     double eps) {
  const char* op = "instance_norm";
  check_input(op, x, 2);
  check_eps(op, eps);
  const int64_t N = x.size(0), C = x.size(1), S = spatial_size(x);
  check_param(op, "weight", weight, {C}, x);
  check_param(op, "bias", bias, {C}, x);
  check_running(op, running_mean, running_var, "running_var", {C}, x);
  const NormLayout layout{N, 1, C, 1, S, true};

  if (!use_input_stats) {
    check(running_mean.defined(), op,
          ": running_mean and running_var are required when use_input_stats is false");
    return normalize(op, x, layout,
                     {as_stats(running_mean, N), inv_std_of(as_stats(running_var, N), eps), {}, {}}, weight,
                     bias, false);
  }
  check(S > 1, op, ": expected more than 1 spatial element when training, got input of shape ", x.shape());
  if (running_mean.defined()) check_momentum(op, momentum);
  Moments m;
  Tensor y = normalize_with_batch_stats(op, x, layout, eps, weight, bias, &m);
  if (running_mean.defined()) {
    blend_into(running_mean, block_average(m.mean, N, C), momentum);
    const Tensor unbiased = scaled(m.var, static_cast<double>(S) / static_cast<double>(S - 1));
    blend_into(running_var, block_average(unbiased, N, C), momentum);
  }
  return y;
}

// ---- LayerNorm and RMSNorm
// ---------------------------------------------------------------------------------

namespace {

// x = (N..., normalized_shape...) → (rows, D).
std::pair<int64_t, int64_t> trailing_split(const char* op, const Tensor& x, const Shape& normalized_shape) {
  const int64_t k = static_cast<int64_t>(normalized_shape.size());
  check(k >= 1, op, ": normalized_shape must have at least one dim");
  bool matches = x.dim() >= k;
  for (int64_t i = 0; matches && i < k; ++i) matches = x.size(x.dim() - k + i) == normalized_shape[i];
  check(matches, op, ": the trailing dims of input ", x.shape(), " must equal normalized_shape ",
        normalized_shape);
  const int64_t D = numel_of(normalized_shape);
  return {D == 0 ? 0 : x.numel() / D, D};
}

}  // namespace

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                  double eps) {
  const char* op = "layer_norm";
  check_input(op, x, 1);
  check_eps(op, eps);
  const auto [rows, D] = trailing_split(op, x, normalized_shape);
  check(D > 0, op, ": normalized_shape ", normalized_shape, " has no elements");
  check_param(op, "weight", weight, normalized_shape, x);
  check_param(op, "bias", bias, normalized_shape, x);
  const NormLayout layout{rows, 1, 1, D, 1, true};
  return normalize_with_batch_stats(op, x, layout, eps, weight, bias);
}

Tensor rms_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight,
                std::optional<double> eps) {
  const char* op = "rms_norm";
  check_input(op, x, 1);
  const double e = eps.value_or(x.dtype() == kFloat32 ? std::numeric_limits<float>::epsilon()
                                                      : std::numeric_limits<double>::epsilon());
  check_eps(op, e);
  const auto [rows, D] = trailing_split(op, x, normalized_shape);
  check(D > 0, op, ": normalized_shape ", normalized_shape, " has no elements");
  check_param(op, "weight", weight, normalized_shape, x);
  const NormLayout layout{rows, 1, 1, D, 1, false};  // mean ≡ 0, "var" = mean(x²)
  return normalize_with_batch_stats(op, x, layout, e, weight, Tensor());
}

// ---- GroupNorm
// ------------------------------------------------------------------------------------------------

Tensor group_norm(const Tensor& x, int64_t num_groups, const Tensor& weight, const Tensor& bias, double eps) {
  const char* op = "group_norm";
  check_input(op, x, 2);
  check_eps(op, eps);
  const int64_t N = x.size(0), C = x.size(1), S = spatial_size(x);
  check(num_groups >= 1, op, ": num_groups must be >= 1, got ", num_groups);
  check(C % num_groups == 0, op, ": num_groups ", num_groups, " does not divide the ", C,
        " channels of input ", x.shape());
  check_param(op, "weight", weight, {C}, x);
  check_param(op, "bias", bias, {C}, x);
  const NormLayout layout{N, 1, num_groups, C / num_groups, S, true};
  return normalize_with_batch_stats(op, x, layout, eps, weight, bias);
}

// ---- Batch Renormalization
// ----------------------------------------------------------------------------------

Tensor batch_renorm(const Tensor& x, const Tensor& running_mean, const Tensor& running_std,
                    const Tensor& weight, const Tensor& bias, bool training, double rmax, double dmax,
                    double momentum, double eps) {
  const char* op = "batch_renorm";
  check_input(op, x, 2);
  check_eps(op, eps);
  check(rmax >= 1, op, ": rmax must be >= 1, got ", rmax);
  check(dmax >= 0, op, ": dmax must be >= 0, got ", dmax);
  const int64_t N = x.size(0), C = x.size(1), S = spatial_size(x);
  check_param(op, "weight", weight, {C}, x);
  check_param(op, "bias", bias, {C}, x);
  check_running(op, running_mean, running_std, "running_std", {C}, x);
  check(running_mean.defined(), op,
        ": running_mean and running_std are required (r and d are defined by them)");
  const NormLayout layout{1, N, C, 1, S, true};

  const Tensor mu = as_stats(running_mean), sigma = as_stats(running_std);
  if (!training) {
    Tensor inv_sigma = empty({C}, kFloat64);
    for (int64_t c = 0; c < C; ++c) inv_sigma.data<double>()[c] = 1.0 / sigma.data<double>()[c];
    return normalize(op, x, layout, {mu, inv_sigma, {}, {}}, weight, bias, false);
  }
  check(N * S > 1, op, ": expected more than 1 value per channel when training, got input of shape ",
        x.shape());
  check_momentum(op, momentum);
  Moments m = batch_moments(dense_detached(x), layout);
  Tensor inv_std = inv_std_of(m.var, eps), r = empty({C}, kFloat64), d = empty({C}, kFloat64);
  Tensor sigma_b = empty({C}, kFloat64);
  for (int64_t c = 0; c < C; ++c) {
    const double s_b = 1.0 / inv_std.data<double>()[c], s = sigma.data<double>()[c];
    sigma_b.data<double>()[c] = s_b;
    r.data<double>()[c] = std::clamp(s_b / s, 1.0 / rmax, rmax);
    d.data<double>()[c] = std::clamp((m.mean.data<double>()[c] - mu.data<double>()[c]) / s, -dmax, dmax);
  }
  blend_into(running_mean, m.mean, momentum);
  blend_into(running_std, sigma_b, momentum);
  return normalize(op, x, layout, {m.mean, inv_std, r, d}, weight, bias, true);
}

}  // namespace nl
