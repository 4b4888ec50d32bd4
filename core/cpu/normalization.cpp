// CPU kernels of the normalize-over-axes core. The math, the 5-D layout x[o, p, g, k, s] and the names are
// in core/kernels_normalization.h; read the reference versions (first half of this file) before the fast
// ones.
//
// The fast versions make the same computation, arranged so that memory is swept as few times as possible
// (the section "Optimized versions" below explains how): the training forward reads x once and writes y,
// the backward reads x and dy once and writes dx. With a fused 2×2 max pool (MaxPoolAfter), the forward
// writes the pooled output and its argmax instead of y (write_segment), and the backward builds the
// gradient before the pool inside dx (sum_channel_segment). All sums accumulate in double whatever the
// element type; per-element math is done in double and rounded once, so the statistics (float64) are never
// rounded to float before use.
#include "core/cpu/cpu_normalization.h"

#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/cpu/cpu_conv.h"
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
  check(t.dtype() == x.dtype() && t.is_contiguous() && t.numel() == numel, op, ": ", name,
        " must be a contiguous ", dtype_name(x.dtype()), " tensor with ", numel, " elements, got ",
        dtype_name(t.dtype()), " ", t.shape());
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

// A fused 2×2 max pool: BatchNorm's layout with (H, W) planes, the ReLU, an int64 argmax of the pooled size,
// and `pooled` (y, or dy in the backward) of that size.
void check_pool(const char* op, const NormLayout& l, NormActivation activation, const MaxPoolAfter& pool,
                const Tensor& x, const Tensor& pooled, const char* pooled_name) {
  check(activation == NormActivation::relu, op, ": the fused max pool needs the fused ReLU before it");
  check(
      l.channels_per_group == 1 && pool.height >= 2 && pool.width >= 2 && pool.height * pool.width == l.inner,
      op, ": the fused max pool needs one channel per statistic group and (H, W) planes with H, W >= 2; got ",
      l.channels_per_group, " channels per group and inner ", l.inner, " for a ", pool.height, " x ",
      pool.width, " plane");
  const int64_t planes = l.numel() / l.inner, pooled_numel = planes * (pool.height / 2) * (pool.width / 2);
  check(pool.argmax.defined() && pool.argmax.dtype() == kInt64 && pool.argmax.is_contiguous() &&
            pool.argmax.numel() == pooled_numel,
        op, ": argmax must be a contiguous int64 tensor with ", pooled_numel, " elements");
  check(pooled.defined(), op, ": ", pooled_name, " is undefined");
  check_same(op, pooled_name, pooled, x, pooled_numel);
}

// The pool's geometry over the (H, W) planes of a BatchNorm layout.
Pool2dGeometry pool_geometry(const NormLayout& l, const MaxPoolAfter& pool) {
  Pool2dGeometry g;
  g.batch = l.outer * l.pooled;
  g.channels = l.groups;
  g.height = pool.height, g.width = pool.width;
  g.kernel_h = g.kernel_w = g.stride_h = g.stride_w = 2;
  g.out_h = pool.height / 2, g.out_w = pool.width / 2;
  return g;
}

// Everything the loops need, as plain pointers and sizes.
template <class T>
struct View {
  int64_t O, P, G, K, S;
  double M;
  const T* w;
  const double *mean, *inv_std, *r, *d;
  View(const NormLayout& l, const NormStats& st, const Tensor& weight)
      : O(l.outer),
        P(l.pooled),
        G(l.groups),
        K(l.channels_per_group),
        S(l.inner),
        M(static_cast<double>(l.count())),
        w(maybe<T>(weight)),
        mean(st.mean.data<double>()),
        inv_std(st.inv_std.data<double>()),
        r(maybe_stat(st.r)),
        d(maybe_stat(st.d)) {}
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

void normalize_reference_forward(const Tensor& x, const NormLayout& l, const NormStats& st,
                                 const Tensor& weight, const Tensor& bias, Tensor& y,
                                 NormActivation activation, const MaxPoolAfter* pool) {
  if (pool) {  // the full-size output, then the generic max pool loop over it
    check_pool("normalize_reference_forward", l, activation, *pool, x, y, "y");
    Tensor full = empty(x.shape(), x.dtype());
    normalize_reference_forward(x, l, st, weight, bias, full, activation);
    Tensor argmax = pool->argmax;
    max_pool2d_reference(full, pool_geometry(l, *pool), y, argmax);
    return;
  }
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
              const T out = static_cast<T>(v.weight_of(c) * x_hat + (pb ? pb[c] : 0.0));
              py[i] = activation == NormActivation::relu ? std::max(out, T(0)) : out;  // max keeps NaN
            }
  });
}

