// Optimizer kernels: one fused pass per parameter tensor (optim/sgd.h has the update's math and its
// PyTorch conventions). Device-neutral entry points; core/dispatch.cpp picks cpu:: (core/cpu/optim.cpp).
#pragma once

#include "tensor.h"

namespace nl::kernels {

// The settings of one SGD update (already resolved for the parameter's group and the schedule).
struct SgdStep {
  double lr = 0;
  double momentum = 0, dampening = 0;
  bool nesterov = false;
  double weight_decay = 0;     // coupled: added to the gradient
  double decoupled_decay = 0;  // SGDW: w ← w − lr·decoupled_decay·w
  bool first_step = false;     // momentum buffer takes d as it is (PyTorch's buf = g on the first step)
};

// For every element, with d = g + weight_decay·w:
//   momentum > 0:  buf = first_step ? d : momentum·buf + (1 − dampening)·d
//                  d   = nesterov ? d + momentum·buf : buf
//   w = w·(1 − lr·decoupled_decay) − lr·d
// w, g and buf (buf only read when momentum > 0 and not first_step; written when momentum > 0) share one
// shape and are contiguous.
void sgd_update(const SgdStep& s, Tensor& w, const Tensor& g, Tensor& buf);

}  // namespace nl::kernels
