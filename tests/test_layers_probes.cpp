// The probes of the BN-lab studies (layers/probes.h): ActivationProbe, parameter_stats, WeightAngleTracker
// and compare_running_to_population.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <numbers>
#include <numeric>
#include <string>
#include <vector>

#include "autograd/engine.h"
#include "core/ops.h"
#include "core/random.h"
#include "layers/activation.h"
#include "layers/batchnorm_tools.h"
#include "layers/conv.h"
#include "layers/dropout.h"
#include "layers/linear.h"
#include "layers/normalization.h"
#include "layers/probes.h"
#include "test_util.h"

using namespace nl;
using test::values;

namespace {

// Every element of a and b within tol of each other (absolute), sizes equal.
bool near(const std::vector<double>& a, const std::vector<double>& b, double tol) {
  if (a.size() != b.size()) {
    UNSCOPED_INFO("sizes differ: " << a.size() << " vs " << b.size());
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i)
    if (!(std::abs(a[i] - b[i]) <= tol)) {
      UNSCOPED_INFO("first mismatch at " << i << ": " << a[i] << " vs " << b[i]);
      return false;
    }
  return true;
}

// The values of channel c of x (dim 1), in any order.
std::vector<double> channel_values(const Tensor& x, int64_t c) { return values(x.select(1, c)); }

// The values 0, 1, ..., n − 1 in a shuffled order, as an (n, 1) float64 tensor.
Tensor shuffled_range(int64_t n, Generator& gen) {
  const std::vector<int64_t> order = randperm(n, &gen).to_vector<int64_t>();
  return from_vector(std::vector<double>(order.begin(), order.end()), {n, 1});
}

}  // namespace

// ---- percentile ---------------------------------------------------------------------------------------

TEST_CASE("percentile: numpy's linear interpolation between order statistics", "[layers][probes]") {
  std::vector<double> zero_to_100(101);
  std::iota(zero_to_100.begin(), zero_to_100.end(), 0.0);
  std::reverse(zero_to_100.begin(), zero_to_100.end());  // the order of the input does not matter
  CHECK(percentile(zero_to_100, {15, 50, 85}) == std::vector<double>{15, 50, 85});
  CHECK(percentile(zero_to_100, {0, 100, 2.5}) == std::vector<double>{0, 100, 2.5});

  // An even count: np.percentile([4, 1, 3, 2], [15, 50, 85, 0, 100]) = [1.45, 2.5, 3.55, 1, 4].
  const std::vector<double> got = percentile({4, 1, 3, 2}, {15, 50, 85, 0, 100});
  CHECK(near(got, {1.45, 2.5, 3.55, 1, 4}, 1e-14));
  // Ties and one value.
  CHECK(percentile({2, 2, 2, 7}, {50}) == std::vector<double>{2});
  CHECK(percentile({-3.5}, {0, 15, 100}) == std::vector<double>{-3.5, -3.5, -3.5});
  // A NaN makes every percentile NaN (as numpy).
  for (double p : percentile({1, NAN, 3}, {15, 85})) CHECK(std::isnan(p));
}

TEST_CASE("percentile: bad input is an error naming the op", "[layers][probes]") {
  CHECK_THROWS_WITH(percentile({}, {50}), Catch::Contains("percentile: values is empty"));
  CHECK_THROWS_WITH(percentile({1, 2}, {50, 101}),
                    Catch::Contains("percentile: percentile 1 must be in [0, 100], got 101"));
  CHECK_THROWS_WITH(percentile({1, 2}, {-1}), Catch::Contains("must be in [0, 100], got -1"));
  CHECK_THROWS_WITH(percentile({1, 2}, {NAN}), Catch::Contains("must be in [0, 100], got nan"));
}

// ---- ActivationProbe ----------------------------------------------------------------------------------

TEST_CASE("ActivationProbe: percentiles of the chosen channel, exact on 0..100", "[layers][probes]") {
  Generator gen(3);
  Identity id;
  ActivationProbe probe(id, {.every = 1, .channel = 0});
  id(shuffled_range(101, gen));
  id(shuffled_range(4, gen) + 1.0);  // 1, 2, 3, 4
  REQUIRE(probe.records().size() == 2);
  CHECK(probe.records()[0].percentiles == std::vector<double>{15, 50, 85});
  CHECK(near(probe.records()[1].percentiles, {1.45, 2.5, 3.55}, 1e-14));
  CHECK(probe.records()[1].count == 4);
}