void normalize_reference_backward(const Tensor& x, const Tensor& dy_in, const NormLayout& l,
                                  const NormStats& st, const Tensor& weight, bool batch_stats, Tensor& dx,
                                  Tensor& dweight, Tensor& dbias, NormActivation activation,
                                  const Tensor& bias, const MaxPoolAfter* pool) {
  const char* op = "normalize_reference_backward";
  if (pool) {
    // The pool's backward: each pooled gradient goes to its window's argmax, 0 elsewhere. Then the ReLU's.
    check_pool(op, l, activation, *pool, x, dy_in, "dy");
    Tensor dy_full = zeros(x.shape(), x.dtype());
    // The pool's own generic scatter loop (add mode), as its reference.
    cpu::max_pool2d_backward(dy_in, pool->argmax, pool_geometry(l, *pool), dy_full, GradWrite::add);
    return normalize_reference_backward(x, dy_full, l, st, weight, batch_stats, dx, dweight, dbias,
                                        activation, bias);
  }
  check_forward(op, x, l, st, weight, bias, dy_in, "dy");
  // A fused ReLU: the gradient that reaches the normalization is dy_in where the forward's output before
  // the ReLU, recomputed here, was positive.
  Tensor dy = dy_in;
  if (activation == NormActivation::relu) {
    Tensor y = empty(x.shape(), x.dtype());
    normalize_reference_forward(x, l, st, weight, bias, y);
    dy = empty(x.shape(), x.dtype());
    visit_floating(x.dtype(), op, [&](auto tag) {
      using T = typename decltype(tag)::type;
      for (int64_t i = 0; i < x.numel(); ++i)
        dy.data<T>()[i] = y.data<T>()[i] > T(0) ? dy_in.data<T>()[i] : T(0);
    });
  }
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
              const double grad =
                  batch_stats ? inv_std * (dx_hat - mean_dx_hat - z * mean_dx_hat_z) : inv_std * dx_hat;
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
//
// Work split. A statistic group's M elements are P runs of K·S contiguous elements. The unit of work is a
// group (generic path), a block of adjacent groups when their runs are short (run_block_of), or a block of
// kColumnBlock columns (column path), and a unit is cut into `chunks`
// tasks along its elements (generic) or rows (columns) only when the units are too few to keep every thread
// busy or too large for the L2 cache. The split depends on the layout alone, never on the thread count, and
// partial sums are combined in chunk order, so y, dx and the statistics are the same on any number of
// threads. (The one exception: with several channels per group (GroupNorm, LayerNorm) the parameter
// gradients sum over groups in per-thread partials, so their last bits depend on the thread count.)
//
// Passes. Each stage needs two sweeps over a group: the sums, then the output (moments then y; Σdy and
// Σdy·(x − mean), then dx). With one chunk per unit the same thread runs both sweeps back to back, so the
// second reads the group from L2 and memory sees x (and dy) once. With several chunks the tasks of a sweep
// run in parallel, the partial sums are reduced per unit, then the second sweep runs.
//
// Loops. The innermost loops run over contiguous elements with `omp simd` reductions (which allow the
// vectorizer to reorder a double sum); element math is done in double and rounded once.

// The loops convert float32 to double and back, which costs as many instructions as the arithmetic: with
// 512-bit vectors (where the CPU has them) the sweeps keep up with memory; GCC's default for -march=native
// on recent Intel CPUs is 256-bit vectors.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC target("prefer-vector-width=512")
#endif

namespace {

constexpr int64_t kChunkElements = int64_t(1) << 17;  // at most 512 KB of float32 x (and as much dy) per task
// Never split a unit into pieces smaller than this (64 KB of float32): below it, the barriers between the
// sweeps of a chunked unit cost more than the extra tasks save (BatchNorm1d on [128, 512]: 57 -> 48 µs).
constexpr int64_t kMinChunkElements = int64_t(1) << 14;
constexpr int64_t kMinTasks = 16;     // split units further until there are this many tasks
constexpr int64_t kColumnBlock = 64;  // columns per unit in the column path

// K·S == 1 (BatchNorm1d on (N, C)): each statistic group is a strided column of an (N, C) matrix, so the
// loops run along rows and vectorize across columns instead.
bool column_path(const NormLayout& l) { return l.channels_per_group * l.inner == 1 && l.pooled > 1; }

struct Plan {
  bool columns = false;
  int64_t units = 0;      // statistic groups, or (outer × column blocks) in the column path
  int64_t chunks = 1;     // tasks per unit
  int64_t length = 0;     // what the chunks split: a group's M elements, or the P rows
  int64_t chunk_len = 0;  // elements (rows) per chunk
  int64_t tasks() const { return units * chunks; }
  int64_t begin(int64_t chunk) const { return chunk * chunk_len; }
  int64_t end(int64_t chunk) const { return std::min(length, (chunk + 1) * chunk_len); }
};

Plan make_plan(const NormLayout& l) {
  Plan plan;
  plan.columns = column_path(l);
  int64_t unit_elements = 0;
  if (plan.columns) {
    plan.units = l.outer * ((l.groups + kColumnBlock - 1) / kColumnBlock);
    plan.length = l.pooled;
    unit_elements = l.pooled * std::min(l.groups, kColumnBlock);
  } else {
    plan.units = l.num_stat_groups();
    plan.length = unit_elements = l.count();
  }
  int64_t chunks = std::max<int64_t>(1, (unit_elements + kChunkElements - 1) / kChunkElements);
  while (plan.units * chunks < kMinTasks && unit_elements / (2 * chunks) >= kMinChunkElements) chunks *= 2;
  chunks = std::min(chunks, std::max<int64_t>(plan.length, 1));
  plan.chunk_len = (plan.length + chunks - 1) / chunks;
  plan.chunks = plan.chunk_len == 0 ? 1 : (plan.length + plan.chunk_len - 1) / plan.chunk_len;
  return plan;
}

// Runs first(unit, chunk) for every task, then finish(unit) once per unit, then second(unit, chunk). With one
// chunk per unit, one thread runs all three for a unit back to back (its data is still in cache).
template <class First, class Finish, class Second>
void run_two_sweeps(const Plan& plan, bool parallel, First&& first, Finish&& finish, Second&& second) {
  if (plan.chunks == 1) {
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t u = 0; u < plan.units; ++u) {
      first(u, int64_t{0});
      finish(u);
      second(u, int64_t{0});
    }
    return;
  }
#pragma omp parallel if (parallel)
  {
#pragma omp for schedule(static)
    for (int64_t t = 0; t < plan.tasks(); ++t) first(t / plan.chunks, t % plan.chunks);
#pragma omp for schedule(static)
    for (int64_t u = 0; u < plan.units; ++u) finish(u);
#pragma omp for schedule(static)
    for (int64_t t = 0; t < plan.tasks(); ++t) second(t / plan.chunks, t % plan.chunks);
  }
}

// Calls f(offset, k, n) for the elements [q0, q1) of statistic group sg in order, cut into segments of n
// contiguous elements starting at x[offset]. Element q of the group is x[o, p, g, k, s] with
// q = (p·K + k)·S + s. When S > 1 a segment lies inside one channel k; when S == 1 it covers the channels
// k, k + 1, ..., k + n − 1 (LayerNorm: a per-element affine).
template <class F>
void for_each_segment(const NormLayout& l, int64_t sg, int64_t q0, int64_t q1, F&& f) {
  const int64_t G = l.groups, S = l.inner, run = l.channels_per_group * S;
  const int64_t o = sg / G, g = sg % G;
  if (q0 >= q1) return;
  // Position of q as (run p, channel k, position s), advanced without divisions (segments can be short).
  int64_t p = q0 / run, k = (q0 % run) / S, s = q0 % S;
  for (int64_t q = q0; q < q1;) {
    const int64_t base = ((o * l.pooled + p) * G + g) * run, j = k * S + s;
    const int64_t n = S == 1 ? std::min(q1 - q, run - j) : std::min(q1 - q, S - s);
    f(base + j, S == 1 ? j : k, n);
    q += n;
    if (S == 1) {
      k += n;
    } else {
      s += n;
      if (s == S) s = 0, ++k;
    }
    if (k == l.channels_per_group) k = 0, ++p;
  }
}

// ---- innermost loops --------------------------------------------------------------------------------------

// Two running sums, each kept in kLanes independent partials: add(n, terms) adds u_i to the first and v_i to
// the second for i < n, (u_i, v_i) = terms(i), term i going to lane i mod kLanes. The compiler maps the lanes
// onto several vector registers; with a single accumulator every addition would wait for the previous one
// and the loop would run at a fraction of memory speed. The lanes are added up once, at the end of a task
// (total()), in a fixed order, so the result is deterministic.
constexpr int64_t kLanes = 32;

struct LaneSums {
  double a[kLanes] = {}, b[kLanes] = {};

  template <class Terms>
  void add(int64_t n, Terms&& terms) {
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
      for (int64_t j = 0; j < kLanes; ++j) {
        const auto [u, v] = terms(i + j);
        a[j] += u;
        b[j] += v;
      }
    for (int64_t j = 0; i + j < n; ++j) {
      const auto [u, v] = terms(i + j);
      a[j] += u;
      b[j] += v;
    }
  }
  // The lanes are added in a fixed tree, five additions deep, instead of one chain of 32 dependent additions
  // (about 130 cycles per call; GroupNorm's backward totals once per channel run). Fixed, so the result does
  // not depend on the thread count.
  std::pair<double, double> total() const { return {tree_sum(a), tree_sum(b)}; }
  static double tree_sum(const double* v) {
    static_assert(kLanes == 32);
    double t[8];
    for (int j = 0; j < 8; ++j) t[j] = (v[j] + v[j + 8]) + (v[j + 16] + v[j + 24]);
    return ((t[0] + t[4]) + (t[2] + t[6])) + ((t[1] + t[5]) + (t[3] + t[7]));
  }
};

// Σ (x − pivot) and Σ (x − pivot)².
template <class T>
void add_shifted_sums(const T* x, int64_t n, double pivot, LaneSums& sums) {
  sums.add(n, [&](int64_t i) {
    const double c = static_cast<double>(x[i]) - pivot;
    return std::pair{c, c * c};
  });
}

// mean and biased var from the shifted sums over M elements (var clamped at 0 against rounding).
void moments_from_sums(double pivot, double s1, double s2, double M, double& mean, double& var) {
  const double shift = s1 / M;
  mean = pivot + shift;
  var = std::max(0.0, s2 / M - shift * shift);
}

// Short channel runs (BatchNorm with small images: 196 floats per (sample, channel)) start a new memory
// stream every few cache lines, faster than the hardware prefetcher picks them up, so the sweeps that read
// from memory ask for the run kAhead positions further on themselves. Where memory is read in longer
// stretches the hardware does better alone. The limits are measured (BatchNorm2d forward+backward, this
// machine): runs of 784 floats (28×28) were 7% slower with the prefetches, and from 512 to 576 floats even;
// blocks of channels (run_block_of) of 4 × 256 floats were 4–7% slower with them, of 4 × 196 floats 0–3%
// faster. Prefetches never fault; the bound check only keeps the addresses meaningful.
struct RunPrefetch {
  int64_t stride = 0;  // elements from a run to the same channel's run kAhead pooled indices on; 0: off
  int64_t limit = 0;   // numel

  // run_block: the channels swept side by side (run_block_of), so memory is read run_block·S at a time.
  static RunPrefetch for_layout(const NormLayout& l, int64_t run_block) {
    constexpr int64_t kShortRun = 512, kShortBlockRun = 1024, kAhead = 2;
    const bool short_runs = l.channels_per_group == 1 && l.inner > 1 && l.inner <= kShortRun &&
                            run_block * l.inner < kShortBlockRun && l.pooled > 1;
    return short_runs ? RunPrefetch{kAhead * l.groups * l.inner, l.numel()} : RunPrefetch{};
  }
  template <class T>
  void operator()(const T* base, int64_t at, int64_t n) const {
    if (stride == 0 || at + stride + n > limit) return;
    const char* p = reinterpret_cast<const char*>(base + at + stride);
    for (int64_t b = 0; b < n * static_cast<int64_t>(sizeof(T)); b += 64) __builtin_prefetch(p + b);
  }
};

// Short channel runs (K == 1, small S: BatchNorm on 16×16 images has 1 KB runs): a unit becomes a block of
// B adjacent statistic groups, swept run by run across the block (for p: for each group of the block), so
// that memory is read B·S contiguous elements at a time instead of S. Each group's elements are still
// summed in the same order, so the results do not depend on B. On [256, 32, 16, 16] the backward takes
// 0.73 ms with B = 4 instead of 1.0 ms with B = 1. Returns 1 (no blocks) where they do not pay.
constexpr int64_t kMaxRunBlock = 16;

template <class T>
int64_t run_block_of(const NormLayout& l, const Plan& plan) {
  constexpr int64_t kBlockRunBytes = 4096;  // a block's run: up to a page
  constexpr int64_t kBlockBytes = 1 << 20;  // a block's x (and as much dy) stays in L2
  const int64_t S = l.inner, bytes_per_group = l.count() * static_cast<int64_t>(sizeof(T));
  if (plan.columns || plan.chunks != 1 || l.channels_per_group != 1 || l.pooled < 2 || S < 1) return 1;
  int64_t B = 1;
  while (2 * B <= std::min(l.groups, kMaxRunBlock) &&
         2 * B * S * static_cast<int64_t>(sizeof(T)) <= kBlockRunBytes &&
         2 * B * bytes_per_group <= kBlockBytes)
    B *= 2;
  // Keep every thread busy: at least 4 units per thread (B does not change the results, so it may depend
  // on the thread count).
  const int64_t blocks_wanted = 4 * static_cast<int64_t>(omp_get_max_threads());
  while (B > 1 && l.outer * ((l.groups + B - 1) / B) < blocks_wanted) B /= 2;
  return B;
}

// The two sweeps over blocks of B groups (see run_block_of), one thread per block: sum_run(sg, at, lanes)
// for every run of every group of the block, then finish(sg, s1, s2) per group with its lanes' totals, then
// out_run(sg, at) for every run. `at` is the offset of the run x[o, p, g, 0, 0]. want_sums false: no first
// sweep, no finish.
template <class SumRun, class Finish, class OutRun>
void run_blocked_sweeps(const NormLayout& l, int64_t B, bool parallel, bool want_sums, SumRun&& sum_run,
                        Finish&& finish, OutRun&& out_run) {
  const int64_t G = l.groups, P = l.pooled, S = l.inner, blocks = (G + B - 1) / B;
  const int64_t units = l.outer * blocks;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t u = 0; u < units; ++u) {
    const int64_t o = u / blocks, g0 = (u % blocks) * B, nb = std::min(B, G - g0), sg0 = o * G + g0;
    if (want_sums) {
      LaneSums lanes[kMaxRunBlock];
      for (int64_t p = 0; p < P; ++p)
        for (int64_t j = 0; j < nb; ++j) sum_run(sg0 + j, ((o * P + p) * G + g0 + j) * S, lanes[j]);
      for (int64_t j = 0; j < nb; ++j) {
        const auto [s1, s2] = lanes[j].total();
        finish(sg0 + j, s1, s2);
      }
    }
    // Backwards: the runs read last by the first sweep are the likeliest to be still in L2.
    for (int64_t p = P - 1; p >= 0; --p)
      for (int64_t j = 0; j < nb; ++j) out_run(sg0 + j, ((o * P + p) * G + g0 + j) * S);
  }
}

