// batch_norm_relu_max_pool2d and BatchNormOptions::fused_max_pool: one kernel for
// max_pool2d(relu(batch_norm(x)), 2), checked against the three ops it replaces (values, gradients, running
// statistics) on the in-sweep path and on the fallbacks, by gradcheck, and against the plain-loop reference
// kernels.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <vector>

#include "autograd/engine.h"
#include "core/cpu/cpu_normalization.h"
#include "core/normalization.h"
#include "core/ops.h"
#include "core/random.h"
#include "layers/activation.h"
#include "layers/batchnorm_tools.h"
#include "layers/conv.h"
#include "layers/normalization.h"
#include "layers/pooling.h"
#include "batch_norm_fused_checks.h"
#include "test_util.h"

using namespace nl;
using test::allclose;

namespace {

// The op and the three ops it fuses, on the same inputs: output, dx, dweight, dbias, running mean, var.
std::vector<Tensor> run_bn_relu_pool(bool fused, const Tensor& x0, const Tensor& w0, const Tensor& b0,
                                     const Tensor& rm0, const Tensor& rv0, const Tensor& dout,
                                     bool training) {
  Tensor x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_(), b = b0.clone().requires_grad_();
  Tensor rm = rm0.clone(), rv = rv0.clone();
  const Tensor y = fused ? batch_norm_relu_max_pool2d(x, rm, rv, w, b, training, 0.1, 1e-5)
                         : max_pool2d(relu(batch_norm(x, rm, rv, w, b, training, 0.1, 1e-5)), 2);
  y.backward(dout);
  return {y.detach(), x.grad(), w.grad(), b.grad(), rm, rv};
}

// Element by element: both NaN, or within tol of each other.
bool close_or_both_nan(const Tensor& a, const Tensor& b, double tol) {
  const std::vector<double> va = test::values(a), vb = test::values(b);
  if (va.size() != vb.size()) return false;
  for (size_t i = 0; i < va.size(); ++i)
    if (!(std::isnan(va[i]) && std::isnan(vb[i])) && !(std::abs(va[i] - vb[i]) <= tol)) return false;
  return true;
}

}  // namespace

TEST_CASE(
    "batch_norm_relu_max_pool2d: equals max_pool2d(relu(batch_norm)) in value, gradients and running "
    "statistics",
    "[norm][batchnorm][relu][pool]") {
  Generator gen(71);
  // Even and odd planes (floor mode drops the last row or column), small and wide, a 1-wide output, and a
  // channel large enough that the kernels cut it into chunks (then the fused op takes its fallback path).
  for (const Shape& shape :
       {Shape{8, 4, 6, 6}, Shape{5, 3, 7, 5}, Shape{4, 2, 2, 3}, Shape{3, 5, 4, 40}, Shape{2, 2, 200, 200}}) {
    for (DType dt : {kFloat64, kFloat32}) {
      for (bool training : {true, false}) {
        INFO(dtype_name(dt) << " " << shape_str(shape) << " training " << training);
        const double tol = dt == kFloat64 ? 1e-12 : 1e-5;
        const int64_t C = shape[1];
        const Tensor x0 = randn(shape, dt, &gen, 0.5, 2.0);
        const Tensor w0 = randn({C}, dt, &gen), b0 = randn({C}, dt, &gen, 0.0, 0.3);
        const Tensor rm0 = randn({C}, kFloat32, &gen), rv0 = rand({C}, kFloat32, &gen, 0.5, 2.0);
        const Tensor dout = randn({shape[0], C, shape[2] / 2, shape[3] / 2}, dt, &gen);
        const auto fused = run_bn_relu_pool(true, x0, w0, b0, rm0, rv0, dout, training);
        const auto separate = run_bn_relu_pool(false, x0, w0, b0, rm0, rv0, dout, training);
        CHECK(fused[0].shape() == separate[0].shape());
        CHECK(allclose(fused[0], separate[0], 0, 0));  // the same values, pooled the same way
        for (size_t i = 1; i < fused.size(); ++i) CHECK(allclose(fused[i], separate[i], tol, tol));
      }
    }
  }
}