TEST_CASE("ActivationProbe: per-channel mean and biased variance match the mean/var ops on the output",
          "[layers][probes]") {
  Generator gen(5);
  struct Case {
    Shape shape;
    std::vector<int64_t> axes;  // every dim but 1
  };
  for (const Case& c : {Case{{16, 5}, {0}}, Case{{6, 5, 7}, {0, 2}}, Case{{4, 5, 3, 6}, {0, 2, 3}}}) {
    INFO("shape " << shape_str(c.shape));
    for (DType dtype : {kFloat64, kFloat32}) {
      INFO(dtype_name(dtype));
      // A scaled, shifted tanh: the output is not the input, and every channel has a different mean.
      struct Affine : Module {
        Tensor forward(const Tensor& x) override { return tanh(x) * 3.0 + 2.0; }
        std::string type_name() const override { return "Affine"; }
      } module;
      ActivationProbe probe(module, {.channel = 3, .percentiles = {10, 50, 90}});
      Shape channel_shape(c.shape.size() - 1, 1);  // (5), (5, 1) or (5, 1, 1): broadcasts along dim 1
      channel_shape[0] = 5;
      const Tensor x =
          randn(c.shape, dtype, &gen, 0.5, 1.5) + arange(0.0, 5.0, 1.0, dtype).reshape(channel_shape);
      const Tensor y = module(x);
      CHECK(test::allclose(y, module.forward(x), 0, 0));  // the output is passed on untouched
      REQUIRE(probe.records().size() == 1);
      const ActivationRecord& r = probe.records()[0];
      const Tensor y64 = y.to(kFloat64);
      const double tol = 1e-12;  // both read the same values in float64
      CHECK(r.count == y.numel() / 5);
      CHECK(near(r.mean, values(mean(y64, c.axes)), tol));
      CHECK(near(r.var, values(var(y64, c.axes, /*unbiased=*/false)), tol));
      CHECK(near(r.percentiles, percentile(channel_values(y64, 3), {10, 50, 90}), 0));
      CHECK(r.step == 0);
      CHECK(r.training);
    }
  }
}

TEST_CASE("ActivationProbe: every k-th training call; eval calls are ignored unless every = 0",
          "[layers][probes]") {
  Generator gen(7);
  BatchNorm1d bn(4);
  ActivationProbe every_third(bn, {.every = 3});
  ActivationProbe every_call(bn, {.every = 0});
  const Tensor x = randn({8, 4}, kFloat32, &gen);
  for (int i = 0; i < 7; ++i) {
    bn.train();
    bn(x);
    bn.eval();
    bn(x);  // ignored by every_third, recorded by every_call
  }
  std::vector<int64_t> steps;
  for (const ActivationRecord& r : every_third.records()) steps.push_back(r.step);
  CHECK(steps == std::vector<int64_t>{0, 3, 6});
  CHECK(every_third.calls_counted() == 7);
  for (const ActivationRecord& r : every_third.records()) CHECK(r.training);

  REQUIRE(every_call.records().size() == 14);
  CHECK(every_call.calls_counted() == 14);
  CHECK(every_call.records()[1].step == 1);
  CHECK(every_call.records()[0].training);
  CHECK_FALSE(every_call.records()[1].training);
  // In training the BatchNorm output has mean 0 and variance σ²/(σ² + eps) per channel.
  for (double m : every_call.records()[0].mean) CHECK(std::abs(m) < 1e-6);
  for (double v : every_call.records()[0].var) CHECK(v == Approx(1.0).epsilon(1e-3));

  every_call.clear();
  CHECK(every_call.records().empty());
  bn(x);
  REQUIRE(every_call.records().size() == 1);
  CHECK(every_call.records()[0].step == 14);  // the count continues after clear()
}

