// Forward values of the core ops: broadcasting, unary math, reductions, softmax, matmul, and their errors.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "core/kernels.h"
#include "core/ops.h"
#include "core/random.h"
#include "test_util.h"

using namespace nl;
using test::allclose;
using test::values;

TEST_CASE("broadcasting follows NumPy's rules", "[ops][broadcast]") {
  const Tensor col = tensor({1, 2}).reshape({2, 1});
  const Tensor row = tensor({10, 20, 30});  // [3]
  const Tensor s = add(col, row);           // [2, 3]
  CHECK(s.shape() == Shape{2, 3});
  CHECK(values(s) == std::vector<double>{11, 21, 31, 12, 22, 32});
  CHECK(values(mul(tensor({{1, 2, 3}}), scalar_tensor(2))) == std::vector<double>{2, 4, 6});
  CHECK(broadcast_shapes({8, 1, 6, 1}, {7, 1, 5}, "t") == Shape{8, 7, 6, 5});
  const Tensor a = arange(0.0, 24.0, 1.0).reshape({2, 3, 4});
  const Tensor b = tensor({1, 0, 1, 0}).reshape({1, 1, 4});
  CHECK(sum(mul(a, b)).item() == Approx(0 + 2 + 4 + 6 + 8 + 10 + 12 + 14 + 16 + 18 + 20 + 22));
  // A strided (transposed) operand broadcasts too.
  CHECK(values(sub(tensor({{1, 2}, {3, 4}}).t(), tensor({1, 1}))) == std::vector<double>{0, 2, 1, 3});
  REQUIRE_THROWS_WITH(add(ones({2, 3}), ones({4})),
                      "add: shapes [2, 3] and [4] cannot be broadcast: dimension 1 is 3 vs 4");
  REQUIRE_THROWS_WITH(add(ones({2}), ones({2}, kFloat64)), "add: dtypes differ: a is float32, b is float64");
}

TEST_CASE("unary math matches the C library", "[ops]") {
  const Tensor x = tensor({-2.0, -0.5, 0.0, 0.5, 3.0}, kFloat64);
  const std::vector<double> v = values(x);
  auto check_map = [&](const Tensor& y, auto f) {
    const std::vector<double> got = values(y);
    for (size_t i = 0; i < v.size(); ++i) CHECK(got[i] == Approx(f(v[i])).margin(1e-12));
  };
  check_map(neg(x), [](double a) { return -a; });
  check_map(abs(x), [](double a) { return std::abs(a); });
  check_map(exp(x), [](double a) { return std::exp(a); });
  check_map(square(x), [](double a) { return a * a; });
  check_map(relu(x), [](double a) { return a > 0 ? a : 0; });
  check_map(leaky_relu(x, 0.1), [](double a) { return a > 0 ? a : 0.1 * a; });
  check_map(sigmoid(x), [](double a) { return 1 / (1 + std::exp(-a)); });
  check_map(tanh(x), [](double a) { return std::tanh(a); });
  check_map(softplus(x), [](double a) { return std::log1p(std::exp(a)); });
  check_map(gelu(x), [](double a) { return 0.5 * a * (1 + std::erf(a / std::sqrt(2.0))); });
  check_map(clamp(x, -1, 1), [](double a) { return std::min(1.0, std::max(-1.0, a)); });
  const Tensor p = tensor({0.25, 1.0, 4.0}, kFloat64);
  CHECK(values(sqrt(p)) == std::vector<double>{0.5, 1, 2});
  CHECK(values(rsqrt(p)) == std::vector<double>{2, 1, 0.5});
  CHECK(values(log(p))[2] == Approx(std::log(4.0)));
  CHECK(values(pow(p, 0.5)) == std::vector<double>{0.5, 1, 2});
  CHECK(values(pow(p, tensor({2.0, 3.0, 0.5}, kFloat64))) == std::vector<double>{0.0625, 1, 2});
}

