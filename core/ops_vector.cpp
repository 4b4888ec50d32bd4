// Vector maths: dot, cosine_similarity, diagonal, trace and bincount; forward and backward
// side by side. Semantics are PyTorch's (the name of each PyTorch function is given in core/ops.h).
//
// dot (torch.dot): a, b: [n], same dtype → y = Σ_i a_i b_i, shape []. da = dy · b, db = dy · a.
//
// cosine_similarity (torch.nn.functional.cosine_similarity, PyTorch 2.x): a and b broadcast to one shape S,
//   y = Σ_dim (a / max(‖a‖, eps)) · (b / max(‖b‖, eps)), the norms taken along dim; y: S without dim.
//   Composed of differentiable ops; norm's gradient (core/ops_reduce.cpp) is 0 at a zero vector and the
//   clamp's is 0 below eps, so the gradient is finite there (b̂/eps for a = 0). It is the exact derivative of
//   the formula; PyTorch clamps the norm in place outside autograd and so differs from it only where ‖a‖ <
//   eps.
//
// diagonal (torch.diagonal): x: rank >= 2; the result drops dim1 and dim2 and appends the diagonal
//   x[..., i, ..., i + offset, ...] (offset > 0 above the main diagonal, < 0 below) as its last dim, of
//   length min(n1, n2 − offset) for offset >= 0 and min(n1 + offset, n2) below, or 0 when the offset runs
//   past the edge. The result is a strided VIEW of x (no copy): it shares x's storage, its last stride is
//   stride(dim1) + stride(dim2). Backward: dx = zeros of x's shape with dy written onto the same diagonal.
//
// trace (torch.trace): x: [n, m] → Σ_i x[i, i] = sum(diagonal(x)), differentiable through both.
//
// bincount (torch.bincount): x: [n] int64 >= 0 → y[v] = #{i : x_i = v} (int64), or Σ_{i : x_i = v} w_i in
//   the weights' dtype, accumulated in double; y has length max(max(x) + 1, minlength). Not differentiable:
//   the result never requires grad, even when the weights do.
#include <algorithm>
#include <cmath>
#include <memory>

#include "autograd/engine.h"
#include "core/ops.h"

namespace nl {

using Grads = std::vector<Tensor>;

// ---- dot --------------------------------------------------------------------------------------------------

Tensor dot(const Tensor& a, const Tensor& b) {
  check_defined(a, "dot", "a");
  check_defined(b, "dot", "b");
  check(a.dim() == 1 && b.dim() == 1, "dot: expected two 1-D tensors, got a of shape ", a.shape(),
        " and b of shape ", b.shape());
  check(a.size(0) == b.size(0), "dot: a has shape ", a.shape(), " but b has shape ", b.shape(),
        ": lengths differ");
  check(a.dtype() == b.dtype(), "dot: dtypes differ: a is ", dtype_name(a.dtype()), ", b is ",
        dtype_name(b.dtype()));
  Tensor out;
  {
    NoGradGuard no_record;
    out = sum(mul(a, b));  // the sum accumulates in double
  }
  return record(
      out, "dot", {a, b},
      [a = a.detach(), b = b.detach(), ga = a.requires_grad(), gb = b.requires_grad()](const Tensor& g) {
        return Grads{ga ? mul(b, g) : Tensor(), gb ? mul(a, g) : Tensor()};
      });
}

// ---- cosine similarity ------------------------------------------------------------------------------------

Tensor cosine_similarity(const Tensor& a, const Tensor& b, int64_t dim, double eps) {
  check_defined(a, "cosine_similarity", "a");
  check_defined(b, "cosine_similarity", "b");
  check(a.dtype() == b.dtype(), "cosine_similarity: dtypes differ: a is ", dtype_name(a.dtype()), ", b is ",
        dtype_name(b.dtype()));
  check(is_floating(a.dtype()), "cosine_similarity: expected float32 or float64 tensors, got ",
        dtype_name(a.dtype()));
  check(eps >= 0, "cosine_similarity: eps must be >= 0, got ", eps);
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), "cosine_similarity");
  check(!shape.empty(), "cosine_similarity: expected tensors of rank >= 1, got a of shape ", a.shape(),
        " and b of shape ", b.shape());
  dim = normalize_dim(dim, static_cast<int64_t>(shape.size()), "cosine_similarity");
  const Tensor ea = a.expand(shape), eb = b.expand(shape);
  const Tensor a_norm = clamp(norm(ea, 2, {dim}, true), eps, INFINITY);
  const Tensor b_norm = clamp(norm(eb, 2, {dim}, true), eps, INFINITY);
  return sum(mul(div(ea, a_norm), div(eb, b_norm)), {dim});
}

