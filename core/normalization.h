// The differentiable normalization ops: Batch, Ghost-Batch, Instance, Group and Layer normalization,
// RMSNorm and Batch Renormalization. Each is a plain function; the modules in layers/normalization.h call
// them with their parameters and buffers. Forward and backward sit side by side in core/ops_normalization.cpp
// and all of them run on the one normalize-over-axes core of core/kernels_normalization.h.
//
// Conventions are PyTorch's and are written down once, in docs/normalization.md (the single source of truth;
// the default constants below point there). In short, for an input x of shape (N, C, *) with S = Π(*):
//
//   batch_norm, training:  per channel c over the M = N·S values:  mean, var = BIASED variance (÷M)
//                          y = weight · (x − mean) / sqrt(var + eps) + bias
//                          running_mean ← (1 − momentum)·running_mean + momentum·mean
//                          running_var  ← (1 − momentum)·running_var  + momentum·var·M/(M − 1)   (UNBIASED)
//   batch_norm, eval:      y = weight · (x − running_mean) / sqrt(running_var + eps) + bias
//
// Shapes. x: (N, C) or (N, C, L) or (N, C, H, W) (any (N, C, *)); weight, bias, running_mean, running_var:
// (C). An undefined weight/bias means 1/0. Running statistics are updated in place, without recording, and
// only in training mode when they are defined.
//
// Saved for the backward (struct NormalizeSaved in the .cpp): the contiguous input, the weight, the layout,
// and per statistic group the float64 mean and inv_std (plus BatchRenorm's r and d); batch_norm_relu also
// keeps the bias, to find where its ReLU passed the gradient. Nothing per element beyond the input.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "tensor.h"

namespace nl {

// ---- default constants: PyTorch's (docs/normalization.md is the single source of truth) ----------------
inline constexpr double kNormDefaultEps = 1e-5;           // BatchNorm, InstanceNorm, GroupNorm, LayerNorm
inline constexpr double kBatchNormDefaultMomentum = 0.1;  // weight of the NEW batch statistic
inline constexpr double kInstanceNormDefaultMomentum = 0.1;
inline constexpr double kBatchRenormDefaultMomentum = 0.01;  // Ioffe 2017's "relatively fast" α
// RMSNorm's default eps is the machine epsilon of x's dtype (std::numeric_limits<T>::epsilon()).

// The cumulative-average factor that replaces the momentum when it is not given (PyTorch's momentum=None):
// 1 / num_batches_tracked, counted after this batch's increment.
double cumulative_average_factor(int64_t num_batches_tracked);

// ---- BatchNorm
// ---------------------------------------------------------------------------------------------
// training=true: batch statistics (an error when M = N·S is 1); running statistics updated when defined.
// training=false: running statistics (required).
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training,
                  double momentum = kBatchNormDefaultMomentum, double eps = kNormDefaultEps);

// relu(batch_norm(...)) in one kernel, forward and backward (oneDNN's fused BatchNorm + ReLU). The output
// before the ReLU is never stored: the backward recomputes it from x to find where the ReLU passed the
// gradient. Same arguments, statistics and running-statistics update as batch_norm; equal to
// relu(batch_norm(...)) in value and gradient (tested).
Tensor batch_norm_relu(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                       const Tensor& weight, const Tensor& bias, bool training,
                       double momentum = kBatchNormDefaultMomentum, double eps = kNormDefaultEps);

// max_pool2d(relu(batch_norm(x)), 2) in one kernel, for x of shape (N, C, H, W) with H, W >= 2: the output
// is (N, C, H/2, W/2) (floor mode). Neither the normalized output nor its gradient is ever written at full
// size: the forward pools each plane's rows as it computes them, the backward routes the pooled gradient
// through the winners (saved as the pool's argmax) and the ReLU's mask inside its own sweeps. Same
// arguments, statistics and running-statistics update as batch_norm; equal to the three ops in value, argmax
// and gradient (tested).
Tensor batch_norm_relu_max_pool2d(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                                  const Tensor& weight, const Tensor& bias, bool training,
                                  double momentum = kBatchNormDefaultMomentum, double eps = kNormDefaultEps);

