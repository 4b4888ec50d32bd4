// Vector maths: norm and argmin (core/ops_reduce.cpp); dot, cosine_similarity, diagonal, trace and bincount
// (core/ops_vector.cpp).
// Forward values against hand-computed results and PyTorch's documented semantics, float64 gradchecks with
// a random upstream gradient, the gradient of norm at zero and at tied maxima, bad input, and backward
// adding into a pre-filled gradient.
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <limits>
#include <string>

#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "core/ops.h"
#include "core/random.h"
#include "test_util.h"

using namespace nl;
using test::allclose;
using test::values;

namespace {

using Inputs = std::vector<Tensor>;
using Fn = std::function<Tensor(const Inputs&)>;

constexpr double kInf = std::numeric_limits<double>::infinity();

Tensor rnd(const Shape& shape, uint64_t seed, double lo = -2, double hi = 2) {
  Generator g(seed);
  return rand(shape, kFloat64, &g, lo, hi).requires_grad_();
}

// Magnitudes in [0.5, 2) with random signs: away from 0, where |x| has a kink, and (almost surely) without
// ties in |x|, where the inf norm has one.
Tensor away_from_zero(const Shape& shape, uint64_t seed) {
  Generator g(seed);
  const Tensor magnitude = rand(shape, kFloat64, &g, 0.5, 2.0);
  const Tensor sign = sub(mul(gt(rand(shape, kFloat64, &g), scalar_tensor(0.5, kFloat64)), 2.0), 1.0);
  return mul(magnitude, sign).requires_grad_();
}

// The gradient f gives its inputs for an upstream gradient of ones, from fresh leaves.
std::vector<Tensor> grads_of(const Fn& f, const Inputs& inputs) {
  Inputs leaves;
  for (const Tensor& x : inputs) leaves.push_back(x.detach().clone().requires_grad_());
  const Tensor y = f(leaves);
  y.backward(ones_like(y));
  std::vector<Tensor> grads;
  for (const Tensor& x : leaves) grads.push_back(x.grad());
  return grads;
}

// Backward must add into an existing gradient: run once from a clean leaf, then again from a pre-filled one.
void check_backward_adds(const Fn& f, const Inputs& inputs, uint64_t seed) {
  Generator gen(seed);
  Inputs leaves;
  for (const Tensor& x : inputs) leaves.push_back(x.detach().clone().requires_grad_());
  const Tensor y0 = f(leaves);
  const Tensor dy = randn(y0.shape(), kFloat64, &gen);
  y0.backward(dy);
  std::vector<Tensor> fresh, prefill;
  for (Tensor& x : leaves) {
    fresh.push_back(x.grad().clone());
    prefill.push_back(randn(x.shape(), kFloat64, &gen));
    x.set_grad(prefill.back().clone());
  }
  f(leaves).backward(dy);
  for (size_t i = 0; i < leaves.size(); ++i)
    CHECK(allclose(leaves[i].grad(), prefill[i] + fresh[i], 1e-12, 1e-12));
}

}  // namespace

// ---- norm -------------------------------------------------------------------------------------------------

TEST_CASE("norm: [3, -4] has norms 5, 7 and 4 for p = 2, 1 and inf, as torch.linalg.vector_norm",
          "[ops][vector][norm]") {
  for (DType dtype : {kFloat32, kFloat64}) {
    const Tensor x = tensor({3, -4}, dtype);
    const Tensor n2 = norm(x);
    CHECK(n2.shape() == Shape{});
    CHECK(n2.dtype() == dtype);
    CHECK(n2.item() == 5);
    CHECK(norm(x, 1).item() == 7);
    CHECK(norm(x, INFINITY).item() == 4);
    CHECK(norm(x, 3).item() == Approx(std::cbrt(27.0 + 64.0)));
    CHECK(norm(x, 0.5).item() == Approx(std::pow(std::sqrt(3.0) + 2.0, 2.0)));
  }
  CHECK(norm(scalar_tensor(-3.0, kFloat64)).item() == 3);
  CHECK(norm(zeros({0}, kFloat64)).item() == 0);  // an empty sum
}

