// Row reductions over a contiguous (rows, cols) matrix, and row-wise softmax.
//
// The ops layer (core/ops_reduce.cpp) moves the reduced axes last and makes the input contiguous, so every
// reduction here is "reduce each row". Sums accumulate in double whatever the element type.
//
// softmax:      y_j = exp(x_j − m) / Σ_k exp(x_k − m),       m = max_k x_k (for stability)
// log_softmax:  y_j = x_j − m − log Σ_k exp(x_k − m)
// backward:     softmax:      dx_j += y_j · (dy_j − Σ_k dy_k y_k)
//               log_softmax:  dx_j += dy_j − exp(y_j) · Σ_k dy_k
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/cpu/cpu_kernels.h"
#include "core/cpu/strided.h"

namespace nl::cpu {
namespace {

struct Rows {
  int64_t rows, cols;
};
Rows rows_of(const Tensor& x) {
  check(x.dim() == 2 && x.is_contiguous(), "reduce_rows: expected a contiguous 2-D tensor, got ", x.shape());
  return {x.size(0), x.size(1)};
}

// Calls body(r, row) for every row of the contiguous (rows, cols) matrix x, on several threads when x is
// large.
template <class T, class Body>
void for_each_row(const Tensor& x, Body body) {
  const auto [rows, cols] = rows_of(x);
  const T* px = x.data<T>();
#pragma omp parallel for schedule(static) if (rows * cols > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) body(r, px + r * cols);
}

template <class T>
T row_max(const T* row, int64_t cols) {
  T m = row[0];
  for (int64_t j = 1; j < cols; ++j) m = row[j] > m ? row[j] : m;
  return m;
}

}  // namespace

void reduce_rows(ReduceOp op, const Tensor& x, Tensor& out) {
  const int64_t cols = rows_of(x).cols;
  visit_dtype(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    for_each_row<T>(x, [&](int64_t r, const T* row) {
      if (op == ReduceOp::Sum) {
        double acc = 0;
        for (int64_t j = 0; j < cols; ++j) acc += static_cast<double>(row[j]);
        out.data<T>()[r] = static_cast<T>(acc);
        return;
      }
      // Max/Min and their positions: the first extreme wins; a NaN counts as the extreme (propagates).
      const bool want_max = op == ReduceOp::Max || op == ReduceOp::Argmax;
      int64_t best = 0;
      for (int64_t j = 1; j < cols; ++j) {
        const T v = row[j], b = row[best];
        if (b != b) break;
        if (v != v || (want_max ? v > b : v < b)) best = j;
      }
      if (op == ReduceOp::Argmax || op == ReduceOp::Argmin)
        out.data<int64_t>()[r] = best;
      else
        out.data<T>()[r] = row[best];
    });
  });
}

void var_rows(const Tensor& x, int64_t correction, Tensor& out) {
  const int64_t cols = rows_of(x).cols;
  visit_floating(x.dtype(), "var", [&](auto tag) {
    using T = typename decltype(tag)::type;
    for_each_row<T>(x, [&](int64_t r, const T* row) {
      double mean = 0;
      for (int64_t j = 0; j < cols; ++j) mean += row[j];
      mean /= static_cast<double>(cols);
      double ss = 0;
      for (int64_t j = 0; j < cols; ++j) {
        const double d = row[j] - mean;
        ss += d * d;
      }
      const double denom = static_cast<double>(cols - correction);
      out.data<T>()[r] = static_cast<T>(denom > 0 ? ss / denom : std::numeric_limits<double>::quiet_NaN());
    });
  });
}

void logsumexp_rows(const Tensor& x, Tensor& out) {
  const int64_t cols = rows_of(x).cols;
  visit_floating(x.dtype(), "logsumexp", [&](auto tag) {
    using T = typename decltype(tag)::type;
    for_each_row<T>(x, [&](int64_t r, const T* row) {
      const T m = row_max(row, cols);
      if (std::isinf(m)) {  // all −inf (or a +inf): the answer is m itself
        out.data<T>()[r] = m;
        return;
      }
      double s = 0;
      for (int64_t j = 0; j < cols; ++j) s += std::exp(static_cast<double>(row[j] - m));
      out.data<T>()[r] = static_cast<T>(m + std::log(s));
    });
  });
}

void column_sums(const Tensor& x, Tensor& out) {
  const auto [rows, cols] = rows_of(x);
  check(out.numel() == cols && out.is_contiguous(), "column_sums: out has shape ", out.shape(),
        ", expected [", cols, "]");
  visit_floating(x.dtype(), "column_sums", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();
    T* po = out.data<T>();
    // Each thread owns a band of columns and walks all rows over it: contiguous, race-free, and the order of
    // the additions does not depend on the thread count.
    constexpr int64_t kBand = 256;
    const int64_t bands = (cols + kBand - 1) / kBand;
#pragma omp parallel for schedule(static) if (rows * cols > kParallelGrain)
    for (int64_t band = 0; band < bands; ++band) {
      const int64_t c0 = band * kBand, c1 = std::min(cols, c0 + kBand);
      double acc[kBand] = {};
      for (int64_t r = 0; r < rows; ++r) {
        const T* row = px + r * cols;
        for (int64_t c = c0; c < c1; ++c) acc[c - c0] += row[c];
      }
      for (int64_t c = c0; c < c1; ++c) po[c] += static_cast<T>(acc[c - c0]);
    }
  });
}

void softmax_rows(const Tensor& x, bool log, Tensor& out) {
  const int64_t cols = rows_of(x).cols;
  visit_floating(x.dtype(), "softmax", [&](auto tag) {
    using T = typename decltype(tag)::type;
    for_each_row<T>(x, [&](int64_t r, const T* row) {
      T* y = out.data<T>() + r * cols;
      const T m = row_max(row, cols);
      double s = 0;
      for (int64_t j = 0; j < cols; ++j) s += std::exp(static_cast<double>(row[j] - m));
      if (log) {
        const T shift = static_cast<T>(m + std::log(s));
        for (int64_t j = 0; j < cols; ++j) y[j] = row[j] - shift;
      } else {
        const T inv = static_cast<T>(1.0 / s);
        for (int64_t j = 0; j < cols; ++j) y[j] = std::exp(row[j] - m) * inv;
      }
    });
  });
}

void softmax_rows_backward(const Tensor& y_in, const Tensor& dy_in, bool log, Tensor& dx) {
  const Tensor y = dense(y_in), dy = dense(dy_in);
  const auto [rows, cols] = rows_of(y);
  visit_floating(y.dtype(), "softmax_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T *py = y.data<T>(), *pdy = dy.data<T>();
    T* pdx = dx.data<T>();
#pragma omp parallel for schedule(static) if (rows * cols > kParallelGrain)
    for (int64_t r = 0; r < rows; ++r) {
      const T *yr = py + r * cols, *gr = pdy + r * cols;
      T* dr = pdx + r * cols;
      double s = 0;
      if (log) {
        for (int64_t j = 0; j < cols; ++j) s += gr[j];
        for (int64_t j = 0; j < cols; ++j) dr[j] += gr[j] - std::exp(yr[j]) * static_cast<T>(s);
      } else {
        for (int64_t j = 0; j < cols; ++j) s += static_cast<double>(gr[j]) * yr[j];
        for (int64_t j = 0; j < cols; ++j) dr[j] += yr[j] * (gr[j] - static_cast<T>(s));
      }
    }
  });
}

}  // namespace nl::cpu
