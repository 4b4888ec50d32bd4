// BatchNorm1d/2d and nl::batch_norm: forward by hand, gradients (gradcheck and the composed oracle),
// running statistics, train/eval behaviour, per-layer switches, and errors.
#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "core/normalization.h"
#include "core/ops.h"
#include "core/random.h"
#include "layers/normalization.h"
#include "reference_norm.h"
#include "test_util.h"

using namespace nl;
using test::allclose;
using test::values;

namespace {

// Float64 copies of a BatchNorm's parameters (leaves that require grad) and buffers, for gradchecks.
void to_float64(BatchNorm& bn) {
  NoGradGuard no_record;
  if (bn.weight.defined()) bn.weight = bn.weight.to(kFloat64).requires_grad_();
  if (bn.bias.defined()) bn.bias = bn.bias.to(kFloat64).requires_grad_();
  if (bn.running_mean.defined()) bn.running_mean = bn.running_mean.to(kFloat64);
  if (bn.running_var.defined()) bn.running_var = bn.running_var.to(kFloat64);
}

// One training step's expected running statistics, from the formulas (PyTorch's convention).
struct Expected {
  std::vector<double> mean, var;
};
Expected channel_stats(const Tensor& x) {  // x: (N, C), biased var and unbiased var
  const int64_t N = x.size(0), C = x.size(1);
  const std::vector<double> v = values(x);
  Expected e{std::vector<double>(C, 0.0), std::vector<double>(C, 0.0)};
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t n = 0; n < N; ++n) e.mean[c] += v[n * C + c] / N;
    for (int64_t n = 0; n < N; ++n) e.var[c] += (v[n * C + c] - e.mean[c]) * (v[n * C + c] - e.mean[c]);
  }
  return e;  // var holds the sum of squares
}

}  // namespace

TEST_CASE("BatchNorm1d: hand-computed forward and running statistics after one step", "[norm][batchnorm]") {
  BatchNorm1d bn(2);
  bn.weight.detach().copy_(tensor({2.0, 0.5}));
  bn.bias.detach().copy_(tensor({1.0, -1.0}));
  const Tensor x = tensor({{1, 2}, {2, 2}, {3, 6}, {4, 6}});
  const Tensor y = bn(x);
  // channel 0: mean 2.5, biased var 1.25; channel 1: mean 4, biased var 4.
  const double s0 = 1.0 / std::sqrt(1.25 + 1e-5), s1 = 1.0 / std::sqrt(4.0 + 1e-5);
  const std::vector<double> expected{2 * (-1.5 * s0) + 1, 0.5 * (-2 * s1) - 1, 2 * (-0.5 * s0) + 1,
                                     0.5 * (-2 * s1) - 1, 2 * (0.5 * s0) + 1,  0.5 * (2 * s1) - 1,
                                     2 * (1.5 * s0) + 1,  0.5 * (2 * s1) - 1};
  CHECK(allclose(y, from_vector(expected, {4, 2}).to(kFloat32), 1e-6, 1e-6));
  // running_mean = 0.9·0 + 0.1·mean; running_var = 0.9·1 + 0.1·(biased var · 4/3)
  CHECK(allclose(bn.running_mean, tensor({0.25, 0.4}), 1e-6, 1e-7));
  CHECK(allclose(bn.running_var, tensor({0.9 + 0.1 * 1.25 * 4 / 3, 0.9 + 0.1 * 4.0 * 4 / 3}), 1e-6, 1e-7));
  CHECK(bn.num_batches_tracked.item() == 1);
  CHECK(bn.num_batches_tracked.dtype() == kInt64);
}