TEST_CASE("norm over chosen axes, with keepdim", "[ops][vector][norm]") {
  const Tensor x = tensor({{3, 4, 0}, {-1, 2, -2}}, kFloat64);
  CHECK(values(norm(x, 2, {1})) == std::vector<double>{5, 3});
  CHECK(norm(x, 2, {1}, true).shape() == Shape{2, 1});
  CHECK(values(norm(x, 1, {0})) == std::vector<double>{4, 6, 2});
  CHECK(values(norm(x, INFINITY, {-1})) == std::vector<double>{4, 2});
  CHECK(norm(x, 2, {0, 1}).item() == Approx(std::sqrt(9.0 + 16 + 1 + 4 + 4)));
  // A 3-D tensor over the first and last axes equals the norm of each middle slice.
  const Tensor y = arange(-12.0, 12.0, 1.0, kFloat64).reshape({2, 3, 4});
  const Tensor n = norm(y, 3, {0, -1}, true);
  CHECK(n.shape() == Shape{1, 3, 1});
  for (int64_t j = 0; j < 3; ++j) CHECK(values(n)[j] == Approx(norm(y.select(1, j), 3).item()));
}

TEST_CASE("norm accumulates in double: float32 squares that would overflow do not", "[ops][vector][norm]") {
  const Tensor x = tensor({3e20, -4e20});  // float32: 1.6e41 is past FLT_MAX
  const Tensor n = norm(x);
  CHECK(n.dtype() == kFloat32);
  CHECK(n.item() == Approx(5e20).epsilon(1e-6));
}

TEST_CASE("gradcheck: norm at p = 1, 2, 3, 0.5 and inf, over all axes and over some",
          "[ops][vector][norm][gradcheck]") {
  for (double p : {1.0, 2.0, 3.0, 0.5, kInf}) {
    const std::string label = "norm p = " + std::to_string(p);
    CHECK(gradcheck([p](const Inputs& x) { return norm(x[0], p); }, {away_from_zero({7}, 1)}, {}, label));
    CHECK(gradcheck(
        [p](const Inputs& x) {
          return norm(x[0], p, {0, 2});
        },
        {away_from_zero({3, 2, 4}, 2)}, {}, label + " axes {0, 2}"));
    CHECK(gradcheck([p](const Inputs& x) { return norm(x[0], p, {-1}, true); }, {away_from_zero({4, 5}, 3)},
                    {}, label + " keepdim"));
  }
}

TEST_CASE("norm's gradient at x = 0 is 0, not NaN, for every p", "[ops][vector][norm]") {
  for (double p : {1.0, 2.0, 3.0, 0.5, kInf}) {
    INFO("p = " << p);
    const Tensor x = zeros({4}, kFloat64).requires_grad_();
    norm(x, p).backward(scalar_tensor(1.5, kFloat64));
    CHECK(values(x.grad()) == std::vector<double>{0, 0, 0, 0});
    // A zero row next to a nonzero one: 0 for the zero row, x/‖x‖ (p = 2) for the other.
    const Tensor rows = tensor({{0, 0}, {3, -4}}, kFloat64).requires_grad_();
    norm(rows, p, {1}).backward(tensor({1, 1}, kFloat64));
    const std::vector<double> g = values(rows.grad());
    for (double v : g) CHECK(std::isfinite(v));
    CHECK(g[0] == 0);
    CHECK(g[1] == 0);
  }
  const Tensor rows = tensor({{0, 0}, {3, -4}}, kFloat64).requires_grad_();
  norm(rows, 2, {1}).backward(tensor({1, 1}, kFloat64));
  CHECK(allclose(rows.grad(), tensor({{0, 0}, {0.6, -0.8}}, kFloat64), 1e-15, 1e-15));
}

