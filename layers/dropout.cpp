#include "layers/dropout.h"

#include "core/ops.h"

namespace nl {
namespace {
void check_p(double p, const char* op) {
  check(p >= 0.0 && p <= 1.0, op, ": dropout probability p must be in [0, 1], got ", p);
}
}  // namespace

Tensor dropout_with_mask(const Tensor& x, const Tensor& mask, double p) {
  check_defined(x, "dropout", "x");
  check_defined(mask, "dropout", "mask");
  check_p(p, "dropout");
  check(mask.shape() == x.shape(), "dropout: mask of shape ", mask.shape(), " does not match input of shape ",
        x.shape());
  check(mask.dtype() == x.dtype(), "dropout: mask is ", dtype_name(mask.dtype()), " but the input is ",
        dtype_name(x.dtype()));
  check(!mask.requires_grad(), "dropout: the mask must not require grad");
  if (p == 1.0) return mul(x, 0.0);
  return mul(x, mul(mask, 1.0 / (1.0 - p)));
}

Tensor dropout(const Tensor& x, double p, bool training, Generator* gen) {
  check_defined(x, "dropout", "x");
  check_p(p, "dropout");
  if (!training || p == 0.0) return x;
  return dropout_with_mask(x, bernoulli(x.shape(), 1.0 - p, x.dtype(), gen), p);
}

Dropout::Dropout(double p, Generator* gen) : p(p), gen(gen) { check_p(p, "Dropout"); }

}  // namespace nl