TEST_CASE(
    "batch_norm_relu_max_pool2d: ties, all-negative windows and NaN route the gradient as the three "
    "ops do",
    "[norm][batchnorm][relu][pool]") {
  // Channel 0 is constant: after normalization every cell is exactly bias, here negative, so every window is
  // a tie at 0 after the ReLU. Channel 1 has a NaN. Its statistics are NaN, and so are its outputs.
  Tensor x0 = randn({2, 2, 4, 4}, kFloat32);
  for (int64_t i = 0; i < 32; ++i) x0.data<float>()[i % 16 + (i / 16) * 32] = 1.5f;
  x0.data<float>()[16 + 5] = std::numeric_limits<float>::quiet_NaN();
  const Tensor w0 = ones({2}), b0 = full({2}, -0.5), rm0 = zeros({2}), rv0 = ones({2});
  const Tensor dout = randn({2, 2, 2, 2});
  for (bool training : {true, false}) {
    INFO("training " << training);
    const auto fused = run_bn_relu_pool(true, x0, w0, b0, rm0, rv0, dout, training);
    const auto separate = run_bn_relu_pool(false, x0, w0, b0, rm0, rv0, dout, training);
    for (size_t i = 0; i < fused.size(); ++i) CHECK(close_or_both_nan(fused[i], separate[i], 1e-5));
  }
}

TEST_CASE("batch_norm_relu_max_pool2d: gradcheck in training and eval mode",
          "[norm][batchnorm][pool][gradcheck]") {
  Generator gen(72);
  const test::TrainAndEval ok = test::gradcheck_train_and_eval(
      batch_norm_relu_max_pool2d, "batch_norm_relu_max_pool2d", {3, 2, 4, 5}, gen);
  CHECK(ok.train);
  CHECK(ok.eval);
}

TEST_CASE("batch_norm_relu_max_pool2d: bad input", "[norm][batchnorm][pool][errors]") {
  CHECK_THROWS_WITH(
      batch_norm_relu_max_pool2d(ones({4, 3, 8}), Tensor(), Tensor(), Tensor(), Tensor(), true),
      "batch_norm_relu_max_pool2d: expected an input of shape (N, C, H, W) with H and W at least 2 "
      "(a 2x2 pool), got [4, 3, 8]");
  CHECK_THROWS_WITH(
      batch_norm_relu_max_pool2d(ones({4, 3, 1, 8}), Tensor(), Tensor(), Tensor(), Tensor(), true),
      Catch::Contains("H and W at least 2"));
  CHECK_THROWS_WITH(
      batch_norm_relu_max_pool2d(ones({4, 3, 4, 4}), Tensor(), Tensor(), ones({2}), Tensor(), true),
      Catch::Contains("weight must have shape [3]"));
}

TEST_CASE("normalize kernels with a fused max pool match the reference loops", "[norm][kernels][pool]") {
  Generator gen(73);
  using kernels::MaxPoolAfter;
  using kernels::NormLayout;
  using kernels::NormStats;
  // BatchNorm layouts: (1, N, C, 1, H·W); the blocked path (short planes), one group per task, and chunks.
  struct Case {
    int64_t n, c, h, w;
  };
  for (const Case& k : {Case{16, 24, 6, 6}, Case{4, 3, 12, 9}, Case{2, 2, 300, 300}}) {
    for (DType dt : {kFloat64, kFloat32}) {
      INFO(dtype_name(dt) << " N " << k.n << " C " << k.c << " H " << k.h << " W " << k.w);
      const double tol = dt == kFloat64 ? 1e-12 : 2e-5;
      const NormLayout l{1, k.n, k.c, 1, k.h * k.w, true};
      const Tensor x = randn({l.numel()}, dt, &gen, 0.3, 1.5);
      const Tensor w = randn({k.c}, dt, &gen), b = randn({k.c}, dt, &gen, 0.0, 0.5);
      const int64_t pooled = k.n * k.c * (k.h / 2) * (k.w / 2);
      // Training forward (moments found in the sweep) against the reference with those moments.
      Tensor mean = empty({k.c}, kFloat64), var = empty_like(mean), inv_std = empty_like(mean);
      MaxPoolAfter pool{k.h, k.w, empty({pooled}, kInt64)}, pool_ref{k.h, k.w, empty({pooled}, kInt64)};
      Tensor y = empty({pooled}, dt), y_ref = empty({pooled}, dt);
      cpu::normalize_moments_forward(x, l, 1e-5, w, b, mean, var, inv_std, y, kernels::NormActivation::relu,
                                     &pool);
      const NormStats st{mean, inv_std, {}, {}};
      cpu::normalize_reference_forward(x, l, st, w, b, y_ref, kernels::NormActivation::relu, &pool_ref);
      CHECK(allclose(y, y_ref, tol, tol));
      CHECK(test::values(pool.argmax) == test::values(pool_ref.argmax));
      // Backward, with batch statistics and with constant ones.
      const Tensor g = randn({pooled}, dt, &gen);
      for (bool batch_stats : {true, false}) {
        INFO("batch_stats " << batch_stats);
        Tensor dx = empty_like(x), dw = zeros({k.c}, dt), db = zeros({k.c}, dt);
        Tensor dx_ref = zeros_like(x), dw_ref = zeros({k.c}, dt), db_ref = zeros({k.c}, dt);
        cpu::normalize_backward(x, g, l, st, w, batch_stats, dx, dw, db, kernels::GradWrite::assign,
                                kernels::NormActivation::relu, b, &pool);
        cpu::normalize_reference_backward(x, g, l, st, w, batch_stats, dx_ref, dw_ref, db_ref,
                                          kernels::NormActivation::relu, b, &pool);
        CHECK(allclose(dx, dx_ref, tol, tol));
        CHECK(allclose(dw, dw_ref, tol, tol));
        CHECK(allclose(db, db_ref, tol, tol));
      }
    }
  }
}

