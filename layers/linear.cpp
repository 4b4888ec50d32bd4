#include "layers/linear.h"

#include "core/ops.h"
#include "layers/init.h"

namespace nl {

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check(weight.dim() == 2, "linear: weight must be 2-D (out, in), got shape ", weight.shape());
  check(x.dim() >= 1, "linear: input must have rank >= 1, got a scalar");
  check(x.size(-1) == weight.size(1), "linear: input of shape ", x.shape(), " has ", x.size(-1),
        " features in its last dimension, but the weight of shape ", weight.shape(), " expects ", weight.size(1));
  check(x.dtype() == weight.dtype(), "linear: input is ", dtype_name(x.dtype()), " but the weight is ",
        dtype_name(weight.dtype()));
  Tensor y = matmul(x, weight.t());
  if (!bias.defined()) return y;
  check(bias.dim() == 1 && bias.size(0) == weight.size(0), "linear: bias must have shape [", weight.size(0),
        "], got ", bias.shape());
  return add(y, bias);
}

Linear::Linear(int64_t in, int64_t out, bool with_bias, DType dtype, Generator* gen)
    : in_features(in), out_features(out) {
  check(in > 0 && out > 0, "Linear: in_features and out_features must be positive, got ", in, " and ", out);
  weight = empty({out, in}, dtype);
  if (with_bias) bias = empty({out}, dtype);
  init::default_layer_init_(weight, bias, gen);
  weight.requires_grad_();
  if (with_bias) bias.requires_grad_();
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