TEST_CASE("ActivationProbe: detach, the destructor and a move take the hook off", "[layers][probes]") {
  // The probe records channel 3, so a 2-channel output would be an error if its hook were still attached.
  Identity id;
  const Tensor four = ones({2, 4}), two = ones({2, 2});
  {
    ActivationProbe probe(id, {.channel = 3});
    id(four);
    CHECK_THROWS_WITH(
        id(two), Catch::Contains("ActivationProbe: channel 3 is out of range") && Catch::Contains("[2, 2]"));
    probe.detach();
    CHECK_FALSE(probe.attached());
    CHECK_NOTHROW(id(two));
    id(four);
    CHECK(probe.records().size() == 1);  // the records stay, nothing new
    probe.detach();                      // again: nothing
  }
  {
    ActivationProbe probe(id, {.channel = 3});
    id(four);
  }  // destroyed: the hook goes with it
  CHECK_NOTHROW(id(two));

  std::vector<ActivationProbe> probes;
  {
    ActivationProbe probe(id, {.channel = 3});
    probes.push_back(std::move(probe));
    CHECK_FALSE(probe.attached());  // NOLINT(bugprone-use-after-move): a moved-from probe holds nothing
  }                                 // the moved-from probe is destroyed; the hook stays with the moved-to one
  id(four);
  CHECK(probes[0].attached());
  CHECK(probes[0].records().size() == 1);
  probes.clear();
  CHECK_NOTHROW(id(two));

  // Assigning over an attached probe detaches it first.
  ActivationProbe a(id, {.channel = 3});
  Identity other;
  a = ActivationProbe(other);
  CHECK_NOTHROW(id(two));
  other(four);
  CHECK(a.records().size() == 1);

  // A probe that outlives its module is harmless.
  auto short_lived = std::make_shared<Identity>();
  ActivationProbe orphan(*short_lived);
  short_lived.reset();
  orphan.detach();
}

TEST_CASE("ActivationProbe: bad options and outputs are errors naming the argument", "[layers][probes]") {
  Identity id;
  CHECK_THROWS_WITH(ActivationProbe(id, {.every = -1}),
                    Catch::Contains("ActivationProbe: every must be >= 0") && Catch::Contains("got -1"));
  CHECK_THROWS_WITH(ActivationProbe(id, {.channel = -2}),
                    Catch::Contains("ActivationProbe: channel must be >= 0, got -2"));
  CHECK_THROWS_WITH(ActivationProbe(id, {.percentiles = {15, 150}}),
                    Catch::Contains("ActivationProbe: percentile 1 must be in [0, 100], got 150"));
  ActivationProbe probe(id);
  CHECK_THROWS_WITH(id(ones({5})), Catch::Contains("ActivationProbe: the output of Identity has shape [5]") &&
                                       Catch::Contains("expected (N, C)"));
  CHECK_THROWS_WITH(id(ones({2, 2}, kInt64)),
                    Catch::Contains("ActivationProbe") && Catch::Contains("float32 or float64"));
  // A NaN in the channel: NaN percentiles, NaN mean and variance for that channel only.
  id(tensor({{1, 5}, {NAN, 6}}));
  const ActivationRecord& r = probe.records().back();
  for (double p : r.percentiles) CHECK(std::isnan(p));
  CHECK(std::isnan(r.mean[0]));
  CHECK(r.mean[1] == 5.5);
  CHECK(r.var[1] == 0.25);
  // An empty batch: a record of NaNs with count 0.
  id(zeros({0, 3}));
  const ActivationRecord& empty = probe.records().back();
  CHECK(empty.count == 0);
  REQUIRE(empty.mean.size() == 3);
  CHECK(std::isnan(empty.mean[2]));
  CHECK(std::isnan(empty.var[2]));
  for (double p : empty.percentiles) CHECK(std::isnan(p));
}

// ---- parameter_stats ----------------------------------------------------------------------------------