// ---- Ghost BatchNorm (Hoffer et al. 2017)
// -------------------------------------------------------------------- training=true: the batch is split into
// N / virtual_batch_size consecutive virtual batches, each normalized with its own statistics (an error when
// virtual_batch_size does not divide N). The running statistics are updated ONCE PER VIRTUAL BATCH, in order,
// as if each were a training step of batch_norm; with momentum = nullopt the factor is
// cumulative_average_factor(++num_batches_tracked) per virtual batch (num_batches_tracked, an int64 scalar,
// may be undefined when momentum is given). training=false: batch_norm's eval.
Tensor ghost_batch_norm(const Tensor& x, int64_t virtual_batch_size, const Tensor& running_mean,
                        const Tensor& running_var, const Tensor& num_batches_tracked, const Tensor& weight,
                        const Tensor& bias, bool training,
                        std::optional<double> momentum = kBatchNormDefaultMomentum,
                        double eps = kNormDefaultEps);

// ---- InstanceNorm
// ------------------------------------------------------------------------------------------
// use_input_stats=true: statistics per (sample, channel) over the S spatial positions (an error when S is 1);
// defined running statistics are updated with the batch average of the instance means and of the UNBIASED
// instance variances (as PyTorch). use_input_stats=false: the running statistics (required) for every sample.
Tensor instance_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                     const Tensor& weight, const Tensor& bias, bool use_input_stats,
                     double momentum = kInstanceNormDefaultMomentum, double eps = kNormDefaultEps);

// ---- LayerNorm
// --------------------------------------------------------------------------------------------- Statistics
// per sample over the trailing dims, which must equal normalized_shape; weight and bias have shape
// normalized_shape (per element).
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                  double eps = kNormDefaultEps);

// ---- GroupNorm
// --------------------------------------------------------------------------------------------- x: (N, C, *);
// C split into num_groups consecutive groups (an error unless num_groups divides C); statistics per (sample,
// group) over (C / num_groups, *); weight and bias per channel (C).
Tensor group_norm(const Tensor& x, int64_t num_groups, const Tensor& weight, const Tensor& bias,
                  double eps = kNormDefaultEps);

// ---- RMSNorm
// ----------------------------------------------------------------------------------------------- y = x /
// sqrt(mean(x²) + eps) · weight over the trailing normalized_shape dims; no mean subtraction, no bias. eps
// defaults to the machine epsilon of x's dtype (PyTorch's torch.finfo(x.dtype).eps).
Tensor rms_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight,
                std::optional<double> eps = std::nullopt);

// ---- Batch Renormalization (Ioffe 2017)
// ---------------------------------------------------------------------- training=true, per channel, with μ =
// running_mean and σ = running_std (the running std INCLUDES eps):
//   σ_B = sqrt(var_B + eps)                       (biased batch variance, as BatchNorm)
//   r = clip(σ_B / σ, 1/rmax, rmax),  d = clip((μ_B − μ) / σ, −dmax, dmax)     constants for the backward
//   y = weight · ((x − μ_B) / σ_B · r + d) + bias
//   then μ ← μ + momentum·(μ_B − μ),  σ ← σ + momentum·(σ_B − σ)              (the paper's update)
// training=false: y = weight · (x − μ) / σ + bias. rmax >= 1, dmax >= 0 (rmax = 1, dmax = 0 is BatchNorm).
Tensor batch_renorm(const Tensor& x, const Tensor& running_mean, const Tensor& running_std,
                    const Tensor& weight, const Tensor& bias, bool training, double rmax, double dmax,
                    double momentum = kBatchRenormDefaultMomentum, double eps = kNormDefaultEps);

}  // namespace nl
