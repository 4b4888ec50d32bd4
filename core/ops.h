// The differentiable tensor ops: elementwise math with NumPy broadcasting, reductions, softmax, matmul, and
// joining/indexing. Each is a plain function (grep for it); its forward and its backward sit side by side in
// the .cpp named after its family (ops_elementwise.cpp, ops_reduce.cpp, ops_matmul.cpp, ops_shape.cpp).
//
// Broadcasting follows NumPy: shapes are aligned at the trailing dimension, and a dimension of size 1 (or a
// missing one) stretches to match. The backward of a broadcast input sums the gradient back to its shape.
//
// Comparison ops return 0/1 in the inputs' dtype (there is no bool dtype); where(cond, a, b) takes any
// nonzero element of cond as true.
#pragma once

#include <vector>

#include "tensor.h"

namespace nl {

// ---- elementwise, binary (broadcasting)
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);      // a > 0 where b is differentiated
Tensor maximum(const Tensor& a, const Tensor& b);  // the gradient goes to a where a >= b
Tensor minimum(const Tensor& a, const Tensor& b);  // the gradient goes to a where a <= b
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);

// ---- elementwise, with a scalar
Tensor add(const Tensor& a, double b);
Tensor sub(const Tensor& a, double b);
Tensor mul(const Tensor& a, double b);
Tensor div(const Tensor& a, double b);
Tensor pow(const Tensor& a, double exponent);
Tensor clamp(const Tensor& a, double lo, double hi);  // gradient 1 inside [lo, hi], 0 outside

// ---- elementwise, unary
Tensor neg(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor square(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);
Tensor gelu(const Tensor& x);  // exact: x·Φ(x), as PyTorch's default
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor softplus(const Tensor& x);  // log(1 + exp(x)), computed stably

// ---- reductions over a set of axes (empty = all axes)
Tensor sum(const Tensor& x, std::vector<int64_t> axes = {}, bool keepdim = false);
Tensor mean(const Tensor& x, std::vector<int64_t> axes = {}, bool keepdim = false);
// Variance: Σ(x−mean)²/(n − 1) if unbiased, else /n. Two passes, accumulated in double.
Tensor var(const Tensor& x, std::vector<int64_t> axes = {}, bool unbiased = true, bool keepdim = false);
// Standard deviation, sqrt(var(...)). Named stddev because `std` would clash with namespace std.
Tensor stddev(const Tensor& x, std::vector<int64_t> axes = {}, bool unbiased = true, bool keepdim = false);
// max/min: the gradient goes to the first position that holds the extreme value.
Tensor max(const Tensor& x, std::vector<int64_t> axes = {}, bool keepdim = false);
Tensor min(const Tensor& x, std::vector<int64_t> axes = {}, bool keepdim = false);
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);  // int64, first maximum
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim = false);  // int64, first minimum
// (Σ|x|^p)^(1/p) over axes (empty = all), p > 0 or INFINITY (max |x|); gradient 0 at x = 0.
// torch.linalg.vector_norm
Tensor norm(const Tensor& x, double p = 2, std::vector<int64_t> axes = {}, bool keepdim = false);
Tensor logsumexp(const Tensor& x, std::vector<int64_t> axes, bool keepdim = false);
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);

// ---- linear algebra
// a: (..., n, k), b: (..., k, m) → (..., n, m); batch dims broadcast. 1-D operands are treated as in NumPy.
// Goes through OpenBLAS sgemm/dgemm; transposed views are passed as transpose flags, not copied.
Tensor matmul(const Tensor& a, const Tensor& b);

// ---- joining and indexing
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim);
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim);
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);  // index: int64, 1-D
// Sums `x` over broadcast dimensions so that the result has `shape` (the backward of broadcasting).
Tensor sum_to(const Tensor& x, const Shape& shape);

// ---- vector maths (core/ops_vector.cpp)
// Σ_i a_i·b_i of two 1-D tensors of one length and dtype, shape []. torch.dot
Tensor dot(const Tensor& a, const Tensor& b);
// Σ_dim a·b / (max(‖a‖, eps)·max(‖b‖, eps)), broadcasting. torch.nn.functional.cosine_similarity
Tensor cosine_similarity(const Tensor& a, const Tensor& b, int64_t dim = 1, double eps = 1e-8);
// y[..., i] = x[.., i at dim1, .., i + offset at dim2, ..] appended last; a strided view. torch.diagonal
Tensor diagonal(const Tensor& x, int64_t offset = 0, int64_t dim1 = 0, int64_t dim2 = 1);
// Σ_i x[i, i] of a 2-D tensor. torch.trace
Tensor trace(const Tensor& x);
// y[v] = #{i : x_i = v} or Σ_{x_i = v} w_i, length max(max(x) + 1, minlength); no grad. torch.bincount
Tensor bincount(const Tensor& x, const Tensor& weights = Tensor(), int64_t minlength = 0);

// ---- operators
inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& a) { return neg(a); }
inline Tensor operator+(const Tensor& a, double b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, double b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, double b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, double b) { return div(a, b); }
inline Tensor operator+(double a, const Tensor& b) { return add(b, a); }
inline Tensor operator-(double a, const Tensor& b) { return add(neg(b), a); }
inline Tensor operator*(double a, const Tensor& b) { return mul(b, a); }

}  // namespace nl