// y = (x − m)·a + b, and max(y, 0) with a fused ReLU (written as y < 0 ? 0 : y, which keeps a NaN as
// PyTorch's relu does, and which GCC 12 vectorizes where it leaves std::max scalar).
template <class T>
void affine(const T* x, T* y, int64_t n, double m, double a, double b, bool relu) {
  if (relu) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      const T v = static_cast<T>((static_cast<double>(x[i]) - m) * a + b);
      y[i] = v < T(0) ? T(0) : v;
    }
    return;
  }
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<T>((static_cast<double>(x[i]) - m) * a + b);
}

template <class T>
void relu_in_place(T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = y[i] < T(0) ? T(0) : y[i];
}

// y = (x − m)·(w·a) + (bias + w·d), per element (w, bias may be null: 1, 0).
template <class T>
void affine_per_element(const T* x, T* y, int64_t n, double m, double a, double d, const T* w,
                        const T* bias) {
  if (w && bias) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      const double wi = static_cast<double>(w[i]);
      y[i] = static_cast<T>((static_cast<double>(x[i]) - m) * (wi * a) +
                            (static_cast<double>(bias[i]) + wi * d));
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      const double wi = w ? static_cast<double>(w[i]) : 1.0, bi = bias ? static_cast<double>(bias[i]) : 0.0;
      y[i] = static_cast<T>((static_cast<double>(x[i]) - m) * (wi * a) + (bi + wi * d));
    }
  }
}

// The gradient that reaches the normalization: dy itself, or, behind a fused ReLU, dy where the forward's
// output before the ReLU, y(x) = (x − m)·a + b computed in double and rounded to T, was positive.
//
// Recomputing y(x) per element would double the arithmetic of the backward. But y is a nondecreasing
// function of x when a > 0 (nonincreasing when a < 0), so the set of x it passes is a half-line: x > t, or
// x < t. The cut t is found once per statistic group, by evaluating the forward's own expression around the
// root x0 = m − b/a and stepping one representable T at a time to the exact boundary; the loops then test
// sign·x > sign·t, one comparison in T. The mask is therefore exactly the forward's: the same x passes.
// (A NaN x fails every comparison, as relu's mask fails a NaN y. Non-finite statistics block everything.)
template <class T>
struct ReluMask {
  T sign = 1, cut = -std::numeric_limits<T>::infinity();  // x passes when sign·x > cut (default: all but NaN)
};

template <class T>
ReluMask<T> relu_mask_of(double m, double a, double b) {
  auto positive = [&](T x) { return static_cast<T>((static_cast<double>(x) - m) * a + b) > T(0); };
  constexpr T kInf = std::numeric_limits<T>::infinity();
  if (!(std::isfinite(m) && std::isfinite(a) && std::isfinite(b))) return {T(1), kInf};  // none pass
  if (a == 0) return {T(1), positive(T(0)) ? -kInf : kInf};  // all or none (y = b)
  const T toward_pass = a > 0 ? kInf : -kInf;
  T t = static_cast<T>(std::clamp(m - b / a, -static_cast<double>(std::numeric_limits<T>::max()),
                                  static_cast<double>(std::numeric_limits<T>::max())));
  // Move t to the last x that fails (the boundary on the failing side).
  while (positive(t) && std::isfinite(t)) t = std::nextafter(t, -toward_pass);
  while (!positive(std::nextafter(t, toward_pass)) && std::isfinite(t)) t = std::nextafter(t, toward_pass);
  return a > 0 ? ReluMask<T>{T(1), t} : ReluMask<T>{T(-1), -t};
}

// pass ? v : 0 without a branch. The ReLU's mask is as good as random, so a branch on it mispredicts about
// every other time. The fused pool's backward routes one gradient per window this way; with the branch GCC
// 12 emitted, its backward on [64,32,28,28] took 0.78 ms, without it 0.70 ms ([64,64,14,14]: 0.42 → 0.37).
template <class T>
T select_or_zero(bool pass, T v) {
  using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  return std::bit_cast<T>(std::bit_cast<Bits>(v) & (Bits{0} - static_cast<Bits>(pass)));
}

// out = dy where x passes the mask, else 0.
template <class T>
void mask_run(const T* x, const T* dy, int64_t n, const ReluMask<T>& mask, T* out) {
  const T sign = mask.sign, cut = mask.cut;
  for (int64_t i = 0; i < n; ++i) out[i] = sign * x[i] > cut ? dy[i] : T(0);
}

// f(offset, masked_dy, len) over the blocks of a run: masked_dy[i] = dy[offset + i] where x passes the
// mask, else 0. The masked block lives in an L1-sized stack buffer, so the loops that consume it are the
// plain ones. (Masking inside those loops, GCC 12 keeps them scalar or turns the select into a branch.)
template <class T, class F>
void for_masked_blocks(const T* x, const T* dy, int64_t n, const ReluMask<T>& mask, F&& f) {
  constexpr int64_t kBlock = 1024;
  alignas(64) T masked[kBlock];
  for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
    const int64_t len = std::min(kBlock, n - i0);
    mask_run(x + i0, dy + i0, len, mask, masked);
    f(i0, masked, len);
  }
}

// Σ dy and Σ dy·(x − m).
template <class T>
void add_grad_sums(const T* x, const T* dy, int64_t n, double m, LaneSums& sums) {
  sums.add(n, [&](int64_t i) {
    const double g = static_cast<double>(dy[i]);
    return std::pair{g, g * (static_cast<double>(x[i]) - m)};
  });
}

// Per element (S == 1): Σ w·dy and Σ w·dy·(x − m).
template <class T>
void add_weighted_grad_sums(const T* x, const T* dy, int64_t n, double m, const T* w, LaneSums& sums) {
  if (!w) return add_grad_sums(x, dy, n, m, sums);
  sums.add(n, [&](int64_t i) {
    const double wg = static_cast<double>(w[i]) * static_cast<double>(dy[i]);
    return std::pair{wg, wg * (static_cast<double>(x[i]) - m)};
  });
}

