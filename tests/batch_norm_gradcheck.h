// The gradcheck shared by the fused BatchNorm ops (batch_norm_relu, batch_norm_relu_max_pool2d): float64,
// with respect to x, weight and bias, once in training mode (batch statistics, the gradient flows through
// them) and once in eval mode (given running statistics).
#pragma once

#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "core/random.h"
#include "core/tensor.h"

namespace nl::test {

// The signature of batch_norm and its fused variants (core/normalization.h).
using BatchNormOp = Tensor (*)(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                               const Tensor& weight, const Tensor& bias, bool training, double momentum,
                               double eps);

struct TrainAndEval {
  bool train = false, eval = false;  // whether each gradcheck passed
};

// x of `shape` (N, C, ...), weight and bias (C), running statistics (C), all drawn from gen in that order.
inline TrainAndEval gradcheck_train_and_eval(BatchNormOp op, const std::string& name, const Shape& shape,
                                             Generator& gen) {
  const int64_t C = shape[1];
  const Tensor x = randn(shape, kFloat64, &gen).requires_grad_();
  const Tensor w = randn({C}, kFloat64, &gen).requires_grad_();
  const Tensor b = randn({C}, kFloat64, &gen, 0.0, 0.3).requires_grad_();
  const Tensor rm = randn({C}, kFloat64, &gen), rv = rand({C}, kFloat64, &gen, 0.5, 2.0);
  TrainAndEval ok;
  ok.train = gradcheck(
      [op](const std::vector<Tensor>& in) {
        return op(in[0], Tensor(), Tensor(), in[1], in[2], true, 0.1, 1e-5);
      },
      {x, w, b}, {}, name + " train");
  ok.eval = gradcheck(
      [&](const std::vector<Tensor>& in) { return op(in[0], rm, rv, in[1], in[2], false, 0.1, 1e-5); },
      {x, w, b}, {}, name + " eval");
  return ok;
}

}  // namespace nl::test