// ---- diagonal and trace -----------------------------------------------------------------------------------

namespace {

// The diagonal of x over (dim1, dim2) as a view sharing x's storage, not recorded.
Tensor diagonal_view(const Tensor& x, int64_t offset, int64_t dim1, int64_t dim2) {
  const int64_t n1 = x.size(dim1), n2 = x.size(dim2);
  int64_t length = 0;  // written so that no offset, however large, overflows
  if (offset >= 0 && offset < n2) length = std::min(n1, n2 - offset);
  if (offset < 0 && offset > -n1) length = std::min(n1 + offset, n2);
  auto view = std::make_shared<TensorImpl>();
  view->storage = x.impl()->storage;
  view->dtype = x.dtype();
  view->offset = x.offset();
  if (length > 0) view->offset += offset >= 0 ? offset * x.strides()[dim2] : -offset * x.strides()[dim1];
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d == dim1 || d == dim2) continue;
    view->shape.push_back(x.size(d));
    view->strides.push_back(x.strides()[d]);
  }
  view->shape.push_back(length);
  view->strides.push_back(x.strides()[dim1] + x.strides()[dim2]);
  return Tensor(std::move(view));
}

}  // namespace

Tensor diagonal(const Tensor& x, int64_t offset, int64_t dim1, int64_t dim2) {
  check_defined(x, "diagonal", "x");
  check(x.dim() >= 2, "diagonal: expected a tensor of rank >= 2, got shape ", x.shape());
  dim1 = normalize_dim(dim1, x.dim(), "diagonal");
  dim2 = normalize_dim(dim2, x.dim(), "diagonal");
  check(dim1 != dim2, "diagonal: dim1 and dim2 must differ, both are ", dim1, " (shape ", x.shape(), ")");
  Tensor out = diagonal_view(x, offset, dim1, dim2);
  return record(out, "diagonal", {x}, [offset, dim1, dim2, shape = x.shape()](const Tensor& g) {
    Tensor dx = zeros(shape, g.dtype());
    diagonal_view(dx, offset, dim1, dim2).copy_(g);
    return Grads{dx};
  });
}

Tensor trace(const Tensor& x) {
  check_defined(x, "trace", "x");
  check(x.dim() == 2, "trace: expected a 2-D tensor, got shape ", x.shape());
  return sum(diagonal(x));
}

// ---- bincount ---------------------------------------------------------------------------------------------

Tensor bincount(const Tensor& x, const Tensor& weights, int64_t minlength) {
  check_defined(x, "bincount", "x");
  check(x.dtype() == kInt64, "bincount: x must be int64, got ", dtype_name(x.dtype()));
  check(x.dim() == 1, "bincount: x must be 1-D, got shape ", x.shape());
  check(minlength >= 0, "bincount: minlength must be >= 0, got ", minlength);
  if (weights.defined()) {
    check(is_floating(weights.dtype()), "bincount: weights must be float32 or float64, got ",
          dtype_name(weights.dtype()));
    check(weights.shape() == x.shape(), "bincount: weights must have x's shape ", x.shape(), ", got ",
          weights.shape());
  }
  const std::vector<int64_t> values = x.to_vector<int64_t>();
  int64_t length = minlength;
  for (size_t i = 0; i < values.size(); ++i) {
    check(values[i] >= 0, "bincount: x must be non-negative, but x[", i, "] = ", values[i]);
    length = std::max(length, values[i] + 1);
  }
  if (!weights.defined()) {
    std::vector<int64_t> counts(static_cast<size_t>(length), 0);
    for (int64_t v : values) ++counts[v];
    return from_vector(counts);
  }
  const std::vector<double> w = weights.to_vector<double>();
  std::vector<double> totals(static_cast<size_t>(length), 0.0);
  for (size_t i = 0; i < values.size(); ++i) totals[values[i]] += w[i];
  return from_vector(totals).to(weights.dtype());
}

}  // namespace nl