TEST_CASE("parameter_stats: norms, gradient norms and lr/|w|^2 of a tiny Linear", "[layers][probes]") {
  Linear lin(2, 1, true, kFloat64);
  {
    NoGradGuard no_record;
    lin.weight.copy_(tensor({{3, 4}}, kFloat64));
    lin.bias.copy_(tensor({0.5}, kFloat64));
  }
  // No gradient yet: grad_norm 0.
  std::vector<ParameterStats> s = parameter_stats(lin, 0.1);
  REQUIRE(s.size() == 2);
  CHECK(s[0].name == "weight");
  CHECK(s[1].name == "bias");
  CHECK(s[0].weight_norm == 5);
  CHECK(s[0].grad_norm == 0);
  CHECK(s[0].effective_lr == Approx(0.1 / 25).epsilon(1e-15));
  CHECK(s[1].weight_norm == 0.5);
  CHECK(s[1].effective_lr == Approx(0.1 / 0.25).epsilon(1e-15));

  // L = Σ_rows 2·(x·wᵀ + b) over x = [[1, 2], [2, -1]]: ∂L/∂w = 2·Σ_rows x = [6, 2], ∂L/∂b = 2·2 = 4.
  sum(lin(tensor({{1, 2}, {2, -1}}, kFloat64)) * 2.0).backward();
  s = parameter_stats(lin, 0.1);
  CHECK(s[0].grad_norm == Approx(std::sqrt(40.0)).epsilon(1e-15));
  CHECK(s[1].grad_norm == Approx(4.0).epsilon(1e-15));
  CHECK(s[0].weight_norm == 5);  // reading them changes nothing

  // A zero weight: effective_lr = +inf. lr = 0 is allowed.
  {
    NoGradGuard no_record;
    lin.bias.zero_();
  }
  CHECK(std::isinf(parameter_stats(lin, 0.1)[1].effective_lr));
  CHECK(parameter_stats(lin, 0)[0].effective_lr == 0);

  CHECK_THROWS_WITH(parameter_stats(lin, -0.1),
                    Catch::Contains("parameter_stats: lr must be a finite number >= 0, got -0.1"));
  CHECK_THROWS_WITH(parameter_stats(lin, NAN), Catch::Contains("parameter_stats: lr"));
  CHECK_THROWS_WITH(parameter_stats(lin, INFINITY), Catch::Contains("parameter_stats: lr"));
}

TEST_CASE("parameter_stats: float32 parameters of a nested model, in named_parameters order",
          "[layers][probes]") {
  Generator gen(9);
  Sequential model({std::make_shared<Conv2d>(2, 3, 3, Conv2dOptions{.bias = false, .generator = &gen}),
                    std::make_shared<BatchNorm2d>(3)});
  const std::vector<ParameterStats> s = parameter_stats(model, 1.0);
  const auto params = model.named_parameters();
  REQUIRE(s.size() == params.size());
  for (size_t i = 0; i < s.size(); ++i) {
    CHECK(s[i].name == params[i].first);
    CHECK(s[i].weight_norm == Approx(norm(params[i].second.to(kFloat64)).item()).epsilon(1e-14));
  }
  CHECK(s[1].weight_norm == Approx(std::sqrt(3.0)));  // BatchNorm γ = 1
}

// ---- WeightAngleTracker -------------------------------------------------------------------------------

TEST_CASE("WeightAngleTracker: the angle of a weight rotated by a known angle, 0 when unchanged",
          "[layers][probes]") {
  Linear lin(2, 1, true, kFloat64);
  auto set = [&](double w0, double w1, double b) {
    NoGradGuard no_record;
    lin.weight.copy_(tensor({{w0, w1}}, kFloat64));
    lin.bias.copy_(tensor({b}, kFloat64));
  };
  WeightAngleTracker tracker(lin);
  set(1, 0, 0);
  std::vector<WeightAngle> a = tracker.record();
  REQUIRE(a.size() == 2);  // one entry per parameter from the first call on
  CHECK(a[0].name == "weight");
  CHECK(a[1].name == "bias");
  CHECK(std::isnan(a[0].angle));  // first call: nothing to compare with
  CHECK(std::isnan(a[1].angle));

  for (double theta : {0.3, 1.0, std::numbers::pi / 2, 2.5, 1e-9}) {
    INFO("theta " << theta);
    set(1, 0, 2);
    tracker.record();
    set(std::cos(theta), std::sin(theta), 2);
    a = tracker.record();
    CHECK(a[0].angle == Approx(theta).epsilon(1e-12));
    CHECK(a[1].angle == 0);  // the bias did not move
  }
  // Unchanged: exactly 0. Scaled: the direction is the same.
  CHECK(tracker.record()[0].angle == 0);
  set(3 * std::cos(1e-9), 3 * std::sin(1e-9), -4);
  a = tracker.record();
  CHECK(a[0].angle < 1e-15);
  CHECK(a[1].angle == Approx(std::numbers::pi));  // 2 → −4: opposite direction
  // A zero weight has no direction: NaN.
  set(0, 0, -4);
  CHECK(std::isnan(tracker.record()[0].angle));
  // reset() forgets the previous weights.
  set(1, 1, 1);
  tracker.record();
  tracker.reset();
  CHECK(std::isnan(tracker.record()[0].angle));
}