TEST_CASE("norm p = inf splits the gradient evenly between tied maxima, as PyTorch", "[ops][vector][norm]") {
  const Tensor x = tensor({1, -3, 3, 2}, kFloat64).requires_grad_();
  norm(x, INFINITY).backward(scalar_tensor(2.0, kFloat64));
  CHECK(values(x.grad()) == std::vector<double>{0, -1, 1, 0});  // dy·sign(x)/2 at each of the two maxima
  // Per row, over an axis: three ties in row 0, one maximum in row 1.
  const Tensor y = tensor({{2, -2, 2}, {1, 5, 0}}, kFloat64).requires_grad_();
  norm(y, INFINITY, {1}).backward(tensor({3, 1}, kFloat64));
  CHECK(values(y.grad()) == std::vector<double>{1, -1, 1, 0, 1, 0});
}

TEST_CASE("norm backward adds into an existing gradient", "[ops][vector][norm]") {
  for (double p : {1.0, 2.0, 3.0, kInf})
    check_backward_adds([p](const Inputs& x) { return norm(x[0], p, {1}); }, {away_from_zero({3, 4}, 4)}, 5);
}

TEST_CASE("norm errors name the op and the bad argument", "[ops][vector][norm][errors]") {
  const Tensor x = ones({2, 3});
  CHECK_THROWS_WITH(norm(x, 0), Catch::Contains("norm: p must be > 0") && Catch::Contains("p = 0"));
  CHECK_THROWS_WITH(norm(x, -1), Catch::Contains("norm: p must be > 0") && Catch::Contains("p = -1"));
  CHECK_THROWS_WITH(norm(x, NAN), Catch::Contains("norm: p must be > 0") && Catch::Contains("p = nan"));
  CHECK_THROWS_WITH(norm(x, -INFINITY), Catch::Contains("norm: p must be > 0"));
  CHECK_THROWS_WITH(norm(arange(4)),
                    Catch::Contains("norm: expected a float32 or float64 tensor, got int64"));
  CHECK_THROWS_WITH(norm(x, 2, {2}), Catch::Contains("norm: dim 2 is out of range for a tensor of rank 2"));
  CHECK_THROWS_WITH(norm(x, 2, {1, -1}), Catch::Contains("norm: axis 1 is listed twice"));
  CHECK_THROWS_WITH(norm(zeros({0, 3}), INFINITY),
                    Catch::Contains("norm: the inf norm") && Catch::Contains("shape [0, 3]"));
}

// ---- dot --------------------------------------------------------------------------------------------------

TEST_CASE("dot: Σ a·b of two 1-D tensors, a scalar", "[ops][vector][dot]") {
  const Tensor d = dot(tensor({1, 2, 3}), tensor({4, -5, 6}));
  CHECK(d.shape() == Shape{});
  CHECK(d.dtype() == kFloat32);
  CHECK(d.item() == 4 - 10 + 18);
  CHECK(dot(zeros({0}, kFloat64), zeros({0}, kFloat64)).item() == 0);
  CHECK(dot(tensor({1, 2, 3, 4}, kFloat64).slice(0, 0, 4, 2), tensor({5, 7}, kFloat64)).item() == 5 + 21);
}

TEST_CASE("gradcheck: dot, and its backward adds", "[ops][vector][dot][gradcheck]") {
  const Fn f = [](const Inputs& x) { return dot(x[0], x[1]); };
  CHECK(gradcheck(f, {rnd({6}, 10), rnd({6}, 11)}, {}, "dot"));
  const std::vector<Tensor> g = grads_of(f, {tensor({1, 2}, kFloat64), tensor({3, 4}, kFloat64)});
  CHECK(values(g[0]) == std::vector<double>{3, 4});  // da = dy·b
  CHECK(values(g[1]) == std::vector<double>{1, 2});  // db = dy·a
  check_backward_adds(f, {rnd({5}, 12), rnd({5}, 13)}, 14);
}

TEST_CASE("dot errors name the shapes and dtypes", "[ops][vector][dot][errors]") {
  CHECK_THROWS_WITH(dot(ones({3}), ones({4})),
                    Catch::Contains("dot: a has shape [3] but b has shape [4]: lengths differ"));
  CHECK_THROWS_WITH(
      dot(ones({2, 3}), ones({3})),
      Catch::Contains("dot: expected two 1-D tensors, got a of shape [2, 3] and b of shape [3]"));
  CHECK_THROWS_WITH(dot(ones({3}), ones({3}, kFloat64)),
                    Catch::Contains("dot: dtypes differ: a is float32, b is float64"));
}

