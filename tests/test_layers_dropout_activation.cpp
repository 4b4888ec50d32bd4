// Dropout (inverted, seeded, inactive in eval) and the activation modules.
#include <catch2/catch.hpp>

#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "core/ops.h"
#include "core/random.h"
#include "layers/activation.h"
#include "layers/dropout.h"
#include "test_util.h"

using namespace nl;
using nl::test::allclose;

TEST_CASE("dropout in eval mode, or with p = 0, returns its input unchanged", "[layers][dropout]") {
  Dropout drop(0.5);
  drop.eval();
  const Tensor x = randn({4, 5});
  CHECK(drop(x).same(x));
  CHECK(dropout(x, 0.0, true).same(x));
}

TEST_CASE("dropout in training keeps elements with probability 1 - p and scales them by 1/(1 - p)",
          "[layers][dropout]") {
  Generator gen(11);
  Dropout drop(0.25, &gen);
  const Tensor y = drop(ones({100000}));
  int64_t kept = 0, other = 0;
  for (double v : test::values(y)) {
    kept += v == static_cast<double>(1.0f / 0.75f);
    other += v != 0.0 && v != static_cast<double>(1.0f / 0.75f);
  }
  CHECK(other == 0);
  CHECK(static_cast<double>(kept) / 100000 == Approx(0.75).margin(0.01));
  CHECK(mean(y).item() == Approx(1.0).margin(0.02));  // the expectation is preserved
}

TEST_CASE("dropout masks are reproducible from a seeded generator", "[layers][dropout]") {
  Generator a(3), b(3), c(4);
  const Tensor x = ones({64});
  const Tensor ya = dropout(x, 0.5, true, &a), yb = dropout(x, 0.5, true, &b), yc = dropout(x, 0.5, true, &c);
  CHECK(test::values(ya) == test::values(yb));
  CHECK(test::values(ya) != test::values(yc));
}

TEST_CASE("gradcheck: dropout with a fixed mask; its gradient is mask/(1 - p)",
          "[layers][dropout][gradcheck]") {
  Generator gen(5);
  const Tensor mask = bernoulli({3, 4}, 0.6, kFloat64, &gen);
  Tensor x = randn({3, 4}, kFloat64, &gen).requires_grad_();
  CHECK(gradcheck([&](const std::vector<Tensor>& in) { return dropout_with_mask(in[0], mask, 0.4); }, {x}, {},
                  "dropout"));
  x.zero_grad();
  dropout_with_mask(x, mask, 0.4).backward(ones({3, 4}, kFloat64));
  CHECK(allclose(x.grad(), div(mask, 0.6), 1e-12, 0));
}

TEST_CASE("dropout with p = 1 outputs zeros, and p outside [0, 1] is an error", "[layers][dropout][errors]") {
  CHECK(test::values(dropout(ones({4}), 1.0, true)) == std::vector<double>(4, 0.0));
  CHECK_THROWS_WITH(Dropout(1.5), Catch::Contains("[0, 1]") && Catch::Contains("1.5"));
  CHECK_THROWS_WITH(dropout_with_mask(ones({4}), ones({5}), 0.5),
                    Catch::Contains("[5]") && Catch::Contains("[4]"));
}

TEST_CASE("activation modules compute their functional ops", "[layers][activation]") {
  const Tensor x = tensor({-2.0, -0.5, 0.0, 0.5, 2.0}, kFloat64);
  CHECK(allclose(ReLU()(x), relu(x), 0, 0));
  CHECK(allclose(LeakyReLU(0.2)(x), tensor({-0.4, -0.1, 0.0, 0.5, 2.0}, kFloat64), 1e-15, 0));
  CHECK(allclose(GELU()(x), gelu(x), 0, 0));
  CHECK(allclose(Sigmoid()(x), sigmoid(x), 0, 0));
  CHECK(allclose(Tanh()(x), tanh(x), 0, 0));
  CHECK(Identity()(x).same(x));
  CHECK(LeakyReLU(0.2).describe() == "LeakyReLU(negative_slope=0.2)");
}
