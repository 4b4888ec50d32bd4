// CPU kernels of the normalize-over-axes core. The math, the 5-D layout x[o, p, g, k, s] and the names are
// in core/kernels_normalization.h; read the reference versions (first half of this file) before the fast ones.
//
// The fast versions make the same computation with three changes:
//   - OpenMP over statistic groups (a statistic group's elements are `pooled` contiguous runs of K·S), so no
//     two threads ever write the same output or accumulator;
//   - fused passes: the forward is one pass over x given the statistics; the backward reads x and dy twice
//     (sums, then dx), and when every channel belongs to one statistic group (outer == 1: BatchNorm) the
//     parameter gradients come out of the first pass for free;
//   - a "column" path for K·S == 1 (BatchNorm1d on (N, C)): each statistic group is then a strided column
//     of an (N, C) matrix, so the loops run over rows and vectorize along C instead.
// All sums accumulate in double whatever the element type; per-element math is done in double and rounded
// once, so the statistics (float64) are never rounded to float before use.
#include "core/cpu/cpu_normalization.h"

#include <algorithm>
#include <vector>

#include "core/cpu/cpu_kernels.h"

namespace nl::cpu {
namespace {

template <class T>
const T* maybe(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}
template <class T>
T* maybe_mut(Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}
const double* maybe_stat(const Tensor& t) { return t.defined() ? t.data<double>() : nullptr; }

void check_stat(const char* op, const char* name, const Tensor& t, const NormLayout& l, bool optional) {
  if (optional && !t.defined()) return;
  check(t.defined(), op, ": ", name, " is undefined");
  check(t.dtype() == kFloat64 && t.is_contiguous() && t.numel() == l.num_stat_groups(), op, ": ", name,
        " must be a contiguous float64 tensor with ", l.num_stat_groups(), " elements, got ",
        dtype_name(t.dtype()), " ", t.shape());
}

void check_same(const char* op, const char* name, const Tensor& t, const Tensor& x, int64_t numel) {
  if (!t.defined()) return;
  check(t.dtype() == x.dtype() && t.is_contiguous() && t.numel() == numel, op, ": ", name, " must be a contiguous ",
        dtype_name(x.dtype()), " tensor with ", numel, " elements, got ", dtype_name(t.dtype()), " ", t.shape());
}

void check_layout(const char* op, const Tensor& x, const NormLayout& l) {
  check(l.outer >= 0 && l.pooled >= 0 && l.groups >= 0 && l.channels_per_group >= 0 && l.inner >= 0, op,
        ": negative layout size");
  check(x.is_contiguous() && x.numel() == l.numel(), op, ": x must be contiguous with ", l.numel(),
        " elements, got shape ", x.shape());
}

void check_forward(const char* op, const Tensor& x, const NormLayout& l, const NormStats& st, const Tensor& w,
                   const Tensor& b, const Tensor& y, const char* y_name = "y") {
  check_layout(op, x, l);
  check_stat(op, "mean", st.mean, l, false);
  check_stat(op, "inv_std", st.inv_std, l, false);
  check_stat(op, "r", st.r, l, true);
  check_stat(op, "d", st.d, l, true);
  check_same(op, "weight", w, x, l.num_channels());
  check_same(op, "bias", b, x, l.num_channels());
  check_same(op, y_name, y, x, l.numel());
}

// Everything the loops need, as plain pointers and sizes.
template <class T>
struct View {
  int64_t O, P, G, K, S;
  double M;
  const T* w;
  const double *mean, *inv_std, *r, *d;
  View(const NormLayout& l, const NormStats& st, const Tensor& weight)
      : O(l.outer), P(l.pooled), G(l.groups), K(l.channels_per_group), S(l.inner),
        M(static_cast<double>(l.count())), w(maybe<T>(weight)), mean(st.mean.data<double>()),
        inv_std(st.inv_std.data<double>()), r(maybe_stat(st.r)), d(maybe_stat(st.d)) {}
  // Offset of x[o, p, g, k, 0].
  int64_t at(int64_t o, int64_t p, int64_t g, int64_t k) const { return (((o * P + p) * G + g) * K + k) * S; }
  double weight_of(int64_t c) const { return w ? static_cast<double>(w[c]) : 1.0; }
  double r_of(int64_t sg) const { return r ? r[sg] : 1.0; }
  double d_of(int64_t sg) const { return d ? d[sg] : 0.0; }
};

}  // namespace

// =========================================================================================================
// Reference versions: one thread, the formulas as written.
// =========================================================================================================

void normalize_reference_moments(const Tensor& x, const NormLayout& l, Tensor& mean, Tensor& var) {
  check_layout("normalize_reference_moments", x, l);
  check_stat("normalize_reference_moments", "mean", mean, l, false);
  check_stat("normalize_reference_moments", "var", var, l, false);
  visit_floating(x.dtype(), "normalize_reference_moments", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();
    const int64_t O = l.outer, P = l.pooled, G = l.groups, K = l.channels_per_group, S = l.inner;
    const double M = static_cast<double>(l.count());
    auto at = [&](int64_t o, int64_t p, int64_t g, int64_t k, int64_t s) {
      return (((o * P + p) * G + g) * K + k) * S + s;
    };
    for (int64_t o = 0; o < O; ++o)
      for (int64_t g = 0; g < G; ++g) {
        double sum = 0;
        for (int64_t p = 0; p < P; ++p)
          for (int64_t k = 0; k < K; ++k)
            for (int64_t s = 0; s < S; ++s) sum += px[at(o, p, g, k, s)];
        const double m = l.center ? sum / M : 0.0;
        double sum_sq = 0;
        for (int64_t p = 0; p < P; ++p)
          for (int64_t k = 0; k < K; ++k)
            for (int64_t s = 0; s < S; ++s) {
              const double centered = px[at(o, p, g, k, s)] - m;
              sum_sq += centered * centered;
            }
        mean.data<double>()[o * G + g] = m;
        var.data<double>()[o * G + g] = sum_sq / M;
      }
  });
}

