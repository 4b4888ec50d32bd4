// im2col, col2im and the per-sample GEMM convolution on the CPU (see core/kernels_conv.h for the layout).
//
// Reference versions first: one col row is one (c, i, j), input channel c seen through kernel tap (i, j), and
// im2col_reference fills it cell by cell straight from the definition. col2im_reference adds many col
// entries into the same x cell, but only rows of channel c touch channel c of x: it parallelizes over
// channels, and each thread walks its channel's kh·kw rows in order, so the sums are race-free and their
// order does not depend on the thread count.
//
// The fast versions compute the same thing one output row at a time. For tap (i, j) and output row oh the
// input row is ih = oh·s_h − p_h + i·d_h (all zeros when outside x), and output column ow reads
// iw = ow·s_w − p_w + j·d_w: that is inside x exactly for ow in [ow_begin, ow_end), computed once per tap,
// so the inner loop has no bounds test, and for stride 1 it is a plain shifted copy (memcpy) of an input row.
// The same run bounds make col2im a shifted row addition.
//
// conv2d_forward / conv2d_backward split the batch over threads, one sample at a time: a thread unrolls its
// sample into its own col buffer (C·kh·kw × L, small enough to stay in L2) and multiplies it at once, with
// a single-threaded OpenBLAS GEMM (OpenBLAS runs on one thread when called inside an OpenMP region),
// straight into the sample's (OC, L) block of the (N, OC, OH, OW) output, which is already GEMM layout:
//   forward:   y_n   = W · col_n (+ b)                     per group: W_g (OC/g × K/g) · col_n,g (K/g × L)
//   backward:  dW_tᵀ += col_n · dY_nᵀ (thread t's own dW, transposed; the partial sums are added in thread
//   order)
//              db_t += Σ_l dY_n[:, l]  (the same, while dY_n is in cache for the GEMMs)
//              dcol  = Wᵀ · dY_n,  dx_n += col2im(dcol)
#include <omp.h>

#include <algorithm>
#include <cstring>

#include "core/cpu/cpu_conv.h"
#include "core/cpu/cpu_kernels.h"

namespace nl::cpu {
namespace {

// ---- reference: plain loops over every col cell --------------------------------------------------------

template <class T>
void im2col_reference_typed(const T* x, const Conv2dGeometry& g, int64_t n0, int64_t count, T* col) {
  const int64_t taps = g.kernel_h * g.kernel_w, rows = g.channels * taps;
  const int64_t L = g.out_h * g.out_w, cols = count * L, plane = g.height * g.width;
#pragma omp parallel for schedule(static) if (rows * cols > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t c = r / taps, i = (r % taps) / g.kernel_w, j = r % g.kernel_w;
    T* out = col + r * cols;
    for (int64_t b = 0; b < count; ++b) {
      const T* src = x + ((n0 + b) * g.channels + c) * plane;
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        const int64_t ih = oh * g.stride_h - g.pad_h + i * g.dilation_h;
        T* dst = out + b * L + oh * g.out_w;
        if (ih < 0 || ih >= g.height) {
          for (int64_t ow = 0; ow < g.out_w; ++ow) dst[ow] = T(0);
          continue;
        }
        for (int64_t ow = 0; ow < g.out_w; ++ow) {
          const int64_t iw = ow * g.stride_w - g.pad_w + j * g.dilation_w;
          dst[ow] = (iw >= 0 && iw < g.width) ? src[ih * g.width + iw] : T(0);
        }
      }
    }
  }
}

template <class T>
void col2im_reference_typed(const T* col, const Conv2dGeometry& g, int64_t n0, int64_t count, T* dx) {
  const int64_t taps = g.kernel_h * g.kernel_w;
  const int64_t L = g.out_h * g.out_w, cols = count * L, plane = g.height * g.width;
#pragma omp parallel for schedule(static) if (g.channels * taps * cols > kParallelGrain)
  for (int64_t c = 0; c < g.channels; ++c) {
    for (int64_t t = 0; t < taps; ++t) {
      const int64_t i = t / g.kernel_w, j = t % g.kernel_w;
      const T* in = col + (c * taps + t) * cols;
      for (int64_t b = 0; b < count; ++b) {
        T* dst = dx + ((n0 + b) * g.channels + c) * plane;
        for (int64_t oh = 0; oh < g.out_h; ++oh) {
          const int64_t ih = oh * g.stride_h - g.pad_h + i * g.dilation_h;
          if (ih < 0 || ih >= g.height) continue;
          const T* src = in + b * L + oh * g.out_w;
          for (int64_t ow = 0; ow < g.out_w; ++ow) {
            const int64_t iw = ow * g.stride_w - g.pad_w + j * g.dilation_w;
            if (iw >= 0 && iw < g.width) dst[ih * g.width + iw] += src[ow];
          }
        }
      }
    }
  }
}

