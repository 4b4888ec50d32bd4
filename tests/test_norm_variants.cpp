// The other normalizations: LayerNorm, GroupNorm, InstanceNorm, RMSNorm, BatchRenorm, GhostBatchNorm,
// NoisyBatchNorm and FrozenBatchNorm. Each: a hand-computed forward, a gradcheck with a random upstream
// gradient, the composed oracle, train/eval behaviour, its state, and its errors.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
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

// y, dx, and the parameter gradients of f for one random upstream gradient.
std::vector<Tensor> forward_backward(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                                     const std::vector<Tensor>& inputs, const Tensor& dy) {
  std::vector<Tensor> leaves;
  for (const Tensor& t : inputs) leaves.push_back(t.clone().requires_grad_());
  const Tensor y = f(leaves);
  y.backward(dy);
  std::vector<Tensor> out{y.detach()};
  for (const Tensor& t : leaves) out.push_back(t.grad());
  return out;
}

void check_matches_oracle(const std::function<Tensor(const std::vector<Tensor>&)>& fused,
                          const std::function<Tensor(const std::vector<Tensor>&)>& composed,
                          const std::vector<Tensor>& inputs, Generator& gen) {
  const Tensor dy = randn(fused(inputs).shape(), kFloat64, &gen);
  const auto a = forward_backward(fused, inputs, dy), b = forward_backward(composed, inputs, dy);
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("output " << i << " (0 = y, then the gradient of each input)");
    CHECK(allclose(a[i], b[i], 1e-9, 1e-10));
  }
}

}  // namespace

// ---- LayerNorm
// ---------------------------------------------------------------------------------------------

TEST_CASE("LayerNorm: hand-computed forward over the trailing dims", "[norm][layernorm]") {
  LayerNorm ln({4});
  const Tensor y = ln(tensor({{1, 2, 3, 4}, {2, 2, 2, 2}}));
  const double s = 1.0 / std::sqrt(1.25 + 1e-5);
  CHECK(allclose(y, tensor({{-1.5 * s, -0.5 * s, 0.5 * s, 1.5 * s}, {0, 0, 0, 0}}), 1e-6, 1e-6));
  // Per-element affine: weight and bias have the normalized shape.
  CHECK(ln.weight.shape() == Shape{4});
  LayerNorm ln2({2, 3}, {.bias = false});
  CHECK(ln2.weight.shape() == Shape{2, 3});
  CHECK_FALSE(ln2.bias.defined());
  CHECK(LayerNorm({3}, {.elementwise_affine = false}).named_parameters().empty());
}

TEST_CASE("layer_norm: gradcheck and the composed oracle", "[norm][layernorm][gradcheck]") {
  Generator gen(31);
  const Tensor x = randn({3, 2, 3}, kFloat64, &gen).requires_grad_();
  const Tensor w = randn({2, 3}, kFloat64, &gen).requires_grad_(),
               b = randn({2, 3}, kFloat64, &gen).requires_grad_();
  auto fused = [](const std::vector<Tensor>& in) { return layer_norm(in[0], {2, 3}, in[1], in[2], 1e-5); };
  CHECK(gradcheck(fused, {x, w, b}));
  check_matches_oracle(
      fused,
      [](const std::vector<Tensor>& in) { return test::layer_norm_composed(in[0], 2, in[1], in[2], 1e-5); },
      {x.detach(), w.detach(), b.detach()}, gen);
}

TEST_CASE("LayerNorm: train and eval are the same; wrong trailing dims are an error", "[norm][layernorm]") {
  Generator gen(32);
  LayerNorm ln({5});
  const Tensor x = randn({4, 5}, kFloat32, &gen);
  const Tensor y_train = ln(x);
  ln.eval();
  CHECK(values(ln(x)) == values(y_train));
  CHECK(allclose(ln(x.narrow(0, 1, 1)), y_train.narrow(0, 1, 1).contiguous(), 1e-6, 1e-6));
  CHECK_THROWS_WITH(ln(ones({4, 6})),
                    Catch::Contains("layer_norm") && Catch::Contains("[4, 6]") && Catch::Contains("[5]"));
  CHECK_THROWS_WITH(LayerNorm({}), Catch::Contains("normalized_shape"));
}

