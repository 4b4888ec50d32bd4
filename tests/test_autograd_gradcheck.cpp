// A finite-difference gradient check for every differentiable core op, broadcasting cases included.
#include <catch2/catch.hpp>
#include <functional>

#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "core/ops.h"
#include "core/random.h"
#include "test_util.h"

using namespace nl;

namespace {

using Inputs = std::vector<Tensor>;

Tensor rnd(const Shape& shape, uint64_t seed, double lo = -2, double hi = 2) {
  Generator g(seed);
  return rand(shape, kFloat64, &g, lo, hi).requires_grad_();
}
Tensor positive(const Shape& shape, uint64_t seed) { return rnd(shape, seed, 0.5, 2.0); }

struct Case {
  std::string name;
  std::function<Tensor(const Inputs&)> f;
  std::function<Inputs()> inputs;
};

void run(const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    SECTION(c.name) { CHECK(gradcheck(c.f, c.inputs(), {}, c.name)); }
  }
}

}  // namespace

TEST_CASE("gradcheck: binary elementwise ops, with broadcasting", "[gradcheck]") {
  run({
      {"add", [](const Inputs& x) { return add(x[0], x[1]); },
       [] {
         return Inputs{rnd({3, 4}, 1), rnd({3, 4}, 2)};
       }},
      {"add broadcast [3,1]+[4]", [](const Inputs& x) { return add(x[0], x[1]); },
       [] {
         return Inputs{rnd({3, 1}, 1), rnd({4}, 2)};
       }},
      {"sub broadcast [2,3,4]-[3,1]", [](const Inputs& x) { return sub(x[0], x[1]); },
       [] {
         return Inputs{rnd({2, 3, 4}, 3), rnd({3, 1}, 4)};
       }},
      {"mul broadcast [4]*[2,4]", [](const Inputs& x) { return mul(x[0], x[1]); },
       [] {
         return Inputs{rnd({4}, 5), rnd({2, 4}, 6)};
       }},
      {"div broadcast", [](const Inputs& x) { return div(x[0], x[1]); },
       [] {
         return Inputs{rnd({2, 3}, 7), positive({3}, 8)};
       }},
      {"pow tensor exponent", [](const Inputs& x) { return pow(x[0], x[1]); },
       [] {
         return Inputs{positive({2, 3}, 9), rnd({2, 3}, 10)};
       }},
      {"maximum broadcast", [](const Inputs& x) { return maximum(x[0], x[1]); },
       [] {
         return Inputs{rnd({2, 3}, 11), rnd({1, 3}, 12)};
       }},
      {"minimum", [](const Inputs& x) { return minimum(x[0], x[1]); },
       [] {
         return Inputs{rnd({2, 3}, 13), rnd({2, 3}, 14)};
       }},
      {"where broadcast", [](const Inputs& x) { return where(gt(x[0], zeros({1}, kFloat64)), x[0], x[1]); },
       [] {
         return Inputs{rnd({2, 3}, 15), rnd({3}, 16)};
       }},
      {"scalar add/sub/mul/div", [](const Inputs& x) { return div(mul(sub(add(x[0], 2.0), 0.5), 3.0), 4.0); },
       [] { return Inputs{rnd({5}, 17)}; }},
      {"operators with scalars on the left", [](const Inputs& x) { return (1.0 - x[0]) * 2.0 + 3.0 * x[0]; },
       [] { return Inputs{rnd({5}, 18)}; }},
  });
}