// ---- fast: whole runs of an output row per tap ----------------------------------------------------------

// The output columns [begin, end) whose input column iw = ow·stride + offset lies in [0, width).
struct ColumnRun {
  int64_t begin, end, offset;
};

ColumnRun column_run(const Conv2dGeometry& g, int64_t j) {
  const int64_t s = g.stride_w, offset = j * g.dilation_w - g.pad_w;
  // Smallest ow with ow·s + offset >= 0, and smallest with ow·s + offset >= width.
  const int64_t begin = offset >= 0 ? 0 : (-offset + s - 1) / s;
  const int64_t end = g.width - offset <= 0 ? 0 : (g.width - offset + s - 1) / s;
  const int64_t b = std::min(begin, g.out_w);
  return {b, std::clamp<int64_t>(end, b, g.out_w), offset};
}

// Row (c, i, j) of one sample's columns: dst[oh·OW + ow] = x_c[ih, iw] (0 outside), for the L = OH·OW cells.
template <class T>
void im2col_row(const T* x_c, const Conv2dGeometry& g, int64_t i, int64_t j, T* dst) {
  const ColumnRun run = column_run(g, j);
  for (int64_t oh = 0; oh < g.out_h; ++oh, dst += g.out_w) {
    const int64_t ih = oh * g.stride_h - g.pad_h + i * g.dilation_h;
    if (ih < 0 || ih >= g.height) {
      std::fill(dst, dst + g.out_w, T(0));
      continue;
    }
    const T* src = x_c + ih * g.width;  // x_c[ih, iw] = src[ow·stride + offset]
    std::fill(dst, dst + run.begin, T(0));
    if (g.stride_w == 1) {
      if (run.end > run.begin)
        std::memcpy(dst + run.begin, src + run.begin + run.offset, sizeof(T) * (run.end - run.begin));
    } else {
      for (int64_t ow = run.begin; ow < run.end; ++ow) dst[ow] = src[ow * g.stride_w + run.offset];
    }
    std::fill(dst + run.end, dst + g.out_w, T(0));
  }
}

// The adjoint of im2col_row: dx_c[ih, iw] += src[oh·OW + ow] over the cells that lie inside x.
template <class T>
void col2im_row(const T* src, const Conv2dGeometry& g, int64_t i, int64_t j, T* dx_c) {
  const ColumnRun run = column_run(g, j);
  for (int64_t oh = 0; oh < g.out_h; ++oh, src += g.out_w) {
    const int64_t ih = oh * g.stride_h - g.pad_h + i * g.dilation_h;
    if (ih < 0 || ih >= g.height) continue;
    T* dst = dx_c + ih * g.width;
    if (g.stride_w == 1) {
      for (int64_t ow = run.begin; ow < run.end; ++ow) dst[ow + run.offset] += src[ow];
    } else {
      for (int64_t ow = run.begin; ow < run.end; ++ow) dst[ow * g.stride_w + run.offset] += src[ow];
    }
  }
}

// Stride 1 with the output as wide as the input ("same" padding, the common case): the row of tap (i, j) is
// the input plane shifted by di = i·d_h − p_h rows and dj = j·d_w − p_w columns, cell k = oh·W + ow reading
// x_c[k + di·W + dj]. One long copy moves the valid rows; the |dj| columns per row that wrapped around to the
// neighbouring input row are zeroed afterwards.
bool same_width_stride_1(const Conv2dGeometry& g) {
  return g.stride_h == 1 && g.stride_w == 1 && g.out_w == g.width;
}

// The output rows [oh_begin, oh_end) whose input row oh + di lies inside x, and the wrapped columns.
struct ShiftedPlane {
  int64_t oh_begin, oh_end, shift, dj;
};

ShiftedPlane shifted_plane(const Conv2dGeometry& g, int64_t i, int64_t j) {
  const int64_t di = i * g.dilation_h - g.pad_h, dj = j * g.dilation_w - g.pad_w;
  const int64_t begin = std::clamp<int64_t>(-di, 0, g.out_h);
  return {begin, std::clamp<int64_t>(g.height - di, begin, g.out_h), di * g.width + dj, dj};
}