TEST_CASE("BatchNorm1d: initial state, parameter and buffer names", "[norm][batchnorm]") {
  BatchNorm1d bn(3);
  CHECK(values(bn.weight) == std::vector<double>{1, 1, 1});
  CHECK(values(bn.bias) == std::vector<double>{0, 0, 0});
  CHECK(values(bn.running_mean) == std::vector<double>{0, 0, 0});
  CHECK(values(bn.running_var) == std::vector<double>{1, 1, 1});
  CHECK(bn.num_batches_tracked.item() == 0);
  std::vector<std::string> names;
  for (auto& [n, t] : bn.named_parameters()) names.push_back(n);
  CHECK(names == std::vector<std::string>{"weight", "bias"});
  names.clear();
  for (auto& [n, t] : bn.named_buffers()) names.push_back(n);
  CHECK(names == std::vector<std::string>{"running_mean", "running_var", "num_batches_tracked"});
  CHECK(bn.cancels_preceding_bias());
  CHECK(bn.describe() == "BatchNorm1d(3, eps=1e-05, momentum=0.1, affine=true, track_running_stats=true)");

  BatchNorm2d plain(4, {.affine = false, .track_running_stats = false});
  CHECK(plain.named_parameters().empty());
  CHECK(plain.named_buffers().empty());
}

TEST_CASE("BatchNorm2d: running statistics after several steps follow the exact formulas",
          "[norm][batchnorm]") {
  Generator gen(21);
  BatchNorm2d bn(3, {.momentum = 0.3});
  std::vector<double> rm(3, 0.0), rv(3, 1.0);
  for (int step = 0; step < 4; ++step) {
    const Tensor x = randn({5, 3, 2, 3}, kFloat32, &gen, step, 1.0 + step);
    bn(x);
    // (N, C, H, W) → (N·H·W, C)
    const Expected e = channel_stats(x.permute({0, 2, 3, 1}).reshape({-1, 3}));
    const double M = 5 * 2 * 3;
    for (int c = 0; c < 3; ++c) {
      rm[c] = 0.7 * rm[c] + 0.3 * e.mean[c];
      rv[c] = 0.7 * rv[c] + 0.3 * e.var[c] / (M - 1);
    }
  }
  CHECK(allclose(bn.running_mean, from_vector(rm).to(kFloat32), 1e-5, 1e-6));
  CHECK(allclose(bn.running_var, from_vector(rv).to(kFloat32), 1e-5, 1e-6));
  CHECK(bn.num_batches_tracked.item() == 4);
}

TEST_CASE("batch_norm: running statistics in strided views and in float64 are updated like contiguous ones",
          "[norm][batchnorm]") {
  Generator gen(22);
  const Tensor x = randn({6, 3, 2, 2}, kFloat32, &gen, 1.0, 2.0);
  Tensor rm = zeros({3}), rv = ones({3});
  batch_norm(x, rm, rv, Tensor(), Tensor(), true, 0.2, 1e-5);
  // Column 0 of a (3, 2) buffer: a view with stride 2 that the update must write through.
  Tensor mean_store = full({3, 2}, 7.0), var_store = full({3, 2}, 7.0);
  mean_store.select(1, 0).zero_();
  var_store.select(1, 0).fill_(1.0);
  Tensor rm_view = mean_store.select(1, 0), rv_view = var_store.select(1, 0);
  REQUIRE_FALSE(rm_view.is_contiguous());
  batch_norm(x, rm_view, rv_view, Tensor(), Tensor(), true, 0.2, 1e-5);
  CHECK(allclose(rm_view.contiguous(), rm, 0, 0));
  CHECK(allclose(rv_view.contiguous(), rv, 0, 0));
  CHECK(allclose(mean_store.select(1, 1).contiguous(), full({3}, 7.0), 0, 0));  // the other column untouched
  CHECK(allclose(var_store.select(1, 1).contiguous(), full({3}, 7.0), 0, 0));
  // float64 buffers get the same update without the rounding to float32.
  Tensor rm64 = zeros({3}, kFloat64), rv64 = ones({3}, kFloat64);
  batch_norm(x, rm64, rv64, Tensor(), Tensor(), true, 0.2, 1e-5);
  CHECK(allclose(rm64.to(kFloat32), rm, 0, 0));
  CHECK(allclose(rv64.to(kFloat32), rv, 0, 0));
  CHECK(max(abs(sub(rm64, rm.to(kFloat64)))).item() > 0);  // float64 keeps bits that float32 rounds away
}