// Per element (S == 1), float64 partials of the parameter gradients: dw += dy·x_hat with
// x_hat = (x − m)·r_is + d, db += dy (either may be null).
template <class T>
void add_param_grads_per_element(const T* x, const T* dy, int64_t n, double m, double r_is, double d,
                                 double* dw, double* db) {
  if (dw) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i)
      dw[i] += static_cast<double>(dy[i]) * ((static_cast<double>(x[i]) - m) * r_is + d);
  }
  if (db) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) db[i] += static_cast<double>(dy[i]);
  }
}

// dx (= or +=) scale·dy + (x − m)·slope + offset. x null: scale·dy, for constant statistics (eval mode),
// where dx does not depend on x, so a NaN in x stays out of dx (as in PyTorch's eval backward).
template <bool kAdd, class T>
void dx_affine(const T* x, const T* dy, T* dx, int64_t n, double m, double scale, double slope,
               double offset) {
  if (!x) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      const double g = scale * static_cast<double>(dy[i]);
      dx[i] = static_cast<T>(kAdd ? static_cast<double>(dx[i]) + g : g);
    }
    return;
  }
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const double g = scale * static_cast<double>(dy[i]) + (static_cast<double>(x[i]) - m) * slope + offset;
    dx[i] = static_cast<T>(kAdd ? static_cast<double>(dx[i]) + g : g);
  }
}

// Per element (S == 1): the scale is w·wr_is (w may be null: 1).
template <bool kAdd, class T>
void dx_affine_per_element(const T* x, const T* dy, T* dx, int64_t n, double m, const T* w, double wr_is,
                           double slope, double offset) {
  if (!w) return dx_affine<kAdd>(x, dy, dx, n, m, wr_is, slope, offset);
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const double g = static_cast<double>(w[i]) * wr_is * static_cast<double>(dy[i]) +
                     (static_cast<double>(x[i]) - m) * slope + offset;
    dx[i] = static_cast<T>(kAdd ? static_cast<double>(dx[i]) + g : g);
  }
}

// The second sweep of LayerNorm's backward: dx as dx_affine_per_element and the parameter partials as
// add_param_grads_per_element, in one loop when everything is wanted (x and dy are then read once, from L2).
template <bool kAdd, class T>
void dx_and_param_grads_per_element(const T* x, const T* dy, T* dx, int64_t n, double m, const T* w,
                                    double r_is, double slope, double offset, double d, double* dw,
                                    double* db) {
  if (!(dx && w && dw && db)) {
    if (dx) dx_affine_per_element<kAdd>(x, dy, dx, n, m, w, r_is, slope, offset);
    add_param_grads_per_element(x, dy, n, m, r_is, d, dw, db);
    return;
  }
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const double g = static_cast<double>(dy[i]), centered = static_cast<double>(x[i]) - m;
    const double grad = static_cast<double>(w[i]) * r_is * g + centered * slope + offset;
    dx[i] = static_cast<T>(kAdd ? static_cast<double>(dx[i]) + grad : grad);
    dw[i] += g * (centered * r_is + d);
    db[i] += g;
  }
}

// The second sweep of LayerNorm's backward for R rows at once (rows of one per-element weight w): dx of
// each, and ONE update of the float64 parameter partials for the R rows. Those partials are as long as a
// row and live in L2; updating them once per R rows instead of once per row cuts the largest part of the
// sweep's cache traffic. Row r starts at x[r], dy[r], dx[r]; its coefficients are m[r], r_is[r], ...
template <int R, bool kAdd, class T>
void dx_and_param_grads_rows(const T* const* x, const T* const* dy, T* const* dx, int64_t n, const T* w,
                             const double* m, const double* r_is, const double* slope, const double* offset,
                             const double* d, double* dw, double* db) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const double wi = static_cast<double>(w[i]);
    double sum_w = 0, sum_b = 0;
    for (int r = 0; r < R; ++r) {
      const double g = static_cast<double>(dy[r][i]), c = static_cast<double>(x[r][i]) - m[r];
      const double grad = wi * r_is[r] * g + c * slope[r] + offset[r];
      dx[r][i] = static_cast<T>(kAdd ? static_cast<double>(dx[r][i]) + grad : grad);
      sum_w += g * (c * r_is[r] + d[r]);
      sum_b += g;
    }
    dw[i] += sum_w;
    db[i] += sum_b;
  }
}

// ---- the forward family: moments, y, or both
// ----------------------------------------------------------------

// What a forward-family call has and wants. With mean_out set, the first sweep finds the moments into
// mean_out, var_out (and inv_std_out = 1 / sqrt(var + eps) when set); otherwise the statistics are given in
// mean, inv_std, r, d. y null: moments only.
template <class T>
struct ForwardJob {
  const T* x;
  T* y;
  const T* w;
  const T* b;
  const double* mean;
  const double* inv_std;
  const double* r;
  const double* d;
  double* mean_out;
  double* var_out;
  double* inv_std_out;
  double eps;
  bool relu = false;          // a fused ReLU on y
  bool find_moments = false;  // set from mean_out
  // A fused 2×2 max pool (with relu): y is the pooled output, argmax its winners; planes are H × W (= inner).
  int64_t* argmax = nullptr;
  int64_t pool_h = 0, pool_w = 0;
};

// Whether the backward's first sweep can leave the gradient that reaches the normalization (masked by a
// fused ReLU, or also routed from a fused pool) in dx, for the second sweep to read back from L2: a fused
// ReLU, one channel per statistic group, a dx that is overwritten (not added to), and sums to take (so that
// a first sweep runs at all).
bool gradient_fits_in_dx(bool relu, int64_t channels_per_group, bool has_dx, bool add, bool need_sums) {
  return relu && channels_per_group == 1 && has_dx && !add && need_sums;
}

// The widest plane the fused pool handles in the sweep (two of its rows fill the stack buffer; wider planes
// take the unfused path: max_pool_fits is false).
constexpr int64_t kMaxPoolRow = 1024;

// One (H, W) plane x of a fused BatchNorm + ReLU + 2×2 max pool: y = max(0, (x − m)·a + b) goes into a stack
// buffer, computed exactly as affine() stores it unpooled, and is pooled from there by the max pool's own row
// routine into out (H/2, W/2) and arg (flat winner index in the plane): the full-size output is never
// written. A small plane goes through the buffer whole (one long affine loop), a large one two rows at a
// time (W <= kMaxPoolRow).
template <class T>
void affine_relu_max_pool_plane(const T* x, int64_t H, int64_t W, double m, double a, double b, T* out,
                                int64_t* arg) {
  const int64_t OH = H / 2, OW = W / 2;
  alignas(64) T buffer[kMaxPoolRow * 2];
  const int64_t rows_per_pass = H * W <= kMaxPoolRow * 2 ? 2 * OH : 2;
  for (int64_t oh0 = 0; oh0 < OH; oh0 += rows_per_pass / 2) {
    affine(x + 2 * oh0 * W, buffer, rows_per_pass * W, m, a, b, true);
    for (int64_t oh = oh0; oh < oh0 + rows_per_pass / 2; ++oh) {
      const T* r0 = buffer + 2 * (oh - oh0) * W;
      max_pool_2x2_window_row(r0, r0 + W, OW, W, 2 * oh * W, out + oh * OW, arg + oh * OW);
    }
  }
}

// Whether forward_family and backward_impl can pool inside their sweeps: every segment they hand out must be
// a whole (H, W) plane, which holds when no group is cut into chunks.
bool max_pool_fits(const NormLayout& l, const MaxPoolAfter& pool) {
  return make_plan(l).chunks == 1 && pool.width <= kMaxPoolRow;
}

