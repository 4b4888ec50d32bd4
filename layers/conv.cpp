// conv2d forward and backward side by side, and the Conv2d module. The math is in layers/conv.h.
#include "layers/conv.h"

#include <algorithm>

#include "autograd/engine.h"
#include "core/kernels.h"
#include "core/kernels_conv.h"
#include "core/ops.h"
#include "core/threads.h"
#include "layers/init.h"

namespace nl {
namespace {

using kernels::Conv2dGeometry;

Conv2dGeometry conv_geometry(const Tensor& x, const Tensor& w, const Tensor& b, int64_t stride,
                             int64_t padding, int64_t dilation, int64_t groups) {
  check(x.dim() == 4, "conv2d: input must be 4-D (N, C, H, W), got shape ", x.shape());
  check(w.dim() == 4, "conv2d: weight must be 4-D (out_channels, in_channels/groups, kh, kw), got shape ",
        w.shape());
  check(is_floating(x.dtype()), "conv2d: input must be float32 or float64, got ", dtype_name(x.dtype()));
  check(x.dtype() == w.dtype(), "conv2d: input is ", dtype_name(x.dtype()), " but the weight is ",
        dtype_name(w.dtype()));
  check(stride >= 1 && dilation >= 1 && padding >= 0 && groups >= 1,
        "conv2d: need stride >= 1, dilation >= 1, ", "padding >= 0 and groups >= 1, got stride ", stride,
        ", padding ", padding, ", dilation ", dilation, ", groups ", groups);
  const int64_t oc = w.size(0);
  check(oc % groups == 0, "conv2d: weight of shape ", w.shape(), " has ", oc,
        " output channels, which groups=", groups, " does not divide");
  check(x.size(1) == w.size(1) * groups, "conv2d: input of shape ", x.shape(), " has ", x.size(1),
        " channels, but the weight of shape ", w.shape(), " with groups=", groups, " expects ",
        w.size(1) * groups);
  if (b.defined()) {
    check(b.dim() == 1 && b.size(0) == oc, "conv2d: bias must have shape [", oc, "], got ", b.shape());
    check(b.dtype() == x.dtype(), "conv2d: bias is ", dtype_name(b.dtype()), " but the input is ",
          dtype_name(x.dtype()));
  }
  Conv2dGeometry g;
  g.batch = x.size(0), g.channels = x.size(1), g.height = x.size(2), g.width = x.size(3);
  g.kernel_h = w.size(2), g.kernel_w = w.size(3);
  g.stride_h = g.stride_w = stride;
  g.pad_h = g.pad_w = padding;
  g.dilation_h = g.dilation_w = dilation;
  g.out_h = kernels::sliding_output_size(g.height, g.kernel_h, stride, padding, dilation);
  g.out_w = kernels::sliding_output_size(g.width, g.kernel_w, stride, padding, dilation);
  check(g.out_h > 0 && g.out_w > 0, "conv2d: input of shape ", x.shape(), " is too small for the kernel ",
        Shape{g.kernel_h, g.kernel_w}, " with padding ", padding, " and dilation ", dilation);
  return g;
}

// How many samples one im2col buffer holds.
int64_t chunk_size(const Conv2dGeometry& g) {
  const int64_t per_sample = g.channels * g.kernel_h * g.kernel_w * g.out_h * g.out_w;
  return std::clamp<int64_t>(kConvColumnBudget / std::max<int64_t>(per_sample, 1), 1,
                             std::max<int64_t>(g.batch, 1));
}

// Per-sample GEMMs (kernels::conv2d_forward/backward) keep every thread busy on its own samples and write
// straight into the (N, OC, OH, OW) layout; they pay off once each thread has a sample and a sample's
// columns fit the buffer budget. Even at one sample per thread they win: the trainer's conv2 (32→64, 3×3
// on 14×14) at batch 2 on 2 threads takes 530 µs forward and backward this way against 590–620 µs
// through one chunked GEMM, and conv1 50 µs against 120–145 µs. Otherwise (fewer samples than threads,
// huge images) the chunked path below runs one batched GEMM per chunk with the threads inside OpenBLAS.
bool use_per_sample_gemms(const Conv2dGeometry& g) {
  const int64_t threads = get_num_threads();
  const int64_t per_sample = g.channels * g.kernel_h * g.kernel_w * g.out_h * g.out_w;
  return g.batch >= threads && threads * per_sample <= kConvColumnBudget;
}

// The chunk's slice of an (N, OC, OH, OW) tensor, as an (OC, count, L) view matching a GEMM result.
Tensor chunk_as_columns(const Tensor& y, int64_t n0, int64_t count) {
  return y.narrow(0, n0, count).reshape({count, y.size(1), y.size(2) * y.size(3)}).permute({1, 0, 2});
}

}  // namespace

Tensor conv2d(const Tensor& x_in, const Tensor& w_in, const Tensor& bias, int64_t stride, int64_t padding,
              int64_t dilation, int64_t groups) {
  check_defined(x_in, "conv2d", "x");
  check_defined(w_in, "conv2d", "weight");
  const Conv2dGeometry geo = conv_geometry(x_in, w_in, bias, stride, padding, dilation, groups);
  const int64_t OC = w_in.size(0), OCg = OC / groups, L = geo.out_h * geo.out_w;
  const int64_t K = geo.channels * geo.kernel_h * geo.kernel_w, Kg = K / groups, chunk = chunk_size(geo);
  Tensor x, w;
  {
    NoGradGuard no_record;
    x = x_in.contiguous();
    w = w_in.contiguous();
  }
  Tensor out = empty({geo.batch, OC, geo.out_h, geo.out_w}, x.dtype(), x.device());
  const bool per_sample = use_per_sample_gemms(geo);
  if (per_sample) {
    NoGradGuard no_record;
    kernels::conv2d_forward(x, w, bias, geo, groups, out);
  } else {
    NoGradGuard no_record;
    for (int64_t n0 = 0; n0 < geo.batch; n0 += chunk) {
      const int64_t count = std::min(chunk, geo.batch - n0), cols = count * L;
      Tensor col = empty({K, cols}, x.dtype(), x.device());
      Tensor y = empty({OC, cols}, x.dtype(), x.device());
      kernels::im2col(x, geo, n0, count, col);
      // The bias enters as the GEMM's initial C (beta = 1): no extra pass over the output.
      if (bias.defined()) y.copy_(bias.reshape({OC, 1}).expand({OC, cols}));
      const double beta = bias.defined() ? 1.0 : 0.0;
      for (int64_t g = 0; g < groups; ++g)
        kernels::gemm(false, false, OCg, cols, Kg, 1.0, w, g * OCg * Kg, Kg, col, g * Kg * cols, cols, beta,
                      y, g * OCg * cols, cols);
      Tensor dst = chunk_as_columns(out, n0, count);
      dst.copy_(y.view({OC, count, L}));
    }
  }
  return record(out, "conv2d", {x_in, w_in, bias},
                [=, x = x.detach(), w = w.detach(), gx = x_in.requires_grad(), gw = w_in.requires_grad(),
                 gb = bias.defined() && bias.requires_grad()](const Tensor& g_in) {
                  const Tensor gy = g_in.contiguous();
                  if (per_sample) {
                    // One pass per sample computes all three gradients and overwrites them.
                    Tensor dx = gx ? empty(x.shape(), x.dtype()) : Tensor();
                    Tensor dw = gw ? empty(w.shape(), w.dtype()) : Tensor();
                    Tensor db = gb ? empty({OC}, x.dtype()) : Tensor();
                    kernels::conv2d_backward(x, w, gy, geo, groups, dx, dw, db, kernels::GradWrite::assign);
                    return std::vector<Tensor>{dx, dw, db};
                  }
                  Tensor dx = gx ? zeros(x.shape(), x.dtype()) : Tensor();
                  Tensor dw = gw ? zeros(w.shape(), w.dtype()) : Tensor();
                  for (int64_t n0 = 0; n0 < geo.batch; n0 += chunk) {
                    const int64_t count = std::min(chunk, geo.batch - n0), cols = count * L;
                    // dY of the chunk in the GEMM's (OC, count·L) layout.
                    Tensor dy = empty({OC, count, L}, gy.dtype(), gy.device());
                    dy.copy_(chunk_as_columns(gy, n0, count));
                    if (gw) {
                      Tensor col = empty({K, cols}, x.dtype(), x.device());
                      kernels::im2col(x, geo, n0, count, col);
                      for (int64_t g = 0; g < groups; ++g)
                        kernels::gemm(false, true, OCg, Kg, cols, 1.0, dy, g * OCg * cols, cols, col,
                                      g * Kg * cols, cols, 1.0, dw, g * OCg * Kg, Kg);
                    }
                    if (gx) {
                      Tensor dcol = empty({K, cols}, x.dtype(), x.device());
                      for (int64_t g = 0; g < groups; ++g)
                        kernels::gemm(true, false, Kg, cols, OCg, 1.0, w, g * OCg * Kg, Kg, dy,
                                      g * OCg * cols, cols, 0.0, dcol, g * Kg * cols, cols);
                      kernels::col2im(dcol, geo, n0, count, dx);
                    }
                  }
                  const Tensor db = gb ? sum(gy, {0, 2, 3}) : Tensor();
                  return std::vector<Tensor>{dx, dw, db};
                });
}

Tensor standardize_weight(const Tensor& weight, double eps) {
  check_defined(weight, "standardize_weight", "weight");
  check(weight.dim() >= 2, "standardize_weight: weight must have rank >= 2, got shape ", weight.shape());
  check(eps >= 0, "standardize_weight: eps must be >= 0, got ", eps);
  std::vector<int64_t> axes;
  for (int64_t d = 1; d < weight.dim(); ++d) axes.push_back(d);
  const Tensor mu = mean(weight, axes, true);
  const Tensor variance = var(weight, axes, /*unbiased=*/false, true);
  return div(sub(weight, mu), sqrt(add(variance, eps)));
}

Conv2d::Conv2d(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t padding, int64_t dilation,
               int64_t groups, bool bias)
    : Conv2d(in, out, k, Conv2dOptions{stride, padding, dilation, groups, bias}) {}

Conv2d::Conv2d(int64_t in, int64_t out, int64_t k, const Conv2dOptions& opt)
    : in_channels(in), out_channels(out), kernel_size(k), options(opt) {
  check(in > 0 && out > 0 && k > 0,
        "Conv2d: in_channels, out_channels and kernel_size must be positive, got ", in, ", ", out, ", ", k);
  check(opt.groups >= 1 && in % opt.groups == 0 && out % opt.groups == 0, "Conv2d: groups=", opt.groups,
        " must divide in_channels ", in, " and out_channels ", out);
  check(opt.stride >= 1 && opt.dilation >= 1 && opt.padding >= 0, "Conv2d: need stride >= 1, dilation >= 1 ",
        "and padding >= 0, got stride ", opt.stride, ", dilation ", opt.dilation, ", padding ", opt.padding);
  weight = empty({out, in / opt.groups, k, k}, opt.dtype);
  if (opt.bias) bias = empty({out}, opt.dtype);
  init::default_layer_init_(weight, bias, opt.generator);
  weight.requires_grad_();
  if (opt.bias) bias.requires_grad_();
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
}

Tensor Conv2d::forward(const Tensor& x) {
  check(x.dim() == 4 && x.size(1) == in_channels, describe(), ": expected input of shape [N, ", in_channels,
        ", H, W], got ", x.shape());
  const Tensor w = options.weight_standardization ? standardize_weight(weight, options.eps) : weight;
  return conv2d(x, w, bias, options.stride, options.padding, options.dilation, options.groups);
}

std::string Conv2d::describe() const {
  std::string s = cat_str("Conv2d(", in_channels, ", ", out_channels, ", kernel_size=", kernel_size);
  if (options.stride != 1) s += cat_str(", stride=", options.stride);
  if (options.padding != 0) s += cat_str(", padding=", options.padding);
  if (options.dilation != 1) s += cat_str(", dilation=", options.dilation);
  if (options.groups != 1) s += cat_str(", groups=", options.groups);
  if (!bias.defined()) s += ", bias=false";
  if (options.weight_standardization) s += cat_str(", weight_standardization, eps=", options.eps);
  return s + ")";
}

}  // namespace nl