TEST_CASE("WeightAngleTracker: float32 weights after an SGD-like step; a changed shape restarts",
          "[layers][probes]") {
  Generator gen(13);
  Linear lin(6, 4, false, kFloat32, &gen);
  WeightAngleTracker tracker(lin);
  tracker.record();
  const Tensor before = lin.weight.to(kFloat64);
  {
    NoGradGuard no_record;
    lin.weight.add_(randn({4, 6}, kFloat32, &gen), 0.01);
  }
  const Tensor after = lin.weight.to(kFloat64);
  const double cos = (dot(before.flatten(), after.flatten()) / (norm(before) * norm(after))).item();
  CHECK(tracker.record()[0].angle == Approx(std::acos(cos)).epsilon(1e-6));

  // The weight replaced by one of another shape (as fold_batchnorm does): NaN for it, then angles again.
  {
    NoGradGuard no_record;
    lin.weight.set_data(randn({4, 3}, kFloat32, &gen));
  }
  CHECK(std::isnan(tracker.record()[0].angle));
  CHECK(tracker.record()[0].angle == 0);
}

// ---- compare_running_to_population --------------------------------------------------------------------

namespace {

// K batches of shape (m, C) with different per-channel means and scales, float64.
std::vector<Tensor> varied_batches(int K, int64_t m, int64_t C, Generator& gen) {
  std::vector<Tensor> batches;
  for (int k = 0; k < K; ++k) batches.push_back(randn({m, C}, kFloat64, &gen, 1.0 + k, 0.5 + 0.25 * k));
  return batches;
}

// Copies of every buffer's values.
std::vector<std::vector<double>> buffer_values(const Module& model) {
  std::vector<std::vector<double>> out;
  for (const auto& [name, t] : model.named_buffers()) out.push_back(values(t));
  return out;
}

}  // namespace

TEST_CASE("compare_running_to_population: the population statistics of every BatchNorm's input, in eval mode",
          "[layers][probes]") {
  Generator gen(17);
  auto bn0 = std::make_shared<BatchNorm1d>(3, BatchNormOptions{.dtype = kFloat64});
  auto lin = std::make_shared<Linear>(3, 4, true, kFloat64, &gen);
  auto drop = std::make_shared<Dropout>(0.5, &gen);
  auto bn3 = std::make_shared<BatchNorm1d>(4, BatchNormOptions{.dtype = kFloat64});
  Sequential model({bn0, lin, drop, bn3});
  // Running statistics that are not the initial ones, and a mix of modes to restore.
  {
    NoGradGuard no_record;
    for (int i = 0; i < 3; ++i) model(randn({8, 3}, kFloat64, &gen, 2.0, 3.0));
  }
  model.train();
  lin->eval();
  const std::vector<std::vector<double>> buffers_before = buffer_values(model);

  const std::vector<Tensor> batches = varied_batches(5, 16, 3, gen);
  const std::vector<PopulationStatsComparison> r = compare_running_to_population(model, batches);
  // Training flags restored; running statistics and num_batches_tracked unchanged.
  CHECK(model.is_training());
  CHECK(bn0->is_training());
  CHECK_FALSE(lin->is_training());
  CHECK(drop->is_training());
  CHECK(bn3->is_training());
  CHECK(buffer_values(model) == buffers_before);

  REQUIRE(r.size() == 2);
  CHECK(r[0].name == "0");
  CHECK(r[0].type == "BatchNorm1d");
  CHECK(r[1].name == "3");
  CHECK(r[0].num_batches == 5);
  CHECK(r[0].count == 80);
  CHECK(r[1].count == 80);

  // Expected: mean and unbiased var over the concatenated inputs; layer 3's input is what the EVAL model
  // feeds it (BatchNorm 0 with its running statistics, no dropout).
  const Tensor all = cat(batches, 0);
  CHECK(near(r[0].population_mean, values(mean(all, {0})), 1e-10));
  CHECK(near(r[0].population_var, values(var(all, {0})), 1e-10));
  Tensor h;
  {
    NoGradGuard no_record;
    bn0->eval();
    lin->eval();
    h = lin->forward(bn0->forward(all));
  }
  CHECK(near(r[1].population_mean, values(mean(h, {0})), 1e-10));
  CHECK(near(r[1].population_var, values(var(h, {0})), 1e-10));
  CHECK(near(r[0].running_mean, values(bn0->running_mean), 0));
  CHECK(near(r[1].running_var, values(bn3->running_var), 0));
  double max_mean_diff = 0, max_var_diff = 0;
  for (size_t c = 0; c < 4; ++c) {
    max_mean_diff = std::max(max_mean_diff, std::abs(r[1].running_mean[c] - r[1].population_mean[c]));
    max_var_diff = std::max(max_var_diff, std::abs(r[1].running_var[c] / r[1].population_var[c] - 1));
  }
  CHECK(r[1].max_abs_mean_diff == max_mean_diff);
  CHECK(r[1].max_rel_var_diff == max_var_diff);
}