template <class T>
void forward_family(const NormLayout& l, ForwardJob<T> job) {
  job.find_moments = job.mean_out != nullptr;
  if (job.find_moments) job.mean = job.mean_out, job.inv_std = job.inv_std_out;
  const Plan plan = make_plan(l);
  const bool parallel = l.numel() > kParallelGrain;
  const int64_t G = l.groups, K = l.channels_per_group, P = l.pooled;
  const double M = static_cast<double>(l.count());
  // Partial shifted sums: per task, per column (1 column in the generic path), (s1, s2).
  const int64_t width = plan.columns ? kColumnBlock : 1;
  std::vector<double> partial(
      job.find_moments && plan.chunks > 1 ? static_cast<size_t>(plan.tasks() * width * 2) : 0);
  auto weight_of = [&](int64_t c) { return job.w ? static_cast<double>(job.w[c]) : 1.0; };
  auto bias_of = [&](int64_t c) { return job.b ? static_cast<double>(job.b[c]) : 0.0; };
  auto set_stats = [&](int64_t sg, double pivot, double s1, double s2) {
    double m = 0, v = 0;
    if (l.center) {
      moments_from_sums(pivot, s1, s2, M, m, v);
    } else {
      v = s2 / M;  // RMSNorm: pivot 0, "var" is the mean of squares
    }
    job.mean_out[sg] = m;
    job.var_out[sg] = v;
    if (job.inv_std_out) job.inv_std_out[sg] = 1.0 / std::sqrt(v + job.eps);
  };

  if (plan.columns) {
    const int64_t blocks = (G + kColumnBlock - 1) / kColumnBlock;
    struct Block {
      int64_t o, g0, cols;
    };
    auto block_of = [&](int64_t u) {
      const int64_t o = u / blocks, g0 = (u % blocks) * kColumnBlock;
      return Block{o, g0, std::min(kColumnBlock, G - g0)};
    };
    auto pivot_of = [&](const Block& bl, int64_t j) {
      return l.center ? static_cast<double>(job.x[bl.o * P * G + bl.g0 + j]) : 0.0;
    };
    // One task's sums, into s1, s2 (width columns).
    auto sums = [&](int64_t u, int64_t chunk, double* s1, double* s2) {
      const Block bl = block_of(u);
      double pivot[kColumnBlock];
      for (int64_t j = 0; j < bl.cols; ++j) pivot[j] = pivot_of(bl, j), s1[j] = 0, s2[j] = 0;
      for (int64_t p = plan.begin(chunk); p < plan.end(chunk); ++p) {
        const T* xr = job.x + (bl.o * P + p) * G + bl.g0;
#pragma omp simd
        for (int64_t j = 0; j < bl.cols; ++j) {
          const double c = static_cast<double>(xr[j]) - pivot[j];
          s1[j] += c;
          s2[j] += c * c;
        }
      }
    };
    double* part = partial.data();
    auto first = [&](int64_t u, int64_t chunk) {
      if (!job.find_moments || plan.chunks == 1) return;  // one chunk: finish() sums the whole unit itself
      double* t = part + (u * plan.chunks + chunk) * width * 2;
      sums(u, chunk, t, t + width);
    };
    auto finish = [&](int64_t u) {
      if (!job.find_moments) return;
      const Block bl = block_of(u);
      double s1[kColumnBlock], s2[kColumnBlock];
      if (plan.chunks == 1) {
        sums(u, 0, s1, s2);
      } else {
        for (int64_t j = 0; j < bl.cols; ++j) s1[j] = 0, s2[j] = 0;
        for (int64_t chunk = 0; chunk < plan.chunks; ++chunk) {
          const double* t = part + (u * plan.chunks + chunk) * width * 2;
          for (int64_t j = 0; j < bl.cols; ++j) s1[j] += t[j], s2[j] += t[width + j];
        }
      }
      for (int64_t j = 0; j < bl.cols; ++j) set_stats(bl.o * G + bl.g0 + j, pivot_of(bl, j), s1[j], s2[j]);
    };
    auto second = [&](int64_t u, int64_t chunk) {
      if (!job.y) return;
      const Block bl = block_of(u);
      double m[kColumnBlock], a[kColumnBlock], b[kColumnBlock];
      for (int64_t j = 0; j < bl.cols; ++j) {
        const int64_t sg = bl.o * G + bl.g0 + j, c = bl.g0 + j;
        m[j] = job.mean[sg];
        a[j] = weight_of(c) * (job.r ? job.r[sg] : 1.0) * job.inv_std[sg];
        b[j] = bias_of(c) + weight_of(c) * (job.d ? job.d[sg] : 0.0);
      }
      for (int64_t p = plan.begin(chunk); p < plan.end(chunk); ++p) {
        const int64_t at = (bl.o * P + p) * G + bl.g0;
        const T* xr = job.x + at;
        T* yr = job.y + at;
#pragma omp simd
        for (int64_t j = 0; j < bl.cols; ++j)
          yr[j] = static_cast<T>((static_cast<double>(xr[j]) - m[j]) * a[j] + b[j]);
        if (job.relu) relu_in_place(yr, bl.cols);
      }
    };
    run_two_sweeps(plan, parallel, first, finish, second);
    return;
  }

  // Generic path: a unit is a statistic group.
  const int64_t run_block = run_block_of<T>(l, plan);
  const RunPrefetch prefetch = RunPrefetch::for_layout(l, run_block);
  auto pivot_of = [&](int64_t sg) {
    if (!l.center || l.count() == 0) return 0.0;
    const int64_t o = sg / G, g = sg % G;
    return static_cast<double>(job.x[((o * P) * G + g) * K * l.inner]);
  };
  // The two sweeps' work on one segment: n elements at x[at], in group sg, channel k of the group.
  auto sum_segment = [&](int64_t at, int64_t n, double pivot, LaneSums& lanes) {
    prefetch(job.x, at, n);
    add_shifted_sums(job.x + at, n, pivot, lanes);
  };
  auto write_segment = [&](int64_t sg, int64_t at, int64_t k, int64_t n) {
    const int64_t c = sg % G * K + k;
    const double m = job.mean[sg], r_is = (job.r ? job.r[sg] : 1.0) * job.inv_std[sg],
                 d = job.d ? job.d[sg] : 0.0;
    if (l.inner == 1) {
      affine_per_element(job.x + at, job.y + at, n, m, r_is, d, job.w ? job.w + c : nullptr,
                         job.b ? job.b + c : nullptr);
      if (job.relu) relu_in_place(job.y + at, n);
      return;
    }
    const double a = weight_of(c) * r_is, b = bias_of(c) + weight_of(c) * d;
    if (job.argmax) {  // the segment is the whole plane x[at .. at + H·W)
      const int64_t out_at = at / l.inner * (job.pool_h / 2) * (job.pool_w / 2);
      affine_relu_max_pool_plane(job.x + at, job.pool_h, job.pool_w, m, a, b, job.y + out_at,
                                 job.argmax + out_at);
    } else {
      affine(job.x + at, job.y + at, n, m, a, b, job.relu);
    }
  };
  if (const int64_t B = run_block; B > 1) {
    run_blocked_sweeps(
        l, B, parallel, job.find_moments,
        [&](int64_t sg, int64_t at, LaneSums& lanes) { sum_segment(at, l.inner, pivot_of(sg), lanes); },
        [&](int64_t sg, double s1, double s2) { set_stats(sg, pivot_of(sg), s1, s2); },
        [&](int64_t sg, int64_t at) {
          if (job.y) write_segment(sg, at, 0, l.inner);
        });
    return;
  }
  auto sums = [&](int64_t sg, int64_t chunk, double& s1, double& s2) {
    const double pivot = pivot_of(sg);
    LaneSums lanes;
    for_each_segment(l, sg, plan.begin(chunk), plan.end(chunk),
                     [&](int64_t at, int64_t, int64_t n) { sum_segment(at, n, pivot, lanes); });
    std::tie(s1, s2) = lanes.total();
  };
  auto first = [&](int64_t sg, int64_t chunk) {
    if (!job.find_moments || plan.chunks == 1) return;
    double* t = partial.data() + (sg * plan.chunks + chunk) * 2;
    sums(sg, chunk, t[0], t[1]);
  };
  auto finish = [&](int64_t sg) {
    if (!job.find_moments) return;
    double s1 = 0, s2 = 0;
    if (plan.chunks == 1) {
      sums(sg, 0, s1, s2);
    } else {
      for (int64_t chunk = 0; chunk < plan.chunks; ++chunk) {
        s1 += partial[(sg * plan.chunks + chunk) * 2];
        s2 += partial[(sg * plan.chunks + chunk) * 2 + 1];
      }
    }
    set_stats(sg, pivot_of(sg), s1, s2);
  };
  auto second = [&](int64_t sg, int64_t chunk) {
    if (!job.y) return;
    for_each_segment(l, sg, plan.begin(chunk), plan.end(chunk),
                     [&](int64_t at, int64_t k, int64_t n) { write_segment(sg, at, k, n); });
  };
  run_two_sweeps(plan, parallel, first, finish, second);
}

// ---- the backward
// --------------------------------------------------------------------------------------------