void normalize_reference_forward(const Tensor& x, const NormLayout& l, const NormStats& st, const Tensor& weight,
                                 const Tensor& bias, Tensor& y) {
  check_forward("normalize_reference_forward", x, l, st, weight, bias, y);
  visit_floating(x.dtype(), "normalize_reference_forward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const View<T> v(l, st, weight);
    const T* px = x.data<T>();
    const T* pb = maybe<T>(bias);
    T* py = y.data<T>();
    for (int64_t o = 0; o < v.O; ++o)
      for (int64_t p = 0; p < v.P; ++p)
        for (int64_t g = 0; g < v.G; ++g)
          for (int64_t k = 0; k < v.K; ++k)
            for (int64_t s = 0; s < v.S; ++s) {
              const int64_t i = v.at(o, p, g, k) + s, sg = o * v.G + g, c = g * v.K + k;
              const double z = (px[i] - v.mean[sg]) * v.inv_std[sg];
              const double x_hat = v.r_of(sg) * z + v.d_of(sg);
              py[i] = static_cast<T>(v.weight_of(c) * x_hat + (pb ? pb[c] : 0.0));
            }
  });
}

void normalize_reference_backward(const Tensor& x, const Tensor& dy, const NormLayout& l, const NormStats& st,
                                  const Tensor& weight, bool batch_stats, Tensor& dx, Tensor& dweight,
                                  Tensor& dbias) {
  const char* op = "normalize_reference_backward";
  check_forward(op, x, l, st, weight, Tensor(), dy, "dy");
  check_same(op, "dx", dx, x, l.numel());
  check_same(op, "dweight", dweight, x, l.num_channels());
  check_same(op, "dbias", dbias, x, l.num_channels());
  visit_floating(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const View<T> v(l, st, weight);
    const T* px = x.data<T>();
    const T* pdy = dy.data<T>();
    T* pdx = maybe_mut<T>(dx);
    std::vector<double> sum_dy_x_hat(static_cast<size_t>(l.num_channels())), sum_dy(sum_dy_x_hat.size());
    for (int64_t o = 0; o < v.O; ++o)
      for (int64_t g = 0; g < v.G; ++g) {
        const int64_t sg = o * v.G + g;
        const double m = v.mean[sg], inv_std = v.inv_std[sg], r = v.r_of(sg), d = v.d_of(sg);
        // The two means of the closed form, over the statistic group.
        double sum_dx_hat = 0, sum_dx_hat_z = 0;
        for (int64_t p = 0; p < v.P; ++p)
          for (int64_t k = 0; k < v.K; ++k)
            for (int64_t s = 0; s < v.S; ++s) {
              const int64_t i = v.at(o, p, g, k) + s, c = g * v.K + k;
              const double z = (px[i] - m) * inv_std;
              const double dx_hat = pdy[i] * v.weight_of(c) * r;
              sum_dx_hat += dx_hat;
              sum_dx_hat_z += dx_hat * z;
              sum_dy_x_hat[c] += pdy[i] * (r * z + d);
              sum_dy[c] += pdy[i];
            }
        const double mean_dx_hat = l.center ? sum_dx_hat / v.M : 0.0;
        const double mean_dx_hat_z = sum_dx_hat_z / v.M;
        if (!pdx) continue;
        for (int64_t p = 0; p < v.P; ++p)
          for (int64_t k = 0; k < v.K; ++k)
            for (int64_t s = 0; s < v.S; ++s) {
              const int64_t i = v.at(o, p, g, k) + s, c = g * v.K + k;
              const double z = (px[i] - m) * inv_std;
              const double dx_hat = pdy[i] * v.weight_of(c) * r;
              const double grad = batch_stats ? inv_std * (dx_hat - mean_dx_hat - z * mean_dx_hat_z)
                                              : inv_std * dx_hat;
              pdx[i] = static_cast<T>(pdx[i] + grad);
            }
      }
    for (int64_t c = 0; c < l.num_channels(); ++c) {
      if (dweight.defined()) dweight.data<T>()[c] += static_cast<T>(sum_dy_x_hat[c]);
      if (dbias.defined()) dbias.data<T>()[c] += static_cast<T>(sum_dy[c]);
    }
  });
}