// ---- GroupNorm
// ---------------------------------------------------------------------------------------------

TEST_CASE("GroupNorm: hand-computed forward per (sample, group)", "[norm][groupnorm]") {
  GroupNorm gn(2, 4);
  gn.weight.detach().copy_(tensor({1, 2, 3, 4}));
  const Tensor x = tensor({1, 2, 3, 5}).reshape({1, 4, 1});
  // group 0: {1, 2}: mean 1.5, var 0.25; group 1: {3, 5}: mean 4, var 1; per-channel weights.
  const double s0 = 1.0 / std::sqrt(0.25 + 1e-5), s1 = 1.0 / std::sqrt(1.0 + 1e-5);
  CHECK(allclose(gn(x), tensor({-0.5 * s0, 2 * 0.5 * s0, 3 * -s1, 4 * s1}).reshape({1, 4, 1}), 1e-6, 1e-6));
  CHECK(gn.describe() == "GroupNorm(2, 4, eps=1e-05, affine=true)");
  CHECK_FALSE(gn.cancels_preceding_bias());
  CHECK(GroupNorm(4, 4).cancels_preceding_bias());
}

TEST_CASE("group_norm: gradcheck and the composed oracle", "[norm][groupnorm][gradcheck]") {
  Generator gen(33);
  const Tensor x = randn({2, 6, 2, 2}, kFloat64, &gen).requires_grad_();
  const Tensor w = randn({6}, kFloat64, &gen).requires_grad_(),
               b = randn({6}, kFloat64, &gen).requires_grad_();
  auto fused = [](const std::vector<Tensor>& in) { return group_norm(in[0], 3, in[1], in[2], 1e-5); };
  CHECK(gradcheck(fused, {x, w, b}));
  check_matches_oracle(
      fused,
      [](const std::vector<Tensor>& in) { return test::group_norm_composed(in[0], 3, in[1], in[2], 1e-5); },
      {x.detach(), w.detach(), b.detach()}, gen);
}

TEST_CASE("GroupNorm: G = 1 and G = C are LayerNorm and InstanceNorm; train equals eval",
          "[norm][groupnorm]") {
  Generator gen(34);
  const Tensor x = randn({3, 4, 2, 3}, kFloat32, &gen, 1.0, 2.0);
  CHECK(allclose(group_norm(x, 1, Tensor(), Tensor()), layer_norm(x, {4, 2, 3}, Tensor(), Tensor()), 1e-5,
                 1e-6));
  CHECK(allclose(group_norm(x, 4, Tensor(), Tensor()),
                 instance_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), true), 1e-5, 1e-6));
  GroupNorm gn(2, 4);
  const auto y_train = values(gn(x));
  gn.eval();
  CHECK(values(gn(x)) == y_train);
}

TEST_CASE("GroupNorm: groups that do not divide C, wrong channels and rank are errors",
          "[norm][groupnorm][errors]") {
  CHECK_THROWS_WITH(GroupNorm(4, 6), Catch::Contains("num_groups 4 does not divide num_channels 6"));
  CHECK_THROWS_WITH(group_norm(ones({2, 6, 3}), 4, Tensor(), Tensor()),
                    Catch::Contains("does not divide") && Catch::Contains("[2, 6, 3]"));
  GroupNorm gn(2, 4);
  CHECK_THROWS_WITH(gn(ones({2, 6, 3})), Catch::Contains("expected 4 channels"));
  CHECK_THROWS_WITH(gn(ones({4})), Catch::Contains("GroupNorm") && Catch::Contains("[4]"));
}

// ---- InstanceNorm
// --------------------------------------------------------------------------------------------

