// Max, average and adaptive average pooling on the CPU (see core/kernels_conv.h for the definitions).
//
// Every (n, c) plane is independent, forward and backward, so each loop runs in parallel over planes and
// each plane is walked by one thread: backward sums into overlapping windows stay race-free.
//
// Max pooling has a readable reference (the generic window loop, max_pool2d_reference) and a fast path for
// the 2×2 stride-2 unpadded window of most CNNs: the four cells are compared in window order with the same
// rule (a later cell wins only if strictly greater, or if it is NaN and the best so far is not), so the
// values and the argmax equal the reference's exactly.
#include <algorithm>
#include <limits>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "core/cpu/cpu_conv.h"
#include "core/cpu/cpu_kernels.h"

namespace nl::cpu {
namespace {

// Number of input cells the average divides by for the window starting at (h0, w0) (before clipping).
int64_t avg_divisor(const Pool2dGeometry& g, int64_t h0, int64_t w0, bool count_include_pad) {
  if (count_include_pad) {
    // The window clipped to the padded input, as PyTorch (it can be smaller than kh·kw only at a ragged end).
    const int64_t h1 = std::min(h0 + g.kernel_h, g.height + g.pad_h),
                  w1 = std::min(w0 + g.kernel_w, g.width + g.pad_w);
    return (h1 - h0) * (w1 - w0);
  }
  const int64_t h1 = std::min(h0 + g.kernel_h, g.height), w1 = std::min(w0 + g.kernel_w, g.width);
  return (h1 - std::max<int64_t>(h0, 0)) * (w1 - std::max<int64_t>(w0, 0));
}

// Adaptive windows: [⌊o·in/out⌋, ⌈(o+1)·in/out⌉).
int64_t adaptive_start(int64_t o, int64_t in, int64_t out) { return (o * in) / out; }
int64_t adaptive_end(int64_t o, int64_t in, int64_t out) { return ((o + 1) * in + out - 1) / out; }

template <class T>
void max_pool_reference_typed(const T* x, const Pool2dGeometry& g, T* y, int64_t* arg) {
  const int64_t planes = g.batch * g.channels, in_plane = g.height * g.width, out_plane = g.out_h * g.out_w;
#pragma omp parallel for schedule(static) if (planes * in_plane > kParallelGrain)
  for (int64_t p = 0; p < planes; ++p) {
    const T* src = x + p * in_plane;
    for (int64_t oh = 0; oh < g.out_h; ++oh)
      for (int64_t ow = 0; ow < g.out_w; ++ow) {
        const int64_t h0 = oh * g.stride_h - g.pad_h, w0 = ow * g.stride_w - g.pad_w;
        T best = -std::numeric_limits<T>::infinity();
        int64_t best_at = -1;
        for (int64_t ih = std::max<int64_t>(h0, 0); ih < std::min(h0 + g.kernel_h, g.height); ++ih)
          for (int64_t iw = std::max<int64_t>(w0, 0); iw < std::min(w0 + g.kernel_w, g.width); ++iw) {
            const T v = src[ih * g.width + iw];
            // A NaN wins and stays (it propagates, as in PyTorch).
            if (best_at < 0 || v > best || (v != v && best == best)) best = v, best_at = ih * g.width + iw;
          }
        y[p * out_plane + oh * g.out_w + ow] = best;
        arg[p * out_plane + oh * g.out_w + ow] = best_at;
      }
  }
}

bool is_2x2_stride_2(const Pool2dGeometry& g) {
  return g.kernel_h == 2 && g.kernel_w == 2 && g.stride_h == 2 && g.stride_w == 2 && g.pad_h == 0 &&
         g.pad_w == 0;
}

// Cell v at flat index at replaces the best so far when larger, or when it is a NaN and the best is not.
template <class T>
inline void take_if_better(T v, int64_t at, T& best, int64_t& best_at) {
  if (v > best || (v != v && best == best)) best = v, best_at = at;
}

// The fast path's form of take_if_better, with selects instead of jumps: which of a window's cells wins is
// data-dependent, so branches would be mispredicted. For a non-NaN best, "v > best or v is NaN" is
// "not (v <= best)"; a NaN best is never replaced.
template <class T>
inline bool better(T v, T best) {
  return (best == best) & !(v <= best);
}

// One output row of 2×2 windows: the tournament top pair, bottom pair, then top against bottom with the top
// winning ties, which picks the same cell as scanning a, b, c, d in order with take_if_better.
//   r0, r1: the window's two input rows; at0: flat index of r0[0] within its plane.
template <class T>
void max_pool_2x2_row(const T* r0, const T* r1, int64_t n, int64_t W, int64_t at0, T* y, int64_t* arg) {
  for (int64_t j = 0; j < n; ++j) {
    const T a = r0[2 * j], b = r0[2 * j + 1], c = r1[2 * j], d = r1[2 * j + 1];
    const bool top_right = better(b, a), bottom_right = better(d, c);
    const T top = top_right ? b : a, bottom = bottom_right ? d : c;
    const bool low = better(bottom, top);
    y[j] = low ? bottom : top;
    arg[j] = at0 + 2 * j + (low ? W + bottom_right : top_right);
  }
}

#if defined(__AVX512F__)
// GCC 12 warns about its own masked-load intrinsics (a false -Wmaybe-uninitialized inside avx512fintrin.h).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// The same row, 16 windows per step with AVX-512 (GCC 12 does not vectorize the loop above: the NaN-aware
// compares keep it scalar). better(v, best) is "best is ordered and not (v <= best)": _CMP_ORD_Q and
// _CMP_NLE_UQ. The generic loop (max_pool2d_reference) is what the tests compare this against.
template <>
void max_pool_2x2_row<float>(const float* r0, const float* r1, int64_t n, int64_t W, int64_t at0, float* y,
                             int64_t* arg) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __m512i lane = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  auto better_mask = [](__m512 v, __m512 best) {
    return _mm512_cmp_ps_mask(best, best, _CMP_ORD_Q) & _mm512_cmp_ps_mask(v, best, _CMP_NLE_UQ);
  };
  // 16 windows per step; the last (or only) step of a row is masked, since rows are often short (14 here).
  for (int64_t j = 0; j < n; j += 16) {
    const int64_t m = std::min<int64_t>(16, n - j);
    const __mmask16 out_mask = static_cast<__mmask16>((1u << m) - 1);
    const __mmask16 lo_mask = static_cast<__mmask16>(m >= 8 ? 0xFFFFu : (1u << (2 * m)) - 1);
    const __mmask16 hi_mask = static_cast<__mmask16>(m > 8 ? (1u << (2 * m - 16)) - 1 : 0u);
    const __m512 t_lo = _mm512_maskz_loadu_ps(lo_mask, r0 + 2 * j),
                 t_hi = _mm512_maskz_loadu_ps(hi_mask, r0 + 2 * j + 16);
    const __m512 b_lo = _mm512_maskz_loadu_ps(lo_mask, r1 + 2 * j),
                 b_hi = _mm512_maskz_loadu_ps(hi_mask, r1 + 2 * j + 16);
    const __m512 a = _mm512_permutex2var_ps(t_lo, even, t_hi), b = _mm512_permutex2var_ps(t_lo, odd, t_hi);
    const __m512 c = _mm512_permutex2var_ps(b_lo, even, b_hi), d = _mm512_permutex2var_ps(b_lo, odd, b_hi);
    const __mmask16 top_right = better_mask(b, a), bottom_right = better_mask(d, c);
    const __m512 top = _mm512_mask_blend_ps(top_right, a, b),
                 bottom = _mm512_mask_blend_ps(bottom_right, c, d);
    const __mmask16 low = better_mask(bottom, top);
    _mm512_mask_storeu_ps(y + j, out_mask, _mm512_mask_blend_ps(low, top, bottom));
    // Offset of the winner within its window: top_right → 1, low → W (+1 if bottom_right).
    const __m512i one = _mm512_set1_epi32(1), w = _mm512_set1_epi32(static_cast<int>(W));
    __m512i k = _mm512_maskz_mov_epi32(top_right, one);
    k = _mm512_mask_mov_epi32(k, low, _mm512_mask_add_epi32(w, bottom_right, w, one));
    const __m512i within = _mm512_add_epi32(lane, k);  // 2·(window − j) + offset: small
    const __m512i base = _mm512_set1_epi64(at0 + 2 * j);
    _mm512_mask_storeu_epi64(arg + j, static_cast<__mmask8>(out_mask & 0xFF),
                             _mm512_add_epi64(base, _mm512_cvtepi32_epi64(_mm512_castsi512_si256(within))));
    _mm512_mask_storeu_epi64(
        arg + j + 8, static_cast<__mmask8>(out_mask >> 8),
        _mm512_add_epi64(base, _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(within, 1))));
  }
}
#pragma GCC diagnostic pop
#endif

