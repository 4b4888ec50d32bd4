// Reductions over a set of axes (sum, mean, var, max, argmax, the vector norm ...), logsumexp, softmax and
// log-softmax; forward and backward side by side.
//
// Every reduction is computed the same way: permute the input so the kept axes come first and the reduced
// axes last, make it contiguous (a no-op when they already are), view it as (rows, cols) and reduce each
// row (core/cpu/reduce.cpp). Backward functions broadcast the row gradient back over the reduced axes.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "autograd/engine.h"
#include "core/kernels.h"
#include "core/ops.h"

namespace nl {

using kernels::ReduceOp;
using Grads = std::vector<Tensor>;

namespace {

// The bookkeeping of one reduction.
struct Reduction {
  std::vector<int64_t> perm;  // kept axes, then reduced axes
  std::vector<int64_t> axes;  // the reduced axes, ascending
  Shape keepdim_shape;        // input shape with reduced axes set to 1
  Shape out_shape;            // keepdim_shape, or with the reduced axes removed
  int64_t rows = 1, cols = 1;
};

Reduction plan(const Tensor& x, std::vector<int64_t> axes, bool keepdim, const char* op) {
  check_defined(x, op, "x");
  const int64_t rank = x.dim();
  // A 0-d tensor accepts dim 0 and −1 (normalize_dim), as PyTorch does: it has one element to reduce.
  std::vector<bool> reduced(static_cast<size_t>(std::max<int64_t>(rank, 1)), axes.empty());
  for (int64_t& a : axes) {
    a = normalize_dim(a, rank, op);
    check(!reduced[a] || axes.empty(), op, ": axis ", a, " is listed twice");
    reduced[a] = true;
  }
  Reduction r;
  for (int64_t d = 0; d < rank; ++d)
    if (!reduced[d]) r.perm.push_back(d), r.rows *= x.size(d);
  for (int64_t d = 0; d < rank; ++d)
    if (reduced[d]) r.perm.push_back(d), r.axes.push_back(d), r.cols *= x.size(d);
  r.keepdim_shape = x.shape();
  for (int64_t d = 0; d < rank; ++d) {
    if (reduced[d]) r.keepdim_shape[d] = 1;
    if (!reduced[d] || keepdim) r.out_shape.push_back(reduced[d] ? 1 : x.size(d));
  }
  return r;
}

// x as a contiguous (rows, cols) matrix, without recording.
Tensor as_rows(const Tensor& x, const Reduction& r) {
  NoGradGuard no_record;
  return x.permute(r.perm).contiguous().reshape({r.rows, r.cols});
}

// Broadcasts a gradient of the reduced shape back to x's shape.
Tensor spread(const Tensor& g, const Reduction& r, const Shape& x_shape) {
  return g.reshape(r.keepdim_shape).expand(x_shape);
}

Tensor reduce_forward(ReduceOp op, const Tensor& x, const Reduction& r, const char* name) {
  check(r.cols > 0 || op == ReduceOp::Sum, name, ": cannot reduce over an empty set of elements (shape ",
        x.shape(), ")");
  Tensor out = empty({r.rows}, op == ReduceOp::Argmax || op == ReduceOp::Argmin ? kInt64 : x.dtype());
  kernels::reduce_rows(op, as_rows(x, r), out);
  return out.reshape(r.out_shape);
}

Tensor extreme(ReduceOp op, const Tensor& x, std::vector<int64_t> axes, bool keepdim, const char* name) {
  const Reduction r = plan(x, std::move(axes), keepdim, name);
  Tensor out = reduce_forward(op, x, r, name);
  const ReduceOp arg = op == ReduceOp::Max ? ReduceOp::Argmax : ReduceOp::Argmin;
  return record(out, name, {x}, [x = x.detach(), r, arg](const Tensor& g) {
    // The gradient goes to the first position holding the extreme: a one-hot row per output element.
    Tensor pos = empty({r.rows}, kInt64);
    kernels::reduce_rows(arg, as_rows(x, r), pos);
    const Tensor one_hot = eq(arange(r.cols).reshape({1, r.cols}), pos.reshape({r.rows, 1})).to(g.dtype());
    Shape permuted;
    for (int64_t d : r.perm) permuted.push_back(x.size(d));
    std::vector<int64_t> inverse(r.perm.size());
    for (size_t i = 0; i < r.perm.size(); ++i) inverse[r.perm[i]] = static_cast<int64_t>(i);
    const Tensor dx_rows = mul(one_hot, g.reshape({r.rows, 1}));
    return Grads{dx_rows.reshape(permuted).permute(inverse).contiguous()};
  });
}

}  // namespace

Tensor sum(const Tensor& x, std::vector<int64_t> axes, bool keepdim) {
  const Reduction r = plan(x, std::move(axes), keepdim, "sum");
  Tensor out = reduce_forward(ReduceOp::Sum, x, r, "sum");
  return record(out, "sum", {x},
                [r, shape = x.shape()](const Tensor& g) { return Grads{spread(g, r, shape)}; });
}

Tensor mean(const Tensor& x, std::vector<int64_t> axes, bool keepdim) {
  const Reduction r = plan(x, std::move(axes), keepdim, "mean");
  check(r.cols > 0, "mean: cannot average an empty set of elements (shape ", x.shape(), ")");
  Tensor out = div(reduce_forward(ReduceOp::Sum, x, r, "mean"), static_cast<double>(r.cols));
  return record(out, "mean", {x}, [r, shape = x.shape()](const Tensor& g) {
    return Grads{spread(div(g, static_cast<double>(r.cols)), r, shape)};
  });
}

Tensor var(const Tensor& x, std::vector<int64_t> axes, bool unbiased, bool keepdim) {
  const Reduction r = plan(x, std::move(axes), keepdim, "var");
  Tensor out = empty({r.rows}, x.dtype());
  kernels::var_rows(as_rows(x, r), unbiased ? 1 : 0, out);
  out = out.reshape(r.out_shape);
  // dvar/dx_i = 2 (x_i − mean) / (n − correction)
  return record(out, "var", {x}, [x = x.detach(), r, unbiased](const Tensor& g) {
    const Tensor centered = sub(x, mean(x, r.axes, true));
    const double denom = static_cast<double>(r.cols - (unbiased ? 1 : 0));
    return Grads{mul(centered, spread(mul(g, 2.0 / denom), r, x.shape()))};
  });
}

Tensor stddev(const Tensor& x, std::vector<int64_t> axes, bool unbiased, bool keepdim) {
  check_defined(x, "stddev", "x");
  return sqrt(var(x, std::move(axes), unbiased, keepdim));
}

Tensor max(const Tensor& x, std::vector<int64_t> axes, bool keepdim) {
  return extreme(ReduceOp::Max, x, std::move(axes), keepdim, "max");
}
Tensor min(const Tensor& x, std::vector<int64_t> axes, bool keepdim) {
  return extreme(ReduceOp::Min, x, std::move(axes), keepdim, "min");
}

namespace {

// argmax/argmin along one dim: int64 indices of the first extreme, not differentiable.
Tensor arg_extreme(ReduceOp op, const Tensor& x, int64_t dim, bool keepdim, const char* name) {
  const Reduction r = plan(x, {dim}, keepdim, name);
  check(r.cols > 0, name, ": cannot take the ", name, " over dim ", normalize_dim(dim, x.dim(), name),
        " of size 0 (shape ", x.shape(), ")");
  return reduce_forward(op, x, r, name);
}

// sign(x) in x's dtype: −1, 0 or 1.
Tensor sign(const Tensor& x) {
  const Tensor zero = zeros({}, x.dtype());
  return sub(gt(x, zero), lt(x, zero));
}

}  // namespace

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  return arg_extreme(ReduceOp::Argmax, x, dim, keepdim, "argmax");
}