TEST_CASE("InstanceNorm1d: hand-computed forward with PyTorch's defaults", "[norm][instancenorm]") {
  InstanceNorm1d in(2);
  CHECK(in.named_parameters().empty());  // affine = false
  CHECK(in.named_buffers().empty());     // track_running_stats = false
  CHECK(in.cancels_preceding_bias());
  const Tensor x = tensor({1, 2, 3, 10, 10, 13}).reshape({1, 2, 3});
  // channel 0: mean 2, var 2/3; channel 1: mean 11, var 2.
  const double s0 = 1.0 / std::sqrt(2.0 / 3 + 1e-5), s1 = 1.0 / std::sqrt(2.0 + 1e-5);
  const Tensor expected = tensor({-s0, 0, s0, -s1, -s1, 2 * s1}).reshape({1, 2, 3});
  CHECK(allclose(in(x), expected, 1e-6, 1e-6));
  in.eval();  // without running statistics, eval uses the instance statistics too
  CHECK(allclose(in(x), expected, 1e-6, 1e-6));
  // Unbatched (C, L) input.
  CHECK(allclose(in(x.squeeze(0)), expected.squeeze(0), 1e-6, 1e-6));
}

TEST_CASE("instance_norm: gradcheck and the composed oracle", "[norm][instancenorm][gradcheck]") {
  Generator gen(35);
  const Tensor x = randn({3, 2, 2, 3}, kFloat64, &gen).requires_grad_();
  const Tensor w = randn({2}, kFloat64, &gen).requires_grad_(),
               b = randn({2}, kFloat64, &gen).requires_grad_();
  auto fused = [](const std::vector<Tensor>& in) {
    return instance_norm(in[0], Tensor(), Tensor(), in[1], in[2], true, 0.1, 1e-5);
  };
  CHECK(gradcheck(fused, {x, w, b}));
  check_matches_oracle(
      fused,
      [](const std::vector<Tensor>& in) { return test::instance_norm_composed(in[0], in[1], in[2], 1e-5); },
      {x.detach(), w.detach(), b.detach()}, gen);
  // Eval with running statistics: a per-channel affine map.
  const Tensor rm = randn({2}, kFloat64, &gen), rv = rand({2}, kFloat64, &gen, 0.5, 2.0);
  CHECK(gradcheck(
      [&](const std::vector<Tensor>& in) {
        return instance_norm(in[0], rm, rv, in[1], in[2], false, 0.1, 1e-5);
      },
      {x, w, b}));
}

TEST_CASE("InstanceNorm2d: track_running_stats updates with the batch average, eval uses it",
          "[norm][instancenorm]") {
  Generator gen(36);
  InstanceNorm2d in(2, {.momentum = 0.2, .affine = true, .track_running_stats = true});
  std::vector<double> rm(2, 0.0), rv(2, 1.0);
  for (int step = 0; step < 3; ++step) {
    const Tensor x = randn({3, 2, 2, 2}, kFloat32, &gen, step, 1.0 + step);
    in(x);
    const std::vector<double> v = values(x);
    for (int c = 0; c < 2; ++c) {
      double mean_of_means = 0, mean_of_vars = 0;
      for (int n = 0; n < 3; ++n) {
        double m = 0, ss = 0;
        for (int s = 0; s < 4; ++s) m += v[(n * 2 + c) * 4 + s] / 4;
        for (int s = 0; s < 4; ++s) ss += (v[(n * 2 + c) * 4 + s] - m) * (v[(n * 2 + c) * 4 + s] - m);
        mean_of_means += m / 3;
        mean_of_vars += ss / 3 / 3;  // unbiased (÷ (S − 1) = 3), averaged over N = 3
      }
      rm[c] = 0.8 * rm[c] + 0.2 * mean_of_means;
      rv[c] = 0.8 * rv[c] + 0.2 * mean_of_vars;
    }
  }
  CHECK(allclose(in.running_mean, from_vector(rm).to(kFloat32), 1e-5, 1e-6));
  CHECK(allclose(in.running_var, from_vector(rv).to(kFloat32), 1e-5, 1e-6));
  in.eval();
  const Tensor x = randn({2, 2, 2, 2}, kFloat32, &gen);
  CHECK(allclose(
      in(x),
      test::batch_norm_eval_composed(x, in.running_mean, in.running_var, in.weight, in.bias, 1e-5).detach(),
      1e-5, 1e-6));
}

