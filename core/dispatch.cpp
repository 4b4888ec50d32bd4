// The one place where each kernel family picks its implementation by device (see core/kernels.h).
// A GPU backend adds a `case Device::CUDA:` calling cuda::<same name>; nothing else changes.
#include "core/cpu/cpu_conv.h"
#include "core/cpu/cpu_kernels.h"
#include "core/cpu/cpu_loss.h"
#include "core/cpu/cpu_optim.h"
#include "core/cpu/cpu_normalization.h"
#include "core/kernels.h"
#include "core/kernels_conv.h"
#include "core/kernels_loss.h"
#include "core/kernels_optim.h"
#include "core/kernels_normalization.h"

namespace nl::kernels {
namespace {

[[noreturn]] void no_backend(const char* kernel, Device d) {
  throw Error(cat_str(kernel, ": no kernel for device ", device_name(d),
                      " in this build (normlab was built for the CPU only)"));
}

}  // namespace

void unary(UnaryOp op, Params p, const Tensor& x, Tensor& out) {
  if (x.device() == Device::CPU) return cpu::unary(op, p, x, out);
  no_backend("unary", x.device());
}
void unary_grad(UnaryGradOp op, Params p, const Tensor& saved, const Tensor& g, Tensor& dx) {
  if (g.device() == Device::CPU) return cpu::unary_grad(op, p, saved, g, dx);
  no_backend("unary_grad", g.device());
}
void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  if (a.device() == Device::CPU) return cpu::binary(op, a, b, out);
  no_backend("binary", a.device());
}
void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  if (a.device() == Device::CPU) return cpu::where(cond, a, b, out);
  no_backend("where", a.device());
}
void reduce_rows(ReduceOp op, const Tensor& x, Tensor& out) {
  if (x.device() == Device::CPU) return cpu::reduce_rows(op, x, out);
  no_backend("reduce_rows", x.device());
}
void var_rows(const Tensor& x, int64_t correction, Tensor& out) {
  if (x.device() == Device::CPU) return cpu::var_rows(x, correction, out);
  no_backend("var_rows", x.device());
}
void logsumexp_rows(const Tensor& x, Tensor& out) {
  if (x.device() == Device::CPU) return cpu::logsumexp_rows(x, out);
  no_backend("logsumexp_rows", x.device());
}
void column_sums(const Tensor& x, Tensor& out) {
  if (x.device() == Device::CPU) return cpu::column_sums(x, out);
  no_backend("column_sums", x.device());
}
void softmax_rows(const Tensor& x, bool log, Tensor& out) {
  if (x.device() == Device::CPU) return cpu::softmax_rows(x, log, out);
  no_backend("softmax_rows", x.device());
}
void softmax_rows_backward(const Tensor& y, const Tensor& dy, bool log, Tensor& dx) {
  if (y.device() == Device::CPU) return cpu::softmax_rows_backward(y, dy, log, dx);
  no_backend("softmax_rows_backward", y.device());
}
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const Tensor& a,
          int64_t a_offset, int64_t lda, const Tensor& b, int64_t b_offset, int64_t ldb, double beta,
          Tensor& c, int64_t c_offset, int64_t ldc) {
  if (a.device() == Device::CPU)
    return cpu::gemm(trans_a, trans_b, m, n, k, alpha, a, a_offset, lda, b, b_offset, ldb, beta, c, c_offset,
                     ldc);
  no_backend("gemm", a.device());
}
void gemm_pair(const GemmArgs& first, const GemmArgs& second) {
  const Device device = (first.c.defined() ? first : second).a.device();
  check(!(first.c.defined() && second.c.defined()) || second.a.device() == device,
        "gemm_pair: the two products are on different devices");
  if (device == Device::CPU) return cpu::gemm_pair(first, second);
  no_backend("gemm_pair", device);
}
void copy(const Tensor& src, Tensor& dst) {
  if (src.device() == Device::CPU) return cpu::copy(src, dst);
  no_backend("copy", src.device());
}
void fill(Tensor& dst, double value) {
  if (dst.device() == Device::CPU) return cpu::fill(dst, value);
  no_backend("fill", dst.device());
}
void axpy(double alpha, const Tensor& src, Tensor& dst) {
  if (dst.device() == Device::CPU) return cpu::axpy(alpha, src, dst);
  no_backend("axpy", dst.device());
}
void index_select(const Tensor& x, int64_t outer, int64_t size, int64_t inner, const Tensor& index,
                  Tensor& out) {
  if (x.device() == Device::CPU) return cpu::index_select(x, outer, size, inner, index, out);
  no_backend("index_select", x.device());
}
void index_add(const Tensor& g, int64_t outer, int64_t size, int64_t inner, const Tensor& index, Tensor& dx) {
  if (g.device() == Device::CPU) return cpu::index_add(g, outer, size, inner, index, dx);
  no_backend("index_add", g.device());
}

// ---- convolution, pooling and fused losses (core/kernels_conv.h, core/kernels_loss.h) ------------------

