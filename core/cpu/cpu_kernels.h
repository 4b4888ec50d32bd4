// CPU implementations of the kernels declared in core/kernels.h: same names, same signatures, in namespace
// nl::cpu. The loops are plain and contiguous so the compiler vectorizes them; OpenMP splits the outer loop
// when there is enough work to pay for the threads.
#pragma once

#include "../kernels.h"

namespace nl::cpu {

using kernels::BinaryOp;
using kernels::Params;
using kernels::ReduceOp;
using kernels::UnaryGradOp;
using kernels::UnaryOp;

void unary(UnaryOp op, Params p, const Tensor& x, Tensor& out);
void unary_grad(UnaryGradOp op, Params p, const Tensor& saved, const Tensor& g, Tensor& dx);
void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out);
void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out);
void reduce_rows(ReduceOp op, const Tensor& x, Tensor& out);
void var_rows(const Tensor& x, int64_t correction, Tensor& out);
void logsumexp_rows(const Tensor& x, Tensor& out);
void column_sums(const Tensor& x, Tensor& out);
void softmax_rows(const Tensor& x, bool log, Tensor& out);
void softmax_rows_backward(const Tensor& y, const Tensor& dy, bool log, Tensor& dx);
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const Tensor& a,
          int64_t a_offset, int64_t lda, const Tensor& b, int64_t b_offset, int64_t ldb, double beta,
          Tensor& c, int64_t c_offset, int64_t ldc);
using kernels::GemmArgs;
void gemm_pair(const GemmArgs& first, const GemmArgs& second);
void copy(const Tensor& src, Tensor& dst);
void fill(Tensor& dst, double value);
void axpy(double alpha, const Tensor& src, Tensor& dst);
void index_select(const Tensor& x, int64_t outer, int64_t size, int64_t inner, const Tensor& index,
                  Tensor& out);
void index_add(const Tensor& g, int64_t outer, int64_t size, int64_t inner, const Tensor& index, Tensor& dx);

// Below this many elements a loop runs on one thread: waking the pool costs more than it saves.
inline constexpr int64_t kParallelGrain = 32768;

}  // namespace nl::cpu