TEST_CASE("InstanceNorm: one spatial element in training, wrong rank and channels are errors",
          "[norm][instancenorm][errors]") {
  InstanceNorm2d in(3);
  CHECK_THROWS_WITH(in(ones({2, 3, 1, 1})),
                    Catch::Contains("more than 1 spatial element") && Catch::Contains("[2, 3, 1, 1]"));
  CHECK_THROWS_WITH(in(ones({2, 3})), Catch::Contains("InstanceNorm2d") && Catch::Contains("4-D"));
  CHECK_THROWS_WITH(in(ones({2, 5, 4, 4})), Catch::Contains("expected 3 channels"));
  CHECK_THROWS_WITH(InstanceNorm1d(3)(ones({2, 3, 4, 4})), Catch::Contains("InstanceNorm1d"));
}

// ---- RMSNorm
// ---------------------------------------------------------------------------------------------------

TEST_CASE("RMSNorm: hand-computed forward; eps defaults to the dtype's machine epsilon", "[norm][rmsnorm]") {
  RMSNorm rms({2});
  CHECK(rms.weight.shape() == Shape{2});
  const double eps32 = std::numeric_limits<float>::epsilon();
  CHECK(allclose(rms(tensor({{3, 4}})), tensor({{3 / std::sqrt(12.5 + eps32), 4 / std::sqrt(12.5 + eps32)}}),
                 1e-6, 1e-7));
  // Tiny inputs show which eps was used.
  const Tensor tiny32 = tensor({{1e-4, 0}});
  CHECK(rms(tiny32).to_vector<double>()[0] == Approx(1e-4 / std::sqrt(5e-9 + eps32)).epsilon(1e-5));
  const Tensor tiny64 = tensor({{1e-9, 0}}, kFloat64);
  const double eps64 = std::numeric_limits<double>::epsilon();
  CHECK(rms_norm(tiny64, {2}, Tensor()).to_vector<double>()[0] == Approx(1e-9 / std::sqrt(5e-19 + eps64)));
  RMSNorm explicit_eps({2}, {.eps = 0.5});
  CHECK(explicit_eps(tensor({{1, 1}})).to_vector<double>()[0] == Approx(1 / std::sqrt(1.5)));
  CHECK(RMSNorm({2}).describe() == "RMSNorm([2], eps=None, elementwise_affine=true)");
}

TEST_CASE("rms_norm: gradcheck and the composed oracle", "[norm][rmsnorm][gradcheck]") {
  Generator gen(37);
  const Tensor x = randn({4, 5}, kFloat64, &gen).requires_grad_();
  const Tensor w = randn({5}, kFloat64, &gen).requires_grad_();
  auto fused = [](const std::vector<Tensor>& in) { return rms_norm(in[0], {5}, in[1], 1e-6); };
  CHECK(gradcheck(fused, {x, w}));
  check_matches_oracle(
      fused, [](const std::vector<Tensor>& in) { return test::rms_norm_composed(in[0], 1, in[1], 1e-6); },
      {x.detach(), w.detach()}, gen);
  CHECK_THROWS_WITH(rms_norm(ones({4, 3}), {5}, Tensor()),
                    Catch::Contains("rms_norm") && Catch::Contains("[4, 3]"));
}

// ---- BatchRenorm
// --------------------------------------------------------------------------------------------

TEST_CASE("batch_renorm_paper_schedule: warm-up, then linear ramps to rmax 3 at 40k and dmax 5 at 25k",
          "[norm][batchrenorm]") {
  const RenormSchedule s = batch_renorm_paper_schedule();
  for (int64_t step : {0, 1000, 5000}) {
    CHECK(s.rmax(step) == 1.0);
    CHECK(s.dmax(step) == 0.0);
  }
  CHECK(s.rmax(22500) == Approx(2.0));
  CHECK(s.dmax(15000) == Approx(2.5));
  CHECK(s.dmax(25000) == Approx(5.0));
  CHECK(s.dmax(30000) == 5.0);
  CHECK(s.rmax(40000) == Approx(3.0));
  CHECK(s.rmax(100000) == 3.0);
  const RenormSchedule fast = batch_renorm_paper_schedule(2, 6, 4);
  CHECK(fast.rmax(4) == Approx(2.0));
  CHECK(fast.dmax(3) == Approx(2.5));
  CHECK_THROWS_WITH(batch_renorm_paper_schedule(10, 5, 20), Catch::Contains("batch_renorm_paper_schedule"));
}