Tensor argmin(const Tensor& x, int64_t dim, bool keepdim) {
  return arg_extreme(ReduceOp::Argmin, x, dim, keepdim, "argmin");
}

// norm (torch.linalg.vector_norm) of x over the reduced axes R (all axes when none are given), p > 0:
//   p = 2:      y = sqrt(Σ x²)             dx = dy · x / y                              (0 where y = 0)
//   p = 1:      y = Σ |x|                  dx = dy · sign(x)
//   p = ∞:      y = max |x|                dx = dy · sign(x) · [|x| = y] / #{|x| = y}   (ties share dy)
//   any other:  y = (Σ |x|^p)^(1/p)        dx = dy · sign(x)·|x|^(p−1) / y^(p−1)      (0 where y = 0)
//   x: any shape, float32 or float64. y: x's shape without R (R kept as 1s with keepdim), x's dtype,
//   computed in double whatever x's dtype. Saved: x and y.
//   The backward is written out rather than left to the composition of sqrt, sum, abs and pow: at y = 0 the
//   composition multiplies 0 by an infinite derivative (1/(2·sqrt(0)) for p = 2) and gives NaN, where the
//   gradient PyTorch defines (and the one we want for a zero vector) is 0. sign(x)·|x|^(p−1) is x·|x|^(p−2)
//   written so that it is 0 at x = 0 for every p (|x|^(p−2) is infinite there for p < 2).
Tensor norm(const Tensor& x, double p, std::vector<int64_t> axes, bool keepdim) {
  check_defined(x, "norm", "x");
  check(p > 0, "norm: p must be > 0 (2, 1, INFINITY or any positive order), got p = ", p);
  check(is_floating(x.dtype()), "norm: expected a float32 or float64 tensor, got ", dtype_name(x.dtype()),
        " of shape ", x.shape());
  const Reduction r = plan(x, std::move(axes), keepdim, "norm");
  check(r.cols > 0 || !std::isinf(p), "norm: the inf norm (max |x|) of an empty set of elements is",
        " undefined (shape ", x.shape(), ")");
  Tensor y;
  {
    NoGradGuard no_record;
    const Tensor xd = x.to(kFloat64);
    if (p == 2)
      y = sqrt(sum(square(xd), r.axes, true));
    else if (p == 1)
      y = sum(abs(xd), r.axes, true);
    else if (std::isinf(p))
      y = max(abs(xd), r.axes, true);
    else
      y = pow(sum(pow(abs(xd), p), r.axes, true), 1.0 / p);
    y = y.to(x.dtype()).reshape(r.out_shape);
  }
  return record(y, "norm", {x}, [x = x.detach(), y = y.detach(), p, r](const Tensor& g) {
    const Tensor yk = y.reshape(r.keepdim_shape), gk = g.reshape(r.keepdim_shape);
    const Tensor zero = zeros({}, g.dtype());
    if (p == 1) return Grads{mul(sign(x), gk)};
    if (p == 2) return Grads{mul(x, where(eq(yk, zero), zero, div(gk, yk)))};  // dy·x/y, 0 where y = 0
    if (std::isinf(p)) {
      // dy is split evenly among the positions holding the maximum |x| (at x = 0 all of them, sign 0).
      const Tensor at_max = eq(abs(x), yk);
      return Grads{mul(mul(sign(x), at_max), div(gk, sum(at_max, r.axes, true)))};
    }
    const Tensor x_scaled = where(eq(x, zero), zero, mul(sign(x), pow(abs(x), p - 1)));  // x·|x|^(p−2)
    return Grads{mul(x_scaled, where(eq(yk, zero), zero, div(gk, pow(yk, p - 1))))};
  });
}

