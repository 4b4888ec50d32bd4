// batch_norm_relu and BatchNormOptions::fused_relu: one kernel for relu(batch_norm(x)), checked against
// the two ops it replaces (values, gradients, running statistics), by gradcheck, and through the tools that
// rewrite models (fold_batchnorm).
#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "autograd/engine.h"
#include "core/normalization.h"
#include "core/ops.h"
#include "core/random.h"
#include "layers/activation.h"
#include "layers/batchnorm_tools.h"
#include "layers/conv.h"
#include "layers/normalization.h"
#include "batch_norm_fused_checks.h"
#include "test_util.h"

using namespace nl;
using test::allclose;

TEST_CASE("batch_norm_relu: equals relu(batch_norm) in value, gradients and running statistics",
          "[norm][batchnorm][relu]") {
  Generator gen(61);
  for (DType dt : {kFloat64, kFloat32}) {
    for (const Shape& shape : {Shape{8, 4, 5, 5}, Shape{16, 6}, Shape{4, 3, 7}}) {
      for (bool training : {true, false}) {
        INFO(dtype_name(dt) << " " << shape_str(shape) << " training " << training);
        const double tol = dt == kFloat64 ? 1e-12 : 1e-5;
        const int64_t C = shape[1];
        const Tensor x0 = randn(shape, dt, &gen, 1.0, 3.0);
        const Tensor w0 = randn({C}, dt, &gen), b0 = randn({C}, dt, &gen, 0.0, 0.3);
        const Tensor rm0 = randn({C}, kFloat32, &gen), rv0 = rand({C}, kFloat32, &gen, 0.5, 2.0);
        const Tensor dout = randn(shape, dt, &gen);
        auto run = [&](bool fused) {
          Tensor x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_(),
                 b = b0.clone().requires_grad_();
          Tensor rm = rm0.clone(), rv = rv0.clone();
          const Tensor y = fused ? batch_norm_relu(x, rm, rv, w, b, training, 0.1, 1e-5)
                                 : relu(batch_norm(x, rm, rv, w, b, training, 0.1, 1e-5));
          y.backward(dout);
          return std::vector<Tensor>{y.detach(), x.grad(), w.grad(), b.grad(), rm, rv};
        };
        const auto fused = run(true), separate = run(false);
        CHECK(allclose(fused[0], separate[0], 0, 0));  // the same kernel, then max(y, 0)
        CHECK(min(fused[0]).item() >= 0);
        for (size_t i = 1; i < fused.size(); ++i) CHECK(allclose(fused[i], separate[i], tol, tol));
      }
    }
  }
}

TEST_CASE("batch_norm_relu: without affine parameters or running statistics", "[norm][batchnorm][relu]") {
  Generator gen(65);
  for (DType dt : {kFloat64, kFloat32}) {
    INFO(dtype_name(dt));
    const Tensor x0 = randn({6, 3, 4, 4}, dt, &gen, 0.2, 1.0), dout = randn({6, 3, 4, 4}, dt, &gen);
    auto run = [&](bool fused) {
      Tensor x = x0.clone().requires_grad_();
      const Tensor y = fused ? batch_norm_relu(x, Tensor(), Tensor(), Tensor(), Tensor(), true)
                             : relu(batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), true));
      y.backward(dout);
      return std::vector<Tensor>{y.detach(), x.grad()};
    };
    const auto fused = run(true), separate = run(false);
    CHECK(allclose(fused[0], separate[0], 0, 0));
    CHECK(allclose(fused[1], separate[1], 1e-5, 1e-5));
  }
}

TEST_CASE("batch_norm_relu: gradcheck in training and eval mode", "[norm][batchnorm][relu][gradcheck]") {
  Generator gen(62);
  for (const Shape& shape : {Shape{4, 3, 2, 2}, Shape{6, 4}}) {
    INFO("shape " << shape_str(shape));
    const test::TrainAndEval ok =
        test::gradcheck_train_and_eval(batch_norm_relu, "batch_norm_relu", shape, gen);
    CHECK(ok.train);
    CHECK(ok.eval);
  }
}

TEST_CASE("BatchNorm2d(fused_relu) trains like BatchNorm2d followed by ReLU", "[norm][batchnorm][relu]") {
  Generator gen(63);
  BatchNormOptions fused_options;
  fused_options.fused_relu = true;
  BatchNorm2d fused(3, fused_options), plain(3);
  ReLU relu_layer;
  CHECK(fused.describe().find("fused_relu=true") != std::string::npos);
  CHECK(plain.describe().find("fused_relu") == std::string::npos);
  test::check_trains_like(
      fused, plain, [&](const Tensor& y) { return relu_layer(y); }, {5, 3, 4, 4}, {5, 3, 4, 4}, gen);
}

TEST_CASE("fused_relu: the variants built on other ops refuse it", "[norm][batchnorm][relu]") {
  BatchNormOptions o;
  o.fused_relu = true;
  CHECK_THROWS_WITH(GhostBatchNorm(4, 2, o), Catch::Contains("GhostBatchNorm: fused_relu"));
  CHECK_THROWS_WITH(NoisyBatchNorm(4, {}, o), Catch::Contains("NoisyBatchNorm: fused_relu"));
}

TEST_CASE("fold_batchnorm: a BatchNorm with a fused ReLU leaves the ReLU behind",
          "[norm][tools][fold][relu]") {
  Generator gen(64);
  BatchNormOptions o;
  o.fused_relu = true;
  Sequential model({std::make_shared<Conv2d>(2, 4, 3, Conv2dOptions{.padding = 1, .generator = &gen}),
                    std::make_shared<BatchNorm2d>(4, o)});
  model.train();
  for (int i = 0; i < 3; ++i) model(randn({4, 2, 5, 5}, kFloat32, &gen, 0.3, 1.5));
  model.eval();
  const Tensor x = randn({2, 2, 5, 5}, kFloat32, &gen);
  const Tensor y_ref = model(x);
  CHECK(min(y_ref).item() >= 0);
  CHECK(fold_batchnorm(model) == std::vector<std::string>{"1"});
  CHECK(model[1]->type_name() == "ReLU");
  CHECK(allclose(model(x), y_ref, 1e-5, 1e-5));
}