TEST_CASE("batch_renorm: hand-computed r, d, output and running update", "[norm][batchrenorm]") {
  const Tensor x = tensor({0, 2, 4, 6}).reshape({4, 1});
  Tensor mu = tensor({1.0}), sigma = tensor({1.0});
  // μ_B = 3, var_B = 5, σ_B = sqrt(5 + eps); r = clip(σ_B/1, 1/2, 2) = 2; d = clip((3 − 1)/1, −1, 1) = 1.
  const Tensor y = batch_renorm(x, mu, sigma, Tensor(), Tensor(), true, 2.0, 1.0, 0.01, 1e-5);
  const double sb = std::sqrt(5 + 1e-5);
  CHECK(allclose(y,
                 tensor({-3 / sb * 2 + 1, -1 / sb * 2 + 1, 1 / sb * 2 + 1, 3 / sb * 2 + 1}).reshape({4, 1}),
                 1e-6, 1e-6));
  CHECK(mu.item() == Approx(1.0 + 0.01 * (3 - 1)));
  CHECK(sigma.item() == Approx(1.0 + 0.01 * (sb - 1)));
  // Eval: (x − μ)/σ with the running values.
  const Tensor y_eval = batch_renorm(x, mu, sigma, Tensor(), Tensor(), false, 2.0, 1.0, 0.01, 1e-5);
  CHECK(y_eval.to_vector<double>()[3] == Approx((6 - mu.item()) / sigma.item()));
}

TEST_CASE("batch_renorm: gradcheck with r and d held constant, against the composed oracle",
          "[norm][batchrenorm][gradcheck]") {
  Generator gen(38);
  const Tensor x = randn({5, 3, 2}, kFloat64, &gen, 0.5, 2.0).requires_grad_();
  const Tensor w = randn({3}, kFloat64, &gen).requires_grad_(),
               b = randn({3}, kFloat64, &gen).requires_grad_();
  auto renorm = [](const Tensor& rm, const Tensor& rs, double rmax, double dmax) {
    return [=](const std::vector<Tensor>& in) {
      Tensor m = rm.clone(), s = rs.clone();  // the running update must not change r, d between calls
      return batch_renorm(in[0], m, s, in[1], in[2], true, rmax, dmax, 0.01, 1e-5);
    };
  };
  // Finite differences see r and d move with x unless they sit at their clip bounds, where they are locally
  // constant: there the full derivative equals the stop-gradient one, so gradcheck applies.
  const Tensor far_mean = tensor({5.0, -5.0, 100.0}, kFloat64), far_std = tensor({0.1, 0.1, 20.0}, kFloat64);
  CHECK(gradcheck(renorm(far_mean, far_std, 1.5, 0.5), {x, w, b}));
  CHECK(gradcheck(renorm(far_mean, far_std, 1.0, 0.0), {x, w, b}));
  // Everywhere (clipped, partly clipped, unclipped), the closed form equals autograd of the composed version
  // with r and d detached.
  const Tensor rm = tensor({0.4, -3.0, 0.6}, kFloat64), rs = tensor({1.8, 0.2, 5.0}, kFloat64);
  for (auto [rmax, dmax] : {std::pair{1.5, 0.5}, std::pair{10.0, 10.0}, std::pair{1.0, 0.0}}) {
    INFO("rmax " << rmax << " dmax " << dmax);
    check_matches_oracle(
        renorm(rm, rs, rmax, dmax),
        [&, rmax = rmax, dmax = dmax](const std::vector<Tensor>& in) {
          return test::batch_renorm_composed(in[0], rm, rs, in[1], in[2], rmax, dmax, 1e-5);
        },
        {x.detach(), w.detach(), b.detach()}, gen);
  }
  // rmax = 1, dmax = 0 is BatchNorm.
  CHECK(allclose(batch_renorm(x, rm.clone(), rs.clone(), w, b, true, 1.0, 0.0, 0.01, 1e-5),
                 batch_norm(x, Tensor(), Tensor(), w, b, true, 0.1, 1e-5), 1e-12, 1e-12));
}