// ---- cosine similarity ------------------------------------------------------------------------------------

TEST_CASE("cosine_similarity of parallel, opposite, orthogonal and zero vectors", "[ops][vector][cosine]") {
  const Tensor a = tensor({{1, 2, 3}, {1, 0, 0}, {0, 0, 0}, {1, 1, 0}}, kFloat64);
  const Tensor b = tensor({{2, 4, 6}, {0, 5, 0}, {1, 2, 3}, {-3, -3, 0}}, kFloat64);
  const Tensor c = cosine_similarity(a, b);  // dim 1
  CHECK(c.shape() == Shape{4});
  const std::vector<double> v = values(c);
  CHECK(v[0] == Approx(1.0));
  CHECK(v[1] == 0);
  CHECK(v[2] == 0);  // a zero vector: 0 / (eps · ‖b‖), not NaN
  CHECK(v[3] == Approx(-1.0));
  // Along dim 0, and with broadcasting: [1, 3] against [4, 3].
  CHECK(cosine_similarity(tensor({3, 0}, kFloat64), tensor({4, 4}, kFloat64), 0).item() ==
        Approx(12 / (3 * std::sqrt(32.0))));
  const Tensor row = tensor({{1, 0, 0}}, kFloat64);
  CHECK(allclose(
      cosine_similarity(row, b),
      from_vector(std::vector<double>{2 / std::sqrt(56.0), 0, 1 / std::sqrt(14.0), -1 / std::sqrt(2.0)}),
      1e-12, 1e-12));
  CHECK(cosine_similarity(randn({2, 5, 3}), randn({5, 1}), -1).shape() == Shape{2, 5});
  CHECK(cosine_similarity(tensor({1, 1}), tensor({1, 1}), 0).dtype() == kFloat32);
  // eps only matters below it: for ‖a‖ = 1e-3 and eps = 1e-2, a / eps has norm 0.1.
  CHECK(cosine_similarity(tensor({1e-3, 0}, kFloat64), tensor({1, 0}, kFloat64), 0, 1e-2).item() ==
        Approx(0.1));
}

TEST_CASE("gradcheck: cosine_similarity, broadcasting, any dim; finite gradient at a zero vector",
          "[ops][vector][cosine][gradcheck]") {
  CHECK(gradcheck([](const Inputs& x) { return cosine_similarity(x[0], x[1]); },
                  {rnd({3, 4}, 20), rnd({3, 4}, 21)}, {}, "cosine_similarity dim 1"));
  CHECK(gradcheck([](const Inputs& x) { return cosine_similarity(x[0], x[1], 0); },
                  {rnd({4, 3}, 22), rnd({4, 1}, 23)}, {}, "cosine_similarity dim 0, broadcast [4, 1]"));
  CHECK(gradcheck([](const Inputs& x) { return cosine_similarity(x[0], x[1], -1); },
                  {rnd({1, 5}, 24), rnd({2, 3, 5}, 25)}, {}, "cosine_similarity dim -1, broadcast [1, 5]"));
  // a = 0: y = Σ (a/eps)·(b/‖b‖), so da = dy · b / (eps·‖b‖) (large but finite) and db = 0.
  const std::vector<Tensor> g = grads_of([](const Inputs& x) { return cosine_similarity(x[0], x[1], 0); },
                                         {zeros({2}, kFloat64), tensor({3, 4}, kFloat64)});
  CHECK(allclose(g[0], tensor({0.6e8, 0.8e8}, kFloat64), 1e-12, 0));
  CHECK(values(g[1]) == std::vector<double>{0, 0});
  check_backward_adds([](const Inputs& x) { return cosine_similarity(x[0], x[1]); },
                      {rnd({3, 4}, 26), rnd({1, 4}, 27)}, 28);
}

