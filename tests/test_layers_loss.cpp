// Losses: cross-entropy (fused kernel) against log_softmax + NLL, label smoothing, stability, gradchecks,
// the backward formula, and bad targets.
#include <catch2/catch.hpp>

#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "core/ops.h"
#include "core/random.h"
#include "layers/loss.h"
#include "test_util.h"

using namespace nl;
using nl::test::allclose;

namespace {
Tensor targets_of(std::vector<int64_t> t) { return from_vector(t); }

// −Σ_j q_ij log softmax(z)_ij with q = (1 − ε)·onehot + ε/C, from core ops.
Tensor smoothed_reference(const Tensor& z, const std::vector<int64_t>& t, double eps) {
  const int64_t n = z.size(0), c = z.size(1);
  std::vector<double> q(static_cast<size_t>(n * c), eps / c);
  for (int64_t i = 0; i < n; ++i) q[i * c + t[i]] += 1.0 - eps;
  return neg(sum(mul(log_softmax(z, 1), from_vector(q, {n, c}).to(z.dtype())), {1}));
}
}  // namespace

TEST_CASE("cross_entropy equals the mean of -log_softmax at the target", "[layers][loss]") {
  Generator gen(1);
  const Tensor z = randn({6, 5}, kFloat64, &gen, 0, 3);
  const std::vector<int64_t> t = {0, 4, 2, 2, 1, 3};
  CHECK(cross_entropy(z, targets_of(t)).item() ==
        Approx(mean(smoothed_reference(z, t, 0.0)).item()).epsilon(1e-12));
  CHECK(allclose(cross_entropy(z, targets_of(t), 0.0, Reduction::None), smoothed_reference(z, t, 0.0), 1e-12,
                 1e-12));
  CHECK(cross_entropy(z, targets_of(t), 0.0, Reduction::Sum).item() ==
        Approx(sum(smoothed_reference(z, t, 0.0)).item()).epsilon(1e-12));
  CHECK(nll_loss(log_softmax(z, 1), targets_of(t)).item() ==
        Approx(cross_entropy(z, targets_of(t)).item()).epsilon(1e-12));
}

TEST_CASE("cross_entropy label smoothing follows PyTorch: target (1 - eps)·onehot + eps/C",
          "[layers][loss]") {
  Generator gen(2);
  const Tensor z = randn({4, 3}, kFloat64, &gen);
  const std::vector<int64_t> t = {2, 0, 1, 1};
  CHECK(allclose(cross_entropy(z, targets_of(t), 0.1, Reduction::None), smoothed_reference(z, t, 0.1), 1e-12,
                 1e-12));
  // A hand-worked case: z = 0 gives log p = −log C everywhere, so the loss is log C whatever eps is.
  CHECK(cross_entropy(zeros({1, 4}, kFloat64), targets_of({1}), 0.3).item() == Approx(std::log(4.0)));
}

TEST_CASE("cross_entropy backward is (p - q)/N · g and adds into existing gradients", "[layers][loss]") {
  const Tensor z = tensor({{1.0, 2.0, 3.0}, {0.0, 0.0, 0.0}}, kFloat64).requires_grad_();
  const double eps = 0.3;
  cross_entropy(z, targets_of({2, 0}), eps).backward(full({}, 2.0, kFloat64));
  const std::vector<double> p0 = test::values(softmax(z.detach().select(0, 0), 0));
  const double off = eps / 3, on = 1 - eps + eps / 3;
  const std::vector<double> expected = {(p0[0] - off) / 2 * 2, (p0[1] - off) / 2 * 2, (p0[2] - on) / 2 * 2,
                                        (1.0 / 3 - on),        (1.0 / 3 - off),       (1.0 / 3 - off)};
  CHECK(allclose(z.grad(), from_vector(expected, {2, 3}), 1e-12, 1e-14));
  cross_entropy(z, targets_of({2, 0}), eps).backward(full({}, 2.0, kFloat64));
  CHECK(allclose(z.grad(), mul(from_vector(expected, {2, 3}), 2.0), 1e-12, 1e-14));
}

