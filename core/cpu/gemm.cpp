// Matrix products go to OpenBLAS (sgemm/dgemm): the shipped path never multiplies matrices in a hand loop.
// The readable reference for what gemm computes is tests/reference_ops.h (naive_matmul), which the tests
// compare against.
#include <cblas.h>
#include <omp.h>

#include <algorithm>

#include "core/cpu/cpu_kernels.h"

namespace nl::cpu {
namespace {

// A product with a handful of rows (a Linear layer at batch 2: 2 × 3136 by 3136 × 128) is a few
// matrix-vector products, and sgemm spends most of its time packing B (the whole weight matrix, every
// call) for a kernel that then uses 2 of its 16 rows. Row i of C is op(B)ᵀ · (row i of op(A)), one gemv
// that reads B once: 2 × 3136 × 128 takes 23–40 µs this way against 100–118 µs through sgemm (1 and 2
// threads); from about 8 rows on, sgemm's reuse of the packed B wins again.
constexpr int64_t kSkinnyRows = 4;

void skinny_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const Tensor& a,
                 int64_t a_offset, int64_t lda, const Tensor& b, int64_t b_offset, int64_t ldb, double beta,
                 Tensor& c, int64_t c_offset, int64_t ldc) {
  // op(B) is (k, n). Stored untransposed it is a row-major (k, n) matrix, and op(B)ᵀ·v is its transposed
  // gemv; stored transposed it is (n, k), and op(B)ᵀ·v is the plain gemv.
  const auto b_op = trans_b ? CblasNoTrans : CblasTrans;
  const int64_t b_rows = trans_b ? n : k, b_cols = trans_b ? k : n;
  // Row i of op(A): row i of A (unit stride), or column i of the stored (k, m) A (stride lda).
  const int64_t a_row_step = trans_a ? 1 : lda, a_inc = trans_a ? lda : 1;
  // beta = 0 must ignore whatever C holds (recycled memory may hold NaN), and not every BLAS promises that
  // for gemv's y: clear the rows and accumulate into them.
  if (beta == 0) {
    visit_floating(c.dtype(), "matmul", [&](auto tag) {
      using T = typename decltype(tag)::type;
      for (int64_t i = 0; i < m; ++i) std::fill_n(c.data<T>() + c_offset + i * ldc, n, T(0));
    });
    beta = 1;
  }
  for (int64_t i = 0; i < m; ++i) {
    if (c.dtype() == DType::Float32) {
      cblas_sgemv(CblasRowMajor, b_op, b_rows, b_cols, static_cast<float>(alpha), b.data<float>() + b_offset,
                  ldb, a.data<float>() + a_offset + i * a_row_step, a_inc, static_cast<float>(beta),
                  c.data<float>() + c_offset + i * ldc, 1);
    } else if (c.dtype() == DType::Float64) {
      cblas_dgemv(CblasRowMajor, b_op, b_rows, b_cols, alpha, b.data<double>() + b_offset, ldb,
                  a.data<double>() + a_offset + i * a_row_step, a_inc, beta,
                  c.data<double>() + c_offset + i * ldc, 1);
    } else {
      throw Error(cat_str("matmul: expected float32 or float64 tensors, got ", dtype_name(c.dtype())));
    }
  }
}

}  // namespace

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
  if (m <= kSkinnyRows)
    return skinny_gemm(trans_a, trans_b, m, n, k, alpha, a, a_offset, lda, b, b_offset, ldb, beta, c,
                       c_offset, ldc);
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