template <class T>
void max_pool_2x2_typed(const T* x, const Pool2dGeometry& g, T* y, int64_t* arg) {
  const int64_t planes = g.batch * g.channels, W = g.width, in_plane = g.height * W,
                out_plane = g.out_h * g.out_w;
#pragma omp parallel for schedule(static) if (planes * in_plane > kParallelGrain)
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t oh = 0; oh < g.out_h; ++oh) {
      const int64_t at0 = 2 * oh * W;
      max_pool_2x2_row(x + p * in_plane + at0, x + p * in_plane + at0 + W, g.out_w, W, at0,
                       y + p * out_plane + oh * g.out_w, arg + p * out_plane + oh * g.out_w);
    }
}

template <class T>
void max_pool_backward_typed(const T* gy, const int64_t* arg, const Pool2dGeometry& g, T* dx) {
  const int64_t planes = g.batch * g.channels, in_plane = g.height * g.width, out_plane = g.out_h * g.out_w;
#pragma omp parallel for schedule(static) if (planes * out_plane > kParallelGrain)
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t o = 0; o < out_plane; ++o) {
      const int64_t at = arg[p * out_plane + o];
      if (at >= 0) dx[p * in_plane + at] += gy[p * out_plane + o];
    }
}

// One output row of the 2×2 stride-2 backward in assign mode: writes the window's two input rows r0, r1 (2n
// cells each): the gradient v[j] at the window's argmax a[j], 0 in its other three cells. at0 is the flat
// index of r0[0] in its plane. Windows do not overlap, so every cell is written exactly once.
template <class T>
void max_pool_2x2_backward_row(const T* v, const int64_t* a, int64_t n, int64_t W, int64_t at0, T* r0,
                               T* r1) {
  // k = position of the maximum relative to the window's top-left cell: 0, 1 (top row), W, W + 1.
  for (int64_t j = 0; j < n; ++j) {
    const int64_t k = a[j] - at0 - 2 * j;
    r0[2 * j] = k == 0 ? v[j] : T(0);
    r0[2 * j + 1] = k == 1 ? v[j] : T(0);
    r1[2 * j] = k == W ? v[j] : T(0);
    r1[2 * j + 1] = k == W + 1 ? v[j] : T(0);
  }
}