Tensor logsumexp(const Tensor& x, std::vector<int64_t> axes, bool keepdim) {
  const Reduction r = plan(x, std::move(axes), keepdim, "logsumexp");
  check(r.cols > 0, "logsumexp: cannot reduce an empty set of elements (shape ", x.shape(), ")");
  Tensor out = empty({r.rows}, x.dtype());
  kernels::logsumexp_rows(as_rows(x, r), out);
  out = out.reshape(r.out_shape);
  // d lse/dx_i = exp(x_i − lse) = softmax_i
  return record(out, "logsumexp", {x}, [x = x.detach(), y = out.detach(), r](const Tensor& g) {
    const Tensor p = exp(sub(x, spread(y, r, x.shape())));
    return Grads{mul(p, spread(g, r, x.shape()))};
  });
}

namespace {

// Moves `dim` last and views x as contiguous (rows, cols).
Tensor dim_last_rows(const Tensor& x, int64_t dim) {
  NoGradGuard no_record;
  const int64_t cols = x.size(dim);
  return x.transpose(dim, -1).contiguous().reshape({-1, cols});
}

// The inverse of dim_last_rows for a result of x's shape.
Tensor from_dim_last_rows(const Tensor& rows, const Tensor& x, int64_t dim) {
  NoGradGuard no_record;
  Shape moved = x.shape();
  std::swap(moved[dim], moved.back());
  return rows.reshape(moved).transpose(dim, -1).contiguous();
}

Tensor softmax_impl(const Tensor& x, int64_t dim, bool log) {
  const char* name = log ? "log_softmax" : "softmax";
  check_defined(x, name, "x");
  check(x.numel() > 0, name, ": empty input of shape ", x.shape());
  dim = normalize_dim(dim, x.dim(), name);
  if (x.dim() == 0) dim = 0;
  const Tensor xr = x.dim() == 0 ? x.reshape({1, 1}) : dim_last_rows(x, dim);
  Tensor yr = empty(xr.shape(), x.dtype());
  kernels::softmax_rows(xr, log, yr);
  Tensor out = x.dim() == 0 ? yr.reshape({}) : from_dim_last_rows(yr, x, dim);
  return record(out, name, {x}, [y = out.detach(), dim, log](const Tensor& g) {
    if (y.dim() == 0) return Grads{zeros_like(g)};
    const Tensor yr = dim_last_rows(y, dim), gr = dim_last_rows(g, dim);
    Tensor dxr = zeros(yr.shape(), y.dtype());
    kernels::softmax_rows_backward(yr, gr, log, dxr);
    return Grads{from_dim_last_rows(dxr, y, dim)};
  });
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, true); }

}  // namespace nl
