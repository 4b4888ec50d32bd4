// matmul, forward and backward.
//
//   C = A · B        A: (..., n, k)   B: (..., k, m)   C: (..., n, m), batch dims broadcast
//   dA = dC · Bᵀ     dB = Aᵀ · dC     (then summed over the batch dims that were broadcast)
//
// Every product is an OpenBLAS gemm. A matrix whose rows or columns are contiguous is passed as it is, with
// the transpose flag and leading dimension read off its strides: Bᵀ in the backward is a view, never a copy.
#include <algorithm>

#include "autograd/engine.h"
#include "core/kernels.h"
#include "core/ops.h"

namespace nl {
namespace {

// How gemm reads one operand: transposed or not, and its leading dimension.
struct GemmOperand {
  Tensor t;  // the tensor (possibly made contiguous)
  bool trans = false;
  int64_t ld = 0;
};

GemmOperand as_gemm_operand(const Tensor& x) {
  const int64_t r = x.dim(), rows = x.size(-2), cols = x.size(-1);
  const int64_t rs = x.strides()[r - 2], cs = x.strides()[r - 1];
  if ((cs == 1 || cols == 1) && rs >= std::max<int64_t>(cols, 1)) return {x, false, rs};
  if ((rs == 1 || rows == 1) && cs >= std::max<int64_t>(rows, 1)) return {x, true, cs};
  NoGradGuard no_record;
  Tensor c = x.contiguous();
  return {c, false, std::max<int64_t>(cols, 1)};
}

// Both operands have rank >= 2.
Tensor matmul_batched(const Tensor& a, const Tensor& b) {
  const int64_t n = a.size(-2), k = a.size(-1), m = b.size(-1);
  check(b.size(-2) == k, "matmul: a has shape ", a.shape(), " but b has shape ", b.shape(),
        ": inner dimensions ", k, " and ", b.size(-2), " differ");
  const Shape a_batch(a.shape().begin(), a.shape().end() - 2),
      b_batch(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shapes(a_batch, b_batch, "matmul");
  Shape out_shape = batch;
  out_shape.push_back(n);
  out_shape.push_back(m);
  numel_of(out_shape, "matmul");
  Tensor out = empty(out_shape, a.dtype(), a.device());
  if (k == 0) {
    out.zero_();
    return out;
  }

  Shape a_full = batch, b_full = batch;
  a_full.insert(a_full.end(), {n, k});
  b_full.insert(b_full.end(), {k, m});
  NoGradGuard no_record;
  const GemmOperand A = as_gemm_operand(a.expand(a_full)), B = as_gemm_operand(b.expand(b_full));
  const int64_t count = numel_of(batch), nb = static_cast<int64_t>(batch.size());
  for (int64_t i = 0; i < count; ++i) {
    // Offsets of matrix i in each operand, through their (possibly zero) batch strides.
    int64_t a_off = 0, b_off = 0, rest = i;
    for (int64_t d = nb - 1; d >= 0; --d) {
      const int64_t idx = rest % batch[d];
      rest /= batch[d];
      a_off += idx * A.t.strides()[d];
      b_off += idx * B.t.strides()[d];
    }
    kernels::gemm(A.trans, B.trans, n, m, k, 1.0, A.t, a_off, A.ld, B.t, b_off, B.ld, 0.0, out, i * n * m, m);
  }
  return out;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_defined(a, "matmul", "a");
  check_defined(b, "matmul", "b");
  check(a.dtype() == b.dtype(), "matmul: dtypes differ: a is ", dtype_name(a.dtype()), ", b is ",
        dtype_name(b.dtype()));
  check(is_floating(a.dtype()), "matmul: expected float tensors, got ", dtype_name(a.dtype()));
  check(a.dim() >= 1 && b.dim() >= 1, "matmul: both operands need rank >= 1, got shapes ", a.shape(), " and ",
        b.shape());
  // 1-D operands, as in NumPy: a vector on the left is a row, on the right a column; the added dim is
  // removed from the result.
  if (a.dim() == 1 && b.dim() == 1) return matmul(a.unsqueeze(0), b.unsqueeze(1)).reshape({});
  if (a.dim() == 1) return matmul(a.unsqueeze(0), b).squeeze(-2);
  if (b.dim() == 1) return matmul(a, b.unsqueeze(1)).squeeze(-1);
  // (..., n, k) · (k, m) with a contiguous: one large gemm over all the rows.
  if (b.dim() == 2 && a.dim() > 2 && a.is_contiguous()) {
    Shape out_shape(a.shape().begin(), a.shape().end() - 1);
    out_shape.push_back(b.size(1));
    return matmul(a.reshape({-1, a.size(-1)}), b).reshape(out_shape);
  }
  Tensor out = matmul_batched(a, b);
  return record(
      out, "matmul", {a, b},
      [a = a.detach(), b = b.detach(), ga = a.requires_grad(), gb = b.requires_grad()](const Tensor& g) {
        return std::vector<Tensor>{ga ? sum_to(matmul(g, b.transpose(-1, -2)), a.shape()) : Tensor(),
                                   gb ? sum_to(matmul(a.transpose(-1, -2), g), b.shape()) : Tensor()};
      });
}

}  // namespace nl
