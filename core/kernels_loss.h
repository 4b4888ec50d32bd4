// Device-neutral entry points of the fused loss kernels (dispatch pattern of core/kernels.h; CPU versions in
// core/cpu/loss.cpp).
//
// Cross-entropy with label smoothing ε over C classes, log-softmax and NLL fused, for logits z (N, C) and
// int64 targets t (N):
//   q_ij   = (1 − ε)·[j = t_i] + ε/C                        the smoothed target distribution (Σ_j q_ij = 1)
//   lse_i  = m_i + log Σ_j exp(z_ij − m_i),  m_i = max_j z_ij   (the shift keeps exp finite for |z| ~ 1e4)
//   loss_i = −Σ_j q_ij (z_ij − lse_i) = lse_i − (1 − ε)·z_i,t_i − (ε/C)·Σ_j z_ij
//   p_ij   = exp(z_ij − lse_i)                                   saved for the backward
//   dz_ij += (p_ij − q_ij) · dloss_i
#pragma once

#include "tensor.h"

namespace nl::kernels {

// logits: contiguous (N, C); targets: contiguous int64 (N), each in [0, C) (the caller checks);
// probs: (N, C) and row_loss: (N), overwritten.
void cross_entropy(const Tensor& logits, const Tensor& targets, double label_smoothing, Tensor& probs,
                   Tensor& row_loss);
// dlogits (N, C) += (probs − q) · row_grad[i] for every row i; row_grad: contiguous (N).
void cross_entropy_backward(const Tensor& probs, const Tensor& targets, double label_smoothing,
                            const Tensor& row_grad, Tensor& dlogits);

}  // namespace nl::kernels