TEST_CASE("BatchNorm1d: momentum None is the cumulative average of the batch statistics",
          "[norm][batchnorm]") {
  Generator gen(22);
  BatchNorm1d bn(2, {.momentum = std::nullopt});
  std::vector<double> sum_mean(2, 0.0), sum_var(2, 0.0);
  const int steps = 5;
  for (int step = 0; step < steps; ++step) {
    const Tensor x = randn({6, 2}, kFloat32, &gen, 2.0 * step, 1.0);
    bn(x);
    const Expected e = channel_stats(x);
    for (int c = 0; c < 2; ++c) sum_mean[c] += e.mean[c], sum_var[c] += e.var[c] / 5.0;
  }
  CHECK(allclose(bn.running_mean, tensor({sum_mean[0] / steps, sum_mean[1] / steps}), 1e-5, 1e-6));
  CHECK(allclose(bn.running_var, tensor({sum_var[0] / steps, sum_var[1] / steps}), 1e-5, 1e-6));
  CHECK(bn.num_batches_tracked.item() == steps);
  CHECK(cumulative_average_factor(4) == 0.25);
  CHECK_THROWS_WITH(cumulative_average_factor(0), Catch::Contains("num_batches_tracked"));
}

TEST_CASE("batch_norm: gradcheck of input, weight and bias in training mode",
          "[norm][batchnorm][gradcheck]") {
  Generator gen(1);
  for (const Shape& shape : {Shape{4, 3, 2, 2}, Shape{5, 4}, Shape{3, 2, 5}}) {
    INFO("shape " << shape_str(shape));
    const int64_t C = shape[1];
    const Tensor x = randn(shape, kFloat64, &gen).requires_grad_();
    const Tensor w = randn({C}, kFloat64, &gen).requires_grad_();
    const Tensor b = randn({C}, kFloat64, &gen).requires_grad_();
    CHECK(gradcheck(
        [](const std::vector<Tensor>& in) {
          return batch_norm(in[0], Tensor(), Tensor(), in[1], in[2], true, 0.1, 1e-5);
        },
        {x, w, b}));
  }
}

TEST_CASE("batch_norm: gradcheck in eval mode (a per-channel affine map)", "[norm][batchnorm][gradcheck]") {
  Generator gen(2);
  Tensor x = randn({4, 3, 2, 2}, kFloat64, &gen).requires_grad_();
  const Tensor w = randn({3}, kFloat64, &gen).requires_grad_();
  const Tensor b = randn({3}, kFloat64, &gen).requires_grad_();
  const Tensor rm = randn({3}, kFloat64, &gen), rv = rand({3}, kFloat64, &gen, 0.5, 2.0);
  CHECK(gradcheck(
      [&](const std::vector<Tensor>& in) {
        return batch_norm(in[0], rm, rv, in[1], in[2], false, 0.1, 1e-5);
      },
      {x, w, b}));
  // The eval input gradient is exactly dy·γ/sqrt(running_var + eps).
  const Tensor y = batch_norm(x, rm, rv, w, b, false, 0.1, 1e-5);
  const Tensor dy = randn(y.shape(), kFloat64, &gen);
  x.zero_grad();
  y.backward(dy);
  const Tensor expected = dy * (w / sqrt(rv + 1e-5)).reshape({1, 3, 1, 1});
  CHECK(allclose(x.grad(), expected.detach(), 1e-12, 1e-12));
}

