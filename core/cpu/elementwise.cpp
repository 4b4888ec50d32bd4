// Elementwise kernels: unary maps, their derivatives, broadcasting binary ops and where().
//
// Broadcasting: the caller allocates `out` with the broadcast shape. Each operand is viewed with that shape
// through expand() (stride 0 along broadcast dims), and the loop walks rows of the last dimension.
#include <cmath>

#include "core/cpu/cpu_kernels.h"
#include "core/cpu/strided.h"

namespace nl::cpu {
namespace {

template <class T>
T sigmoid_of(T x) {
  // Two branches so exp never overflows.
  if (x >= 0) return T(1) / (T(1) + std::exp(-x));
  const T e = std::exp(x);
  return e / (T(1) + e);
}

template <class T>
T softplus_of(T x) {
  // log(1 + e^x) = max(x, 0) + log1p(e^{-|x|}): exact for large |x| too.
  return std::max(x, T(0)) + std::log1p(std::exp(-std::abs(x)));
}

constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;

template <class T, class F>
void map_contiguous(const T* x, T* out, int64_t n, F f) {
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) out[i] = f(x[i]);
}

template <class T>
void unary_typed(UnaryOp op, Params p, const T* x, T* y, int64_t n) {
  const T a = static_cast<T>(p.p0), b = static_cast<T>(p.p1);
  switch (op) {
    case UnaryOp::Neg:
      return map_contiguous(x, y, n, [](T v) { return -v; });
    case UnaryOp::Abs:
      return map_contiguous(x, y, n, [](T v) { return v < 0 ? -v : v; });
    case UnaryOp::Square:
      return map_contiguous(x, y, n, [](T v) { return v * v; });
    case UnaryOp::Relu:
      return map_contiguous(x, y, n, [](T v) { return v < T(0) ? T(0) : v; });  // NaN stays NaN
    case UnaryOp::AddScalar:
      return map_contiguous(x, y, n, [a](T v) { return v + a; });
    case UnaryOp::MulScalar:
      return map_contiguous(x, y, n, [a](T v) { return v * a; });
    case UnaryOp::DivScalar:
      return map_contiguous(x, y, n, [a](T v) { return v / a; });
    case UnaryOp::LeakyRelu:
      return map_contiguous(x, y, n, [a](T v) { return v > T(0) ? v : a * v; });
    case UnaryOp::Clamp:
      return map_contiguous(x, y, n, [a, b](T v) { return v < a ? a : (v > b ? b : v); });
    default:
      break;
  }
  if constexpr (std::is_floating_point_v<T>) {
    switch (op) {
      case UnaryOp::Exp:
        return map_contiguous(x, y, n, [](T v) { return std::exp(v); });
      case UnaryOp::Log:
        return map_contiguous(x, y, n, [](T v) { return std::log(v); });
      case UnaryOp::Sqrt:
        return map_contiguous(x, y, n, [](T v) { return std::sqrt(v); });
      case UnaryOp::Rsqrt:
        return map_contiguous(x, y, n, [](T v) { return T(1) / std::sqrt(v); });
      case UnaryOp::Sigmoid:
        return map_contiguous(x, y, n, [](T v) { return sigmoid_of(v); });
      case UnaryOp::Tanh:
        return map_contiguous(x, y, n, [](T v) { return std::tanh(v); });
      case UnaryOp::Softplus:
        return map_contiguous(x, y, n, [](T v) { return softplus_of(v); });
      case UnaryOp::PowScalar:
        return map_contiguous(x, y, n, [a](T v) { return std::pow(v, a); });
      case UnaryOp::Gelu:
        return map_contiguous(x, y, n, [](T v) { return T(0.5) * v * (T(1) + std::erf(v * T(kInvSqrt2))); });
      default:
        break;
    }
  }
  throw Error("unary: this op is not defined for int64 tensors");
}

template <class T, class F>
void grad_contiguous(const T* s, const T* g, T* dx, int64_t n, F f) {
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) dx[i] = g[i] * f(s[i]);
}

template <class T>
void unary_grad_typed(UnaryGradOp op, Params p, const T* s, const T* g, T* dx, int64_t n) {
  const T a = static_cast<T>(p.p0), b = static_cast<T>(p.p1);
  switch (op) {
    case UnaryGradOp::Abs:
      return grad_contiguous(s, g, dx, n, [](T x) { return T((x > 0) - (x < 0)); });
    case UnaryGradOp::Relu:
      return grad_contiguous(s, g, dx, n, [](T x) { return x > T(0) ? T(1) : T(0); });
    case UnaryGradOp::LeakyRelu:
      return grad_contiguous(s, g, dx, n, [a](T x) { return x > T(0) ? T(1) : a; });
    case UnaryGradOp::Sigmoid:
      return grad_contiguous(s, g, dx, n, [](T y) { return y * (T(1) - y); });
    case UnaryGradOp::Tanh:
      return grad_contiguous(s, g, dx, n, [](T y) { return T(1) - y * y; });
    case UnaryGradOp::Softplus:
      return grad_contiguous(s, g, dx, n, [](T x) { return sigmoid_of(x); });
    case UnaryGradOp::Clamp:
      return grad_contiguous(s, g, dx, n, [a, b](T x) { return (x >= a && x <= b) ? T(1) : T(0); });
    case UnaryGradOp::PowScalar:
      return grad_contiguous(s, g, dx, n, [a](T x) { return a * std::pow(x, a - T(1)); });
    case UnaryGradOp::Gelu:
      return grad_contiguous(s, g, dx, n, [](T x) {
        const T cdf = T(0.5) * (T(1) + std::erf(x * T(kInvSqrt2)));
        const T pdf = T(kInvSqrt2Pi) * std::exp(T(-0.5) * x * x);
        return cdf + x * pdf;
      });
  }
}