// pool_argmax set: pdy is the gradient of a fused 2×2 max pool's output (planes pool_w wide), routed to the
// winners through pool_argmax; this needs gradient_fits_in_dx and whole-plane segments (max_pool_fits),
// which the caller checks.
template <bool kAdd, class T>
void backward_impl(const NormLayout& l, const NormStats& st, const T* px, const T* pdy, const T* pw,
                   bool batch_stats, T* pdx, T* pdw, T* pdb, bool relu, const T* pbias,
                   const int64_t* pool_argmax = nullptr, int64_t pool_h = 0, int64_t pool_w = 0) {
  const Plan plan = make_plan(l);
  const bool parallel = l.numel() > kParallelGrain;
  const int64_t G = l.groups, K = l.channels_per_group, P = l.pooled, C = l.num_channels();
  const double M = static_cast<double>(l.count());
  const double *mean = st.mean.data<double>(), *inv_std = st.inv_std.data<double>();
  const double *pr = maybe_stat(st.r), *pd = maybe_stat(st.d);
  auto r_of = [&](int64_t sg) { return pr ? pr[sg] : 1.0; };
  auto d_of = [&](int64_t sg) { return pd ? pd[sg] : 0.0; };
  auto weight_of = [&](int64_t c) { return pw ? static_cast<double>(pw[c]) : 1.0; };
  auto bias_of = [&](int64_t c) { return pbias ? static_cast<double>(pbias[c]) : 0.0; };
  const bool want_params = pdw || pdb;
  const bool need_sums = batch_stats || want_params;
  const int64_t n_sg = l.num_stat_groups();
  // The fused ReLU's mask of each statistic group (K == 1: group sg is channel sg % G), found once, with
  // the forward's coefficients (forward_family: affine(x, y, n, m, w·r·inv_std, bias + w·d)).
  // Kept as two arrays (not ReluMask structs) so that the column path's row loop vectorizes.
  std::vector<T> mask_sign(relu ? static_cast<size_t>(n_sg) : 0), mask_cut(mask_sign.size());
  for (int64_t sg = 0; sg < static_cast<int64_t>(mask_sign.size()); ++sg) {
    const double w = weight_of(sg % G);
    const ReluMask<T> mask =
        relu_mask_of<T>(mean[sg], w * r_of(sg) * inv_std[sg], bias_of(sg % G) + w * d_of(sg));
    mask_sign[sg] = mask.sign;
    mask_cut[sg] = mask.cut;
  }
  auto relu_mask = [&](int64_t sg) {
    return relu ? ReluMask<T>{mask_sign[sg], mask_cut[sg]} : ReluMask<T>{};
  };
  // A row of n gradients of groups sg0, sg0 + 1, ... (the column path) masked into `out`.
  auto mask_row = [&](const T* x, const T* dy, int64_t sg0, int64_t n, T* out) {
    const T *sign = mask_sign.data() + sg0, *cut = mask_cut.data() + sg0;
    for (int64_t j = 0; j < n; ++j) out[j] = sign[j] * x[j] > cut[j] ? dy[j] : T(0);
  };
  const int64_t width = plan.columns ? kColumnBlock : 1;

  // Per statistic group, the sums of the first sweep: with K == 1 (one channel per group) the plain Σdy and
  // Σdy·(x − mean), which also give the parameter gradients; with K > 1 the weighted Σ w·dy and Σ w·dy·(x −
  // mean) (then the parameter gradients come from per-thread partials, below).
  std::vector<double> group_sums(need_sums ? static_cast<size_t>(n_sg * 2) : 0);
  std::vector<double> partial(need_sums && plan.chunks > 1 ? static_cast<size_t>(plan.tasks() * width * 2)
                                                           : 0);
  // K > 1 and parameter gradients wanted: per-thread float64 partials of dweight and dbias (a column sum over
  // the groups; per thread so no two threads add into the same place), reduced in thread order at the end.
  const bool thread_params = want_params && K > 1;
  // They come from the caching allocator: for LayerNorm they are as long as a sample.
  const int threads = thread_params ? omp_get_max_threads() : 0;
  Tensor thread_dw_buffer = thread_params && pdw ? zeros({threads * C}, kFloat64) : Tensor();
  Tensor thread_db_buffer = thread_params && pdb ? zeros({threads * C}, kFloat64) : Tensor();
  double* thread_dw = maybe_mut<double>(thread_dw_buffer);
  double* thread_db = maybe_mut<double>(thread_db_buffer);
  // dx = scale_c·dy + (x − mean)·slope + offset: per group (slope, offset).
  std::vector<double> coefficients(static_cast<size_t>(n_sg * 2));

  auto set_coefficients = [&](int64_t sg, double swdy, double swdyx) {
    // With K == 1 the sums are unweighted: the group's one weight factors out.
    const double wk = K == 1 ? weight_of(sg % G) : 1.0;
    const double r = r_of(sg), is = inv_std[sg];
    coefficients[sg * 2] = batch_stats ? -r * is * is * is * wk * swdyx / M : 0.0;
    coefficients[sg * 2 + 1] = batch_stats && l.center ? -r * is * wk * swdy / M : 0.0;
  };

  if (plan.columns) {
    const int64_t blocks = (G + kColumnBlock - 1) / kColumnBlock;
    struct Block {
      int64_t o, g0, cols;
    };
    auto block_of = [&](int64_t u) {
      const int64_t o = u / blocks, g0 = (u % blocks) * kColumnBlock;
      return Block{o, g0, std::min(kColumnBlock, G - g0)};
    };
    auto sums = [&](int64_t u, int64_t chunk, double* sdy, double* sdyx) {
      const Block bl = block_of(u);
      const double* m = mean + bl.o * G + bl.g0;
      for (int64_t j = 0; j < bl.cols; ++j) sdy[j] = 0, sdyx[j] = 0;
      T masked[kColumnBlock];
      for (int64_t p = plan.begin(chunk); p < plan.end(chunk); ++p) {
        const int64_t at = (bl.o * P + p) * G + bl.g0;
        const T *xr = px + at, *dyr = pdy + at;
        if (relu) mask_row(xr, dyr, bl.o * G + bl.g0, bl.cols, masked), dyr = masked;
#pragma omp simd
        for (int64_t j = 0; j < bl.cols; ++j) {
          const double g = static_cast<double>(dyr[j]);
          sdy[j] += g;
          sdyx[j] += g * (static_cast<double>(xr[j]) - m[j]);
        }
      }
    };
    auto first = [&](int64_t u, int64_t chunk) {
      if (!need_sums || plan.chunks == 1) return;
      double* t = partial.data() + (u * plan.chunks + chunk) * width * 2;
      sums(u, chunk, t, t + width);
    };
    auto finish = [&](int64_t u) {
      if (!need_sums) return;
      const Block bl = block_of(u);
      double sdy[kColumnBlock], sdyx[kColumnBlock];
      if (plan.chunks == 1) {
        sums(u, 0, sdy, sdyx);
      } else {
        for (int64_t j = 0; j < bl.cols; ++j) sdy[j] = 0, sdyx[j] = 0;
        for (int64_t chunk = 0; chunk < plan.chunks; ++chunk) {
          const double* t = partial.data() + (u * plan.chunks + chunk) * width * 2;
          for (int64_t j = 0; j < bl.cols; ++j) sdy[j] += t[j], sdyx[j] += t[width + j];
        }
      }
      for (int64_t j = 0; j < bl.cols; ++j) {
        const int64_t sg = bl.o * G + bl.g0 + j;
        group_sums[sg * 2] = sdy[j];
        group_sums[sg * 2 + 1] = sdyx[j];
        set_coefficients(sg, sdy[j], sdyx[j]);
      }
    };
    auto second = [&](int64_t u, int64_t chunk) {
      if (!pdx) return;
      const Block bl = block_of(u);
      double m[kColumnBlock], scale[kColumnBlock], slope[kColumnBlock], offset[kColumnBlock];
      T masked[kColumnBlock];
      for (int64_t j = 0; j < bl.cols; ++j) {
        const int64_t sg = bl.o * G + bl.g0 + j;
        m[j] = mean[sg];
        scale[j] = weight_of(bl.g0 + j) * r_of(sg) * inv_std[sg];
        slope[j] = need_sums ? coefficients[sg * 2] : 0.0;
        offset[j] = need_sums ? coefficients[sg * 2 + 1] : 0.0;
      }
      for (int64_t p = plan.begin(chunk); p < plan.end(chunk); ++p) {
        const int64_t at = (bl.o * P + p) * G + bl.g0;
        const T *xr = px + at, *dyr = pdy + at;
        T* dxr = pdx + at;
        if (relu) mask_row(xr, dyr, bl.o * G + bl.g0, bl.cols, masked), dyr = masked;
        if (!batch_stats) {  // constant statistics: dx does not depend on x
#pragma omp simd
          for (int64_t j = 0; j < bl.cols; ++j) {
            const double g = scale[j] * static_cast<double>(dyr[j]);
            dxr[j] = static_cast<T>(kAdd ? static_cast<double>(dxr[j]) + g : g);
          }
          continue;
        }
#pragma omp simd
        for (int64_t j = 0; j < bl.cols; ++j) {
          const double g = scale[j] * static_cast<double>(dyr[j]) +
                           (static_cast<double>(xr[j]) - m[j]) * slope[j] + offset[j];
          dxr[j] = static_cast<T>(kAdd ? static_cast<double>(dxr[j]) + g : g);
        }
      }
    };
    run_two_sweeps(plan, parallel, first, finish, second);
  } else {
    const int64_t run_block = run_block_of<T>(l, plan);
    const RunPrefetch prefetch = RunPrefetch::for_layout(l, run_block);
    // With a fused ReLU and a dx to overwrite, the first sweep leaves the masked gradient in dx and the
    // second sweep reads it back from there (L2) instead of masking again.
    const bool masked_dy_in_dx = gradient_fits_in_dx(relu, K, pdx != nullptr, kAdd, need_sums);
    // x at an offset for dx's (x − mean)·slope term, or null with constant statistics (no such term).
    auto x_term = [&](int64_t at) { return batch_stats ? px + at : nullptr; };
    // This thread's parameter partials (K > 1), or null.
    auto thread_partials = [&]() {
      const int t = thread_params ? omp_get_thread_num() : 0;
      return std::pair{thread_dw ? thread_dw + t * C : nullptr, thread_db ? thread_db + t * C : nullptr};
    };
    // K == 1: the first sweep's sums over a segment of group sg (one channel's).
    auto sum_channel_segment = [&](int64_t sg, int64_t at, int64_t n, LaneSums& lanes) {
      const double m = mean[sg];
      if (pool_argmax) {
        // The segment is a whole plane. Its gradient before the pool, 0 but at each window's winner, and
        // there masked by the ReLU, is built in dx (in L1/L2) instead of in a full-size tensor in memory.
        const int64_t out_plane = (pool_h / 2) * (pool_w / 2), out_at = at / l.inner * out_plane;
        const ReluMask<T> mask = relu_mask(sg);
        T* d = pdx + at;
        std::fill(d, d + n, T(0));
        for (int64_t o = 0; o < out_plane; ++o) {
          const int64_t i = pool_argmax[out_at + o];
          d[i] = select_or_zero(mask.sign * px[at + i] > mask.cut, pdy[out_at + o]);
        }
        add_grad_sums(px + at, d, n, m, lanes);
        return;
      }
      prefetch(px, at, n);
      prefetch(pdy, at, n);
      if (masked_dy_in_dx) {
        // dx is ours to overwrite: it holds the masked gradient until the second sweep replaces it.
        mask_run(px + at, pdy + at, n, relu_mask(sg), pdx + at);
        add_grad_sums(px + at, pdx + at, n, m, lanes);
      } else if (relu) {
        for_masked_blocks(px + at, pdy + at, n, relu_mask(sg), [&](int64_t i0, const T* g, int64_t len) {
          add_grad_sums(px + at + i0, g, len, m, lanes);
        });
      } else {
        add_grad_sums(px + at, pdy + at, n, m, lanes);
      }
    };
    // S > 1: the second sweep's dx over a segment of group sg in channel c.
    auto dx_channel_segment = [&](int64_t sg, int64_t at, int64_t c, int64_t n) {
      const double m = mean[sg], scale = weight_of(c) * r_of(sg) * inv_std[sg];
      const double slope = need_sums ? coefficients[sg * 2] : 0.0,
                   offset = need_sums ? coefficients[sg * 2 + 1] : 0.0;
      if (masked_dy_in_dx) {
        dx_affine<false>(x_term(at), pdx + at, pdx + at, n, m, scale, slope, offset);  // in place, from L2
      } else if (relu) {
        for_masked_blocks(px + at, pdy + at, n, relu_mask(sg), [&](int64_t i0, const T* g, int64_t len) {
          dx_affine<kAdd>(x_term(at + i0), g, pdx + at + i0, len, m, scale, slope, offset);
        });
      } else {
        dx_affine<kAdd>(x_term(at), pdy + at, pdx + at, n, m, scale, slope, offset);
      }
    };
    auto store_sums = [&](int64_t sg, double a, double b) {
      group_sums[sg * 2] = a;
      group_sums[sg * 2 + 1] = b;
      set_coefficients(sg, a, b);
    };
    // One task's sums for group sg: (Σdy, Σdy·(x − m)) with K == 1, (Σ w·dy, Σ w·dy·(x − m)) with K > 1; the
    // per-thread parameter partials are added to on the way.
    auto sums = [&](int64_t sg, int64_t chunk, double& a, double& b) {
      const int64_t g = sg % G;
      const double m = mean[sg], r_is = r_of(sg) * inv_std[sg], d = d_of(sg);
      const auto [dw, db] = thread_partials();
      LaneSums lanes;
      a = 0, b = 0;
      for_each_segment(l, sg, plan.begin(chunk), plan.end(chunk), [&](int64_t at, int64_t k, int64_t n) {
        const int64_t c = g * K + k;
        if (K == 1) {
          sum_channel_segment(sg, at, n, lanes);
        } else if (l.inner == 1) {
          // The parameter partials are added in the second sweep, with dx (when there is no dx, here).
          add_weighted_grad_sums(px + at, pdy + at, n, m, pw ? pw + c : nullptr, lanes);
          if (!pdx)
            add_param_grads_per_element(px + at, pdy + at, n, m, r_is, d, dw ? dw + c : nullptr,
                                        db ? db + c : nullptr);
        } else {
          // A segment is one channel's run: its own sums give the channel's parameter partials.
          LaneSums segment;
          add_grad_sums(px + at, pdy + at, n, m, segment);
          const auto [sdy, sdyx] = segment.total();
          a += weight_of(c) * sdy;
          b += weight_of(c) * sdyx;
          if (dw) dw[c] += r_is * sdyx + d * sdy;
          if (db) db[c] += sdy;
        }
      });
      const auto [lane_a, lane_b] = lanes.total();
      a += lane_a;
      b += lane_b;
    };
    auto first = [&](int64_t sg, int64_t chunk) {
      if (!need_sums || plan.chunks == 1) return;
      double* t = partial.data() + (sg * plan.chunks + chunk) * 2;
      sums(sg, chunk, t[0], t[1]);
    };
    auto finish = [&](int64_t sg) {
      if (!need_sums) return;
      double a = 0, b = 0;
      if (plan.chunks == 1) {
        sums(sg, 0, a, b);
      } else {
        for (int64_t chunk = 0; chunk < plan.chunks; ++chunk) {
          a += partial[(sg * plan.chunks + chunk) * 2];
          b += partial[(sg * plan.chunks + chunk) * 2 + 1];
        }
      }
      store_sums(sg, a, b);
    };
    auto second = [&](int64_t sg, int64_t chunk) {
      if (!pdx) return;
      const int64_t g = sg % G;
      for_each_segment(l, sg, plan.begin(chunk), plan.end(chunk), [&](int64_t at, int64_t k, int64_t n) {
        const int64_t c = g * K + k;
        if (l.inner == 1 && K > 1) {
          const double m = mean[sg], r_is = r_of(sg) * inv_std[sg], d = d_of(sg);
          const double slope = need_sums ? coefficients[sg * 2] : 0.0,
                       offset = need_sums ? coefficients[sg * 2 + 1] : 0.0;
          const auto [dw, db] = thread_partials();
          dx_and_param_grads_per_element<kAdd>(px + at, pdy + at, pdx + at, n, m, pw ? pw + c : nullptr, r_is,
                                               slope, offset, d, dw ? dw + c : nullptr,
                                               db ? db + c : nullptr);
        } else {
          dx_channel_segment(sg, at, c, n);
        }
      });
    };
    // LayerNorm/RMSNorm with dx, dweight and dbias (rows of K elements sharing one per-element weight, each
    // one task): rows go in groups of kRows, the sums of each row first, then one second sweep over all of
    // them (dx_and_param_grads_rows). The group's x and dy (and the partials) should stay in L2.
    constexpr int kRows = 2;
    constexpr int64_t kRowGroupMaxElements = (int64_t(1) << 17) / kRows;
    const bool row_groups = l.inner == 1 && l.pooled == 1 && l.groups == 1 && K > 1 && plan.chunks == 1 &&
                            pdx && pw && pdw && pdb && K <= kRowGroupMaxElements;
    if (const int64_t B = run_block; B > 1) {
      run_blocked_sweeps(
          l, B, parallel, need_sums,
          [&](int64_t sg, int64_t at, LaneSums& lanes) { sum_channel_segment(sg, at, l.inner, lanes); },
          store_sums,
          [&](int64_t sg, int64_t at) {
            if (pdx) dx_channel_segment(sg, at, sg % G, l.inner);
          });
    } else if (!row_groups) {
      run_two_sweeps(plan, parallel, first, finish, second);
    } else {
      const int64_t row_group_count = (n_sg + kRows - 1) / kRows;
#pragma omp parallel for schedule(static) if (parallel)
      for (int64_t rg = 0; rg < row_group_count; ++rg) {
        const int64_t sg0 = rg * kRows;
        if (sg0 + kRows > n_sg) {  // the last, short group: one row at a time
          for (int64_t sg = sg0; sg < n_sg; ++sg) finish(sg), second(sg, 0);
          continue;
        }
        const T* xs[kRows];
        const T* dys[kRows];
        T* dxs[kRows];
        double m[kRows], r_is[kRows], slope[kRows], offset[kRows], d[kRows];
        for (int r = 0; r < kRows; ++r) {
          const int64_t sg = sg0 + r;
          finish(sg);
          xs[r] = px + sg * K, dys[r] = pdy + sg * K, dxs[r] = pdx + sg * K;
          m[r] = mean[sg], r_is[r] = r_of(sg) * inv_std[sg], d[r] = d_of(sg);
          slope[r] = coefficients[sg * 2], offset[r] = coefficients[sg * 2 + 1];
        }
        const auto [dw, db] = thread_partials();
        dx_and_param_grads_rows<kRows, kAdd>(xs, dys, dxs, K, pw, m, r_is, slope, offset, d, dw, db);
      }
    }
  }

  if (!want_params) return;
  if (thread_params) {
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t c = 0; c < C; ++c) {
      double acc_w = 0, acc_b = 0;
      for (int t = 0; t < threads; ++t) {
        if (pdw) acc_w += thread_dw[t * C + c];
        if (pdb) acc_b += thread_db[t * C + c];
      }
      if (pdw) pdw[c] = static_cast<T>(pdw[c] + acc_w);
      if (pdb) pdb[c] = static_cast<T>(pdb[c] + acc_b);
    }
    return;
  }
  // K == 1: channel c = g; its gradients are sums over the blocks o of its groups' plain sums.
  for (int64_t c = 0; c < C; ++c) {
    double acc_w = 0, acc_b = 0;
    for (int64_t o = 0; o < l.outer; ++o) {
      const int64_t sg = o * G + c;
      const double sdy = group_sums[sg * 2], sdyx = group_sums[sg * 2 + 1];
      acc_w += r_of(sg) * inv_std[sg] * sdyx + d_of(sg) * sdy;
      acc_b += sdy;
    }
    if (pdw) pdw[c] = static_cast<T>(pdw[c] + acc_w);
    if (pdb) pdb[c] = static_cast<T>(pdb[c] + acc_b);
  }
}

}  // namespace