TEST_CASE("sigmoid and softplus are stable at extreme inputs", "[ops]") {
  const Tensor x = tensor({-1000.0, 1000.0});
  CHECK(values(sigmoid(x)) == std::vector<double>{0, 1});
  CHECK(values(softplus(x)) == std::vector<double>{0, 1000});
}

TEST_CASE("comparisons, maximum, minimum and where", "[ops]") {
  const Tensor a = tensor({1, 5, 3}), b = tensor({2, 5, 1});
  CHECK(values(eq(a, b)) == std::vector<double>{0, 1, 0});
  CHECK(values(ne(a, b)) == std::vector<double>{1, 0, 1});
  CHECK(values(lt(a, b)) == std::vector<double>{1, 0, 0});
  CHECK(values(le(a, b)) == std::vector<double>{1, 1, 0});
  CHECK(values(gt(a, b)) == std::vector<double>{0, 0, 1});
  CHECK(values(ge(a, b)) == std::vector<double>{0, 1, 1});
  CHECK(values(maximum(a, b)) == std::vector<double>{2, 5, 3});
  CHECK(values(minimum(a, b)) == std::vector<double>{1, 5, 1});
  CHECK(values(where(gt(a, b), a, zeros({1}))) == std::vector<double>{0, 0, 3});
}

TEST_CASE("reductions over any set of axes, with keepdim", "[ops][reduce]") {
  const Tensor x = arange(0.0, 24.0, 1.0, kFloat64).reshape({2, 3, 4});
  CHECK(sum(x).item() == 276);
  CHECK(values(sum(x, {0, 2})) == std::vector<double>{60, 92, 124});
  CHECK(sum(x, {0, 2}, true).shape() == Shape{1, 3, 1});
  CHECK(values(mean(x, {-1})) == std::vector<double>{1.5, 5.5, 9.5, 13.5, 17.5, 21.5});
  CHECK(values(max(x, {1})) == std::vector<double>{8, 9, 10, 11, 20, 21, 22, 23});
  CHECK(values(min(x, {0, 1})) == std::vector<double>{0, 1, 2, 3});
  CHECK(values(argmax(tensor({{1, 9, 9}, {7, 2, 3}}), 1)) == std::vector<double>{1, 0});
  // var: population 1.25 for {1,2,3,4}; unbiased 5/3.
  const Tensor v = tensor({1, 2, 3, 4}, kFloat64);
  CHECK(var(v, {}, false).item() == Approx(1.25));
  CHECK(var(v).item() == Approx(5.0 / 3.0));
  CHECK(stddev(v, {}, false).item() == Approx(std::sqrt(1.25)));
  REQUIRE_THROWS_WITH(sum(x, {3}),
                      "sum: dim 3 is out of range for a tensor of rank 3 (expected -3 <= dim < 3)");
  REQUIRE_THROWS_WITH(sum(x, {1, 1}), "sum: axis 1 is listed twice");
}

TEST_CASE("a 0-d tensor reduces over dim 0 or -1, as in PyTorch", "[ops][reduce]") {
  const Tensor x = scalar_tensor(4.0);
  CHECK(argmax(x, 0).item() == 0);
  CHECK(argmax(x, -1, true).shape() == Shape{});
  CHECK(sum(x, {0}).item() == 4.0);
  CHECK(max(x, {-1}).item() == 4.0);
  CHECK_THROWS_WITH(sum(x, {1}), Catch::Contains("sum: dim 1 is out of range for a tensor of rank 0"));
}

TEST_CASE("variance is exact for large offsets (two passes in double)", "[ops][reduce]") {
  const Tensor x = add(tensor({-1, 1, -1, 1}), 1e7);  // float32: 1e7 ± 1 is exact
  CHECK(var(x, {}, false).item() == Approx(1.0));
}

