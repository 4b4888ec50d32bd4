// Properties of BatchNorm behind a Linear or Conv2d layer that the studies rely on (Ioffe & Szegedy 2015,
// §3.2–3.3): the bias before BN is useless, BN is invariant to the scale of the preceding weights, and in
// eval mode a sample's output does not depend on its batch.
#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "autograd/engine.h"
#include "core/ops.h"
#include "core/random.h"
#include "layers/conv.h"
#include "layers/linear.h"
#include "layers/normalization.h"
#include "test_util.h"

using namespace nl;
using test::allclose;
using test::values;

namespace {

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : values(t)) m = std::max(m, std::abs(v));
  return m;
}

// The pre-BN layer: Linear on (N, in) or Conv2d on (N, C, H, W), as a function of its weight and bias.
struct PreLayer {
  bool conv;
  Tensor operator()(const Tensor& x, const Tensor& w, const Tensor& b) const {
    return conv ? conv2d(x, w, b, 1, 1) : linear(x, w, b);
  }
};

struct Setup {
  PreLayer layer;
  Tensor x, w, b;
  std::shared_ptr<BatchNorm> bn;
};

Setup make_setup(bool conv, Generator& gen) {
  Setup s{{conv}, {}, {}, {}, {}};
  if (conv) {
    s.x = randn({4, 3, 5, 5}, kFloat64, &gen);
    s.w = randn({6, 3, 3, 3}, kFloat64, &gen);
    s.b = randn({6}, kFloat64, &gen, 0.0, 3.0);
    s.bn = std::make_shared<BatchNorm2d>(6);
  } else {
    s.x = randn({16, 5}, kFloat64, &gen);
    s.w = randn({7, 5}, kFloat64, &gen);
    s.b = randn({7}, kFloat64, &gen, 0.0, 3.0);
    s.bn = std::make_shared<BatchNorm1d>(7);
  }
  NoGradGuard no_record;
  s.bn->weight = randn(s.bn->weight.shape(), kFloat64, &gen).requires_grad_();
  s.bn->bias = randn(s.bn->bias.shape(), kFloat64, &gen).requires_grad_();
  s.bn->running_mean = s.bn->running_mean.to(kFloat64);
  s.bn->running_var = s.bn->running_var.to(kFloat64);
  return s;
}

}  // namespace

TEST_CASE("BatchNorm property: a bias before BN changes nothing and gets a zero gradient",
          "[norm][property][bias]") {
  Generator gen(61);
  for (bool conv : {false, true}) {
    INFO((conv ? "Conv2d" : "Linear") << " + BatchNorm");
    Setup s = make_setup(conv, gen);
    const Tensor w = s.w.clone().requires_grad_(), b = s.b.clone().requires_grad_();
    const Tensor y_with = (*s.bn)(s.layer(s.x, w, b));
    const Tensor y_without = (*s.bn)(s.layer(s.x, s.w, Tensor()));
    CHECK(allclose(y_with, y_without, 1e-6, 1e-6 * max_abs(y_without)));
    const Tensor dy = randn(y_with.shape(), kFloat64, &gen);
    y_with.backward(dy);
    // "Zero" relative to the size of the other gradients of the same layer.
    CHECK(max_abs(b.grad()) <= 1e-6 * max_abs(w.grad()));
    CHECK(max_abs(w.grad()) > 1e-3);
  }
}

TEST_CASE(
    "BatchNorm property: scaling the preceding weights by c leaves the output and scales their gradient "
    "by 1/c",
    "[norm][property][scale]") {
  Generator gen(62);
  for (bool conv : {false, true}) {
    for (double c : {3.7, 0.25}) {
      INFO((conv ? "Conv2d" : "Linear") << " + BatchNorm, c = " << c);
      Setup s = make_setup(conv, gen);
      const Tensor dy = randn(s.layer(s.x, s.w, Tensor()).shape(), kFloat64, &gen);
      const Tensor w = s.w.clone().requires_grad_(), cw = (s.w * c).requires_grad_();
      const Tensor y = (*s.bn)(s.layer(s.x, w, Tensor()));
      const Tensor y_scaled = (*s.bn)(s.layer(s.x, cw, Tensor()));
      // eps makes the invariance approximate: sqrt(c²·var + eps) vs c·sqrt(var + eps).
      CHECK(allclose(y_scaled, y, 1e-3, 1e-4));
      y.backward(dy);
      y_scaled.backward(dy);
      CHECK(allclose(cw.grad() * c, w.grad(), 1e-3, 1e-5 * max_abs(w.grad())));
      // The input gradient does not change.
    }
  }
}

TEST_CASE("BatchNorm property: scale invariance is exact with eps = 0", "[norm][property][scale]") {
  Generator gen(63);
  const Tensor x = randn({12, 4}, kFloat64, &gen), w = randn({3, 4}, kFloat64, &gen);
  const Tensor xr = x.clone().requires_grad_(), xr2 = x.clone().requires_grad_();
  const Tensor wr = w.clone().requires_grad_(), cw = (w * 5.0).requires_grad_();
  const Tensor y = batch_norm(linear(xr, wr), Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1, 0.0);
  const Tensor y_scaled = batch_norm(linear(xr2, cw), Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1, 0.0);
  CHECK(allclose(y_scaled, y, 1e-12, 1e-12));
  const Tensor dy = randn(y.shape(), kFloat64, &gen);
  y.backward(dy);
  y_scaled.backward(dy);
  CHECK(allclose(cw.grad() * 5.0, wr.grad(), 1e-10, 1e-12));
  CHECK(allclose(xr2.grad(), xr.grad(), 1e-10, 1e-12));  // ∂BN((aW)u)/∂u = ∂BN(Wu)/∂u
}

TEST_CASE("BatchNorm property: in eval mode a sample's output is independent of its batch (Linear + BN)",
          "[norm][property][eval]") {
  Generator gen(64);
  auto lin = std::make_shared<Linear>(5, 4, false, kFloat32, &gen);
  auto bn = std::make_shared<BatchNorm1d>(4);
  Sequential model({lin, bn});
  for (int i = 0; i < 3; ++i) model(randn({8, 5}, kFloat32, &gen));
  model.eval();
  const Tensor batch = randn({8, 5}, kFloat32, &gen);
  const Tensor y = model(batch);
  for (int64_t i = 0; i < 8; ++i)
    CHECK(allclose(model(batch.narrow(0, i, 1)), y.narrow(0, i, 1).contiguous(), 1e-6, 1e-6));
  // In training mode the same sample's output changes with its batch mates.
  model.train();
  const Tensor alone_in_a = model(batch).narrow(0, 0, 1).contiguous();
  const Tensor shifted = cat({batch.narrow(0, 0, 1), randn({7, 5}, kFloat32, &gen, 3.0)}, 0);
  CHECK_FALSE(allclose(model(shifted).narrow(0, 0, 1).contiguous(), alone_in_a, 1e-3, 1e-3));
}