void im2col(const Tensor& x, const Conv2dGeometry& geo, int64_t n0, int64_t count, Tensor& col) {
  if (x.device() == Device::CPU) return cpu::im2col(x, geo, n0, count, col);
  no_backend("im2col", x.device());
}
void col2im(const Tensor& col, const Conv2dGeometry& geo, int64_t n0, int64_t count, Tensor& dx) {
  if (col.device() == Device::CPU) return cpu::col2im(col, geo, n0, count, dx);
  no_backend("col2im", col.device());
}
void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dGeometry& geo,
                    int64_t groups, Tensor& y) {
  if (x.device() == Device::CPU) return cpu::conv2d_forward(x, w, bias, geo, groups, y);
  no_backend("conv2d_forward", x.device());
}
void conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& dy, const Conv2dGeometry& geo,
                     int64_t groups, Tensor& dx, Tensor& dw, Tensor& db, GradWrite write) {
  if (x.device() == Device::CPU) return cpu::conv2d_backward(x, w, dy, geo, groups, dx, dw, db, write);
  no_backend("conv2d_backward", x.device());
}
void max_pool2d(const Tensor& x, const Pool2dGeometry& geo, Tensor& out, Tensor& argmax) {
  if (x.device() == Device::CPU) return cpu::max_pool2d(x, geo, out, argmax);
  no_backend("max_pool2d", x.device());
}
void max_pool2d_backward(const Tensor& g, const Tensor& argmax, const Pool2dGeometry& geo, Tensor& dx,
                         GradWrite dx_write) {
  if (g.device() == Device::CPU) return cpu::max_pool2d_backward(g, argmax, geo, dx, dx_write);
  no_backend("max_pool2d_backward", g.device());
}
void avg_pool2d(const Tensor& x, const Pool2dGeometry& geo, bool count_include_pad, Tensor& out) {
  if (x.device() == Device::CPU) return cpu::avg_pool2d(x, geo, count_include_pad, out);
  no_backend("avg_pool2d", x.device());
}
void avg_pool2d_backward(const Tensor& g, const Pool2dGeometry& geo, bool count_include_pad, Tensor& dx) {
  if (g.device() == Device::CPU) return cpu::avg_pool2d_backward(g, geo, count_include_pad, dx);
  no_backend("avg_pool2d_backward", g.device());
}
void adaptive_avg_pool2d(const Tensor& x, Tensor& out) {
  if (x.device() == Device::CPU) return cpu::adaptive_avg_pool2d(x, out);
  no_backend("adaptive_avg_pool2d", x.device());
}
void adaptive_avg_pool2d_backward(const Tensor& g, Tensor& dx) {
  if (g.device() == Device::CPU) return cpu::adaptive_avg_pool2d_backward(g, dx);
  no_backend("adaptive_avg_pool2d_backward", g.device());
}
void cross_entropy(const Tensor& logits, const Tensor& targets, double label_smoothing, Tensor& probs,
                   Tensor& row_loss) {
  if (logits.device() == Device::CPU)
    return cpu::cross_entropy(logits, targets, label_smoothing, probs, row_loss);
  no_backend("cross_entropy", logits.device());
}
void cross_entropy_backward(const Tensor& probs, const Tensor& targets, double label_smoothing,
                            const Tensor& row_grad, Tensor& dlogits) {
  if (probs.device() == Device::CPU)
    return cpu::cross_entropy_backward(probs, targets, label_smoothing, row_grad, dlogits);
  no_backend("cross_entropy_backward", probs.device());
}

// ---- optimizers (core/kernels_optim.h) ----------------------------------------------------------------

void sgd_update(const SgdStep& s, Tensor& w, const Tensor& g, Tensor& buf) {
  if (w.device() == Device::CPU) return cpu::sgd_update(s, w, g, buf);
  no_backend("sgd_update", w.device());
}

// ---- normalization: the normalize-over-axes core (core/kernels_normalization.h) ------------------------

void normalize_moments(const Tensor& x, const NormLayout& layout, Tensor& mean, Tensor& var) {
  if (x.device() == Device::CPU) return cpu::normalize_moments(x, layout, mean, var);
  no_backend("normalize_moments", x.device());
}
void normalize_moments_forward(const Tensor& x, const NormLayout& layout, double eps, const Tensor& weight,
                               const Tensor& bias, Tensor& mean, Tensor& var, Tensor& inv_std, Tensor& y,
                               NormActivation activation, const MaxPoolAfter* pool) {
  if (x.device() == Device::CPU)
    return cpu::normalize_moments_forward(x, layout, eps, weight, bias, mean, var, inv_std, y, activation,
                                          pool);
  no_backend("normalize_moments_forward", x.device());
}
void normalize_forward(const Tensor& x, const NormLayout& layout, const NormStats& stats,
                       const Tensor& weight, const Tensor& bias, Tensor& y, NormActivation activation,
                       const MaxPoolAfter* pool) {
  if (x.device() == Device::CPU)
    return cpu::normalize_forward(x, layout, stats, weight, bias, y, activation, pool);
  no_backend("normalize_forward", x.device());
}
void normalize_backward(const Tensor& x, const Tensor& dy, const NormLayout& layout, const NormStats& stats,
                        const Tensor& weight, bool batch_stats, Tensor& dx, Tensor& dweight, Tensor& dbias,
                        GradWrite dx_write, NormActivation activation, const Tensor& bias,
                        const MaxPoolAfter* pool) {
  if (x.device() == Device::CPU)
    return cpu::normalize_backward(x, dy, layout, stats, weight, batch_stats, dx, dweight, dbias, dx_write,
                                   activation, bias, pool);
  no_backend("normalize_backward", x.device());
}

}  // namespace nl::kernels
