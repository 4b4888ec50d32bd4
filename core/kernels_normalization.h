// The normalize-over-axes core: one set of kernels behind Batch, Ghost-Batch, Instance, Group and Layer
// normalization, RMSNorm and Batch Renormalization (the ops in core/normalization.h describe each layer).
//
// Layout. Every one of those layers sees its contiguous input as a 5-D array
//
//     x[o, p, g, k, s]   of shape (outer, pooled, groups, channels_per_group, inner)
//
// and computes one pair of statistics per "statistic group" (o, g), pooled over (p, k, s):
//
//     M          = pooled · channels_per_group · inner                       elements per statistic
//     mean[o,g]  = (1/M) Σ_{p,k,s} x[o,p,g,k,s]                              (0 when center is false)
//     var[o,g]   = (1/M) Σ_{p,k,s} (x[o,p,g,k,s] − mean[o,g])²                biased
//     inv_std    = 1 / sqrt(var + eps)                                       computed by the caller
//
// The affine parameters are indexed by the channel c = g·channels_per_group + k (length groups·K):
//
//     z      = (x − mean[o,g]) · inv_std[o,g]
//     x_hat  = r[o,g] · z + d[o,g]                 r = 1, d = 0 unless BatchRenorm passes them
//     y      = weight[c] · x_hat + bias[c]          weight = 1, bias = 0 when undefined
//
// How each layer maps onto it (N batch, C channels, S = product of spatial dims):
//
//     BatchNorm        (1,   N,   C, 1,   S)     stats per channel over (N, S)
//     GhostBatchNorm   (N/V, V,   C, 1,   S)     stats per (virtual batch, channel)
//     InstanceNorm     (N,   1,   C, 1,   S)     stats per (sample, channel)
//     GroupNorm        (N,   1,   G, C/G, S)     stats per (sample, group), affine per channel
//     LayerNorm        (N,   1,   1, D,   1)     stats per sample over D trailing elements, affine per
//     element RMSNorm          LayerNorm's layout with center = false: "var" is the mean of squares
//
// Backward (closed form). With dx_hat = dy · weight[c] · r[o,g] and means taken over a statistic group:
//
//     batch statistics:     dx = inv_std · (dx_hat − mean(dx_hat) − z · mean(dx_hat · z))
//                           (RMSNorm: no mean(dx_hat) term, since no mean was subtracted)
//     constant statistics:  dx = inv_std · dx_hat                     (eval mode: a per-channel affine map)
//     dweight[c] = Σ dy · x_hat,   dbias[c] = Σ dy,   summed over every (o, p, s) of channel c
//
// r and d are constants of the backward pass (Ioffe 2017: they are stop_gradient'ed).
//
// Fused ReLU (oneDNN's "fuse_norm_relu"; batch_norm_relu uses it). With NormActivation::relu the forward
// writes out = max(y, 0) instead of y, and the backward takes dout, the gradient with respect to out, and
// masks it: dy = dout where y > 0, else 0 (PyTorch's ReLU backward); then everything above applies to that
// dy. Neither y nor a mask is stored: y is monotonic in x within a statistic group, so the backward finds,
// with the forward's own expression, the cut t such that y > 0 exactly when x > t (x < t when the group's
// slope weight·r·inv_std is negative), which needs the bias as well. The backward supports it for one channel
// per statistic group (K == 1: Batch, Ghost-Batch and Instance normalization); the forward for every layout.
//
// Fused 2×2 max pool (batch_norm_relu_max_pool2d uses it). With a MaxPoolAfter, the fused ReLU's output goes
// through a 2×2, stride-2 max pool (floor mode) before it is written: y is the pooled (N, C, H/2, W/2) output
// and argmax receives, per pooled cell, the flat index h·W + w of the winning cell in its (H, W) plane,
// exactly as max_pool2d(relu(y)) would (same values, same ties). The full-size output is never written. The
// backward then takes dy with respect to the pooled output and routes it through argmax and the ReLU's mask;
// the full-size gradient lives only in dx, which it overwrites (it needs dx_write = GradWrite::assign). For
// BatchNorm on (N, C, H, W) only: K == 1 and inner == H·W, with the ReLU.
//
// Dtypes. x, y, dy, dx, weight, bias, dweight and dbias share x's dtype (float32 or float64). Statistics
// (mean, var, inv_std, r, d) are float64 tensors of length outer·groups: they are tiny, and float64 keeps a
// channel with mean 1e7 exact. Kernels never allocate their outputs; backward ADDS (+=) into dx, dweight
// and dbias, each of which may be undefined (not wanted). The one exception is opt-in: GradWrite::assign
// lets the op layer hand a freshly allocated, uninitialized dx that the kernel overwrites (dx = ...), which
// saves zero-filling it and reading it back (two passes over memory); dweight and dbias are always added to.
//
// Numerics of the moments. The optimized kernels take one pass over x with double accumulators, shifted by a
// pivot p = the group's first element:  mean = p + Σ(x − p)/M,  var = Σ(x − p)²/M − (Σ(x − p)/M)².
// The shift keeps the cancellation of E[x²] − E[x]² away: its size is set by (mean − p)², about one variance,
// not by mean² (a channel with mean 1e7 and spread 1 comes out exact). The reference takes two passes.
#pragma once