#if defined(__AVX512F__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12, inside its own masked-load intrinsics
// The same row, 16 windows per step (rows here are 7 to 14 windows long, too short for the compiler's
// vectorized loop to pay off): the four cell masks select the gradient, and two interleaving permutes lay
// the even and odd cells of each input row out in order.
template <>
void max_pool_2x2_backward_row<float>(const float* v, const int64_t* a, int64_t n, int64_t W, int64_t at0,
                                      float* r0, float* r1) {
  const __m512i interleave_lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i interleave_hi =
      _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const __m512i lane2 = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
  const __m512i w = _mm512_set1_epi32(static_cast<int>(W)), w1 = _mm512_set1_epi32(static_cast<int>(W + 1));
  for (int64_t j = 0; j < n; j += 16) {
    const int64_t m = std::min<int64_t>(16, n - j);
    const __mmask16 in_mask = static_cast<__mmask16>((1u << m) - 1);
    const __mmask16 lo_mask = static_cast<__mmask16>(m >= 8 ? 0xFFFFu : (1u << (2 * m)) - 1);
    const __mmask16 hi_mask = static_cast<__mmask16>(m > 8 ? (1u << (2 * m - 16)) - 1 : 0u);
    const __m512 g = _mm512_maskz_loadu_ps(in_mask, v + j);
    const __m512i base = _mm512_set1_epi64(at0 + 2 * j);
    const __m512i a_lo = _mm512_maskz_loadu_epi64(static_cast<__mmask8>(in_mask & 0xFF), a + j);
    const __m512i a_hi = _mm512_maskz_loadu_epi64(static_cast<__mmask8>(in_mask >> 8), a + j + 8);
    const __m512i k_lo = _mm512_sub_epi64(_mm512_sub_epi64(a_lo, base), lane2);
    const __m512i k_hi =
        _mm512_sub_epi64(_mm512_sub_epi64(a_hi, base), _mm512_add_epi64(lane2, _mm512_set1_epi64(16)));
    const __m512i k = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(k_lo)),
                                         _mm512_cvtepi64_epi32(k_hi), 1);
    const __m512 top_even = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(k, _mm512_setzero_si512()), g);
    const __m512 top_odd = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(k, _mm512_set1_epi32(1)), g);
    const __m512 bottom_even = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(k, w), g);
    const __m512 bottom_odd = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(k, w1), g);
    _mm512_mask_storeu_ps(r0 + 2 * j, lo_mask, _mm512_permutex2var_ps(top_even, interleave_lo, top_odd));
    _mm512_mask_storeu_ps(r0 + 2 * j + 16, hi_mask, _mm512_permutex2var_ps(top_even, interleave_hi, top_odd));
    _mm512_mask_storeu_ps(r1 + 2 * j, lo_mask,
                          _mm512_permutex2var_ps(bottom_even, interleave_lo, bottom_odd));
    _mm512_mask_storeu_ps(r1 + 2 * j + 16, hi_mask,
                          _mm512_permutex2var_ps(bottom_even, interleave_hi, bottom_odd));
  }
}
#pragma GCC diagnostic pop
#endif

