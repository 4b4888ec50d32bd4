// Gradient clipping.
//
// Global-norm clipping (as torch.nn.utils.clip_grad_norm_):
//   total = √(Σ_p ‖g_p‖²);  if total > max_norm, every g_p ← g_p · max_norm/(total + 1e-6)
//   Returns total (before clipping).
//
// Adaptive gradient clipping, AGC (Brock et al. 2021, "High-Performance Large-Scale Image Recognition
// Without Normalization"), unit-wise: view W and its gradient G as (out, −1), row i being output unit i, and
//   ‖W_i‖* = max(‖W_i‖, eps)                        (eps = 1e-3, so zero-initialized units can still move)
//   if ‖G_i‖ / ‖W_i‖* > λ:  G_i ← λ·‖W_i‖*/‖G_i‖ · G_i
// A 1-D tensor (a bias, a gain) has one unit per element. Both modify .grad in place, without recording.
#pragma once

#include <vector>

#include "../core/tensor.h"

namespace nl {

// Parameters without a gradient are skipped. max_norm must be > 0.
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm);
// AGC on one parameter's gradient (no-op without a gradient). lambda must be > 0.
void adaptive_clip_grad_(const Tensor& param, double lambda, double eps = 1e-3);
void adaptive_clip_grad_(const std::vector<Tensor>& params, double lambda, double eps = 1e-3);

}  // namespace nl