void normalize_moments(const Tensor& x, const NormLayout& l, Tensor& mean, Tensor& var) {
  check_layout("normalize_moments", x, l);
  check_stat("normalize_moments", "mean", mean, l, false);
  check_stat("normalize_moments", "var", var, l, false);
  visit_floating(x.dtype(), "normalize_moments", [&](auto tag) {
    using T = typename decltype(tag)::type;
    forward_family<T>(l, {x.data<T>(), nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                          mean.data<double>(), var.data<double>(), nullptr, 0.0});
  });
}

namespace {

// Runs a forward-family job whose output is y, or, with a fused pool, the pooled y and its argmax: in the
// sweep when every segment is a whole plane, otherwise through a full-size output and max_pool2d (the same
// values, one more pass over memory).
template <class T>
void forward_maybe_pooled(const NormLayout& l, ForwardJob<T> job, const MaxPoolAfter* pool, Tensor& y) {
  if (!pool) {
    job.y = y.data<T>();
    return forward_family<T>(l, job);
  }
  if (max_pool_fits(l, *pool)) {
    job.y = y.data<T>();
    job.argmax = pool->argmax.data<int64_t>();
    job.pool_h = pool->height, job.pool_w = pool->width;
    return forward_family<T>(l, job);
  }
  Tensor full = empty({l.numel()}, dtype_of<T>::value);
  job.y = full.data<T>();
  forward_family<T>(l, job);
  Tensor argmax = pool->argmax;
  cpu::max_pool2d(full, pool_geometry(l, *pool), y, argmax);
}

}  // namespace

