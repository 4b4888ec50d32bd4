// Matrix products go to OpenBLAS (sgemm/dgemm): the shipped path never multiplies matrices in a hand loop.
// The readable reference for what gemm computes is tests/reference_ops.h (naive_matmul), which the tests
// compare against.
#include <cblas.h>

#include "core/cpu/cpu_kernels.h"

namespace nl::cpu {

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const Tensor& a,
          int64_t a_offset, int64_t lda, const Tensor& b, int64_t b_offset, int64_t ldb, double beta,
          Tensor& c, int64_t c_offset, int64_t ldc) {
  const auto ta = trans_a ? CblasTrans : CblasNoTrans;
  const auto tb = trans_b ? CblasTrans : CblasNoTrans;
  if (m == 0 || n == 0) return;
  if (k == 0) {  // an empty sum: C = beta · C (BLAS would read A and B with invalid leading dimensions)
    visit_floating(c.dtype(), "matmul", [&](auto tag) {
      using T = typename decltype(tag)::type;
      T* pc = c.data<T>() + c_offset;
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j)
          pc[i * ldc + j] = beta == 0 ? T(0) : static_cast<T>(beta) * pc[i * ldc + j];
    });
    return;
  }
  if (c.dtype() == DType::Float32) {
    cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, static_cast<float>(alpha), a.data<float>() + a_offset, lda,
                b.data<float>() + b_offset, ldb, static_cast<float>(beta), c.data<float>() + c_offset, ldc);
  } else if (c.dtype() == DType::Float64) {
    cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a.data<double>() + a_offset, lda,
                b.data<double>() + b_offset, ldb, beta, c.data<double>() + c_offset, ldc);
  } else {
    throw Error(cat_str("matmul: expected float32 or float64 tensors, got ", dtype_name(c.dtype())));
  }
}

}  // namespace nl::cpu