TEST_CASE("BatchRenorm module: BatchNorm during warm-up, schedule by step, eval with running stats",
          "[norm][batchrenorm]") {
  Generator gen(39);
  BatchRenorm brn(2, {.momentum = 0.5, .schedule = batch_renorm_paper_schedule(2, 6, 4)});
  CHECK(brn.cancels_preceding_bias());
  std::vector<std::string> names;
  for (auto& [n, t] : brn.named_buffers()) names.push_back(n);
  CHECK(names == std::vector<std::string>{"running_mean", "running_std", "num_batches_tracked"});
  double mu = 0, sigma = 1;  // channel 0, tracked by hand
  for (int step = 0; step < 6; ++step) {
    INFO("step " << step);
    const Tensor x = randn({8, 2}, kFloat32, &gen, 3.0, 2.0);
    const double rmax = brn.current_rmax(), dmax = brn.current_dmax();
    CHECK(rmax == batch_renorm_paper_schedule(2, 6, 4).rmax(step));
    const Tensor y = brn(x);
    if (step <= 2)
      CHECK(allclose(y, batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), true), 1e-5, 1e-5));
    const std::vector<double> v = values(x.select(1, 0));
    double m = 0, ss = 0;
    for (double e : v) m += e / 8;
    for (double e : v) ss += (e - m) * (e - m) / 8;
    const double sb = std::sqrt(ss + 1e-5);
    const double r = std::clamp(sb / sigma, 1 / rmax, rmax), d = std::clamp((m - mu) / sigma, -dmax, dmax);
    CHECK(y.to_vector<double>()[0] == Approx((v[0] - m) / sb * r + d).epsilon(1e-4));
    mu += 0.5 * (m - mu);
    sigma += 0.5 * (sb - sigma);
    CHECK(brn.running_mean.to_vector<double>()[0] == Approx(mu).epsilon(1e-5));
    CHECK(brn.running_std.to_vector<double>()[0] == Approx(sigma).epsilon(1e-5));
  }
  CHECK(brn.num_batches_tracked.item() == 6);
  brn.eval();
  const Tensor x = randn({3, 2}, kFloat32, &gen);
  CHECK(brn(x).to_vector<double>()[0] == Approx((x.to_vector<double>()[0] - mu) / sigma).epsilon(1e-4));
  CHECK(brn.num_batches_tracked.item() == 6);
  CHECK_THROWS_WITH(brn(ones({3, 4})), Catch::Contains("expected 2 channels"));
  CHECK_THROWS_WITH(batch_renorm(ones({3, 2}), zeros({2}), ones({2}), Tensor(), Tensor(), true, 0.5, 0.0),
                    Catch::Contains("rmax must be >= 1"));
  brn.train();
  CHECK_THROWS_WITH(brn(ones({1, 2})), Catch::Contains("more than 1 value per channel"));
}

// ---- GhostBatchNorm
// -------------------------------------------------------------------------------------------

TEST_CASE("GhostBatchNorm: each virtual batch is normalized on its own", "[norm][ghostbn]") {
  Generator gen(40);
  GhostBatchNorm gbn(3, 4);
  const Tensor x = randn({12, 3, 2}, kFloat32, &gen, 1.0, 2.0);
  const Tensor y = gbn(x);
  for (int64_t v = 0; v < 3; ++v) {
    const Tensor chunk = x.narrow(0, 4 * v, 4).contiguous();
    CHECK(allclose(y.narrow(0, 4 * v, 4).contiguous(),
                   batch_norm(chunk, Tensor(), Tensor(), Tensor(), Tensor(), true), 1e-5, 1e-5));
  }
  // Virtual size = N is BatchNorm.
  GhostBatchNorm whole(3, 12);
  CHECK(allclose(whole(x), batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), true), 1e-6, 1e-6));
}

TEST_CASE("ghost_batch_norm: gradcheck and the composed oracle per virtual batch",
          "[norm][ghostbn][gradcheck]") {
  Generator gen(41);
  const Tensor x = randn({6, 2, 3}, kFloat64, &gen).requires_grad_();
  const Tensor w = randn({2}, kFloat64, &gen).requires_grad_(),
               b = randn({2}, kFloat64, &gen).requires_grad_();
  auto fused = [](const std::vector<Tensor>& in) {
    return ghost_batch_norm(in[0], 2, Tensor(), Tensor(), Tensor(), in[1], in[2], true, 0.1, 1e-5);
  };
  CHECK(gradcheck(fused, {x, w, b}));
  check_matches_oracle(
      fused,
      [](const std::vector<Tensor>& in) {
        std::vector<Tensor> parts;
        for (int64_t v = 0; v < 3; ++v)
          parts.push_back(test::batch_norm_composed(in[0].narrow(0, 2 * v, 2), in[1], in[2], 1e-5));
        return cat(parts, 0);
      },
      {x.detach(), w.detach(), b.detach()}, gen);
}