TEST_CASE(
    "compare_running_to_population: after recompute_batchnorm_stats on the same batches, the first "
    "BatchNorm's running statistics are the population's",
    "[layers][probes]") {
  // The only BatchNorm is first, so its input distribution does not depend on any running statistic.
  // recompute_batchnorm_stats sets running_mean = mean of the batch means (= the population mean for equal
  // batch sizes) and running_var = mean of the unbiased batch variances, (1/K) Σ_b M2_b/(m − 1). When every
  // batch has the same mean, the population's unbiased variance is Σ_b M2_b/(K·m − 1): the two differ by
  // exactly the factor (K·m − 1)/(K·(m − 1)), 1 for a single batch.
  Generator gen(19);
  const int64_t m = 16, C = 3;
  for (int K : {1, 4}) {
    INFO("K = " << K);
    Sequential model({std::make_shared<BatchNorm1d>(C, BatchNormOptions{.dtype = kFloat64}),
                      std::make_shared<Linear>(C, 2, true, kFloat64, &gen), std::make_shared<ReLU>()});
    // Batches with one common per-channel mean μ = (1, 2, 3): x_b = z_b − mean(z_b) + μ.
    const Tensor mu = tensor({1, 2, 3}, kFloat64);
    std::vector<Tensor> batches;
    for (int k = 0; k < K; ++k) {
      const Tensor z = randn({m, C}, kFloat64, &gen, 0.0, 1.0 + k);
      batches.push_back(z - mean(z, {0}, true) + mu);
    }
    recompute_batchnorm_stats(model, batches);
    model.eval();
    const auto r = compare_running_to_population(model, batches);
    REQUIRE(r.size() == 1);
    const double factor = static_cast<double>(K * m - 1) / static_cast<double>(K * (m - 1));
    std::vector<double> expected_running_var;
    for (double v : r[0].population_var) expected_running_var.push_back(v * factor);
    CHECK(near(r[0].running_mean, r[0].population_mean, 1e-10));
    CHECK(near(r[0].running_var, expected_running_var, 1e-10));
    CHECK(r[0].max_abs_mean_diff < 1e-10);
    CHECK(r[0].max_rel_var_diff == Approx(factor - 1).margin(1e-10));
    CHECK_FALSE(model.is_training());
  }
}

