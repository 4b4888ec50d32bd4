// The device-neutral kernel entry points. Each function here is THE dispatch point of its kernel family:
// core/dispatch.cpp switches on the device once and calls the function of the same name and signature in
// namespace cpu:: (core/cpu/) or, when a GPU backend is built, cuda::. Ops (core/ops_*.cpp) call only these.
//
// Kernels are stateless: they take every input, output and parameter as an argument, never allocate their
// outputs (the caller does), and never touch autograd. Outputs are contiguous; inputs may be strided views
// unless a function says otherwise.
#pragma once

#include <cstdint>

#include "tensor.h"

namespace nl::kernels {

enum class UnaryOp {
  Neg,
  Abs,
  Exp,
  Log,
  Sqrt,
  Rsqrt,
  Square,
  Relu,
  Sigmoid,
  Tanh,
  Gelu,
  Softplus,
  LeakyRelu,  // p0 = negative slope
  PowScalar,  // p0 = exponent
  Clamp,      // p0 = lo, p1 = hi
  AddScalar,  // p0 = value
  MulScalar,  // p0 = value
  DivScalar,  // p0 = value
};

// Derivatives of unary ops: dx = g · f'(saved), where saved is the op's input x, or its output y where
// that is cheaper (marked).
enum class UnaryGradOp {
  Abs,        // saved x: sign(x)
  Relu,       // saved x: x > 0
  LeakyRelu,  // saved x: x > 0 ? 1 : p0
  Sigmoid,    // saved y: y(1 − y)
  Tanh,       // saved y: 1 − y²
  Gelu,       // saved x: Φ(x) + x·φ(x)
  Softplus,   // saved x: sigmoid(x)
  Clamp,      // saved x: lo <= x <= hi
  PowScalar,  // saved x: p0·x^(p0−1)
};

enum class BinaryOp { Add, Sub, Mul, Div, Pow, Max, Min, Eq, Ne, Lt, Le, Gt, Ge };

enum class ReduceOp { Sum, Max, Min, Argmax, Argmin };

// How a backward kernel writes its gradient output: add (the contract of every backward: dx += ...) or,
// opt-in, assign (dx's previous contents are ignored), which lets the op layer hand over a fresh buffer
// without zero-filling it first.
enum class GradWrite { add, assign };

struct Params {
  double p0 = 0, p1 = 0;
};

// out = f(x); out has x's shape and dtype.
void unary(UnaryOp op, Params p, const Tensor& x, Tensor& out);
// dx = g · f'(saved); all three share one shape.
void unary_grad(UnaryGradOp op, Params p, const Tensor& saved, const Tensor& g, Tensor& dx);
// out = a (op) b with broadcasting; out has the broadcast shape.
void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out);
// out = cond != 0 ? a : b, broadcasting all three.
void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out);

// Row reductions. x: contiguous (rows, cols); out: (rows). Argmax/Argmin write int64.
void reduce_rows(ReduceOp op, const Tensor& x, Tensor& out);
// Biased (correction 0) or unbiased (correction 1) variance of each row, two passes in double.
void var_rows(const Tensor& x, int64_t correction, Tensor& out);
void logsumexp_rows(const Tensor& x, Tensor& out);
// out[k] += Σ_r x[r, k] for a contiguous (rows, cols) matrix: the sum over the leading axis without a
// transpose (bias gradients). Accumulates in double.
void column_sums(const Tensor& x, Tensor& out);
// Row-wise softmax and log-softmax of contiguous (rows, cols), and their backward (dx += ...).
void softmax_rows(const Tensor& x, bool log, Tensor& out);
void softmax_rows_backward(const Tensor& y, const Tensor& dy, bool log, Tensor& dx);

// C = alpha · op(A) · op(B) + beta · C for row-major matrices with leading dimensions; op = transpose or not.
// Each matrix starts `*_offset` elements past its tensor's first element (batched products and conv use it).
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const Tensor& a,
          int64_t a_offset, int64_t lda, const Tensor& b, int64_t b_offset, int64_t ldb, double beta,
          Tensor& c, int64_t c_offset, int64_t ldc);
// One gemm() call's arguments, for gemm_pair.
struct GemmArgs {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  double alpha = 1.0;
  Tensor a;
  int64_t a_offset = 0, lda = 0;
  Tensor b;
  int64_t b_offset = 0, ldb = 0;
  double beta = 0.0;
  Tensor c;  // written (a handle to the caller's storage)
  int64_t c_offset = 0, ldc = 0;
};
// Two independent products (neither writes what the other reads), the same as two gemm() calls; a product
// whose c is undefined is skipped. A Linear backward's dX = dY·W and dW = dYᵀ·X are such a pair, with equal
// FLOP counts.
void gemm_pair(const GemmArgs& first, const GemmArgs& second);

// dst = src, element by element in logical order: both may be strided views of one shape (dst must not
// overlap itself, i.e. no stride-0 dims); dtypes may differ (converted).
void copy(const Tensor& src, Tensor& dst);
void fill(Tensor& dst, double value);
// dst += alpha · src (same shape, both contiguous, same dtype).
void axpy(double alpha, const Tensor& src, Tensor& dst);
// out = x.index_select(dim, index); x contiguous viewed as (outer, size, inner).
void index_select(const Tensor& x, int64_t outer, int64_t size, int64_t inner, const Tensor& index,
                  Tensor& out);
// dx[..., index[i], ...] += g[..., i, ...]
void index_add(const Tensor& g, int64_t outer, int64_t size, int64_t inner, const Tensor& index, Tensor& dx);

}  // namespace nl::kernels