TEST_CASE("GhostBatchNorm: running statistics are updated once per virtual batch, in order",
          "[norm][ghostbn]") {
  Generator gen(42);
  for (std::optional<double> momentum : {std::optional<double>(0.25), std::optional<double>()}) {
    INFO("momentum " << (momentum ? *momentum : -1));
    GhostBatchNorm gbn(1, 3, {.momentum = momentum});
    double rm = 0, rv = 1;
    int64_t count = 0;
    for (int step = 0; step < 2; ++step) {
      const Tensor x = randn({9, 1}, kFloat32, &gen, step, 1.0 + step);
      gbn(x);
      const std::vector<double> v = values(x);
      for (int chunk = 0; chunk < 3; ++chunk) {
        double m = 0, ss = 0;
        for (int i = 0; i < 3; ++i) m += v[3 * chunk + i] / 3;
        for (int i = 0; i < 3; ++i) ss += (v[3 * chunk + i] - m) * (v[3 * chunk + i] - m);
        ++count;
        const double f = momentum ? *momentum : 1.0 / count;
        rm = (1 - f) * rm + f * m;
        rv = (1 - f) * rv + f * ss / 2;  // unbiased over the virtual batch
      }
    }
    CHECK(gbn.num_batches_tracked.item() == 6);
    CHECK(gbn.running_mean.item() == Approx(rm).epsilon(1e-5));
    CHECK(gbn.running_var.item() == Approx(rv).epsilon(1e-5));
    gbn.eval();
    const Tensor x = randn({2, 1}, kFloat32, &gen);
    CHECK(gbn(x).to_vector<double>()[1] ==
          Approx((x.to_vector<double>()[1] - rm) / std::sqrt(rv + 1e-5)).epsilon(1e-4));
  }
}

TEST_CASE("GhostBatchNorm: a virtual batch that does not divide N, and one value per channel, are errors",
          "[norm][ghostbn][errors]") {
  GhostBatchNorm gbn(2, 4);
  CHECK_THROWS_WITH(gbn(ones({10, 2})),
                    Catch::Contains("virtual_batch_size 4 does not divide the batch size 10") &&
                        Catch::Contains("[10, 2]"));
  GhostBatchNorm single(2, 1);
  CHECK_THROWS_WITH(single(ones({4, 2})), Catch::Contains("more than 1 value per channel"));
  CHECK_THROWS_WITH(GhostBatchNorm(2, 0), Catch::Contains("virtual_batch_size"));
  CHECK_THROWS_WITH(gbn(ones({8, 3})), Catch::Contains("expected 2 channels"));
  gbn.eval();
  CHECK_NOTHROW(gbn(ones({10, 2})));  // eval uses the running statistics: any batch size
}

// ---- NoisyBatchNorm
// ---------------------------------------------------------------------------------------------

TEST_CASE("NoisyBatchNorm: training adds noise whose mean and std change every step; eval adds none",
          "[norm][noisybn]") {
  Generator gen(43);
  NoisyBatchNorm noisy(4, {.mean_min = 0.5, .mean_max = 1.5, .std_min = 1.5, .std_max = 2.5, .seed = 99});
  const Tensor x = randn({256, 4, 4, 4}, kFloat32, &gen);
  const Tensor clean = batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), true);
  std::vector<double> means;
  for (int step = 0; step < 3; ++step) {
    const Tensor noise = noisy(x) - clean;
    const double mu = noisy.last_noise_mean(), sd = noisy.last_noise_std();
    CHECK(mu >= 0.5);
    CHECK(mu < 1.5);
    CHECK(sd >= 1.5);
    CHECK(sd < 2.5);
    CHECK(mean(noise).item() == Approx(mu).margin(0.05));
    CHECK(stddev(noise, {}, false).item() == Approx(sd).epsilon(0.03));
    means.push_back(mu);
  }
  CHECK(means[0] != means[1]);
  CHECK(means[1] != means[2]);
  // Same seed, same draws.
  NoisyBatchNorm twin(4, {.mean_min = 0.5, .mean_max = 1.5, .std_min = 1.5, .std_max = 2.5, .seed = 99});
  NoisyBatchNorm again(4, {.mean_min = 0.5, .mean_max = 1.5, .std_min = 1.5, .std_max = 2.5, .seed = 99});
  CHECK(values(twin(x)) == values(again(x)));
  // Eval: plain BatchNorm with the running statistics.
  noisy.eval();
  CHECK(
      allclose(noisy(x),
               batch_norm(x, noisy.running_mean, noisy.running_var, noisy.weight, noisy.bias, false).detach(),
               1e-6, 1e-6));
}