TEST_CASE("logsumexp, softmax and log_softmax are stable", "[ops][softmax]") {
  const Tensor x = tensor({{1000, 1000}, {-1000, 0}}, kFloat64);
  const std::vector<double> lse = values(logsumexp(x, {1}));
  CHECK(lse[0] == Approx(1000 + std::log(2.0)));
  CHECK(lse[1] == Approx(0.0).margin(1e-12));
  const Tensor p = softmax(x, 1);
  CHECK(values(p)[0] == Approx(0.5));
  CHECK(values(p)[3] == Approx(1.0));
  CHECK(allclose(exp(log_softmax(x, 1)), p));
  // Softmax along dim 0 of a 3-D tensor sums to 1 along that dim.
  const Tensor y = softmax(randn({3, 4, 5}, kFloat64), 0);
  CHECK(allclose(sum(y, {0}), ones({4, 5}, kFloat64)));
  const Tensor inf = tensor({-INFINITY, -INFINITY});
  CHECK(std::isinf(logsumexp(inf, {0}).item()));
}

namespace {
// The readable definition of a matrix product, for checking the BLAS path.
Tensor naive_matmul(const Tensor& a, const Tensor& b) {
  const int64_t n = a.size(0), k = a.size(1), m = b.size(1);
  const std::vector<double> va = values(a), vb = values(b);
  std::vector<double> c(static_cast<size_t>(n * m), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j)
      for (int64_t p = 0; p < k; ++p) c[i * m + j] += va[i * k + p] * vb[p * m + j];
  return from_vector(c, {n, m});
}
}  // namespace

TEST_CASE("matmul agrees with the naive triple loop for every operand layout", "[ops][matmul]") {
  Generator gen(3);
  for (DType dt : {kFloat32, kFloat64}) {
    const Tensor a = randn({5, 7}, dt, &gen), b = randn({7, 3}, dt, &gen);
    const Tensor expected = naive_matmul(a, b);
    CHECK(allclose(matmul(a, b).to(kFloat64), expected, 1e-5, 1e-5));
    // Transposed views go through the transpose flags.
    const Tensor at = a.t().contiguous().t(), bt = b.t().contiguous().t();
    CHECK_FALSE(at.is_contiguous());
    CHECK(allclose(matmul(at, bt).to(kFloat64), expected, 1e-5, 1e-5));
    // A sliced (non-unit, non-transposable) view is copied first.
    const Tensor wide = randn({5, 14}, dt, &gen);
    const Tensor strided = wide.slice(1, 0, 14, 2);
    CHECK(allclose(matmul(strided, b).to(kFloat64), naive_matmul(strided.contiguous(), b), 1e-5, 1e-5));
  }
}

