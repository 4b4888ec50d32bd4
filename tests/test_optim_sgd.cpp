// SGD against hand-computed updates (PyTorch's algorithm worked by hand), parameter groups, schedules
// through the optimizer, buffer reuse, and bad options.
#include <catch2/catch.hpp>

#include "autograd/engine.h"
#include "core/ops.h"
#include "layers/linear.h"
#include "optim/sgd.h"
#include "test_util.h"

using namespace nl;

namespace {

Tensor param(std::vector<double> v) { return from_vector(v).requires_grad_(); }

// Runs `steps` steps with the gradient fixed to g, recording w after each.
std::vector<double> run(SGDOptions o, double g, int steps, double w0 = 1.0) {
  Tensor w = param({w0});
  SGD opt({w}, o);
  std::vector<double> out;
  for (int s = 0; s < steps; ++s) {
    w.set_grad(from_vector(std::vector<double>{g}));
    opt.step();
    out.push_back(w.item());
  }
  return out;
}

void check_close(const std::vector<double>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("step " << i + 1);
    CHECK(got[i] == Approx(want[i]).epsilon(1e-12));
  }
}

}  // namespace

TEST_CASE("SGD without momentum: w <- w - lr·g", "[optim][sgd]") {
  check_close(run({.lr = 0.1}, 0.5, 3), {0.95, 0.90, 0.85});
}

TEST_CASE("SGD momentum: the first step sets buf = g, later buf = μ·buf + g", "[optim][sgd]") {
  // buf: 1, 1.9, 2.71;  w: 1 − 0.1, − 0.19, − 0.271
  check_close(run({.lr = 0.1, .momentum = 0.9}, 1.0, 3), {0.9, 0.71, 0.439});
}

TEST_CASE("SGD dampening scales the new gradient after the first step", "[optim][sgd]") {
  // buf: 1 (no dampening on the first step), 0.9 + 0.5 = 1.4, 1.26 + 0.5 = 1.76
  check_close(run({.lr = 0.1, .momentum = 0.9, .dampening = 0.5}, 1.0, 3), {0.9, 0.76, 0.584});
}

TEST_CASE("SGD nesterov steps along g + μ·buf", "[optim][sgd]") {
  // step 1: buf 1, step 1.9;  step 2: buf 1.9, step 1 + 1.71 = 2.71
  check_close(run({.lr = 0.1, .momentum = 0.9, .nesterov = true}, 1.0, 2), {0.81, 0.539});
}

TEST_CASE("SGD coupled weight decay adds wd·w to the gradient (and so to the momentum)", "[optim][sgd]") {
  // d = 1 + 0.1·1 = 1.1 → 0.89;  d = 1 + 0.089 = 1.089 → 0.7811
  check_close(run({.lr = 0.1, .weight_decay = 0.1}, 1.0, 2), {0.89, 0.7811});
  // with momentum: buf 1.1 → w 0.89;  buf 0.99 + 1.089 = 2.079 → w 0.6821
  check_close(run({.lr = 0.1, .momentum = 0.9, .weight_decay = 0.1}, 1.0, 2), {0.89, 0.6821});
}

TEST_CASE("SGD decoupled weight decay shrinks w by lr·wd outside the momentum", "[optim][sgd]") {
  // step 1: w·(1 − 0.01) − 0.1·1 = 0.89;  step 2: 0.89·0.99 − 0.1·1.9 = 0.6911
  check_close(run({.lr = 0.1, .momentum = 0.9, .weight_decay = 0.1, .decoupled_weight_decay = true}, 1.0, 2),
              {0.89, 0.6911});
  // with momentum 0 and wd 0 the two modes agree
  check_close(run({.lr = 0.1, .decoupled_weight_decay = true}, 1.0, 2), run({.lr = 0.1}, 1.0, 2));
}