TEST_CASE("BatchNorm2d module: gradcheck through the module in train and eval",
          "[norm][batchnorm][gradcheck]") {
  Generator gen(3);
  BatchNorm2d bn(2);
  to_float64(bn);
  bn.running_mean.copy_(tensor({0.3, -0.2}, kFloat64));
  bn.running_var.copy_(tensor({1.5, 0.7}, kFloat64));
  const Tensor x = randn({3, 2, 2, 3}, kFloat64, &gen).requires_grad_();
  for (bool training : {true, false}) {
    INFO("training " << training);
    bn.train(training);
    CHECK(gradcheck([&](const std::vector<Tensor>&) { return bn(x); }, {x, bn.weight, bn.bias}));
  }
}

TEST_CASE("batch_norm: the fused kernel agrees with the composed oracle, forward and backward",
          "[norm][batchnorm][oracle]") {
  Generator gen(4);
  for (DType dt : {kFloat64, kFloat32}) {
    for (const Shape& shape : {Shape{8, 4, 5, 5}, Shape{16, 6}, Shape{4, 3, 7}}) {
      INFO(dtype_name(dt) << " " << shape_str(shape));
      const double tol = dt == kFloat64 ? 1e-10 : 1e-4;
      const int64_t C = shape[1];
      const Tensor x0 = randn(shape, dt, &gen, 1.0, 3.0);
      const Tensor w0 = randn({C}, dt, &gen), b0 = randn({C}, dt, &gen);
      const Tensor dy = randn(shape, dt, &gen);
      auto run = [&](bool fused) {
        Tensor x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_(),
               b = b0.clone().requires_grad_();
        const Tensor y = fused ? batch_norm(x, Tensor(), Tensor(), w, b, true, 0.1, 1e-5)
                               : test::batch_norm_composed(x, w, b, 1e-5);
        y.backward(dy);
        return std::vector<Tensor>{y.detach(), x.grad(), w.grad(), b.grad()};
      };
      const auto fused = run(true), composed = run(false);
      CHECK(allclose(fused[0], composed[0], tol, tol));
      CHECK(allclose(fused[1], composed[1], tol * 10, tol * 10));
      CHECK(allclose(fused[2], composed[2], tol * 10, tol * 10));
      CHECK(allclose(fused[3], composed[3], tol * 10, tol * 10));
    }
  }
}

TEST_CASE("batch_norm: backward adds into pre-filled gradients of x, weight and bias", "[norm][batchnorm]") {
  Generator gen(5);
  Tensor x = randn({6, 3, 2, 2}, kFloat64, &gen).requires_grad_();
  Tensor w = randn({3}, kFloat64, &gen).requires_grad_(), b = randn({3}, kFloat64, &gen).requires_grad_();
  const Tensor dy = randn({6, 3, 2, 2}, kFloat64, &gen);
  batch_norm(x, Tensor(), Tensor(), w, b, true, 0.1, 1e-5).backward(dy);
  const Tensor gx = x.grad().clone(), gw = w.grad().clone(), gb = b.grad().clone();
  const Tensor px = randn(x.shape(), kFloat64, &gen), pw = randn({3}, kFloat64, &gen),
               pb = randn({3}, kFloat64, &gen);
  x.set_grad(px.clone());
  w.set_grad(pw.clone());
  b.set_grad(pb.clone());
  batch_norm(x, Tensor(), Tensor(), w, b, true, 0.1, 1e-5).backward(dy);
  CHECK(allclose(x.grad(), px + gx, 1e-12, 1e-12));
  CHECK(allclose(w.grad(), pw + gw, 1e-12, 1e-12));
  CHECK(allclose(b.grad(), pb + gb, 1e-12, 1e-12));
}

