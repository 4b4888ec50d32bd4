// Elementwise ops, forward and backward side by side.
//
// For y = f(a, b) with broadcasting, the backward computes the elementwise partials at the output's shape
// and sums them back to each input's shape (sum_to). Backward functions capture detached tensors: they share
// the forward's storage without keeping its graph alive.
#include <cmath>

#include "autograd/engine.h"
#include "core/kernels.h"
#include "core/ops.h"

namespace nl {

using kernels::BinaryOp;
using kernels::UnaryGradOp;
using kernels::UnaryOp;

namespace {

Tensor binary_forward(BinaryOp op, const Tensor& a, const Tensor& b, const char* name) {
  check_defined(a, name, "a");
  check_defined(b, name, "b");
  check(a.dtype() == b.dtype(), name, ": dtypes differ: a is ", dtype_name(a.dtype()), ", b is ",
        dtype_name(b.dtype()));
  check(a.device() == b.device(), name, ": devices differ: a is on ", device_name(a.device()), ", b on ",
        device_name(b.device()));
  Tensor out = empty(broadcast_shapes(a.shape(), b.shape(), name), a.dtype(), a.device());
  kernels::binary(op, a, b, out);
  return out;
}

// `name` is the op's, `arg` its tensor argument's (x, or a beside a scalar).
Tensor unary_forward(UnaryOp op, const char* name, const char* arg, const Tensor& x, double p0 = 0,
                     double p1 = 0) {
  check_defined(x, name, arg);
  Tensor out = empty(x.shape(), x.dtype(), x.device());
  kernels::unary(op, {p0, p1}, x, out);
  return out;
}

// dx = g · f'(saved)
Tensor unary_backward(UnaryGradOp op, const Tensor& saved, const Tensor& g, double p0 = 0, double p1 = 0) {
  Tensor dx = empty(g.shape(), g.dtype(), g.device());
  kernels::unary_grad(op, {p0, p1}, saved, g, dx);
  return dx;
}

using Grads = std::vector<Tensor>;

}  // namespace

// ---- binary -----------------------------------------------------------------------------------------------

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Add, a, b, "add");
  return record(out, "add", {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& g) {
    return Grads{sum_to(g, sa), sum_to(g, sb)};
  });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Sub, a, b, "sub");
  return record(out, "sub", {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& g) {
    return Grads{sum_to(g, sa), sum_to(neg(g), sb)};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Mul, a, b, "mul");
  // d(ab)/da = b, d(ab)/db = a
  return record(
      out, "mul", {a, b},
      [a = a.detach(), b = b.detach(), ga = a.requires_grad(), gb = b.requires_grad()](const Tensor& g) {
        return Grads{ga ? sum_to(mul(g, b), a.shape()) : Tensor(),
                     gb ? sum_to(mul(g, a), b.shape()) : Tensor()};
      });
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Div, a, b, "div");
  // d(a/b)/da = 1/b, d(a/b)/db = −a/b² = −out/b
  return record(
      out, "div", {a, b},
      [a_shape = a.shape(), b = b.detach(), y = out.detach(), gb = b.requires_grad()](const Tensor& g) {
        const Tensor g_over_b = div(g, b);
        return Grads{sum_to(g_over_b, a_shape), gb ? sum_to(neg(mul(g_over_b, y)), b.shape()) : Tensor()};
      });
}

Tensor pow(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Pow, a, b, "pow");
  // d(a^b)/da = b·a^(b−1), d(a^b)/db = a^b·log(a)
  return record(
      out, "pow", {a, b},
      [a = a.detach(), b = b.detach(), y = out.detach(), gb = b.requires_grad()](const Tensor& g) {
        const Tensor da = mul(g, mul(b, pow(a, sub(b, 1.0))));
        return Grads{sum_to(da, a.shape()), gb ? sum_to(mul(g, mul(y, log(a))), b.shape()) : Tensor()};
      });
}

Tensor maximum(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Max, a, b, "maximum");
  return record(out, "maximum", {a, b}, [a = a.detach(), b = b.detach()](const Tensor& g) {
    const Tensor take_a = ge(a, b);  // ties go to a
    return Grads{sum_to(mul(g, take_a), a.shape()), sum_to(mul(g, 1.0 - take_a), b.shape())};
  });
}

Tensor minimum(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Min, a, b, "minimum");
  return record(out, "minimum", {a, b}, [a = a.detach(), b = b.detach()](const Tensor& g) {
    const Tensor take_a = le(a, b);
    return Grads{sum_to(mul(g, take_a), a.shape()), sum_to(mul(g, 1.0 - take_a), b.shape())};
  });
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_defined(cond, "where", "cond");
  check_defined(a, "where", "a");
  check_defined(b, "where", "b");
  check(a.dtype() == b.dtype(), "where: dtypes differ: a is ", dtype_name(a.dtype()), ", b is ",
        dtype_name(b.dtype()));
  const Shape shape =
      broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = empty(shape, a.dtype(), a.device());
  kernels::where(cond, a, b, out);
  return record(out, "where", {a, b}, [c = cond.detach(), sa = a.shape(), sb = b.shape()](const Tensor& g) {
    const Tensor zero = zeros({}, g.dtype());
    return Grads{sum_to(where(c, g, zero), sa), sum_to(where(c, zero, g), sb)};
  });
}

Tensor eq(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::Eq, a, b, "eq"); }
Tensor ne(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::Ne, a, b, "ne"); }
Tensor lt(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::Lt, a, b, "lt"); }
Tensor le(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::Le, a, b, "le"); }
Tensor gt(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::Gt, a, b, "gt"); }
Tensor ge(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::Ge, a, b, "ge"); }

// ---- with a scalar ----------------------------------------------------------------------------------------