// The 2×2 stride-2 backward in assign mode: one streaming pass over dx instead of a zero-fill followed by a
// scatter; a ragged last row or column that no window covers gets 0.
template <class T>
void max_pool_2x2_backward_assign(const T* gy, const int64_t* arg, const Pool2dGeometry& g, T* dx) {
  const int64_t planes = g.batch * g.channels, H = g.height, W = g.width, in_plane = H * W;
  const int64_t out_plane = g.out_h * g.out_w;
#pragma omp parallel for schedule(static) if (planes * in_plane > kParallelGrain)
  for (int64_t p = 0; p < planes; ++p) {
    T* d = dx + p * in_plane;
    for (int64_t oh = 0; oh < g.out_h; ++oh) {
      T* r0 = d + 2 * oh * W;
      T* r1 = r0 + W;
      max_pool_2x2_backward_row(gy + p * out_plane + oh * g.out_w, arg + p * out_plane + oh * g.out_w,
                                g.out_w, W, 2 * oh * W, r0, r1);
      for (int64_t w = 2 * g.out_w; w < W; ++w) r0[w] = r1[w] = T(0);
    }
    for (int64_t h = 2 * g.out_h; h < H; ++h)
      for (int64_t w = 0; w < W; ++w) d[h * W + w] = T(0);
  }
}