TEST_CASE("BatchNorm2d: eval uses the running statistics, so a sample's output ignores its batch",
          "[norm][batchnorm][property]") {
  Generator gen(6);
  BatchNorm2d bn(3);
  for (int i = 0; i < 5; ++i) bn(randn({8, 3, 4, 4}, kFloat32, &gen, 2.0, 3.0));
  bn.eval();
  const Tensor batch = randn({8, 3, 4, 4}, kFloat32, &gen, 2.0, 3.0);
  const Tensor y_batch = bn(batch);
  for (int64_t i : {0, 5}) {
    const Tensor alone = bn(batch.narrow(0, i, 1));
    CHECK(allclose(alone, y_batch.narrow(0, i, 1).contiguous(), 1e-6, 1e-6));
    const Tensor other = cat({batch.narrow(0, i, 1), randn({3, 3, 4, 4}, kFloat32, &gen, -4.0, 0.1)}, 0);
    CHECK(allclose(bn(other).narrow(0, 0, 1).contiguous(), alone, 1e-6, 1e-6));
  }
  // And eval equals the affine map with the running statistics.
  CHECK(allclose(
      y_batch,
      test::batch_norm_eval_composed(batch, bn.running_mean, bn.running_var, bn.weight, bn.bias, 1e-5)
          .detach(),
      1e-5, 1e-5));
  // Eval does not touch the buffers.
  const auto before = values(bn.running_mean);
  bn(batch);
  CHECK(values(bn.running_mean) == before);
  CHECK(bn.num_batches_tracked.item() == 5);
}

TEST_CASE("BatchNorm1d: training output depends on the batch, eval output does not", "[norm][batchnorm]") {
  Generator gen(7);
  BatchNorm1d bn(4);
  const Tensor a = randn({6, 4}, kFloat32, &gen), b = randn({6, 4}, kFloat32, &gen, 5.0);
  const Tensor first_a = bn(a).narrow(0, 0, 1).contiguous();
  const Tensor first_mixed = bn(cat({a.narrow(0, 0, 1), b.narrow(0, 1, 5)}, 0)).narrow(0, 0, 1).contiguous();
  CHECK_FALSE(allclose(first_a, first_mixed, 1e-3, 1e-3));
}

TEST_CASE("BatchNorm2d: track_running_stats=false uses batch statistics in eval too", "[norm][batchnorm]") {
  Generator gen(8);
  BatchNorm2d bn(2, {.track_running_stats = false});
  const Tensor x = randn({4, 2, 3, 3}, kFloat32, &gen, 1.0, 2.0);
  const Tensor y_train = bn(x);
  bn.eval();
  const Tensor y_eval = bn(x);
  CHECK(allclose(y_eval, y_train, 1e-6, 1e-6));
  CHECK(allclose(y_eval, test::batch_norm_composed(x, bn.weight, bn.bias, 1e-5).detach(), 1e-5, 1e-5));
  // One value per channel is then an error in eval as well, as in PyTorch.
  CHECK_THROWS_WITH(bn(randn({1, 2, 1, 1}, kFloat32, &gen)),
                    Catch::Contains("more than 1 value per channel"));
}

TEST_CASE("BatchNorm: one value per channel in training is an error; eval accepts it",
          "[norm][batchnorm][errors]") {
  BatchNorm1d bn1(3);
  CHECK_THROWS_WITH(
      bn1(ones({1, 3})),
      Catch::Contains("expected more than 1 value per channel when training") && Catch::Contains("[1, 3]"));
  CHECK(bn1.num_batches_tracked.item() == 0);  // the rejected batch was not counted
  BatchNorm2d bn2(3);
  CHECK_THROWS_WITH(bn2(ones({1, 3, 1, 1})), Catch::Contains("more than 1 value per channel"));
  CHECK_NOTHROW(bn2(randn({1, 3, 2, 2})));  // N = 1 with H·W > 1 is legal
  bn1.eval();
  CHECK_NOTHROW(bn1(ones({1, 3})));
}