// Zeroes, in rows [oh_begin, oh_end) of a same-width col row, the columns whose input column is outside x.
template <class T>
void zero_wrapped_columns(T* row, const Conv2dGeometry& g, const ShiftedPlane& s) {
  const int64_t W = g.width, n = std::min(s.dj < 0 ? -s.dj : s.dj, W), first = s.dj < 0 ? 0 : W - n;
  if (n == 0) return;
  // A 3×3 kernel wraps one column per row: a single store, not a memset call for each of the rows.
  if (n == 1) {
    for (int64_t oh = s.oh_begin; oh < s.oh_end; ++oh) row[oh * W + first] = T(0);
    return;
  }
  for (int64_t oh = s.oh_begin; oh < s.oh_end; ++oh)
    std::fill(row + oh * W + first, row + oh * W + first + n, T(0));
}

template <class T>
void im2col_row_same_width(const T* x_c, const Conv2dGeometry& g, int64_t i, int64_t j, T* dst) {
  const ShiftedPlane s = shifted_plane(g, i, j);
  const int64_t W = g.width, k0 = s.oh_begin * W, k1 = s.oh_end * W;
  // Cells whose source index falls outside the plane are wrapped columns (zeroed below with the others).
  const int64_t c0 = std::clamp<int64_t>(-s.shift, k0, k1),
                c1 = std::clamp<int64_t>(g.height * W - s.shift, c0, k1);
  std::fill(dst, dst + c0, T(0));
  std::memcpy(dst + c0, x_c + c0 + s.shift, sizeof(T) * (c1 - c0));
  std::fill(dst + c1, dst + g.out_h * W, T(0));
  zero_wrapped_columns(dst, g, s);
}

// The adjoint, consuming its input: the wrapped cells of src are zeroed first, so that one long addition
// dx_c[k + shift] += src[k] over the valid rows adds exactly the cells that lie inside x.
template <class T>
void col2im_row_same_width_consuming(T* src, const Conv2dGeometry& g, int64_t i, int64_t j, T* dx_c) {
  const ShiftedPlane s = shifted_plane(g, i, j);
  const int64_t W = g.width;
  zero_wrapped_columns(src, g, s);
  const int64_t c0 = std::clamp<int64_t>(-s.shift, s.oh_begin * W, s.oh_end * W);
  const int64_t c1 = std::clamp<int64_t>(g.height * W - s.shift, c0, s.oh_end * W);
  T* dst = dx_c + s.shift;  // dst[k] is dx_c[k + shift] for k in [c0, c1), inside the plane
  for (int64_t k = c0; k < c1; ++k) dst[k] += src[k];
}

// One sample (x_n = its (C, H, W) block) into col rows of length L with leading dimension ld.
template <class T>
void im2col_sample(const T* x_n, const Conv2dGeometry& g, T* col, int64_t ld) {
  const int64_t plane = g.height * g.width;
  const bool same_width = same_width_stride_1(g);
  for (int64_t c = 0; c < g.channels; ++c)
    for (int64_t i = 0; i < g.kernel_h; ++i)
      for (int64_t j = 0; j < g.kernel_w; ++j, col += ld) {
        if (same_width)
          im2col_row_same_width(x_n + c * plane, g, i, j, col);
        else
          im2col_row(x_n + c * plane, g, i, j, col);
      }
}

// dx_n += col2im of one sample's col rows (leading dimension ld); rows of a channel are added in order.
// col is scratch: its cells that map outside x may be overwritten.
template <class T>
void col2im_sample_consuming(T* col, const Conv2dGeometry& g, int64_t ld, T* dx_n) {
  const int64_t plane = g.height * g.width;
  const bool same_width = same_width_stride_1(g);
  for (int64_t c = 0; c < g.channels; ++c)
    for (int64_t i = 0; i < g.kernel_h; ++i)
      for (int64_t j = 0; j < g.kernel_w; ++j, col += ld) {
        if (same_width)
          col2im_row_same_width_consuming(col, g, i, j, dx_n + c * plane);
        else
          col2im_row(col, g, i, j, dx_n + c * plane);
      }
}

// The chunk kernels of core/kernels_conv.h on top of the row routines: im2col in parallel over rows,
// col2im over channels (each channel's rows stay on one thread, in order).
template <class T>
void im2col_typed(const T* x, const Conv2dGeometry& g, int64_t n0, int64_t count, T* col) {
  const int64_t taps = g.kernel_h * g.kernel_w, rows = g.channels * taps;
  const int64_t L = g.out_h * g.out_w, cols = count * L, plane = g.height * g.width;
#pragma omp parallel for schedule(static) if (rows * cols > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t c = r / taps, i = (r % taps) / g.kernel_w, j = r % g.kernel_w;
    for (int64_t b = 0; b < count; ++b)
      im2col_row(x + ((n0 + b) * g.channels + c) * plane, g, i, j, col + r * cols + b * L);
  }
}