TEST_CASE("compare_running_to_population: 4-D float32 inputs, a large mean, and which layers are compared",
          "[layers][probes]") {
  Generator gen(23);
  // (N, C, H, W) float32.
  BatchNorm2d bn(2);
  std::vector<Tensor> batches;
  for (int k = 0; k < 3; ++k) batches.push_back(randn({4, 2, 3, 5}, kFloat32, &gen, 5.0 + k, 2.0));
  const auto r = compare_running_to_population(bn, batches);
  REQUIRE(r.size() == 1);
  CHECK(r[0].name == "");
  CHECK(r[0].count == 3 * 4 * 3 * 5);
  const Tensor all = cat(batches, 0).to(kFloat64);
  CHECK(near(r[0].population_mean, values(mean(all, {0, 2, 3})), 1e-10));
  CHECK(near(r[0].population_var, values(var(all, {0, 2, 3})), 1e-10));
  CHECK(r[0].running_mean == std::vector<double>{0, 0});  // the initial running statistics
  CHECK(r[0].running_var == std::vector<double>{1, 1});

  // A mean 10⁸ times the spread (float64): Σx² − (Σx)²/M would lose every digit of the variance (Σx² ≈
  // 1.3·10¹⁸ is rounded to multiples of 256, and M2 ≈ 128). The per-batch two passes and Chan's update keep
  // about 8 digits: what is left is the rounding of the batch means (an ulp of 10⁸ is 1.5·10⁻⁸) in the
  // between-batch term δ²·M·m_b/M'.
  BatchNorm1d far(2, {.dtype = kFloat64});
  std::vector<Tensor> far_batches;
  for (int k = 0; k < 4; ++k) far_batches.push_back(randn({32, 2}, kFloat64, &gen, 1e8, 1.0));
  const auto f = compare_running_to_population(far, far_batches);
  const std::vector<double> expected_far_var = values(var(cat(far_batches, 0), {0}));
  for (size_t c = 0; c < 2; ++c) CHECK(f[0].population_var[c] == Approx(expected_far_var[c]).epsilon(1e-7));

  // Without running statistics a BatchNorm is skipped; the family's subclasses are compared; BatchRenorm
  // and FrozenBatchNorm are not.
  Sequential model({std::make_shared<BatchNorm1d>(3, BatchNormOptions{.track_running_stats = false}),
                    std::make_shared<GhostBatchNorm>(3, 2), std::make_shared<BatchRenorm>(3),
                    std::make_shared<FrozenBatchNorm>(3), std::make_shared<NoisyBatchNorm>(3)});
  const auto listed = compare_running_to_population(model, {randn({4, 3}, kFloat32, &gen)});
  REQUIRE(listed.size() == 2);
  CHECK(listed[0].name == "1");
  CHECK(listed[0].type == "GhostBatchNorm");
  CHECK(listed[1].name == "4");

  // A model without any: an empty list, and no batch is drawn.
  Sequential plain({std::make_shared<ReLU>()});
  int drawn = 0;
  CHECK(compare_running_to_population(
            plain,
            [&] {
              return ++drawn, ones({2, 2});
            },
            3)
            .empty());
  CHECK(drawn == 0);
}

TEST_CASE("compare_running_to_population: num_batches, an early end, and bad input", "[layers][probes]") {
  Generator gen(29);
  Sequential model({std::make_shared<BatchNorm1d>(3), std::make_shared<ReLU>()});
  int drawn = 0;
  auto endless = [&] { return ++drawn, randn({4, 3}, kFloat32, &gen); };
  CHECK(compare_running_to_population(model, endless, 2)[0].num_batches == 2);
  CHECK(drawn == 2);

  int left = 3;
  auto three = [&] { return left-- > 0 ? randn({4, 3}, kFloat32, &gen) : Tensor(); };
  const auto r = compare_running_to_population(model, three, 10);
  CHECK(r[0].num_batches == 3);
  CHECK(r[0].count == 12);

  CHECK_THROWS_WITH(compare_running_to_population(model, endless, 0),
                    Catch::Contains("compare_running_to_population: num_batches must be >= 1, got 0"));
  CHECK_THROWS_WITH(compare_running_to_population(model, std::function<Tensor()>(), 1),
                    Catch::Contains("compare_running_to_population: next_batch is empty"));
  CHECK_THROWS_WITH(compare_running_to_population(
                        model, [] { return Tensor(); }, 5),
                    Catch::Contains("compare_running_to_population: next_batch returned no batch"));
  CHECK_THROWS_WITH(compare_running_to_population(model, std::vector<Tensor>{}),
                    Catch::Contains("compare_running_to_population: next_batch returned no batch"));

  // A batch with the wrong channel count: an error naming the layer and both shapes; afterwards the modes
  // are restored and the hook is gone (the layer's own error, not ours, for the next bad input).
  model.train();
  CHECK_THROWS_WITH(compare_running_to_population(model, {randn({4, 5}, kFloat32, &gen)}),
                    Catch::Contains("compare_running_to_population: '0' (BatchNorm1d(3") &&
                        Catch::Contains("[4, 5]") && Catch::Contains("expected (N, 3, ...)"));
  CHECK(model.is_training());
  CHECK(model[0]->is_training());
  CHECK_THROWS_WITH(model(randn({4, 5}, kFloat32, &gen)), !Catch::Contains("compare_running_to_population"));
}