TEST_CASE("cosine_similarity errors name the op", "[ops][vector][cosine][errors]") {
  CHECK_THROWS_WITH(cosine_similarity(ones({2, 3}), ones({2, 4})),
                    Catch::Contains("cosine_similarity: shapes [2, 3] and [2, 4] cannot be broadcast"));
  CHECK_THROWS_WITH(cosine_similarity(ones({2, 3}), ones({2, 3}, kFloat64)),
                    Catch::Contains("cosine_similarity: dtypes differ: a is float32, b is float64"));
  CHECK_THROWS_WITH(cosine_similarity(ones({2, 3}), ones({2, 3}), 2),
                    Catch::Contains("cosine_similarity: dim 2 is out of range for a tensor of rank 2"));
  CHECK_THROWS_WITH(cosine_similarity(ones({3}), ones({3}), 0, -1.0),
                    Catch::Contains("cosine_similarity: eps must be >= 0, got -1"));
  CHECK_THROWS_WITH(cosine_similarity(arange(3), arange(3), 0),
                    Catch::Contains("cosine_similarity: expected float32 or float64 tensors, got int64"));
}

// ---- diagonal and trace -----------------------------------------------------------------------------------

TEST_CASE("diagonal of a 3x4 matrix at offsets 0, ±1 and past the edge", "[ops][vector][diagonal]") {
  // [[0, 1,  2,  3],
  //  [4, 5,  6,  7],
  //  [8, 9, 10, 11]]
  const Tensor x = arange(0.0, 12.0, 1.0, kFloat64).reshape({3, 4});
  CHECK(values(diagonal(x)) == std::vector<double>{0, 5, 10});
  CHECK(values(diagonal(x, 1)) == std::vector<double>{1, 6, 11});
  CHECK(values(diagonal(x, -1)) == std::vector<double>{4, 9});
  CHECK(values(diagonal(x, 3)) == std::vector<double>{3});
  CHECK(values(diagonal(x, -2)) == std::vector<double>{8});
  CHECK(diagonal(x, 4).shape() == Shape{0});
  CHECK(diagonal(x, -3).shape() == Shape{0});
  CHECK(diagonal(x, 1000000).shape() == Shape{0});
  CHECK(values(diagonal(x, 0, 1, 0)) == std::vector<double>{0, 5, 10});  // x[i, i] either way
  CHECK(values(diagonal(x, 1, 1, 0)) == std::vector<double>{4, 9});      // x[i + 1, i]: below
  // Of a transposed (strided) input: x.t() is 4x3 and its diagonal at +1 is x[i + 1, i].
  CHECK(values(diagonal(x.t(), 1)) == std::vector<double>{4, 9});
}

TEST_CASE("diagonal of a 3-D tensor over dims (1, 2) and (0, 2); it is a view", "[ops][vector][diagonal]") {
  const Tensor x = arange(0.0, 24.0, 1.0, kFloat64).reshape({2, 3, 4});  // x[b, i, j] = 12b + 4i + j
  const Tensor d = diagonal(x, 0, 1, 2);
  CHECK(d.shape() == Shape{2, 3});
  CHECK(values(d) == std::vector<double>{0, 5, 10, 12, 17, 22});
  CHECK(values(diagonal(x, 1, 1, 2)) == std::vector<double>{1, 6, 11, 13, 18, 23});
  CHECK(values(diagonal(x, -1, 1, 2)) == std::vector<double>{4, 9, 16, 21});
  CHECK(values(diagonal(x, 1, 2, 1)) == std::vector<double>{4, 9, 16, 21});  // x[b, i + 1, i]
  // dims (0, 2): the result is [3, 2], result[i, k] = x[k, i, k].
  const Tensor e = diagonal(x, 0, 0, -1);
  CHECK(e.shape() == Shape{3, 2});
  CHECK(values(e) == std::vector<double>{0, 13, 4, 17, 8, 21});
  // A view: it shares x's storage, so writing through it writes into x.
  CHECK(d.impl()->storage == x.impl()->storage);
  Tensor base = zeros({3, 3}, kFloat64);
  diagonal(base).copy_(tensor({1, 2, 3}, kFloat64));
  CHECK(values(base) == std::vector<double>{1, 0, 0, 0, 2, 0, 0, 0, 3});
}