template <class T>
void col2im_typed(const T* col, const Conv2dGeometry& g, int64_t n0, int64_t count, T* dx) {
  const int64_t taps = g.kernel_h * g.kernel_w;
  const int64_t L = g.out_h * g.out_w, cols = count * L, plane = g.height * g.width;
#pragma omp parallel for schedule(static) if (g.channels * taps * cols > kParallelGrain)
  for (int64_t c = 0; c < g.channels; ++c)
    for (int64_t t = 0; t < taps; ++t)
      for (int64_t b = 0; b < count; ++b)
        col2im_row(col + (c * taps + t) * cols + b * L, g, t / g.kernel_w, t % g.kernel_w,
                   dx + ((n0 + b) * g.channels + c) * plane);
}

// ---- per-sample GEMM convolution ------------------------------------------------------------------------

int64_t thread_count(int64_t batch) {
  return std::clamp<int64_t>(omp_get_max_threads(), 1, std::max<int64_t>(batch, 1));
}

template <class T>
void conv2d_forward_typed(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dGeometry& g,
                          int64_t groups, Tensor& y) {
  const int64_t OC = w.size(0), OCg = OC / groups, L = g.out_h * g.out_w;
  const int64_t K = g.channels * g.kernel_h * g.kernel_w, Kg = K / groups;
  const int64_t threads = thread_count(g.batch);
  Tensor col = empty({threads, K, L}, x.dtype(), x.device());
  const T* px = x.data<T>();
  const T* pb = bias.defined() ? bias.data<T>() : nullptr;
  T* py = y.data<T>();
  T* pcol = col.data<T>();
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t n = 0; n < g.batch; ++n) {
    const int64_t t = omp_get_thread_num();
    im2col_sample(px + n * g.channels * g.height * g.width, g, pcol + t * K * L, L);
    // The bias enters as the GEMM's initial C (beta = 1), written while the block is hot anyway.
    T* y_n = py + n * OC * L;
    if (pb)
      for (int64_t o = 0; o < OC; ++o) std::fill(y_n + o * L, y_n + (o + 1) * L, pb[o]);
    for (int64_t gr = 0; gr < groups; ++gr)
      gemm(false, false, OCg, L, Kg, 1.0, w, gr * OCg * Kg, Kg, col, t * K * L + gr * Kg * L, L,
           pb ? 1.0 : 0.0, y, n * OC * L + gr * OCg * L, L);
  }
}

