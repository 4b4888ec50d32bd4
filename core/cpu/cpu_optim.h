// CPU implementation of core/kernels_optim.h (same names and signatures, namespace nl::cpu).
#pragma once

#include "../kernels_optim.h"

namespace nl::cpu {

void sgd_update(const kernels::SgdStep& s, Tensor& w, const Tensor& g, Tensor& buf);

}  // namespace nl::cpu