TEST_CASE("BatchNorm: wrong rank, wrong channel count and bad options are errors",
          "[norm][batchnorm][errors]") {
  BatchNorm2d bn2(3);
  CHECK_THROWS_WITH(bn2(ones({2, 3, 4})), Catch::Contains("BatchNorm2d") && Catch::Contains("[2, 3, 4]"));
  CHECK_THROWS_WITH(bn2(ones({2, 4, 5, 5})),
                    Catch::Contains("expected 3 channels") && Catch::Contains("[2, 4, 5, 5]"));
  BatchNorm1d bn1(3);
  CHECK_THROWS_WITH(bn1(ones({2, 3, 4, 4})), Catch::Contains("BatchNorm1d") && Catch::Contains("2 or 3"));
  CHECK_THROWS_WITH(bn1(ones({3})), Catch::Contains("BatchNorm1d"));
  CHECK_THROWS_WITH(BatchNorm1d(0), Catch::Contains("num_features"));
  CHECK_THROWS_WITH(BatchNorm1d(2, {.momentum = 1.5}), Catch::Contains("momentum"));
  CHECK_THROWS_WITH(batch_norm(ones({4, 3}), ones({2}), ones({2}), Tensor(), Tensor(), true),
                    Catch::Contains("running_mean") && Catch::Contains("[3]"));
  CHECK_THROWS_WITH(batch_norm(ones({4, 3}), Tensor(), Tensor(), ones({3}, kFloat64), Tensor(), true),
                    Catch::Contains("weight") && Catch::Contains("float64"));
  CHECK_THROWS_WITH(batch_norm(ones({4, 3}), Tensor(), Tensor(), Tensor(), Tensor(), false),
                    Catch::Contains("running_mean and running_var are required"));
  CHECK_THROWS_WITH(batch_norm(ones({4}), Tensor(), Tensor(), Tensor(), Tensor(), true),
                    Catch::Contains("batch_norm") && Catch::Contains("[4]"));
}

TEST_CASE("BatchNorm: freeze_running_stats keeps the buffers but still trains gamma and beta",
          "[norm][batchnorm][switches]") {
  Generator gen(9);
  BatchNorm2d bn(2);
  bn(randn({4, 2, 3, 3}, kFloat32, &gen, 1.0));
  const auto rm = values(bn.running_mean), rv = values(bn.running_var);
  bn.freeze_running_stats();
  CHECK(bn.running_stats_frozen());
  const Tensor x = randn({4, 2, 3, 3}, kFloat32, &gen, 3.0, 2.0);
  const Tensor y = bn(x);
  CHECK(values(bn.running_mean) == rm);
  CHECK(values(bn.running_var) == rv);
  CHECK(bn.num_batches_tracked.item() == 1);
  CHECK(allclose(y, test::batch_norm_composed(x, bn.weight, bn.bias, 1e-5).detach(), 1e-5,
                 1e-5));  // batch stats
  bn.zero_grad();
  sum(mul(y, randn(y.shape(), kFloat32, &gen))).backward();
  CHECK(bn.weight.grad().defined());
  CHECK(bn.bias.grad().defined());
  bn.freeze_running_stats(false);
  bn(x);
  CHECK(values(bn.running_mean) != rm);
  CHECK(bn.num_batches_tracked.item() == 2);
}

TEST_CASE("BatchNorm: one layer in eval while the rest of the model trains", "[norm][batchnorm][switches]") {
  Generator gen(10);
  auto first = std::make_shared<BatchNorm1d>(3);
  auto second = std::make_shared<BatchNorm1d>(3);
  Sequential model({first, second});
  model.train();
  first->train(false);
  CHECK_FALSE(first->is_training());
  CHECK(second->is_training());
  const Tensor x = randn({8, 3}, kFloat32, &gen, 4.0, 2.0);
  const Tensor y = model(x);
  // The first layer used its (initial) running statistics and did not update them; the second trained.
  CHECK(values(first->running_mean) == std::vector<double>{0, 0, 0});
  CHECK(first->num_batches_tracked.item() == 0);
  CHECK(second->num_batches_tracked.item() == 1);
  const Tensor h = x / std::sqrt(1.0 + 1e-5);
  CHECK(allclose(y, test::batch_norm_composed(h, second->weight, second->bias, 1e-5).detach(), 1e-5, 1e-5));
}