TEST_CASE("cross_entropy is stable for logits of ±1e4", "[layers][loss]") {
  const Tensor z = tensor({{1e4, -1e4, 0.0}, {-1e4, -1e4, 1e4}}).requires_grad_();
  const Tensor loss = cross_entropy(z, targets_of({1, 2}));
  // Row 0: the target sits 2e4 below the max, loss 2e4; row 1: the target is the max, loss 0.
  CHECK(std::isfinite(loss.item()));
  CHECK(loss.item() == Approx(1e4).epsilon(1e-6));
  loss.backward();
  for (double g : test::values(z.grad())) CHECK(std::isfinite(g));
  CHECK(test::values(z.grad())[0] == Approx(0.5));   // p = 1 at the max, not the target: (1 − 0)/2
  CHECK(test::values(z.grad())[1] == Approx(-0.5));  // (0 − 1)/2
}

TEST_CASE("gradcheck: cross_entropy (with and without smoothing, each reduction), nll_loss, mse_loss",
          "[layers][loss][gradcheck]") {
  Generator gen(3);
  const Tensor t = targets_of({3, 0, 1, 3, 2});
  auto logits = [&] { return randn({5, 4}, kFloat64, &gen, 0, 2).requires_grad_(); };
  CHECK(gradcheck([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], t); }, {logits()}, {},
                  "ce"));
  CHECK(gradcheck([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], t, 0.2); }, {logits()}, {},
                  "ce smoothed"));
  CHECK(
      gradcheck([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], t, 0.1, Reduction::None); },
                {logits()}, {}, "ce none"));
  CHECK(gradcheck([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], t, 0.0, Reduction::Sum); },
                  {logits()}, {}, "ce sum"));
  CHECK(gradcheck([&](const std::vector<Tensor>& in) { return nll_loss(log_softmax(in[0], 1), t); },
                  {logits()}, {}, "nll"));
  CHECK(gradcheck(
      [&](const std::vector<Tensor>& in) { return mse_loss(in[0], in[1]); },
      {randn({3, 4}, kFloat64, &gen).requires_grad_(), randn({3, 4}, kFloat64, &gen).requires_grad_()}, {},
      "mse"));
}

TEST_CASE("mse_loss and accuracy by hand", "[layers][loss]") {
  CHECK(mse_loss(tensor({1, 2, 3}), tensor({1, 0, 0})).item() == Approx((0 + 4 + 9) / 3.0));
  CHECK(mse_loss(tensor({1, 2, 3}), tensor({1, 0, 0}), Reduction::Sum).item() == Approx(13.0));
  const Tensor logits = tensor({{0.1, 0.9}, {0.8, 0.2}, {0.3, 0.7}, {0.6, 0.4}});
  CHECK(accuracy(logits, targets_of({1, 0, 0, 1})) == Approx(0.5));
  CHECK(accuracy(logits, targets_of({1, 0, 1, 0})) == Approx(1.0));
}

TEST_CASE("losses reject bad targets and shapes with nl::Error", "[layers][loss][errors]") {
  const Tensor z = zeros({3, 4});
  CHECK_THROWS_WITH(cross_entropy(z, targets_of({0, 4, 1})),
                    Catch::Contains("target 4 at index 1") && Catch::Contains("4 classes"));
  CHECK_THROWS_WITH(cross_entropy(z, targets_of({0, -1, 1})), Catch::Contains("target -1"));
  CHECK_THROWS_WITH(cross_entropy(z, targets_of({0, 1})), Catch::Contains("[3]") && Catch::Contains("[2]"));
  CHECK_THROWS_WITH(cross_entropy(z, tensor({0, 1, 2})), Catch::Contains("int64"));
  CHECK_THROWS_WITH(cross_entropy(zeros({3, 4, 5}), targets_of({0, 1, 2})), Catch::Contains("[3, 4, 5]"));
  CHECK_THROWS_WITH(cross_entropy(z, targets_of({0, 1, 2}), 1.5), Catch::Contains("label_smoothing"));
  CHECK_THROWS_WITH(mse_loss(zeros({2, 3}), zeros({3, 2})),
                    Catch::Contains("[2, 3]") && Catch::Contains("[3, 2]"));
  CHECK_THROWS_AS(nll_loss(z, targets_of({0, 1, 9})), Error);
}