// =========================================================================================================
// Optimized versions.
// =========================================================================================================

namespace {

// Columns per task in the column path (K·S == 1): 64 doubles per accumulator stay in registers/L1.
constexpr int64_t kColumnBlock = 64;

bool column_path(const NormLayout& l) { return l.channels_per_group * l.inner == 1 && l.pooled > 1; }

}  // namespace

void normalize_moments(const Tensor& x, const NormLayout& l, Tensor& mean, Tensor& var) {
  check_layout("normalize_moments", x, l);
  check_stat("normalize_moments", "mean", mean, l, false);
  check_stat("normalize_moments", "var", var, l, false);
  visit_floating(x.dtype(), "normalize_moments", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();
    double* pm = mean.data<double>();
    double* pv = var.data<double>();
    const int64_t P = l.pooled, G = l.groups, run = l.channels_per_group * l.inner;
    const double M = static_cast<double>(l.count());
    const bool parallel = l.numel() > kParallelGrain;

    if (column_path(l)) {
      // x[o] is a (P, G) matrix; each column is a statistic group.
      const int64_t blocks = (G + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for schedule(static) if (parallel)
      for (int64_t task = 0; task < l.outer * blocks; ++task) {
        const int64_t o = task / blocks, g0 = (task % blocks) * kColumnBlock;
        const int64_t width = std::min(kColumnBlock, G - g0);
        const T* base = px + o * P * G + g0;
        double m[kColumnBlock] = {}, ss[kColumnBlock] = {};
        if (l.center) {
          for (int64_t p = 0; p < P; ++p)
            for (int64_t j = 0; j < width; ++j) m[j] += static_cast<double>(base[p * G + j]);
          for (int64_t j = 0; j < width; ++j) m[j] /= M;
        }
        for (int64_t p = 0; p < P; ++p)
          for (int64_t j = 0; j < width; ++j) {
            const double c = static_cast<double>(base[p * G + j]) - m[j];
            ss[j] += c * c;
          }
        for (int64_t j = 0; j < width; ++j) {
          pm[o * G + g0 + j] = m[j];
          pv[o * G + g0 + j] = ss[j] / M;
        }
      }
      return;
    }

    // Generic path: statistic group (o, g) is P contiguous runs of K·S elements.
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t sg = 0; sg < l.num_stat_groups(); ++sg) {
      const int64_t o = sg / G, g = sg % G;
      double m = 0;
      if (l.center) {
        for (int64_t p = 0; p < P; ++p) {
          const T* xr = px + ((o * P + p) * G + g) * run;
          double acc = 0;
          for (int64_t j = 0; j < run; ++j) acc += static_cast<double>(xr[j]);
          m += acc;
        }
        m /= M;
      }
      double ss = 0;
      for (int64_t p = 0; p < P; ++p) {
        const T* xr = px + ((o * P + p) * G + g) * run;
        double acc = 0;
        for (int64_t j = 0; j < run; ++j) {
          const double c = static_cast<double>(xr[j]) - m;
          acc += c * c;
        }
        ss += acc;
      }
      pm[sg] = m;
      pv[sg] = ss / M;
    }
  });
}