TEST_CASE("BatchNorm2d(fused_max_pool) trains like BatchNorm2d, ReLU and MaxPool2d",
          "[norm][batchnorm][pool]") {
  Generator gen(74);
  BatchNormOptions fused_options;
  fused_options.fused_relu = true;
  fused_options.fused_max_pool = true;
  BatchNorm2d fused(3, fused_options), plain(3);
  ReLU relu_layer;
  MaxPool2d pool_layer(2);
  CHECK(fused.describe().find("fused_relu=true, fused_max_pool=true") != std::string::npos);
  test::check_trains_like(
      fused, plain, [&](const Tensor& y) { return pool_layer(relu_layer(y)); }, {5, 3, 6, 6}, {5, 3, 3, 3},
      gen);
}

TEST_CASE("fused_max_pool: needs fused_relu and BatchNorm2d", "[norm][batchnorm][pool][errors]") {
  BatchNormOptions o;
  o.fused_max_pool = true;
  CHECK_THROWS_WITH(BatchNorm2d(4, o),
                    "BatchNorm2d: fused_max_pool pools the fused ReLU's output, so it needs "
                    "fused_relu");
  o.fused_relu = true;
  CHECK_THROWS_WITH(BatchNorm1d(4, o), "BatchNorm1d: fused_max_pool is only available for BatchNorm2d");
  CHECK_THROWS_WITH(GhostBatchNorm(4, 2, o), Catch::Contains("GhostBatchNorm: fused_max_pool"));
}

TEST_CASE("fold_batchnorm: a BatchNorm with a fused ReLU and max pool leaves both behind",
          "[norm][tools][fold][pool]") {
  Generator gen(75);
  BatchNormOptions o;
  o.fused_relu = true;
  o.fused_max_pool = true;
  Sequential model({std::make_shared<Conv2d>(2, 4, 3, Conv2dOptions{.padding = 1, .generator = &gen}),
                    std::make_shared<BatchNorm2d>(4, o)});
  model.train();
  for (int i = 0; i < 3; ++i) model(randn({4, 2, 6, 6}, kFloat32, &gen, 0.3, 1.5));
  model.eval();
  const Tensor x = randn({2, 2, 6, 6}, kFloat32, &gen);
  const Tensor y_ref = model(x);
  CHECK(y_ref.shape() == Shape{2, 4, 3, 3});
  CHECK(fold_batchnorm(model) == std::vector<std::string>{"1"});
  auto* left = dynamic_cast<Sequential*>(model[1].get());
  REQUIRE(left != nullptr);
  REQUIRE(left->size() == 2);
  CHECK((*left)[0]->type_name() == "ReLU");
  CHECK((*left)[1]->type_name() == "MaxPool2d");
  CHECK(allclose(model(x), y_ref, 1e-5, 1e-5));
}
