// Matrix products go to OpenBLAS (sgemm/dgemm): the shipped path never multiplies matrices in a hand loop.
// The readable reference for what gemm computes is tests/reference_ops.h (naive_matmul), which the tests
// compare against.
#include <cblas.h>
#include <omp.h>

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

// On two threads the pair runs side by side, one product per thread: OpenBLAS's OpenMP build gives a call
// made inside a parallel region one thread, so neither product pays for splitting its work and for the
// barriers between the parts. For the Linear backward of the MLP in bench/ (128 × 512 × 512) this takes
// 0.45 ms instead of 0.57 ms for the two products on two threads each, one after the other. With more
// threads each product keeps them all, in turn.
void gemm_pair(const GemmArgs& first, const GemmArgs& second) {
  auto run = [](const GemmArgs& g) {
    if (!g.c.defined()) return;
    Tensor c = g.c;
    gemm(g.trans_a, g.trans_b, g.m, g.n, g.k, g.alpha, g.a, g.a_offset, g.lda, g.b, g.b_offset, g.ldb, g.beta,
         c, g.c_offset, g.ldc);
  };
  // Checked here: an exception thrown inside the parallel region would end the program.
  for (const GemmArgs* g : {&first, &second}) {
    if (!g->c.defined()) continue;
    check(g->c.dtype() == DType::Float32 || g->c.dtype() == DType::Float64,
          "matmul: expected float32 or float64 tensors, got ", dtype_name(g->c.dtype()));
    check(g->a.dtype() == g->c.dtype() && g->b.dtype() == g->c.dtype(), "gemm_pair: a, b and c are ",
          dtype_name(g->a.dtype()), ", ", dtype_name(g->b.dtype()), " and ", dtype_name(g->c.dtype()),
          "; expected one dtype");
  }
  if (omp_get_max_threads() != 2 || omp_in_parallel() || !first.c.defined() || !second.c.defined()) {
    run(first);
    run(second);
    return;
  }
#pragma omp parallel num_threads(2)
  {
    if (omp_get_num_threads() < 2) {  // the runtime may give fewer threads than asked (OMP_DYNAMIC)
      run(first);
      run(second);
    } else {
      run(omp_get_thread_num() == 0 ? first : second);
    }
  }
}

}  // namespace nl::cpu