Tensor add(const Tensor& a, double b) {
  Tensor out = unary_forward(UnaryOp::AddScalar, "add", "a", a, b);
  return record(out, "add_scalar", {a}, [](const Tensor& g) { return Grads{g}; });
}
Tensor sub(const Tensor& a, double b) { return add(a, -b); }

Tensor mul(const Tensor& a, double b) {
  Tensor out = unary_forward(UnaryOp::MulScalar, "mul", "a", a, b);
  return record(out, "mul_scalar", {a}, [b](const Tensor& g) { return Grads{mul(g, b)}; });
}

Tensor div(const Tensor& a, double b) {
  Tensor out = unary_forward(UnaryOp::DivScalar, "div", "a", a, b);
  return record(out, "div_scalar", {a}, [b](const Tensor& g) { return Grads{div(g, b)}; });
}

Tensor pow(const Tensor& a, double exponent) {
  Tensor out = unary_forward(UnaryOp::PowScalar, "pow", "a", a, exponent);
  return record(out, "pow_scalar", {a}, [x = a.detach(), exponent](const Tensor& g) {
    return Grads{unary_backward(UnaryGradOp::PowScalar, x, g, exponent)};
  });
}

Tensor clamp(const Tensor& a, double lo, double hi) {
  check(lo <= hi, "clamp: lo ", lo, " is greater than hi ", hi);
  Tensor out = unary_forward(UnaryOp::Clamp, "clamp", "a", a, lo, hi);
  return record(out, "clamp", {a}, [x = a.detach(), lo, hi](const Tensor& g) {
    return Grads{unary_backward(UnaryGradOp::Clamp, x, g, lo, hi)};
  });
}

// ---- unary ------------------------------------------------------------------------------------------------

Tensor neg(const Tensor& x) {
  Tensor out = unary_forward(UnaryOp::Neg, "neg", "x", x);
  return record(out, "neg", {x}, [](const Tensor& g) { return Grads{neg(g)}; });
}

Tensor abs(const Tensor& x) {
  Tensor out = unary_forward(UnaryOp::Abs, "abs", "x", x);
  return record(out, "abs", {x},
                [x = x.detach()](const Tensor& g) { return Grads{unary_backward(UnaryGradOp::Abs, x, g)}; });
}

Tensor exp(const Tensor& x) {
  Tensor out = unary_forward(UnaryOp::Exp, "exp", "x", x);
  return record(out, "exp", {x}, [y = out.detach()](const Tensor& g) { return Grads{mul(g, y)}; });
}

Tensor log(const Tensor& x) {
  Tensor out = unary_forward(UnaryOp::Log, "log", "x", x);
  return record(out, "log", {x}, [x = x.detach()](const Tensor& g) { return Grads{div(g, x)}; });
}

Tensor sqrt(const Tensor& x) {
  Tensor out = unary_forward(UnaryOp::Sqrt, "sqrt", "x", x);
  // d√x/dx = 1/(2√x)
  return record(out, "sqrt", {x}, [y = out.detach()](const Tensor& g) { return Grads{div(g, mul(y, 2.0))}; });
}

Tensor rsqrt(const Tensor& x) {
  Tensor out = unary_forward(UnaryOp::Rsqrt, "rsqrt", "x", x);
  // d x^(−1/2)/dx = −½ x^(−3/2) = −½ y³
  return record(out, "rsqrt", {x},
                [y = out.detach()](const Tensor& g) { return Grads{mul(g, mul(pow(y, 3.0), -0.5))}; });
}

Tensor square(const Tensor& x) {
  Tensor out = unary_forward(UnaryOp::Square, "square", "x", x);
  return record(out, "square", {x}, [x = x.detach()](const Tensor& g) { return Grads{mul(g, mul(x, 2.0))}; });
}

Tensor relu(const Tensor& x) {
  Tensor out = unary_forward(UnaryOp::Relu, "relu", "x", x);
  return record(out, "relu", {x},
                [x = x.detach()](const Tensor& g) { return Grads{unary_backward(UnaryGradOp::Relu, x, g)}; });
}

Tensor leaky_relu(const Tensor& x, double slope) {
  Tensor out = unary_forward(UnaryOp::LeakyRelu, "leaky_relu", "x", x, slope);
  return record(out, "leaky_relu", {x}, [x = x.detach(), slope](const Tensor& g) {
    return Grads{unary_backward(UnaryGradOp::LeakyRelu, x, g, slope)};
  });
}

Tensor gelu(const Tensor& x) {
  Tensor out = unary_forward(UnaryOp::Gelu, "gelu", "x", x);
  return record(out, "gelu", {x},
                [x = x.detach()](const Tensor& g) { return Grads{unary_backward(UnaryGradOp::Gelu, x, g)}; });
}

Tensor sigmoid(const Tensor& x) {
  Tensor out = unary_forward(UnaryOp::Sigmoid, "sigmoid", "x", x);
  return record(out, "sigmoid", {x}, [y = out.detach()](const Tensor& g) {
    return Grads{unary_backward(UnaryGradOp::Sigmoid, y, g)};
  });
}

Tensor tanh(const Tensor& x) {
  Tensor out = unary_forward(UnaryOp::Tanh, "tanh", "x", x);
  return record(out, "tanh", {x}, [y = out.detach()](const Tensor& g) {
    return Grads{unary_backward(UnaryGradOp::Tanh, y, g)};
  });
}

Tensor softplus(const Tensor& x) {
  Tensor out = unary_forward(UnaryOp::Softplus, "softplus", "x", x);
  return record(out, "softplus", {x}, [x = x.detach()](const Tensor& g) {
    return Grads{unary_backward(UnaryGradOp::Softplus, x, g)};
  });
}

}  // namespace nl