TEST_CASE("NoisyBatchNorm: the noise is a constant for the gradient", "[norm][noisybn][gradcheck]") {
  Generator gen(44);
  NoisyBatchNorm noisy(2);
  const Tensor x = randn({6, 2}, kFloat32, &gen).requires_grad_();
  const Tensor dy = randn({6, 2}, kFloat32, &gen);
  noisy(x).backward(dy);
  const Tensor g_noisy = x.grad().clone();
  Tensor x2 = x.detach().clone().requires_grad_();
  batch_norm(x2, Tensor(), Tensor(), noisy.weight, noisy.bias, true).backward(dy);
  CHECK(allclose(g_noisy, x2.grad(), 1e-6, 1e-6));
}

// ---- FrozenBatchNorm
// --------------------------------------------------------------------------------------------

TEST_CASE("FrozenBatchNorm: fixed statistics and affine, all buffers, never updated", "[norm][frozenbn]") {
  Generator gen(45);
  FrozenBatchNorm frozen(2);
  CHECK(frozen.named_parameters().empty());
  CHECK(frozen.named_buffers().size() == 4);
  CHECK_FALSE(frozen.cancels_preceding_bias());
  frozen.weight.copy_(tensor({2.0, 0.5}));
  frozen.bias.copy_(tensor({1.0, -1.0}));
  frozen.running_mean.copy_(tensor({0.5, 3.0}));
  frozen.running_var.copy_(tensor({4.0, 0.25}));
  Tensor x = randn({5, 2, 3, 3}, kFloat32, &gen).requires_grad_();
  const Tensor y_train = frozen(x);
  const Tensor expected = test::batch_norm_eval_composed(x.detach(), frozen.running_mean, frozen.running_var,
                                                         frozen.weight, frozen.bias, 1e-5);
  CHECK(allclose(y_train, expected, 1e-6, 1e-6));
  frozen.eval();
  CHECK(values(frozen(x)) == values(y_train));
  CHECK(values(frozen.running_mean) == std::vector<double>{0.5, 3.0});
  // The input still gets its gradient: dy·γ/sqrt(var + eps).
  y_train.backward(ones_like(y_train));
  CHECK(x.grad().to_vector<double>()[0] == Approx(2.0 / std::sqrt(4.0 + 1e-5)));
  CHECK_THROWS_WITH(frozen(ones({2, 3, 2, 2})), Catch::Contains("expected 2 channels"));
}

TEST_CASE("FrozenBatchNorm::from copies a trained BatchNorm and matches its eval output",
          "[norm][frozenbn]") {
  Generator gen(46);
  BatchNorm2d bn(3);
  for (int i = 0; i < 3; ++i) bn(randn({4, 3, 2, 2}, kFloat32, &gen, 1.0, 2.0));
  bn.weight.detach().copy_(tensor({1.5, -0.5, 2.0}));
  bn.eval();
  const auto frozen = FrozenBatchNorm::from(bn);
  const Tensor x = randn({4, 3, 2, 2}, kFloat32, &gen);
  CHECK(allclose((*frozen)(x), bn(x), 1e-6, 1e-6));
  BatchNorm2d no_stats(3, {.track_running_stats = false});
  CHECK_THROWS_WITH(FrozenBatchNorm::from(no_stats), Catch::Contains("no running statistics"));
}