void normalize_forward(const Tensor& x, const NormLayout& l, const NormStats& st, const Tensor& weight,
                       const Tensor& bias, Tensor& y) {
  check_forward("normalize_forward", x, l, st, weight, bias, y);
  visit_floating(x.dtype(), "normalize_forward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const View<T> v(l, st, weight);
    const T* px = x.data<T>();
    const T* pb = maybe<T>(bias);
    T* py = y.data<T>();
    const bool parallel = l.numel() > kParallelGrain;
    // y = (x − mean)·scale + shift with scale = w·r·inv_std and shift = b + w·d, per (statistic group, k).

    if (column_path(l)) {
      const int64_t G = v.G, n_sg = l.num_stat_groups();
      std::vector<double> scale(static_cast<size_t>(n_sg)), shift(scale.size());
      for (int64_t sg = 0; sg < n_sg; ++sg) {
        const int64_t c = sg % G;
        scale[sg] = v.weight_of(c) * v.r_of(sg) * v.inv_std[sg];
        shift[sg] = (pb ? static_cast<double>(pb[c]) : 0.0) + v.weight_of(c) * v.d_of(sg);
      }
#pragma omp parallel for schedule(static) if (parallel)
      for (int64_t row = 0; row < v.O * v.P; ++row) {
        const int64_t o = row / v.P;
        const double *m = v.mean + o * G, *a = scale.data() + o * G, *b = shift.data() + o * G;
        const T* xr = px + row * G;
        T* yr = py + row * G;
        for (int64_t j = 0; j < G; ++j) yr[j] = static_cast<T>((static_cast<double>(xr[j]) - m[j]) * a[j] + b[j]);
      }
      return;
    }

    // Generic path: rows (o, p, g), each K runs of S elements sharing one (scale, shift).
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t row = 0; row < v.O * v.P * v.G; ++row) {
      const int64_t g = row % v.G, o = row / (v.P * v.G), sg = o * v.G + g;
      const double m = v.mean[sg], r_inv_std = v.r_of(sg) * v.inv_std[sg], d = v.d_of(sg);
      for (int64_t k = 0; k < v.K; ++k) {
        const int64_t c = g * v.K + k;
        const double a = v.weight_of(c) * r_inv_std;
        const double b = (pb ? static_cast<double>(pb[c]) : 0.0) + v.weight_of(c) * d;
        const T* xr = px + (row * v.K + k) * v.S;
        T* yr = py + (row * v.K + k) * v.S;
        for (int64_t s = 0; s < v.S; ++s) yr[s] = static_cast<T>((static_cast<double>(xr[s]) - m) * a + b);
      }
    }
  });
}

