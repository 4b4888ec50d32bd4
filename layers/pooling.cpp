// Pooling ops, forward and backward side by side, and their modules. The math is in layers/pooling.h.
#include "layers/pooling.h"

#include "autograd/engine.h"
#include "core/kernels_conv.h"
#include "core/ops.h"

namespace nl {
namespace {

using kernels::Pool2dGeometry;

Pool2dGeometry pool_geometry(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding,
                             const char* op) {
  check_defined(x, op, "x");
  check(x.dim() == 4, op, ": input must be 4-D (N, C, H, W), got shape ", x.shape());
  check(is_floating(x.dtype()), op, ": input must be float32 or float64, got ", dtype_name(x.dtype()));
  check(kernel >= 1, op, ": kernel_size must be >= 1, got ", kernel);
  check(stride >= 0, op, ": stride must be >= 1 (or 0 for stride = kernel_size), got ", stride);
  check(padding >= 0 && 2 * padding <= kernel, op, ": padding must be between 0 and half the kernel size ",
        kernel, ", got ", padding);
  Pool2dGeometry g;
  g.batch = x.size(0), g.channels = x.size(1), g.height = x.size(2), g.width = x.size(3);
  g.kernel_h = g.kernel_w = kernel;
  g.stride_h = g.stride_w = stride == 0 ? kernel : stride;
  g.pad_h = g.pad_w = padding;
  g.out_h = kernels::sliding_output_size(g.height, kernel, g.stride_h, padding, 1);
  g.out_w = kernels::sliding_output_size(g.width, kernel, g.stride_w, padding, 1);
  check(g.out_h > 0 && g.out_w > 0, op, ": input of shape ", x.shape(), " is smaller than the kernel ",
        Shape{kernel, kernel}, " with padding ", padding);
  return g;
}

Tensor dense(const Tensor& x) {
  NoGradGuard no_record;
  return x.contiguous();
}

}  // namespace

Tensor max_pool2d(const Tensor& x_in, int64_t kernel, int64_t stride, int64_t padding) {
  const Pool2dGeometry geo = pool_geometry(x_in, kernel, stride, padding, "max_pool2d");
  const Tensor x = dense(x_in);
  Tensor out = empty({geo.batch, geo.channels, geo.out_h, geo.out_w}, x.dtype(), x.device());
  Tensor argmax = empty(out.shape(), kInt64, x.device());
  kernels::max_pool2d(x, geo, out, argmax);
  return record(out, "max_pool2d", {x_in}, [geo, argmax, shape = x.shape()](const Tensor& g) {
    Tensor dx = empty(shape, g.dtype());  // fresh: the kernel assigns every cell (no zero-fill pass)
    kernels::max_pool2d_backward(g.contiguous(), argmax, geo, dx, kernels::GradWrite::assign);
    return std::vector<Tensor>{dx};
  });
}

Tensor avg_pool2d(const Tensor& x_in, int64_t kernel, int64_t stride, int64_t padding,
                  bool count_include_pad) {
  const Pool2dGeometry geo = pool_geometry(x_in, kernel, stride, padding, "avg_pool2d");
  const Tensor x = dense(x_in);
  Tensor out = empty({geo.batch, geo.channels, geo.out_h, geo.out_w}, x.dtype(), x.device());
  kernels::avg_pool2d(x, geo, count_include_pad, out);
  return record(out, "avg_pool2d", {x_in}, [geo, count_include_pad, shape = x.shape()](const Tensor& g) {
    Tensor dx = zeros(shape, g.dtype());
    kernels::avg_pool2d_backward(g.contiguous(), geo, count_include_pad, dx);
    return std::vector<Tensor>{dx};
  });
}

Tensor adaptive_avg_pool2d(const Tensor& x_in, int64_t out_h, int64_t out_w) {
  check_defined(x_in, "adaptive_avg_pool2d", "x");
  check(x_in.dim() == 4, "adaptive_avg_pool2d: input must be 4-D (N, C, H, W), got shape ", x_in.shape());
  check(is_floating(x_in.dtype()), "adaptive_avg_pool2d: input must be float32 or float64, got ",
        dtype_name(x_in.dtype()));
  check(out_h >= 1 && out_w >= 1, "adaptive_avg_pool2d: output size must be positive, got ",
        Shape{out_h, out_w});
  check(x_in.size(2) >= 1 && x_in.size(3) >= 1, "adaptive_avg_pool2d: input of shape ", x_in.shape(),
        " has an empty plane");
  const Tensor x = dense(x_in);
  Tensor out = empty({x.size(0), x.size(1), out_h, out_w}, x.dtype(), x.device());
  kernels::adaptive_avg_pool2d(x, out);
  return record(out, "adaptive_avg_pool2d", {x_in}, [shape = x.shape()](const Tensor& g) {
    Tensor dx = zeros(shape, g.dtype());
    kernels::adaptive_avg_pool2d_backward(g.contiguous(), dx);
    return std::vector<Tensor>{dx};
  });
}

Tensor global_avg_pool2d(const Tensor& x) {
  check_defined(x, "global_avg_pool2d", "x");
  check(x.dim() == 4, "global_avg_pool2d: input must be 4-D (N, C, H, W), got shape ", x.shape());
  return adaptive_avg_pool2d(x, 1, 1).reshape({x.size(0), x.size(1)});
}

MaxPool2d::MaxPool2d(int64_t k, int64_t s, int64_t p) : kernel_size(k), stride(s), padding(p) {
  check(k >= 1 && s >= 0 && p >= 0 && 2 * p <= k, "MaxPool2d: invalid kernel_size ", k, ", stride ", s,
        ", padding ", p, " (need kernel_size >= 1, stride >= 0, 0 <= padding <= kernel_size/2)");
}
Tensor MaxPool2d::forward(const Tensor& x) { return max_pool2d(x, kernel_size, stride, padding); }
std::string MaxPool2d::describe() const {
  return cat_str("MaxPool2d(kernel_size=", kernel_size, ", stride=", stride == 0 ? kernel_size : stride,
                 ", padding=", padding, ")");
}

AvgPool2d::AvgPool2d(int64_t k, int64_t s, int64_t p, bool include_pad)
    : kernel_size(k), stride(s), padding(p), count_include_pad(include_pad) {
  check(k >= 1 && s >= 0 && p >= 0 && 2 * p <= k, "AvgPool2d: invalid kernel_size ", k, ", stride ", s,
        ", padding ", p, " (need kernel_size >= 1, stride >= 0, 0 <= padding <= kernel_size/2)");
}
Tensor AvgPool2d::forward(const Tensor& x) {
  return avg_pool2d(x, kernel_size, stride, padding, count_include_pad);
}
std::string AvgPool2d::describe() const {
  return cat_str("AvgPool2d(kernel_size=", kernel_size, ", stride=", stride == 0 ? kernel_size : stride,
                 ", padding=", padding, count_include_pad ? "" : ", count_include_pad=false", ")");
}

AdaptiveAvgPool2d::AdaptiveAvgPool2d(int64_t h, int64_t w) : out_h(h), out_w(w) {
  check(h >= 1 && w >= 1, "AdaptiveAvgPool2d: output size must be positive, got ", Shape{h, w});
}
Tensor AdaptiveAvgPool2d::forward(const Tensor& x) { return adaptive_avg_pool2d(x, out_h, out_w); }
std::string AdaptiveAvgPool2d::describe() const {
  return cat_str("AdaptiveAvgPool2d(", out_h, ", ", out_w, ")");
}

std::string Flatten::describe() const {
  return cat_str("Flatten(start_dim=", start_dim, ", end_dim=", end_dim, ")");
}

}  // namespace nl