TEST_CASE("gradcheck: diagonal at several offsets and dims, and its backward adds",
          "[ops][vector][diagonal][gradcheck]") {
  struct Case {
    int64_t offset, dim1, dim2;
    Shape shape;
  };
  for (const Case& c : std::vector<Case>{{0, 0, 1, {3, 4}},
                                         {1, 0, 1, {3, 4}},
                                         {-1, 0, 1, {3, 4}},
                                         {1, 1, 2, {2, 3, 4}},
                                         {-1, 2, 0, {3, 2, 4}},
                                         {5, 0, 1, {3, 4}}}) {
    const std::string label = "diagonal offset " + std::to_string(c.offset) + " dims " +
                              std::to_string(c.dim1) + ", " + std::to_string(c.dim2);
    const Fn f = [c](const Inputs& x) { return diagonal(x[0], c.offset, c.dim1, c.dim2); };
    CHECK(gradcheck(f, {rnd(c.shape, 30)}, {}, label));
  }
  // The gradient is dy on the diagonal, 0 elsewhere.
  const std::vector<Tensor> g =
      grads_of([](const Inputs& x) { return diagonal(x[0], -1); }, {zeros({3, 3}, kFloat64)});
  CHECK(values(g[0]) == std::vector<double>{0, 0, 0, 1, 0, 0, 0, 1, 0});
  check_backward_adds([](const Inputs& x) { return diagonal(x[0], 1, 1, 2); }, {rnd({2, 3, 4}, 31)}, 32);
}

TEST_CASE("trace: the sum of the main diagonal of a 2-D tensor", "[ops][vector][trace]") {
  CHECK(trace(tensor({{1, 2}, {3, 4}})).item() == 5);
  CHECK(trace(arange(0.0, 12.0, 1.0, kFloat64).reshape({3, 4})).item() == 0 + 5 + 10);
  CHECK(trace(arange(0.0, 12.0, 1.0, kFloat64).reshape({4, 3})).item() == 0 + 4 + 8);
  CHECK(trace(zeros({0, 3})).item() == 0);
  const Tensor t = trace(arange(9).reshape({3, 3}));
  CHECK(t.dtype() == kInt64);
  CHECK(t.item() == 0 + 4 + 8);
  CHECK(gradcheck([](const Inputs& x) { return trace(x[0]); }, {rnd({3, 4}, 40)}, {}, "trace"));
  const std::vector<Tensor> g =
      grads_of([](const Inputs& x) { return trace(x[0]); }, {zeros({2, 3}, kFloat64)});
  CHECK(values(g[0]) == std::vector<double>{1, 0, 0, 0, 1, 0});
  check_backward_adds([](const Inputs& x) { return trace(x[0]); }, {rnd({3, 3}, 41)}, 42);
}

TEST_CASE("diagonal and trace errors name the op and the shape", "[ops][vector][diagonal][errors]") {
  CHECK_THROWS_WITH(diagonal(ones({4})),
                    Catch::Contains("diagonal: expected a tensor of rank >= 2, got shape [4]"));
  CHECK_THROWS_WITH(diagonal(ones({2, 3}), 0, 1, -1),
                    Catch::Contains("diagonal: dim1 and dim2 must differ, both are 1 (shape [2, 3])"));
  CHECK_THROWS_WITH(diagonal(ones({2, 3}), 0, 0, 2),
                    Catch::Contains("diagonal: dim 2 is out of range for a tensor of rank 2"));
  CHECK_THROWS_WITH(trace(ones({2, 2, 2})),
                    Catch::Contains("trace: expected a 2-D tensor, got shape [2, 2, 2]"));
  CHECK_THROWS_WITH(trace(ones({3})), Catch::Contains("trace: expected a 2-D tensor, got shape [3]"));
}

// ---- bincount ---------------------------------------------------------------------------------------------