void normalize_moments_forward(const Tensor& x, const NormLayout& l, double eps, const Tensor& weight,
                               const Tensor& bias, Tensor& mean, Tensor& var, Tensor& inv_std, Tensor& y,
                               NormActivation activation, const MaxPoolAfter* pool) {
  const char* op = "normalize_moments_forward";
  check_layout(op, x, l);
  check_stat(op, "mean", mean, l, false);
  check_stat(op, "var", var, l, false);
  check_stat(op, "inv_std", inv_std, l, false);
  check_same(op, "weight", weight, x, l.num_channels());
  check_same(op, "bias", bias, x, l.num_channels());
  check(y.defined(), op, ": y is undefined");
  if (pool)
    check_pool(op, l, activation, *pool, x, y, "y");
  else
    check_same(op, "y", y, x, l.numel());
  check(eps >= 0 && std::isfinite(eps), op, ": eps must be finite and >= 0, got ", eps);
  visit_floating(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    forward_maybe_pooled<T>(l,
                            {x.data<T>(), nullptr, maybe<T>(weight), maybe<T>(bias), nullptr, nullptr,
                             nullptr, nullptr, mean.data<double>(), var.data<double>(),
                             inv_std.data<double>(), eps, activation == NormActivation::relu},
                            pool, y);
  });
}

void normalize_forward(const Tensor& x, const NormLayout& l, const NormStats& st, const Tensor& weight,
                       const Tensor& bias, Tensor& y, NormActivation activation, const MaxPoolAfter* pool) {
  const char* op = "normalize_forward";
  check_forward(op, x, l, st, weight, bias, pool ? Tensor() : y);
  if (pool) check_pool(op, l, activation, *pool, x, y, "y");
  visit_floating(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    forward_maybe_pooled<T>(l,
                            {x.data<T>(), nullptr, maybe<T>(weight), maybe<T>(bias), st.mean.data<double>(),
                             st.inv_std.data<double>(), maybe_stat(st.r), maybe_stat(st.d), nullptr, nullptr,
                             nullptr, 0.0, activation == NormActivation::relu},
                            pool, y);
  });
}

void normalize_backward(const Tensor& x, const Tensor& dy, const NormLayout& l, const NormStats& st,
                        const Tensor& weight, bool batch_stats, Tensor& dx, Tensor& dweight, Tensor& dbias,
                        GradWrite dx_write, NormActivation activation, const Tensor& bias,
                        const MaxPoolAfter* pool) {
  const char* op = "normalize_backward";
  check_forward(op, x, l, st, weight, bias, pool ? Tensor() : dy, "dy");
  const bool relu = activation == NormActivation::relu;
  check(!relu || l.channels_per_group == 1, op,
        ": a fused ReLU needs one channel per statistic group (channels_per_group 1), got ",
        l.channels_per_group);
  check_same(op, "dx", dx, x, l.numel());
  check_same(op, "dweight", dweight, x, l.num_channels());
  check_same(op, "dbias", dbias, x, l.num_channels());
  if (pool) {
    check_pool(op, l, activation, *pool, x, dy, "dy");
    // In the sweeps when the masked gradient can be built in dx (see backward_impl); otherwise the pool's
    // own backward writes the full-size gradient first.
    const bool in_sweeps =
        gradient_fits_in_dx(relu, l.channels_per_group, dx.defined(), dx_write == GradWrite::add,
                            batch_stats || dweight.defined() || dbias.defined()) &&
        max_pool_fits(l, *pool);
    if (!in_sweeps) {
      Tensor dy_full = empty(x.shape(), x.dtype());
      cpu::max_pool2d_backward(dy, pool->argmax, pool_geometry(l, *pool), dy_full, GradWrite::assign);
      return cpu::normalize_backward(x, dy_full, l, st, weight, batch_stats, dx, dweight, dbias, dx_write,
                                     activation, bias);
    }
  }
  visit_floating(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    auto run = [&](auto add) {
      backward_impl<decltype(add)::value, T>(
          l, st, x.data<T>(), dy.data<T>(), maybe<T>(weight), batch_stats, maybe_mut<T>(dx),
          maybe_mut<T>(dweight), maybe_mut<T>(dbias), relu, maybe<T>(bias),
          pool ? pool->argmax.data<int64_t>() : nullptr, pool ? pool->height : 0, pool ? pool->width : 0);
    };
    if (dx_write == GradWrite::add)
      run(std::true_type{});
    else
      run(std::false_type{});
  });
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

}  // namespace nl::cpu
