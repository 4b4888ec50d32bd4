// CPU implementations of the fused loss kernels declared in core/kernels_loss.h (core/cpu/loss.cpp).
#pragma once

#include "../kernels_loss.h"

namespace nl::cpu {

void cross_entropy(const Tensor& logits, const Tensor& targets, double label_smoothing, Tensor& probs,
                   Tensor& row_loss);
void cross_entropy_backward(const Tensor& probs, const Tensor& targets, double label_smoothing,
                            const Tensor& row_grad, Tensor& dlogits);

}  // namespace nl::cpu
