#include "layers/linear.h"

#include "autograd/engine.h"
#include "core/kernels.h"
#include "core/ops.h"
#include "layers/init.h"

namespace nl {

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_defined(x, "linear", "x");
  check_defined(weight, "linear", "weight");
  check(weight.dim() == 2, "linear: weight must be 2-D (out, in), got shape ", weight.shape());
  check(x.dim() >= 1, "linear: input must have rank >= 1, got a scalar");
  check(x.size(-1) == weight.size(1), "linear: input of shape ", x.shape(), " has ", x.size(-1),
        " features in its last dimension, but the weight of shape ", weight.shape(), " expects ",
        weight.size(1));
  check(x.dtype() == weight.dtype(), "linear: input is ", dtype_name(x.dtype()), " but the weight is ",
        dtype_name(weight.dtype()));
  if (bias.defined()) {
    check(bias.dim() == 1 && bias.size(0) == weight.size(0), "linear: bias must have shape [", weight.size(0),
          "], got ", bias.shape());
    check(bias.dtype() == x.dtype(), "linear: bias is ", dtype_name(bias.dtype()), " but the input is ",
          dtype_name(x.dtype()));
  }
  const int64_t in = weight.size(1), out_features = weight.size(0);
  Tensor x2, w;  // x as (rows, in), both contiguous
  {
    NoGradGuard no_record;
    x2 = x.contiguous().reshape({-1, in});
    w = weight.contiguous();
  }
  const int64_t rows = x2.size(0);
  Shape out_shape = x.shape();
  out_shape.back() = out_features;
  Tensor y = empty({rows, out_features}, x.dtype(), x.device());
  if (bias.defined()) {
    // The bias enters as the GEMM's initial C (beta = 1): it replaces the pass that zeroes C.
    NoGradGuard no_record;
    y.copy_(bias.reshape({1, out_features}).expand({rows, out_features}));
  }
  // y = x · Wᵀ: W is (out, in) row-major, so Wᵀ is W with the transpose flag.
  kernels::gemm(false, true, rows, out_features, in, 1.0, x2, 0, in, w, 0, in, bias.defined() ? 1.0 : 0.0, y,
                0, out_features);
  y = y.view(out_shape);
  return record(
      y, "linear", {x, weight, bias},
      [x2 = x2.detach(), w = w.detach(), x_shape = x.shape(), gx = x.requires_grad(),
       gw = weight.requires_grad(), gb = bias.defined() && bias.requires_grad()](const Tensor& g_in) {
        const int64_t in = w.size(1), out_features = w.size(0), rows = x2.size(0);
        const Tensor g = g_in.contiguous().reshape({rows, out_features});
        Tensor dx, dw, db;
        kernels::GemmArgs dx_args, dw_args;
        if (gx) {  // dx = dy · W
          dx = empty({rows, in}, g.dtype(), g.device());
          dx_args = {false, false, rows, in, out_features, 1.0, g, 0, out_features, w, 0, in, 0.0, dx, 0, in};
        }
        if (gw) {  // dW = dyᵀ · x, computed in W's own (out, in) layout
          dw = empty({out_features, in}, g.dtype(), g.device());
          dw_args = {true, false, out_features, in, rows, 1.0, g, 0, out_features, x2, 0, in, 0.0, dw, 0, in};
        }
        // The two products have the same FLOP count and are independent: side by side, one per thread.
        kernels::gemm_pair(dx_args, dw_args);
        if (gx) dx = dx.view(x_shape);
        if (gb) {  // db = Σ_rows dy
          db = zeros({out_features}, g.dtype());
          kernels::column_sums(g, db);
        }
        return std::vector<Tensor>{dx, dw, db};
      });
}

Linear::Linear(int64_t in, int64_t out, const LinearOptions& options) : in_features(in), out_features(out) {
  check(in > 0 && out > 0, "Linear: in_features and out_features must be positive, got ", in, " and ", out);
  check(is_floating(options.dtype), "Linear: dtype must be float32 or float64, got ",
        dtype_name(options.dtype));
  weight = empty({out, in}, options.dtype);
  if (options.bias) bias = empty({out}, options.dtype);
  init::default_layer_init_(weight, bias, options.generator);
  weight.requires_grad_();
  if (options.bias) bias.requires_grad_();
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
}

Tensor Linear::forward(const Tensor& x) {
  check(x.dim() >= 1 && x.size(-1) == in_features, "Linear(", in_features, ", ", out_features,
        "): expected input of shape [..., ", in_features, "], got ", x.shape());
  return linear(x, weight, bias);
}

std::string Linear::describe() const {
  return cat_str("Linear(", in_features, ", ", out_features, bias.defined() ? "" : ", bias=false", ")");
}

}  // namespace nl
