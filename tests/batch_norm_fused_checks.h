// Checks shared by the tests of the fused BatchNorm ops and modules (batch_norm_relu,
// batch_norm_relu_max_pool2d; BatchNorm2d with fused_relu, and fused_max_pool):
// - gradcheck_train_and_eval: the float64 gradcheck with respect to x, weight and bias, once in training mode
//   (batch statistics, the gradient flows through them) and once in eval mode (given running statistics);
// - check_trains_like: a fused BatchNorm2d module against BatchNorm2d and the separate layers it replaces.
#pragma once

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "core/random.h"
#include "core/tensor.h"
#include "layers/normalization.h"
#include "test_util.h"

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

// Three training steps of `fused` and of `plain` followed by `after` (the layers the fusion replaces), on the
// same batches x of x_shape = (N, C, H, W) (drawn from gen with mean 0.5 and std 2) and upstream gradients
// of the output's shape out_shape: the outputs and the running statistics must be equal to the last bit,
// the weight and bias gradients close; then one eval batch of 2 samples, equal outputs.
template <class After>
void check_trains_like(BatchNorm2d& fused, BatchNorm2d& plain, After&& after, const Shape& x_shape,
                       const Shape& out_shape, Generator& gen) {
  for (int step = 0; step < 3; ++step) {
    const Tensor x = randn(x_shape, kFloat32, &gen, 0.5, 2.0), dout = randn(out_shape, kFloat32, &gen);
    fused.zero_grad();
    plain.zero_grad();
    const Tensor y_fused = fused(x), y_plain = after(plain(x));
    y_fused.backward(dout);
    y_plain.backward(dout);
    CHECK(allclose(y_fused, y_plain, 0, 0));
    CHECK(allclose(fused.weight.grad(), plain.weight.grad(), 1e-5, 1e-5));
    CHECK(allclose(fused.bias.grad(), plain.bias.grad(), 1e-5, 1e-5));
  }
  CHECK(allclose(fused.running_mean, plain.running_mean, 0, 0));
  CHECK(allclose(fused.running_var, plain.running_var, 0, 0));
  CHECK(fused.num_batches_tracked.item() == 3);
  fused.eval();
  plain.eval();
  const Tensor x = randn({2, x_shape[1], x_shape[2], x_shape[3]}, kFloat32, &gen);
  CHECK(allclose(fused(x), after(plain(x)), 0, 0));
}

}  // namespace nl::test