template <class T>
void avg_pool_typed(const T* x, const Pool2dGeometry& g, bool include_pad, T* y) {
  const int64_t planes = g.batch * g.channels, in_plane = g.height * g.width, out_plane = g.out_h * g.out_w;
#pragma omp parallel for schedule(static) if (planes * in_plane > kParallelGrain)
  for (int64_t p = 0; p < planes; ++p) {
    const T* src = x + p * in_plane;
    for (int64_t oh = 0; oh < g.out_h; ++oh)
      for (int64_t ow = 0; ow < g.out_w; ++ow) {
        const int64_t h0 = oh * g.stride_h - g.pad_h, w0 = ow * g.stride_w - g.pad_w;
        double s = 0;
        for (int64_t ih = std::max<int64_t>(h0, 0); ih < std::min(h0 + g.kernel_h, g.height); ++ih)
          for (int64_t iw = std::max<int64_t>(w0, 0); iw < std::min(w0 + g.kernel_w, g.width); ++iw)
            s += src[ih * g.width + iw];
        y[p * out_plane + oh * g.out_w + ow] = static_cast<T>(s / avg_divisor(g, h0, w0, include_pad));
      }
  }
}

template <class T>
void avg_pool_backward_typed(const T* gy, const Pool2dGeometry& g, bool include_pad, T* dx) {
  const int64_t planes = g.batch * g.channels, in_plane = g.height * g.width, out_plane = g.out_h * g.out_w;
#pragma omp parallel for schedule(static) if (planes * in_plane > kParallelGrain)
  for (int64_t p = 0; p < planes; ++p) {
    T* dst = dx + p * in_plane;
    for (int64_t oh = 0; oh < g.out_h; ++oh)
      for (int64_t ow = 0; ow < g.out_w; ++ow) {
        const int64_t h0 = oh * g.stride_h - g.pad_h, w0 = ow * g.stride_w - g.pad_w;
        const T share =
            gy[p * out_plane + oh * g.out_w + ow] / static_cast<T>(avg_divisor(g, h0, w0, include_pad));
        for (int64_t ih = std::max<int64_t>(h0, 0); ih < std::min(h0 + g.kernel_h, g.height); ++ih)
          for (int64_t iw = std::max<int64_t>(w0, 0); iw < std::min(w0 + g.kernel_w, g.width); ++iw)
            dst[ih * g.width + iw] += share;
      }
  }
}

template <class T>
void adaptive_avg_typed(const T* x, int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW, T* y) {
#pragma omp parallel for schedule(static) if (planes * H * W > kParallelGrain)
  for (int64_t p = 0; p < planes; ++p) {
    const T* src = x + p * H * W;
    for (int64_t oh = 0; oh < OH; ++oh) {
      const int64_t h0 = adaptive_start(oh, H, OH), h1 = adaptive_end(oh, H, OH);
      for (int64_t ow = 0; ow < OW; ++ow) {
        const int64_t w0 = adaptive_start(ow, W, OW), w1 = adaptive_end(ow, W, OW);
        double s = 0;
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) s += src[ih * W + iw];
        y[(p * OH + oh) * OW + ow] = static_cast<T>(s / static_cast<double>((h1 - h0) * (w1 - w0)));
      }
    }
  }
}

template <class T>
void adaptive_avg_backward_typed(const T* gy, int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW,
                                 T* dx) {
#pragma omp parallel for schedule(static) if (planes * H * W > kParallelGrain)
  for (int64_t p = 0; p < planes; ++p) {
    T* dst = dx + p * H * W;
    for (int64_t oh = 0; oh < OH; ++oh) {
      const int64_t h0 = adaptive_start(oh, H, OH), h1 = adaptive_end(oh, H, OH);
      for (int64_t ow = 0; ow < OW; ++ow) {
        const int64_t w0 = adaptive_start(ow, W, OW), w1 = adaptive_end(ow, W, OW);
        const T share = gy[(p * OH + oh) * OW + ow] / static_cast<T>((h1 - h0) * (w1 - w0));
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) dst[ih * W + iw] += share;
      }
    }
  }
}

}  // namespace