// kernels::gemm sends products with up to 4 rows through gemv, one row at a time, and larger ones through
// sgemm/dgemm: both must agree with the definition for every transpose flag, offset, leading dimension and
// beta, and beta = 0 must ignore NaN already in C.
TEST_CASE("gemm agrees with the naive loop on both sides of the few-rows path", "[ops][matmul]") {
  Generator gen(5);
  for (DType dt : {kFloat32, kFloat64})
    for (int64_t m : {1, 2, 3, 4, 5, 9})
      for (bool ta : {false, true})
        for (bool tb : {false, true})
          for (double beta : {0.0, 0.5}) {
            const int64_t n = 7, k = 6, pad = 3, off = 2;
            // Stored A is (m, k) or, transposed, (k, m); B is (k, n) or (n, k); each row padded by `pad`.
            const int64_t a_rows = ta ? k : m, a_cols = ta ? m : k, b_rows = tb ? n : k, b_cols = tb ? k : n;
            const int64_t lda = a_cols + pad, ldb = b_cols + pad, ldc = n + pad;
            const Tensor a = randn({off + a_rows * lda}, dt, &gen), b = randn({off + b_rows * ldb}, dt, &gen);
            const Tensor c0 = randn({off + m * ldc}, dt, &gen);
            Tensor c = c0.clone();
            if (beta == 0) c.fill_(std::numeric_limits<double>::quiet_NaN());
            kernels::gemm(ta, tb, m, n, k, 1.5, a, off, lda, b, off, ldb, beta, c, off, ldc);
            const std::vector<double> va = values(a), vb = values(b), vc0 = values(c0), vc = values(c);
            for (int64_t i = 0; i < m; ++i)
              for (int64_t j = 0; j < n; ++j) {
                double expected = 0;
                for (int64_t p = 0; p < k; ++p) {
                  const double aip = ta ? va[off + p * lda + i] : va[off + i * lda + p];
                  const double bpj = tb ? vb[off + j * ldb + p] : vb[off + p * ldb + j];
                  expected += aip * bpj;
                }
                expected = 1.5 * expected + (beta == 0 ? 0.0 : beta * vc0[off + i * ldc + j]);
                INFO("dtype " << dtype_name(dt) << " m " << m << " trans_a " << ta << " trans_b " << tb
                              << " beta " << beta << " at (" << i << ", " << j << ")");
                CHECK(vc[off + i * ldc + j] == Approx(expected).margin(1e-4));
              }
            // The padding between rows of C is left alone.
            for (int64_t i = 0; i + 1 < m; ++i)
              for (int64_t j = n; j < ldc; ++j)
                if (beta != 0) CHECK(vc[off + i * ldc + j] == vc0[off + i * ldc + j]);
          }
}

TEST_CASE("matmul broadcasts batch dims and handles 1-D operands", "[ops][matmul]") {
  Generator gen(4);
  const Tensor a = randn({2, 3, 4, 5}, kFloat64, &gen), b = randn({3, 5, 2}, kFloat64, &gen);
  const Tensor c = matmul(a, b);
  CHECK(c.shape() == Shape{2, 3, 4, 2});
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j)
      CHECK(allclose(c.select(0, i).select(0, j), naive_matmul(a.select(0, i).select(0, j), b.select(0, j))));
  const Tensor v = tensor({1, 2}), m = tensor({{1, 2}, {3, 4}});
  CHECK(values(matmul(v, m)) == std::vector<double>{7, 10});
  CHECK(values(matmul(m, v)) == std::vector<double>{5, 11});
  CHECK(matmul(v, v).item() == 5);
  CHECK(matmul(randn({4, 3, 5}), randn({5, 2})).shape() == Shape{4, 3, 2});
  CHECK(values(matmul(zeros({2, 0}), zeros({0, 3}))) == std::vector<double>(6, 0.0));
}

TEST_CASE("matmul errors name the shapes", "[ops][matmul][errors]") {
  REQUIRE_THROWS_WITH(matmul(ones({8, 3}), ones({4, 5})),
                      "matmul: a has shape [8, 3] but b has shape [4, 5]: inner dimensions 3 and 4 differ");
  REQUIRE_THROWS_WITH(matmul(ones({2, 2}), ones({2, 2}, kFloat64)),
                      "matmul: dtypes differ: a is float32, b is float64");
  REQUIRE_THROWS_WITH(matmul(arange(4).reshape({2, 2}), arange(4).reshape({2, 2})),
                      "matmul: expected float tensors, got int64");
  REQUIRE_THROWS_WITH(matmul(ones({2, 2, 3}), ones({3, 3, 2})), Catch::Contains("cannot be broadcast"));
}

TEST_CASE("NaN propagates through max and the elementwise ops", "[ops][nan]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor x = tensor({1.0, nan, 3.0}, kFloat64);
  CHECK(std::isnan(max(x).item()));
  CHECK(std::isnan(sum(x).item()));
  CHECK(std::isnan(values(relu(x))[1]));  // as in PyTorch, relu(NaN) = NaN
  CHECK(std::isnan(values(exp(x))[1]));
}

