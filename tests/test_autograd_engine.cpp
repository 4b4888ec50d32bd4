// The autograd engine: accumulation, hooks, retain_grad, no_grad, detach, deep graphs and its checks.
#include <catch2/catch.hpp>

#include "autograd/engine.h"
#include "core/ops.h"
#include "core/random.h"
#include "test_util.h"

using namespace nl;
using test::values;

TEST_CASE("gradients accumulate into .grad across backward passes", "[autograd]") {
  Tensor w = tensor({1, 2, 3}).requires_grad_();
  sum(mul(w, w)).backward();
  CHECK(values(w.grad()) == std::vector<double>{2, 4, 6});
  sum(mul(w, w)).backward();  // no zero_grad: the second pass adds
  CHECK(values(w.grad()) == std::vector<double>{4, 8, 12});
  w.zero_grad();
  CHECK_FALSE(w.grad().defined());
  sum(w).backward();
  CHECK(values(w.grad()) == std::vector<double>{1, 1, 1});
}

TEST_CASE("a tensor used twice receives the sum of both paths", "[autograd]") {
  Tensor x = tensor({2.0}).requires_grad_();
  const Tensor y = add(mul(x, x), mul(x, 3.0));  // y = x² + 3x, dy/dx = 2x + 3 = 7
  y.backward();
  CHECK(x.grad().item() == 7);
}

TEST_CASE("backward with an explicit upstream gradient", "[autograd]") {
  Tensor x = tensor({1, 2}).requires_grad_();
  const Tensor y = mul(x, 3.0);
  y.backward(tensor({10, 100}));
  CHECK(values(x.grad()) == std::vector<double>{30, 300});
  REQUIRE_THROWS_WITH(y.backward(tensor({1})),
                      "backward: grad_output has shape [1] but the tensor has shape [2]");
  REQUIRE_THROWS_WITH(y.backward(), Catch::Contains("only a one-element output can seed itself"));
}

TEST_CASE("no_grad stops recording; detach cuts the graph", "[autograd]") {
  Tensor x = tensor({1, 2}).requires_grad_();
  {
    NoGradGuard guard;
    CHECK_FALSE(grad_mode_enabled());
    CHECK_FALSE(mul(x, 2.0).requires_grad());
  }
  CHECK(grad_mode_enabled());
  const Tensor d = x.detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.impl()->storage == x.impl()->storage);
  const Tensor y = add(mul(x, x.detach()), x);  // treats the detached factor as a constant
  sum(y).backward();
  CHECK(values(x.grad()) == std::vector<double>{2, 3});
  REQUIRE_THROWS_WITH(sum(d).backward(), Catch::Contains("does not require grad"));
}

TEST_CASE("retain_grad keeps a non-leaf gradient; hooks see and may replace it", "[autograd]") {
  Tensor x = tensor({1, 2}).requires_grad_();
  Tensor h = mul(x, 2.0);
  h.retain_grad();
  std::vector<double> seen;
  h.register_hook([&](const Tensor& g) {
    seen = values(g);
    return mul(g, 10.0);  // replaces the gradient flowing on
  });
  sum(mul(h, 3.0)).backward();
  CHECK(seen == std::vector<double>{3, 3});
  CHECK(values(h.grad()) == std::vector<double>{30, 30});  // retain_grad stores the hooked gradient
  CHECK(values(x.grad()) == std::vector<double>{60, 60});
  // A hook that returns an undefined tensor leaves the gradient unchanged.
  Tensor z = tensor({1.0}).requires_grad_();
  z.register_hook([](const Tensor&) { return Tensor(); });
  mul(z, 5.0).backward();
  CHECK(z.grad().item() == 5);
}

TEST_CASE("a deep graph does not overflow the stack", "[autograd]") {
  Tensor x = tensor({1.0}).requires_grad_();
  Tensor y = x;
  for (int i = 0; i < 100000; ++i) y = add(y, 1e-6);
  y.backward();
  CHECK(x.grad().item() == 1);
}

TEST_CASE("the engine rejects a gradient of the wrong shape and names the op", "[autograd][errors]") {
  Tensor x = tensor({1, 2, 3}).requires_grad_();
  Tensor y =
      record(ones({3}), "broken_op", {x}, [](const Tensor&) { return std::vector<Tensor>{ones({2})}; });
  REQUIRE_THROWS_WITH(
      sum(y).backward(),
      "backward of broken_op: gradient for input 0 has shape [2] but the input has shape [3]");
}

TEST_CASE("backward through views writes into the right elements", "[autograd][views]") {
  Tensor x = arange(0.0, 6.0, 1.0, kFloat64).reshape({2, 3}).contiguous();
  x.requires_grad_();
  const Tensor y = mul(x.t().narrow(0, 1, 2), tensor({{1, 10}, {100, 1000}}, kFloat64));
  sum(y).backward();
  // y = x.t()[1:3] : elements x[0][1], x[1][1], x[0][2], x[1][2] with weights 1, 10, 100, 1000
  CHECK(values(x.grad()) == std::vector<double>{0, 1, 100, 0, 10, 1000});
}

TEST_CASE("requires_grad only on float tensors", "[autograd][errors]") {
  Tensor i = arange(3);
  REQUIRE_THROWS_WITH(i.requires_grad_(), "requires_grad_: only float tensors can require grad, got int64");
}

TEST_CASE("the order of the backward pass is deterministic", "[autograd]") {
  // The same graph built twice visits its nodes in the same order: record the hook firing order.
  auto run = [] {
    std::vector<int> order;
    Tensor a = tensor({1.0}).requires_grad_(), b = tensor({2.0}).requires_grad_();
    Tensor p = mul(a, b), q = add(a, b), r = mul(p, q);
    p.register_hook([&](const Tensor& g) {
      order.push_back(1);
      return g;
    });
    q.register_hook([&](const Tensor& g) {
      order.push_back(2);
      return g;
    });
    a.register_hook([&](const Tensor& g) {
      order.push_back(3);
      return g;
    });
    b.register_hook([&](const Tensor& g) {
      order.push_back(4);
      return g;
    });
    r.backward();
    return order;
  };
  const std::vector<int> first = run();
  CHECK(first.size() == 4);
  for (int i = 0; i < 5; ++i) CHECK(run() == first);
}

TEST_CASE(".grad never aliases another tensor's gradient or the caller's grad_output", "[autograd]") {
  Tensor a = tensor({1, 2}).requires_grad_(), b = tensor({3, 4}).requires_grad_();
  const Tensor upstream = tensor({1, 1});
  add(a, b).backward(upstream);  // add's backward hands the same gradient tensor to both inputs
  a.grad().add_(tensor({100, 100}));
  CHECK(values(b.grad()) == std::vector<double>{1, 1});
  CHECK(values(upstream) == std::vector<double>{1, 1});
  Tensor leaf = tensor({5, 6}).requires_grad_();
  leaf.backward(upstream);  // backward from a leaf: its .grad is a copy of grad_output
  leaf.grad().add_(tensor({1, 1}));
  CHECK(values(upstream) == std::vector<double>{1, 1});
}