void max_pool_2x2_window_row(const float* r0, const float* r1, int64_t n, int64_t W, int64_t at0, float* y,
                             int64_t* arg) {
  max_pool_2x2_row<float>(r0, r1, n, W, at0, y, arg);
}
void max_pool_2x2_window_row(const double* r0, const double* r1, int64_t n, int64_t W, int64_t at0, double* y,
                             int64_t* arg) {
  max_pool_2x2_row<double>(r0, r1, n, W, at0, y, arg);
}

void max_pool2d_reference(const Tensor& x, const Pool2dGeometry& geo, Tensor& out, Tensor& argmax) {
  visit_floating(x.dtype(), "max_pool2d_reference", [&](auto tag) {
    using T = typename decltype(tag)::type;
    max_pool_reference_typed<T>(x.data<T>(), geo, out.data<T>(), argmax.data<int64_t>());
  });
}

void max_pool2d(const Tensor& x, const Pool2dGeometry& geo, Tensor& out, Tensor& argmax) {
  visit_floating(x.dtype(), "max_pool2d", [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (is_2x2_stride_2(geo))
      max_pool_2x2_typed<T>(x.data<T>(), geo, out.data<T>(), argmax.data<int64_t>());
    else
      max_pool_reference_typed<T>(x.data<T>(), geo, out.data<T>(), argmax.data<int64_t>());
  });
}

void max_pool2d_backward(const Tensor& g, const Tensor& argmax, const Pool2dGeometry& geo, Tensor& dx,
                         GradWrite dx_write) {
  visit_floating(g.dtype(), "max_pool2d_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (dx_write == GradWrite::assign && is_2x2_stride_2(geo)) {
      max_pool_2x2_backward_assign<T>(g.data<T>(), argmax.data<int64_t>(), geo, dx.data<T>());
      return;
    }
    if (dx_write == GradWrite::assign) fill(dx, 0.0);
    max_pool_backward_typed<T>(g.data<T>(), argmax.data<int64_t>(), geo, dx.data<T>());
  });
}

void avg_pool2d(const Tensor& x, const Pool2dGeometry& geo, bool count_include_pad, Tensor& out) {
  visit_floating(x.dtype(), "avg_pool2d", [&](auto tag) {
    using T = typename decltype(tag)::type;
    avg_pool_typed<T>(x.data<T>(), geo, count_include_pad, out.data<T>());
  });
}

void avg_pool2d_backward(const Tensor& g, const Pool2dGeometry& geo, bool count_include_pad, Tensor& dx) {
  visit_floating(g.dtype(), "avg_pool2d_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    avg_pool_backward_typed<T>(g.data<T>(), geo, count_include_pad, dx.data<T>());
  });
}

void adaptive_avg_pool2d(const Tensor& x, Tensor& out) {
  visit_floating(x.dtype(), "adaptive_avg_pool2d", [&](auto tag) {
    using T = typename decltype(tag)::type;
    adaptive_avg_typed<T>(x.data<T>(), x.size(0) * x.size(1), x.size(2), x.size(3), out.size(2), out.size(3),
                          out.data<T>());
  });
}

void adaptive_avg_pool2d_backward(const Tensor& g, Tensor& dx) {
  visit_floating(g.dtype(), "adaptive_avg_pool2d_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    adaptive_avg_backward_typed<T>(g.data<T>(), dx.size(0) * dx.size(1), dx.size(2), dx.size(3), g.size(2),
                                   g.size(3), dx.data<T>());
  });
}

}  // namespace nl::cpu