TEST_CASE("gradcheck: unary elementwise ops", "[gradcheck]") {
  run({
      {"neg", [](const Inputs& x) { return neg(x[0]); }, [] { return Inputs{rnd({6}, 1)}; }},
      {"abs", [](const Inputs& x) { return abs(x[0]); }, [] { return Inputs{rnd({6}, 2)}; }},
      {"exp", [](const Inputs& x) { return exp(x[0]); }, [] { return Inputs{rnd({6}, 3)}; }},
      {"log", [](const Inputs& x) { return log(x[0]); }, [] { return Inputs{positive({6}, 4)}; }},
      {"sqrt", [](const Inputs& x) { return sqrt(x[0]); }, [] { return Inputs{positive({6}, 5)}; }},
      {"rsqrt", [](const Inputs& x) { return rsqrt(x[0]); }, [] { return Inputs{positive({6}, 6)}; }},
      {"square", [](const Inputs& x) { return square(x[0]); }, [] { return Inputs{rnd({6}, 7)}; }},
      {"pow scalar", [](const Inputs& x) { return pow(x[0], 2.5); }, [] { return Inputs{positive({6}, 8)}; }},
      {"clamp", [](const Inputs& x) { return clamp(x[0], -0.5, 0.7); }, [] { return Inputs{rnd({12}, 9)}; }},
      {"relu", [](const Inputs& x) { return relu(x[0]); }, [] { return Inputs{rnd({12}, 10)}; }},
      {"leaky_relu", [](const Inputs& x) { return leaky_relu(x[0], 0.2); },
       [] { return Inputs{rnd({12}, 11)}; }},
      {"gelu", [](const Inputs& x) { return gelu(x[0]); }, [] { return Inputs{rnd({12}, 12)}; }},
      {"sigmoid", [](const Inputs& x) { return sigmoid(x[0]); }, [] { return Inputs{rnd({12}, 13)}; }},
      {"tanh", [](const Inputs& x) { return tanh(x[0]); }, [] { return Inputs{rnd({12}, 14)}; }},
      {"softplus", [](const Inputs& x) { return softplus(x[0]); }, [] { return Inputs{rnd({12}, 15)}; }},
  });
}

TEST_CASE("gradcheck: reductions and softmax", "[gradcheck]") {
  run({
      {"sum all", [](const Inputs& x) { return sum(x[0]); },
       [] {
         return Inputs{rnd({2, 3, 4}, 1)};
       }},
      {"sum axes {0,2} keepdim",
       [](const Inputs& x) {
         return sum(x[0], {0, 2}, true);
       },
       [] {
         return Inputs{rnd({2, 3, 4}, 2)};
       }},
      {"mean axis -1", [](const Inputs& x) { return mean(x[0], {-1}); },
       [] {
         return Inputs{rnd({2, 3, 4}, 3)};
       }},
      {"var unbiased axis 1", [](const Inputs& x) { return var(x[0], {1}); },
       [] {
         return Inputs{rnd({2, 5, 3}, 4)};
       }},
      {"var biased axes {0,2}",
       [](const Inputs& x) {
         return var(x[0], {0, 2}, false, true);
       },
       [] {
         return Inputs{rnd({2, 5, 3}, 5)};
       }},
      {"stddev", [](const Inputs& x) { return stddev(x[0], {1}); },
       [] {
         return Inputs{rnd({3, 6}, 6)};
       }},
      {"max axis 1", [](const Inputs& x) { return max(x[0], {1}); },
       [] {
         return Inputs{rnd({3, 5}, 7)};
       }},
      {"min all", [](const Inputs& x) { return min(x[0]); },
       [] {
         return Inputs{rnd({3, 5}, 8)};
       }},
      {"logsumexp", [](const Inputs& x) { return logsumexp(x[0], {1}); },
       [] {
         return Inputs{rnd({3, 5}, 9)};
       }},
      {"softmax dim 1", [](const Inputs& x) { return softmax(x[0], 1); },
       [] {
         return Inputs{rnd({2, 4, 3}, 10)};
       }},
      {"log_softmax dim -1", [](const Inputs& x) { return log_softmax(x[0], -1); },
       [] {
         return Inputs{rnd({3, 5}, 11)};
       }},
      {"log_softmax dim 0", [](const Inputs& x) { return log_softmax(x[0], 0); },
       [] {
         return Inputs{rnd({4, 3}, 12)};
       }},
  });
}

TEST_CASE("gradcheck: matmul", "[gradcheck]") {
  run({
      {"matmul 2-D", [](const Inputs& x) { return matmul(x[0], x[1]); },
       [] {
         return Inputs{rnd({3, 4}, 1), rnd({4, 5}, 2)};
       }},
      {"matmul transposed operands", [](const Inputs& x) { return matmul(x[0].t(), x[1].t()); },
       [] {
         return Inputs{rnd({4, 3}, 3), rnd({5, 4}, 4)};
       }},
      {"matmul batched broadcast", [](const Inputs& x) { return matmul(x[0], x[1]); },
       [] {
         return Inputs{rnd({2, 1, 3, 4}, 5), rnd({3, 4, 2}, 6)};
       }},
      {"matmul N-D by 2-D", [](const Inputs& x) { return matmul(x[0], x[1]); },
       [] {
         return Inputs{rnd({2, 3, 4}, 7), rnd({4, 2}, 8)};
       }},
      {"matmul vector-matrix", [](const Inputs& x) { return matmul(x[0], x[1]); },
       [] {
         return Inputs{rnd({4}, 9), rnd({4, 3}, 10)};
       }},
      {"matmul dot", [](const Inputs& x) { return matmul(x[0], x[1]); },
       [] {
         return Inputs{rnd({4}, 11), rnd({4}, 12)};
       }},
  });
}