TEST_CASE("bincount counts, with minlength and weights", "[ops][vector][bincount]") {
  const Tensor x = from_vector(std::vector<int64_t>{0, 1, 1, 3, 1});
  const Tensor c = bincount(x);
  CHECK(c.dtype() == kInt64);
  CHECK(values(c) == std::vector<double>{1, 3, 0, 1});
  CHECK(values(bincount(x, Tensor(), 6)) == std::vector<double>{1, 3, 0, 1, 0, 0});
  CHECK(values(bincount(x, Tensor(), 2)) == std::vector<double>{1, 3, 0, 1});  // minlength below max + 1
  const Tensor w = tensor({0.5, 1, 2, 4, 8}, kFloat64);
  const Tensor s = bincount(x, w);
  CHECK(s.dtype() == kFloat64);
  CHECK(values(s) == std::vector<double>{0.5, 11, 0, 4});
  const Tensor s32 = bincount(x, tensor({0.5, 1, 2, 4, 8}), 5);
  CHECK(s32.dtype() == kFloat32);
  CHECK(values(s32) == std::vector<double>{0.5, 11, 0, 4, 0});
  // Empty input: minlength zeros (shape [0] without it).
  CHECK(values(bincount(zeros({0}, kInt64), Tensor(), 3)) == std::vector<double>{0, 0, 0});
  CHECK(bincount(zeros({0}, kInt64)).shape() == Shape{0});
  // A strided input is read in logical order.
  CHECK(values(bincount(from_vector(std::vector<int64_t>{2, 9, 2, 9, 0}).slice(0, 0, 5, 2))) ==
        std::vector<double>{1, 0, 2});
  // Not differentiable: the result does not require grad even when the weights do.
  CHECK_FALSE(bincount(x, w.clone().requires_grad_()).requires_grad());
}

TEST_CASE("bincount errors name the op, the first negative value and its index",
          "[ops][vector][bincount][errors]") {
  CHECK_THROWS_WITH(bincount(from_vector(std::vector<int64_t>{2, 0, -1, -5})),
                    Catch::Contains("bincount: x must be non-negative, but x[2] = -1"));
  CHECK_THROWS_WITH(bincount(tensor({1, 2})), Catch::Contains("bincount: x must be int64, got float32"));
  CHECK_THROWS_WITH(bincount(zeros({2, 2}, kInt64)),
                    Catch::Contains("bincount: x must be 1-D, got shape [2, 2]"));
  CHECK_THROWS_WITH(bincount(arange(3), ones({4})),
                    Catch::Contains("bincount: weights must have x's shape [3], got [4]"));
  CHECK_THROWS_WITH(bincount(arange(3), arange(3)),
                    Catch::Contains("bincount: weights must be float32 or float64, got int64"));
  CHECK_THROWS_WITH(bincount(arange(3), Tensor(), -1),
                    Catch::Contains("bincount: minlength must be >= 0, got -1"));
}

// ---- argmin -----------------------------------------------------------------------------------------------

TEST_CASE("argmin: the first minimum along a dim, the dual of argmax", "[ops][vector][argmin]") {
  const Tensor x = tensor({{3, 1, 1}, {0, 5, -2}});
  const Tensor a = argmin(x, 1);
  CHECK(a.dtype() == kInt64);
  CHECK(values(a) == std::vector<double>{1, 2});  // row 0: the first of two minima
  CHECK(values(argmin(x, 0)) == std::vector<double>{1, 0, 1});
  CHECK(argmin(x, -1, true).shape() == Shape{2, 1});
  CHECK(argmin(scalar_tensor(4.0), 0).item() == 0);
  // Every dim of a 3-D tensor, against argmax of −x (the other dims keep their order).
  const Tensor y = randn({3, 4, 5}, kFloat64);
  for (int64_t d = 0; d < 3; ++d) {
    CHECK(argmin(y, d).shape() == argmax(neg(y), d).shape());
    CHECK(values(argmin(y, d)) == values(argmax(neg(y), d)));
  }
  CHECK_THROWS_WITH(argmin(zeros({2, 0}), 1),
                    Catch::Contains("argmin: cannot take the argmin over dim 1 of size 0"));
  CHECK_THROWS_WITH(argmin(x, 2), Catch::Contains("argmin: dim 2 is out of range for a tensor of rank 2"));
}
