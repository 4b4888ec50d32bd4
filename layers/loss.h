// Losses and accuracy.
//
// cross_entropy(z, t, ε): log-softmax and NLL fused in one kernel (core/kernels_loss.h has the formulas),
//   loss_i = −Σ_j q_ij log softmax(z_i)_j,   q_ij = (1 − ε)·[j = t_i] + ε/C   (PyTorch's label smoothing)
//   The forward saves the softmax probabilities p; the backward is dz_ij = (p_ij − q_ij) · dloss_i, which
//   for the mean is (p − q)/N · g. Stable for logits of any size (the row max is subtracted first).
// nll_loss(log_probs, t):  loss_i = −log_probs[i, t_i]
// mse_loss(pred, target):  mean of (pred − target)²
// Reductions: Mean (default) over the N rows (or all elements for mse), Sum, or None (one value per row).
#pragma once

#include "../core/tensor.h"

namespace nl {

enum class Reduction { Mean, Sum, None };

// logits: (N, C) float; targets: (N) int64 in [0, C).
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, double label_smoothing = 0.0,
                     Reduction reduction = Reduction::Mean);
// log_probs: (N, C) float (e.g. log_softmax output); targets: (N) int64 in [0, C).
Tensor nll_loss(const Tensor& log_probs, const Tensor& targets, Reduction reduction = Reduction::Mean);
// pred and target of one shape.
Tensor mse_loss(const Tensor& pred, const Tensor& target, Reduction reduction = Reduction::Mean);
// The fraction of rows whose argmax equals the target.
double accuracy(const Tensor& logits, const Tensor& targets);

}  // namespace nl