template <class T>
void conv2d_backward_typed(const Tensor& x, const Tensor& w, const Tensor& dy, const Conv2dGeometry& g,
                           int64_t groups, Tensor& dx, Tensor& dw, Tensor& db, GradWrite write) {
  const int64_t OC = w.size(0), OCg = OC / groups, L = g.out_h * g.out_w;
  const int64_t K = g.channels * g.kernel_h * g.kernel_w, Kg = K / groups,
                sample = g.channels * g.height * g.width;
  const int64_t threads = thread_count(g.batch);
  const bool want_dx = dx.defined(), want_dw = dw.defined(), want_db = db.defined();
  Tensor col = empty({threads, K, L}, x.dtype(), x.device());
  // Each thread's share of dW and db, summed into dw and db after the loop in thread order (deterministic
  // for a given thread count). The share of dW is kept transposed, per group (Kg, OCg): OpenBLAS computes
  // dW_gᵀ = col_g · dY_gᵀ (288 × 64 here) about 13% faster than dW_g = dY_g · col_gᵀ (64 × 288).
  Tensor dw_part = want_dw ? zeros({threads, groups, Kg, OCg}, x.dtype()) : Tensor();
  Tensor db_part = want_db ? zeros({threads, OC}, x.dtype()) : Tensor();
  const T* px = x.data<T>();
  const T* pdy = dy.data<T>();
  T* pcol = col.data<T>();
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t n = 0; n < g.batch; ++n) {
    const int64_t t = omp_get_thread_num(), col_at = t * K * L;
    if (want_db) {
      // db = Σ_n,l dY[n, o, l], taken here while the sample's dY is being read by the GEMMs anyway.
      T* db_t = db_part.data<T>() + t * OC;
      for (int64_t o = 0; o < OC; ++o) {
        const T* row = pdy + (n * OC + o) * L;
        // A vector reduction: the plain loop is one chain of dependent additions, 4 cycles each (0.2–0.35
        // ms of the conv benchmark's 6.5 ms forward+backward). The order is fixed, so db stays deterministic.
        T s = 0;
#pragma omp simd reduction(+ : s)
        for (int64_t l = 0; l < L; ++l) s += row[l];
        db_t[o] += s;
      }
    }
    if (want_dw) {
      im2col_sample(px + n * sample, g, pcol + col_at, L);
      for (int64_t gr = 0; gr < groups; ++gr)
        gemm(false, true, Kg, OCg, L, 1.0, col, col_at + gr * Kg * L, L, dy, n * OC * L + gr * OCg * L, L,
             1.0, dw_part, (t * groups + gr) * Kg * OCg, OCg);
    }
    if (want_dx) {
      // The col buffer is free again: it now receives dcol.
      for (int64_t gr = 0; gr < groups; ++gr)
        gemm(true, false, Kg, L, OCg, 1.0, w, gr * OCg * Kg, Kg, dy, n * OC * L + gr * OCg * L, L, 0.0, col,
             col_at + gr * Kg * L, L);
      T* dx_n = dx.data<T>() + n * sample;
      // Assign mode: the sample's block is cleared here, while it is about to be in cache anyway.
      if (write == GradWrite::assign) std::fill(dx_n, dx_n + sample, T(0));
      col2im_sample_consuming(pcol + col_at, g, L, dx_n);
    }
  }
  // The partial sums are added in thread order; assign mode starts from 0 instead of the gradient.
  // part_stride: the distance between two threads' copies of one entry.
  auto total = [&](T& dst, const T* part, int64_t part_stride) {
    T s = write == GradWrite::assign ? T(0) : dst;
    for (int64_t t = 0; t < threads; ++t) s += part[t * part_stride];
    dst = s;
  };
  if (want_dw) {
    const T* p = dw_part.data<T>();
    T* pdw = dw.data<T>();
    for (int64_t gr = 0; gr < groups; ++gr)
      for (int64_t k = 0; k < Kg; ++k)  // the partials are transposed: part[t, gr, k, o]
        for (int64_t o = 0; o < OCg; ++o)
          total(pdw[(gr * OCg + o) * Kg + k], p + (gr * Kg + k) * OCg + o, groups * Kg * OCg);
  }
  if (want_db) {
    const T* p = db_part.data<T>();
    T* pdb = db.data<T>();
    for (int64_t o = 0; o < OC; ++o) total(pdb[o], p + o, OC);
  }
}

}  // namespace

void im2col_reference(const Tensor& x, const Conv2dGeometry& geo, int64_t n0, int64_t count, Tensor& col) {
  visit_floating(x.dtype(), "im2col_reference", [&](auto tag) {
    using T = typename decltype(tag)::type;
    im2col_reference_typed<T>(x.data<T>(), geo, n0, count, col.data<T>());
  });
}

void col2im_reference(const Tensor& col, const Conv2dGeometry& geo, int64_t n0, int64_t count, Tensor& dx) {
  visit_floating(col.dtype(), "col2im_reference", [&](auto tag) {
    using T = typename decltype(tag)::type;
    col2im_reference_typed<T>(col.data<T>(), geo, n0, count, dx.data<T>());
  });
}

void im2col(const Tensor& x, const Conv2dGeometry& geo, int64_t n0, int64_t count, Tensor& col) {
  visit_floating(x.dtype(), "im2col", [&](auto tag) {
    using T = typename decltype(tag)::type;
    im2col_typed<T>(x.data<T>(), geo, n0, count, col.data<T>());
  });
}

void col2im(const Tensor& col, const Conv2dGeometry& geo, int64_t n0, int64_t count, Tensor& dx) {
  visit_floating(col.dtype(), "col2im", [&](auto tag) {
    using T = typename decltype(tag)::type;
    col2im_typed<T>(col.data<T>(), geo, n0, count, dx.data<T>());
  });
}

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dGeometry& geo,
                    int64_t groups, Tensor& y) {
  visit_floating(x.dtype(), "conv2d_forward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    conv2d_forward_typed<T>(x, w, bias, geo, groups, y);
  });
}

void conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& dy, const Conv2dGeometry& geo,
                     int64_t groups, Tensor& dx, Tensor& dw, Tensor& db, GradWrite write) {
  visit_floating(x.dtype(), "conv2d_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    conv2d_backward_typed<T>(x, w, dy, geo, groups, dx, dw, db, write);
  });
}

}  // namespace nl::cpu