void normalize_backward(const Tensor& x, const Tensor& dy, const NormLayout& l, const NormStats& st,
                        const Tensor& weight, bool batch_stats, Tensor& dx, Tensor& dweight, Tensor& dbias) {
  const char* op = "normalize_backward";
  check_forward(op, x, l, st, weight, Tensor(), dy, "dy");
  check_same(op, "dx", dx, x, l.numel());
  check_same(op, "dweight", dweight, x, l.num_channels());
  check_same(op, "dbias", dbias, x, l.num_channels());
  visit_floating(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const View<T> v(l, st, weight);
    const T* px = x.data<T>();
    const T* pdy = dy.data<T>();
    T* pdx = maybe_mut<T>(dx);
    T* pdw = maybe_mut<T>(dweight);
    T* pdb = maybe_mut<T>(dbias);
    const bool want_params = pdw || pdb;
    // With one block (BatchNorm), each channel lives in one statistic group, so the per-channel sums of the
    // first pass are the parameter gradients. Otherwise a separate pass over channels sums across blocks.
    const bool params_in_group_pass = want_params && v.O == 1;
    const bool parallel = l.numel() > kParallelGrain;

    if (column_path(l)) {
      const int64_t G = v.G, blocks = (G + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for schedule(static) if (parallel)
      for (int64_t task = 0; task < v.O * blocks; ++task) {
        const int64_t o = task / blocks, g0 = (task % blocks) * kColumnBlock;
        const int64_t width = std::min(kColumnBlock, G - g0);
        const int64_t base = o * v.P * G + g0;
        double m[kColumnBlock], is[kColumnBlock], sdy[kColumnBlock] = {}, sdyz[kColumnBlock] = {};
        for (int64_t j = 0; j < width; ++j) m[j] = v.mean[o * G + g0 + j], is[j] = v.inv_std[o * G + g0 + j];
        for (int64_t p = 0; p < v.P; ++p) {
          const T* xr = px + base + p * G;
          const T* dyr = pdy + base + p * G;
          for (int64_t j = 0; j < width; ++j) {
            const double g = static_cast<double>(dyr[j]);
            sdy[j] += g;
            sdyz[j] += g * (static_cast<double>(xr[j]) - m[j]) * is[j];
          }
        }
        // dx = scale·dy + (x − mean)·slope + offset, the closed form rewritten as a linear map of (dy, x).
        double scale[kColumnBlock], slope[kColumnBlock], offset[kColumnBlock];
        for (int64_t j = 0; j < width; ++j) {
          const int64_t sg = o * G + g0 + j, c = g0 + j;
          const double wr = v.weight_of(c) * v.r_of(sg);
          scale[j] = wr * is[j];
          slope[j] = batch_stats ? -is[j] * is[j] * wr * sdyz[j] / v.M : 0.0;
          offset[j] = batch_stats && l.center ? -is[j] * wr * sdy[j] / v.M : 0.0;
          if (params_in_group_pass) {
            if (pdw) pdw[c] = static_cast<T>(pdw[c] + v.r_of(sg) * sdyz[j] + v.d_of(sg) * sdy[j]);
            if (pdb) pdb[c] = static_cast<T>(pdb[c] + sdy[j]);
          }
        }
        if (!pdx) continue;
        for (int64_t p = 0; p < v.P; ++p) {
          const T* xr = px + base + p * G;
          const T* dyr = pdy + base + p * G;
          T* dxr = pdx + base + p * G;
          for (int64_t j = 0; j < width; ++j)
            dxr[j] = static_cast<T>(dxr[j] + scale[j] * dyr[j] + (static_cast<double>(xr[j]) - m[j]) * slope[j] +
                                    offset[j]);
        }
      }
    } else {
      const int64_t run = v.S;
#pragma omp parallel for schedule(static) if (parallel)
      for (int64_t sg = 0; sg < l.num_stat_groups(); ++sg) {
        const int64_t o = sg / v.G, g = sg % v.G;
        const double m = v.mean[sg], is = v.inv_std[sg], r = v.r_of(sg), d = v.d_of(sg);
        // Pass 1: Σ dx_hat and Σ dx_hat·z over the group (and, for one block, the parameter gradients).
        double sum_dx_hat = 0, sum_dx_hat_z = 0;
        if (batch_stats || params_in_group_pass) {
          for (int64_t k = 0; k < v.K; ++k) {
            const int64_t c = g * v.K + k;
            double sdy = 0, sdyz = 0;
            for (int64_t p = 0; p < v.P; ++p) {
              const T* xr = px + v.at(o, p, g, k);
              const T* dyr = pdy + v.at(o, p, g, k);
              double a = 0, b = 0;
              for (int64_t s = 0; s < run; ++s) {
                const double gs = static_cast<double>(dyr[s]);
                a += gs;
                b += gs * (static_cast<double>(xr[s]) - m);
              }
              sdy += a;
              sdyz += b * is;
            }
            const double wr = v.weight_of(c) * r;
            sum_dx_hat += wr * sdy;
            sum_dx_hat_z += wr * sdyz;
            if (params_in_group_pass) {
              if (pdw) pdw[c] = static_cast<T>(pdw[c] + r * sdyz + d * sdy);
              if (pdb) pdb[c] = static_cast<T>(pdb[c] + sdy);
            }
          }
        }
        if (!pdx) continue;
        // Pass 2: dx = scale·dy + (x − mean)·slope + offset.
        const double slope = batch_stats ? -is * is * sum_dx_hat_z / v.M : 0.0;
        const double offset = batch_stats && l.center ? -is * sum_dx_hat / v.M : 0.0;
        for (int64_t k = 0; k < v.K; ++k) {
          const double scale = v.weight_of(g * v.K + k) * r * is;
          for (int64_t p = 0; p < v.P; ++p) {
            const T* xr = px + v.at(o, p, g, k);
            const T* dyr = pdy + v.at(o, p, g, k);
            T* dxr = pdx + v.at(o, p, g, k);
            for (int64_t s = 0; s < run; ++s)
              dxr[s] = static_cast<T>(dxr[s] + scale * dyr[s] + (static_cast<double>(xr[s]) - m) * slope + offset);
          }
        }
      }
    }

    if (!want_params || params_in_group_pass) return;
    // Several blocks (Instance, Group, Layer, Ghost): sum each channel over every block, one task per channel.
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t c = 0; c < l.num_channels(); ++c) {
      const int64_t g = c / v.K, k = c % v.K;
      double acc_w = 0, acc_b = 0;
      for (int64_t o = 0; o < v.O; ++o) {
        const int64_t sg = o * v.G + g;
        const double m = v.mean[sg], is = v.inv_std[sg];
        double sdy = 0, sdyz = 0;
        for (int64_t p = 0; p < v.P; ++p) {
          const T* xr = px + v.at(o, p, g, k);
          const T* dyr = pdy + v.at(o, p, g, k);
          for (int64_t s = 0; s < v.S; ++s) {
            const double gs = static_cast<double>(dyr[s]);
            sdy += gs;
            sdyz += gs * (static_cast<double>(xr[s]) - m) * is;
          }
        }
        acc_w += v.r_of(sg) * sdyz + v.d_of(sg) * sdy;
        acc_b += sdy;
      }
      if (pdw) pdw[c] = static_cast<T>(pdw[c] + acc_w);
      if (pdb) pdb[c] = static_cast<T>(pdb[c] + acc_b);
    }
  });
}

}  // namespace nl::cpu