TEST_CASE("SGD parameter groups each use their own lr and weight decay", "[optim][sgd]") {
  Tensor a = param({1.0}), b = param({1.0}), c = param({2.0});
  std::vector<ParamGroup> groups(2);
  groups[0].params = {a};
  groups[0].lr = 0.1;
  groups[1].params = {b, c};
  groups[1].weight_decay = 0.5;  // lr falls back to the options' 0.01
  SGD opt(groups, {.lr = 0.01, .weight_decay = 0.0});
  for (Tensor* p : {&a, &b, &c}) p->set_grad(from_vector(std::vector<double>{1.0}));
  opt.step();
  CHECK(a.item() == Approx(1.0 - 0.1));
  CHECK(b.item() == Approx(1.0 - 0.01 * (1.0 + 0.5)));
  CHECK(c.item() == Approx(2.0 - 0.01 * (1.0 + 1.0)));
  CHECK(opt.current_lr(0) == 0.1);
  CHECK(opt.current_lr(1) == 0.01);
}

TEST_CASE("split_decay_groups puts 1-D tensors (biases, gains) in a group without weight decay",
          "[optim][sgd]") {
  Sequential net;
  net.emplace<Linear>(4, 3);
  net.emplace<Linear>(3, 2, false);
  const auto groups = split_decay_groups(net, 5e-4);
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].names == std::vector<std::string>{"0.weight", "1.weight"});
  CHECK(groups[1].names == std::vector<std::string>{"0.bias"});
  CHECK(*groups[0].weight_decay == 5e-4);
  CHECK(*groups[1].weight_decay == 0.0);
  SGD opt(groups, {.lr = 0.1, .momentum = 0.9});  // the one-liner use
  CHECK(opt.groups().size() == 2);
}

TEST_CASE("SGD follows its schedule: lr = group lr · factor(step count)", "[optim][sgd][schedule]") {
  Tensor w = param({1.0});
  SGD opt({w}, {.lr = 0.1});
  opt.set_schedule(step_schedule(1, 0.5));
  std::vector<double> lrs, ws;
  for (int s = 0; s < 3; ++s) {
    lrs.push_back(opt.current_lr());
    w.set_grad(from_vector(std::vector<double>{1.0}));
    opt.step();
    ws.push_back(w.item());
  }
  check_close(lrs, {0.1, 0.05, 0.025});
  check_close(ws, {0.9, 0.85, 0.825});
  CHECK(opt.step_count() == 3);
}

TEST_CASE("SGD reuses its momentum buffers, skips parameters without a gradient, and zero_grad drops grads",
          "[optim][sgd]") {
  Tensor a = param({1.0, 2.0}), b = param({3.0});
  SGD opt({a, b}, {.lr = 0.1, .momentum = 0.9, .nesterov = true, .weight_decay = 0.01});
  a.set_grad(ones({2}, kFloat64));
  opt.step();
  CHECK(b.item() == 3.0);  // no gradient: untouched
  REQUIRE(opt.state_tensors().size() == 1);
  const void* buffer = opt.state_tensors()[0].second.raw_data();
  for (int s = 0; s < 3; ++s) {
    a.set_grad(ones({2}, kFloat64));
    opt.step();
  }
  CHECK(opt.state_tensors()[0].second.raw_data() == buffer);
  CHECK(opt.state_tensors()[0].first == "group0.param0.momentum_buffer");
  opt.zero_grad();
  CHECK_FALSE(a.grad().defined());
}

TEST_CASE("SGD rejects bad options and parameters with nl::Error", "[optim][sgd][errors]") {
  Tensor w = param({1.0});
  CHECK_THROWS_WITH(SGD({w}, {.lr = 0.1, .dampening = 0.1, .nesterov = true}), Catch::Contains("nesterov"));
  CHECK_THROWS_WITH(SGD({w}, {.lr = -1}), Catch::Contains("lr"));
  CHECK_THROWS_WITH(SGD({w, w}, {}), Catch::Contains("twice"));
  CHECK_THROWS_WITH(SGD({from_vector(std::vector<double>{1.0})}, {}), Catch::Contains("requires grad"));
}