// Walks out (contiguous, shape S) with a and b viewed at shape S.
template <class T, class R, class F>
void broadcast_loop(const Tensor& a, const Tensor& b, Tensor& out, F f) {
  const int64_t n = out.numel();
  R* o = out.data<R>();
  if (n == 0) return;
  if (a.shape() == out.shape() && b.shape() == out.shape() && a.is_contiguous() && b.is_contiguous()) {
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) o[i] = f(pa[i], pb[i]);
    return;
  }
  Shape shape = out.shape();
  Tensor va = broadcast_view(a, shape), vb = broadcast_view(b, shape);
  Shape sa = va.strides(), sb = vb.strides();
  if (shape.empty()) shape = {1}, sa = {0}, sb = {0};
  const int64_t inner = shape.back(), rows = n / inner;
  const int64_t ia = sa.back(), ib = sb.back();
  const T* pa = base_ptr<T>(va);
  const T* pb = base_ptr<T>(vb);
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    const T* ra = pa + row_offset(r, shape, sa);
    const T* rb = pb + row_offset(r, shape, sb);
    R* ro = o + r * inner;
    for (int64_t j = 0; j < inner; ++j) ro[j] = f(ra[j * ia], rb[j * ib]);
  }
}

template <class T>
void binary_typed(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  switch (op) {
    case BinaryOp::Add:
      return broadcast_loop<T, T>(a, b, out, [](T x, T y) { return x + y; });
    case BinaryOp::Sub:
      return broadcast_loop<T, T>(a, b, out, [](T x, T y) { return x - y; });
    case BinaryOp::Mul:
      return broadcast_loop<T, T>(a, b, out, [](T x, T y) { return x * y; });
    case BinaryOp::Div:
      return broadcast_loop<T, T>(a, b, out, [](T x, T y) { return x / y; });
    case BinaryOp::Pow:
      return broadcast_loop<T, T>(a, b, out, [](T x, T y) { return static_cast<T>(std::pow(x, y)); });
    case BinaryOp::Max:
      return broadcast_loop<T, T>(a, b, out, [](T x, T y) { return x >= y ? x : y; });
    case BinaryOp::Min:
      return broadcast_loop<T, T>(a, b, out, [](T x, T y) { return x <= y ? x : y; });
    case BinaryOp::Eq:
      return broadcast_loop<T, T>(a, b, out, [](T x, T y) { return T(x == y); });
    case BinaryOp::Ne:
      return broadcast_loop<T, T>(a, b, out, [](T x, T y) { return T(x != y); });
    case BinaryOp::Lt:
      return broadcast_loop<T, T>(a, b, out, [](T x, T y) { return T(x < y); });
    case BinaryOp::Le:
      return broadcast_loop<T, T>(a, b, out, [](T x, T y) { return T(x <= y); });
    case BinaryOp::Gt:
      return broadcast_loop<T, T>(a, b, out, [](T x, T y) { return T(x > y); });
    case BinaryOp::Ge:
      return broadcast_loop<T, T>(a, b, out, [](T x, T y) { return T(x >= y); });
  }
}

}  // namespace

void unary(UnaryOp op, Params p, const Tensor& x_in, Tensor& out) {
  const Tensor x = dense(x_in);
  visit_dtype(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    unary_typed<T>(op, p, x.data<T>(), out.data<T>(), x.numel());
  });
}

void unary_grad(UnaryGradOp op, Params p, const Tensor& saved_in, const Tensor& g_in, Tensor& dx) {
  const Tensor saved = dense(saved_in), g = dense(g_in);
  visit_floating(g.dtype(), "unary_grad", [&](auto tag) {
    using T = typename decltype(tag)::type;
    unary_grad_typed<T>(op, p, saved.data<T>(), g.data<T>(), dx.data<T>(), g.numel());
  });
}

void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  visit_dtype(a.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    binary_typed<T>(op, a, b, out);
  });
}

void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  // Three operands: materialize each at the output's shape, then one flat loop. where() is not a hot path.
  const Shape& shape = out.shape();
  NoGradGuard no_record;
  const Tensor c = cond.to(out.dtype()).expand(shape).contiguous();
  const Tensor va = a.expand(shape).contiguous(), vb = b.expand(shape).contiguous();
  visit_dtype(out.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T *pc = c.data<T>(), *pa = va.data<T>(), *pb = vb.data<T>();
    T* o = out.data<T>();
    const int64_t n = out.numel();
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) o[i] = pc[i] != T(0) ? pa[i] : pb[i];
  });
}

}  // namespace nl::cpu