#include <cstdint>

#include "kernels.h"
#include "tensor.h"

namespace nl::kernels {

enum class NormActivation { none, relu };

// The 2×2 stride-2 max pool fused after the ReLU (see "Fused 2×2 max pool" above).
struct MaxPoolAfter {
  int64_t height = 0, width = 0;  // of each (H, W) plane of x
  Tensor argmax;                  // int64, (N, C, H/2, W/2): written by the forward, read by the backward
};

struct NormLayout {
  int64_t outer = 1;               // independent blocks with their own statistics (samples, virtual batches)
  int64_t pooled = 1;              // the dimension outside the groups pooled into each statistic (BN's batch)
  int64_t groups = 1;              // statistic groups per block (channels for BN/IN, groups for GN)
  int64_t channels_per_group = 1;  // affine-indexed positions inside a group (C/G for GN, D for LN)
  int64_t inner = 1;               // positions that share one affine entry (spatial positions)
  bool center = true;              // subtract the mean; false for RMSNorm

  int64_t num_stat_groups() const { return outer * groups; }
  int64_t count() const { return pooled * channels_per_group * inner; }  // M, elements per statistic
  int64_t num_channels() const { return groups * channels_per_group; }   // length of weight and bias
  int64_t numel() const { return outer * pooled * groups * channels_per_group * inner; }
};

// Per-statistic-group values the forward uses and the backward needs (float64, length outer·groups).
struct NormStats {
  Tensor mean;
  Tensor inv_std;
  Tensor r;  // BatchRenorm's scale correction, or undefined (1)
  Tensor d;  // BatchRenorm's shift correction, or undefined (0)
};

// mean and biased var per statistic group (double accumulators, see "Numerics" above). x: contiguous,
// layout.numel() elements. mean, var: float64, length num_stat_groups().
void normalize_moments(const Tensor& x, const NormLayout& layout, Tensor& mean, Tensor& var);

// The training forward in one sweep: the moments as normalize_moments, inv_std = 1 / sqrt(var + eps), then
// y = weight[c] · (x − mean) · inv_std + bias[c] (no r, d). Each statistic group is normalized right after
// its moments are found, while it is still in cache, so x is read from memory once. mean, var, inv_std:
// float64, length num_stat_groups(), written.
// With activation = relu, y receives max(y, 0).
void normalize_moments_forward(const Tensor& x, const NormLayout& layout, double eps, const Tensor& weight,
                               const Tensor& bias, Tensor& mean, Tensor& var, Tensor& inv_std, Tensor& y,
                               NormActivation activation = NormActivation::none,
                               const MaxPoolAfter* pool = nullptr);

// y = weight[c] · (r · (x − mean) · inv_std + d) + bias[c]; x and y contiguous, weight/bias may be undefined.
// With activation = relu, y receives max(y, 0).
void normalize_forward(const Tensor& x, const NormLayout& layout, const NormStats& stats,
                       const Tensor& weight, const Tensor& bias, Tensor& y,
                       NormActivation activation = NormActivation::none, const MaxPoolAfter* pool = nullptr);

// The closed-form backward above. batch_stats: the statistics were computed from x (training), so the
// gradient flows through them; otherwise they are constants (eval). dx, dweight, dbias are ADDED to (dx is
// overwritten instead with dx_write = GradWrite::assign). With activation = relu, dy is the gradient with
// respect to the fused ReLU's output, and bias (the forward's) is needed to recompute its mask.
void normalize_backward(const Tensor& x, const Tensor& dy, const NormLayout& layout, const NormStats& stats,
                        const Tensor& weight, bool batch_stats, Tensor& dx, Tensor& dweight, Tensor& dbias,
                        GradWrite dx_write = GradWrite::add, NormActivation activation = NormActivation::none,
                        const Tensor& bias = Tensor(), const MaxPoolAfter* pool = nullptr);

}  // namespace nl::kernels
