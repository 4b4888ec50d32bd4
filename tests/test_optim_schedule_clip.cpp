// Learning-rate schedules, global-norm clipping and adaptive gradient clipping.
#include <catch2/catch.hpp>

#include "core/ops.h"
#include "optim/clip.h"
#include "optim/schedule.h"
#include "optim/sgd.h"
#include "test_util.h"

using namespace nl;

namespace {
std::vector<double> factors(const SchedulePtr& s, std::vector<int64_t> steps) {
  std::vector<double> out;
  for (int64_t t : steps) out.push_back(s->factor(t));
  return out;
}
void check_close(const std::vector<double>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("entry " << i);
    CHECK(got[i] == Approx(want[i]).margin(1e-12));
  }
}
}  // namespace

TEST_CASE("step and multi-step schedules multiply by gamma at their boundaries", "[optim][schedule]") {
  check_close(factors(step_schedule(2, 0.5), {0, 1, 2, 3, 4}), {1, 1, 0.5, 0.5, 0.25});
  check_close(factors(multi_step_schedule({2, 5}, 0.1), {0, 1, 2, 4, 5, 9}), {1, 1, 0.1, 0.1, 0.01, 0.01});
  check_close(factors(constant_schedule(), {0, 100}), {1, 1});
}

TEST_CASE("cosine schedule goes from 1 to min_factor over total_steps and stays there", "[optim][schedule]") {
  check_close(factors(cosine_schedule(10), {0, 5, 10, 12}), {1, 0.5, 0, 0});
  check_close(factors(cosine_schedule(10, 0.1), {0, 5, 10}), {1, 0.55, 0.1});
  CHECK(cosine_schedule(10)->factor(2) == Approx(0.5 * (1 + std::cos(M_PI * 0.2))));
}

TEST_CASE("linear warm-up rises from start_factor to 1 (PyTorch's LinearLR)", "[optim][schedule]") {
  check_close(factors(linear_warmup(4, 0.2), {0, 1, 2, 4, 10}), {0.2, 0.4, 0.6, 1, 1});
}

TEST_CASE("schedules compose: warm-up then cosine", "[optim][schedule]") {
  const SchedulePtr s = sequence({linear_warmup(2, 0.5), cosine_schedule(4)}, {2});
  check_close(factors(s, {0, 1, 2, 3, 4, 6, 8}), {0.5, 0.75, 1, 0.5 * (1 + std::cos(M_PI / 4)), 0.5, 0, 0});
  CHECK(s->describe() ==
        "sequence(linear_warmup(2, start_factor=0.5), from step 2: cosine(4, min_factor=0))");
}

TEST_CASE("schedules reject bad arguments", "[optim][schedule][errors]") {
  CHECK_THROWS_WITH(step_schedule(0), Catch::Contains("step_size"));
  CHECK_THROWS_WITH(multi_step_schedule({5, 2}), Catch::Contains("[5, 2]"));
  CHECK_THROWS_AS(cosine_schedule(0), Error);
  CHECK_THROWS_AS(linear_warmup(3, 1.5), Error);
  CHECK_THROWS_WITH(sequence({constant_schedule()}, {3}), Catch::Contains("milestones"));
}

TEST_CASE("clip_grad_norm_ returns the global norm and rescales only above max_norm", "[optim][clip]") {
  Tensor a = zeros({2}, kFloat64).requires_grad_(), b = zeros({1}, kFloat64).requires_grad_(),
         c = zeros({3}, kFloat64).requires_grad_();  // c has no gradient
  a.set_grad(tensor({3, 4}, kFloat64));
  b.set_grad(tensor({12}, kFloat64));
  CHECK(clip_grad_norm_({a, b, c}, 20.0) == Approx(13.0));
  CHECK(test::values(a.grad()) == std::vector<double>{3, 4});
  CHECK(clip_grad_norm_({a, b, c}, 6.5) == Approx(13.0));
  CHECK(test::values(a.grad())[0] == Approx(1.5));
  CHECK(test::values(a.grad())[1] == Approx(2.0));
  CHECK(test::values(b.grad())[0] == Approx(6.0));
  CHECK_THROWS_AS(clip_grad_norm_({a}, 0.0), Error);
}

TEST_CASE("adaptive gradient clipping rescales each unit whose ‖G_i‖/max(‖W_i‖, 1e-3) exceeds λ",
          "[optim][clip]") {
  Tensor w = tensor({{3, 4}, {0, 0}, {1, 0}}, kFloat64).requires_grad_();
  w.set_grad(tensor({{0.3, 0.4}, {0.001, 0}, {0.01, 0}}, kFloat64));
  adaptive_clip_grad_(w, 0.05);
  const std::vector<double> g = test::values(w.grad());
  // row 0: ‖G‖ = 0.5 > 0.05·5 → scaled to norm 0.25;  row 1: ‖W‖ → 1e-3, ‖G‖ = 1e-3 > 5e-5 → norm 5e-5;
  // row 2: 0.01 < 0.05·1 → unchanged.
  check_close(g, {0.15, 0.2, 5e-5, 0, 0.01, 0});

  // The same through the optimizer option (lr 1: w moves by exactly the clipped gradient); a 1-D bias has
  // one unit per element.
  Tensor w2 = tensor({{3, 4}}, kFloat64).requires_grad_(), bias = tensor({2, 0}, kFloat64).requires_grad_();
  SGD opt({w2, bias}, {.lr = 1.0, .agc_lambda = 0.05});
  w2.set_grad(tensor({{0.3, 0.4}}, kFloat64));
  bias.set_grad(tensor({1, 1}, kFloat64));
  opt.step();
  check_close(test::values(w2), {3 - 0.15, 4 - 0.2});
  check_close(test::values(bias), {2 - 0.1, 0 - 0.05 * 1e-3});
}
