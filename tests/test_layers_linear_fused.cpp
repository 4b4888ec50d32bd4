// The fused linear op against the same layer composed from core ops (the oracle), and column_sums.
#include <catch2/catch.hpp>

#include "autograd/engine.h"
#include "core/kernels.h"
#include "core/ops.h"
#include "core/random.h"
#include "layers/linear.h"
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