TEST_CASE("an op given an undefined tensor names the op and the argument", "[ops][errors]") {
  const Tensor x = ones({2, 3}), none;
  CHECK_THROWS_WITH(add(x, none), "add: b is undefined");
  CHECK_THROWS_WITH(none * x, "mul: a is undefined");
  CHECK_THROWS_WITH(ge(x, none), "ge: b is undefined");
  CHECK_THROWS_WITH(add(none, 1.0), "add: a is undefined");
  CHECK_THROWS_WITH(pow(none, 2.0), "pow: a is undefined");
  CHECK_THROWS_WITH(clamp(none, 0, 1), "clamp: a is undefined");
  CHECK_THROWS_WITH(relu(none), "relu: x is undefined");
  CHECK_THROWS_WITH(exp(none), "exp: x is undefined");
  CHECK_THROWS_WITH(where(none, x, x), "where: cond is undefined");
  CHECK_THROWS_WITH(where(x, x, none), "where: b is undefined");
  CHECK_THROWS_WITH(sum(none), "sum: x is undefined");
  CHECK_THROWS_WITH(mean(none, {0}), "mean: x is undefined");
  CHECK_THROWS_WITH(var(none), "var: x is undefined");
  CHECK_THROWS_WITH(max(none), "max: x is undefined");
  CHECK_THROWS_WITH(argmin(none, 0), "argmin: x is undefined");
  CHECK_THROWS_WITH(norm(none), "norm: x is undefined");
  CHECK_THROWS_WITH(logsumexp(none, {0}), "logsumexp: x is undefined");
  CHECK_THROWS_WITH(softmax(none, 0), "softmax: x is undefined");
  CHECK_THROWS_WITH(log_softmax(none, 0), "log_softmax: x is undefined");
  CHECK_THROWS_WITH(matmul(x, none), "matmul: b is undefined");
  CHECK_THROWS_WITH(cat({x, none}, 0), "cat: tensor 1 is undefined");
  CHECK_THROWS_WITH(stack({none, x}, 0), "stack: tensor 0 is undefined");
  CHECK_THROWS_WITH(index_select(x, 0, none), "index_select: index is undefined");
  CHECK_THROWS_WITH(sum_to(none, {1}), "sum_to: x is undefined");
  CHECK_THROWS_WITH(dot(none, x), "dot: a is undefined");
  CHECK_THROWS_WITH(cosine_similarity(x, none), "cosine_similarity: b is undefined");
  CHECK_THROWS_WITH(diagonal(none), "diagonal: x is undefined");
  CHECK_THROWS_WITH(trace(none), "trace: x is undefined");
  CHECK_THROWS_WITH(bincount(none), "bincount: x is undefined");
  // Methods name themselves and the tensor they were called on.
  CHECK_THROWS_WITH(none.reshape({2}), Catch::StartsWith("reshape: the tensor is undefined"));
  CHECK_THROWS_WITH(none.view({2}), Catch::StartsWith("view: the tensor is undefined"));
  CHECK_THROWS_WITH(none.permute({0}), Catch::StartsWith("permute: the tensor is undefined"));
  CHECK_THROWS_WITH(none.expand({2}), Catch::StartsWith("expand: the tensor is undefined"));
  CHECK_THROWS_WITH(none.contiguous(), Catch::StartsWith("contiguous: the tensor is undefined"));
  CHECK_THROWS_WITH(none.to(kFloat64), Catch::StartsWith("to: the tensor is undefined"));
  CHECK_THROWS_WITH(none.item(), Catch::StartsWith("item: the tensor is undefined"));
  CHECK_THROWS_WITH(Tensor(x).copy_(none), "copy_: src is undefined");
  CHECK_THROWS_WITH(Tensor(x).add_(none), "add_: other is undefined");
  // Metadata read from an undefined tensor still says what happened.
  CHECK_THROWS_WITH(none.shape(), Catch::Contains("undefined tensor"));
}