TEST_CASE("gradcheck: views, joins and indexing", "[gradcheck]") {
  run({
      {"reshape",
       [](const Inputs& x) {
         return x[0].reshape({4, -1});
       },
       [] {
         return Inputs{rnd({2, 6}, 1)};
       }},
      {"permute",
       [](const Inputs& x) {
         return x[0].permute({2, 0, 1});
       },
       [] {
         return Inputs{rnd({2, 3, 4}, 2)};
       }},
      {"transpose then reshape (copy)", [](const Inputs& x) { return x[0].transpose(0, 1).reshape({-1}); },
       [] {
         return Inputs{rnd({2, 3}, 3)};
       }},
      {"narrow", [](const Inputs& x) { return x[0].narrow(1, 1, 2); },
       [] {
         return Inputs{rnd({3, 4}, 4)};
       }},
      {"slice with step", [](const Inputs& x) { return x[0].slice(0, 0, 5, 2); },
       [] {
         return Inputs{rnd({5, 2}, 5)};
       }},
      {"select", [](const Inputs& x) { return x[0].select(1, 2); },
       [] {
         return Inputs{rnd({3, 4}, 6)};
       }},
      {"unsqueeze/squeeze", [](const Inputs& x) { return x[0].unsqueeze(1).squeeze(1); },
       [] {
         return Inputs{rnd({3, 2}, 7)};
       }},
      {"expand",
       [](const Inputs& x) {
         return x[0].expand({4, 3});
       },
       [] {
         return Inputs{rnd({1, 3}, 8)};
       }},
      {"flatten", [](const Inputs& x) { return x[0].flatten(1); },
       [] {
         return Inputs{rnd({2, 3, 2}, 9)};
       }},
      {"clone and contiguous", [](const Inputs& x) { return x[0].t().contiguous().clone(); },
       [] {
         return Inputs{rnd({2, 3}, 10)};
       }},
      {"cat",
       [](const Inputs& x) {
         return cat({x[0], x[1]}, 1);
       },
       [] {
         return Inputs{rnd({2, 3}, 12), rnd({2, 1}, 13)};
       }},
      {"stack",
       [](const Inputs& x) {
         return stack({x[0], x[1]}, 0);
       },
       [] {
         return Inputs{rnd({3}, 14), rnd({3}, 15)};
       }},
      {"index_select with repeats",
       [](const Inputs& x) {
         return index_select(x[0], 1, from_vector(std::vector<int64_t>{2, 0, 2}));
       },
       [] {
         return Inputs{rnd({2, 3, 2}, 16)};
       }},
      {"sum_to",
       [](const Inputs& x) {
         return sum_to(x[0], {3, 1});
       },
       [] {
         return Inputs{rnd({2, 3, 4}, 17)};
       }},
  });
}

TEST_CASE("to() sends the gradient back in the source dtype", "[autograd]") {
  // Not a finite-difference case: rounding to float32 is not smooth at a 1e-6 step.
  Tensor x = tensor({1.0, 2.0, 3.0}, kFloat64).requires_grad_();
  sum(mul(x.to(kFloat32), tensor({1, 10, 100}))).backward();
  CHECK(x.grad().dtype() == kFloat64);
  CHECK(test::values(x.grad()) == std::vector<double>{1, 10, 100});
}

TEST_CASE("gradcheck reports a wrong backward with the op, input, index and values", "[gradcheck]") {
  // A deliberately wrong op: y = 2x, but its backward claims dy/dx = 3.
  auto wrong = [](const Inputs& x) {
    Tensor out = mul(x[0].detach(), 2.0);
    return record(out, "wrong_double", {x[0]},
                  [](const Tensor& g) { return std::vector<Tensor>{mul(g, 3.0)}; });
  };
  REQUIRE_THROWS_WITH(
      gradcheck(wrong, {rnd({3}, 1)}),
      Catch::Contains("gradcheck failed for wrong_double: input 0 (shape [3]), flat index 0") &&
          Catch::Contains("expected (finite differences)"));
  REQUIRE_THROWS_WITH(gradcheck(wrong, {ones({3}).requires_grad_()}), Catch::Contains("need float64"));
}
