// The fused linear op against the same layer composed from core ops (the oracle), and column_sums.
#include <catch2/catch.hpp>

#include "autograd/engine.h"
#include "core/kernels.h"
#include "core/ops.h"
#include "core/random.h"
#include "core/threads.h"
#include "layers/linear.h"
#include "reference_ops.h"
#include "test_util.h"

using namespace nl;
using test::allclose;

TEST_CASE("fused linear equals matmul(x, Wᵀ) + b in forward and backward", "[layers][linear]") {
  Generator gen(21);
  for (DType dt : {kFloat32, kFloat64})
    for (bool with_bias : {true, false}) {
      INFO(dtype_name(dt) << (with_bias ? " with bias" : " without bias"));
      const Tensor x0 = randn({2, 3, 5}, dt, &gen), w0 = randn({4, 5}, dt, &gen), b0 = randn({4}, dt, &gen);
      const Tensor g = randn({2, 3, 4}, dt, &gen);
      Tensor x1 = x0.clone().requires_grad_(), w1 = w0.clone().requires_grad_(),
             b1 = b0.clone().requires_grad_();
      Tensor x2 = x0.clone().requires_grad_(), w2 = w0.clone().requires_grad_(),
             b2 = b0.clone().requires_grad_();
      const Tensor fused = linear(x1, w1, with_bias ? b1 : Tensor());
      Tensor composed = matmul(x2, w2.t());
      if (with_bias) composed = add(composed, b2);
      const double tol = dt == kFloat32 ? 1e-5 : 1e-12;
      CHECK(allclose(fused, composed, tol, tol));
      fused.backward(g);
      composed.backward(g);
      CHECK(allclose(x1.grad(), x2.grad(), tol, tol));
      CHECK(allclose(w1.grad(), w2.grad(), tol, tol));
      CHECK(w1.grad().is_contiguous());  // dW is computed in W's layout, not as a transposed copy
      if (with_bias) CHECK(allclose(b1.grad(), b2.grad(), tol, tol));
    }
}

TEST_CASE("column_sums adds the column sums of a matrix into its output", "[core][reduce]") {
  Generator gen(22);
  const Tensor x = randn({37, 600}, kFloat64, &gen);
  Tensor out = ones({600}, kFloat64);  // pre-filled: the kernel adds
  kernels::column_sums(x, out);
  CHECK(allclose(out, add(sum(x, {0}), 1.0), 1e-12, 1e-12));
  Tensor wrong = zeros({5}, kFloat64);
  REQUIRE_THROWS_WITH(kernels::column_sums(x, wrong),
                      Catch::Contains("column_sums: out has shape [5], expected [600]"));
}

TEST_CASE("gemm_pair computes both products on any thread count, and skips an undefined one",
          "[core][matmul][threads]") {
  Generator gen(23);
  const int saved_threads = get_num_threads();
  for (DType dt : {kFloat32, kFloat64})
    for (int threads : {1, 2, 3}) {
      INFO(dtype_name(dt) << " on " << threads << " threads");
      set_num_threads(threads);
      // A Linear backward's pair: dX = dY·W (rows × in) and dW = dYᵀ·X (out × in), beta 0 and 1.
      const int64_t rows = 70, in = 90, out = 40;
      const Tensor dy = randn({rows, out}, dt, &gen), w = randn({out, in}, dt, &gen),
                   x = randn({rows, in}, dt, &gen);
      Tensor dx = full({rows, in}, 7.0, dt), dw = full({out, in}, 2.0, dt);
      kernels::gemm_pair({false, false, rows, in, out, 1.0, dy, 0, out, w, 0, in, 0.0, dx, 0, in},
                         {true, false, out, in, rows, 0.5, dy, 0, out, x, 0, in, 1.0, dw, 0, in});
      const double tol = dt == kFloat32 ? 1e-4 : 1e-12;
      // Against the plain triple loop (tests/reference_ops.h), in float64.
      const Tensor dx_ref = reference::naive_matmul(dy, w);
      const Tensor dw_ref = reference::naive_matmul(dy.t().contiguous(), x);
      CHECK(allclose(dx.to(kFloat64), dx_ref, tol, tol));                      // beta 0: the 7s are gone
      CHECK(allclose(dw.to(kFloat64), add(mul(dw_ref, 0.5), 2.0), tol, tol));  // beta 1: added to the 2s
      // One product only: the other is skipped.
      Tensor dx2 = empty({rows, in}, dt);
      kernels::gemm_pair({false, false, rows, in, out, 1.0, dy, 0, out, w, 0, in, 0.0, dx2, 0, in}, {});
      CHECK(allclose(dx2.to(kFloat64), dx_ref, tol, tol));
    }
  set_num_threads(saved_threads);
  Tensor bad = zeros({2, 2}, kInt64);
  const Tensor a = ones({2, 2});
  REQUIRE_THROWS_WITH(kernels::gemm_pair({}, {false, false, 2, 2, 2, 1.0, a, 0, 2, a, 0, 2, 0.0, bad, 0, 2}),
                      "matmul: expected float32 or float64 tensors, got int64");
  Tensor c = zeros({2, 2});
  REQUIRE_THROWS_WITH(
      kernels::gemm_pair({false, false, 2, 2, 2, 1.0, ones({2, 2}, kFloat64), 0, 2, a, 0, 2, 0.0, c, 0, 2},
                         {}),
      "gemm_pair: a, b and c are float64, float32 and float32; expected one dtype");
}
