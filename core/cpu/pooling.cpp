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

#include "core/cpu/cpu_conv.h"
#include "core/cpu/cpu_kernels.h"

namespace nl::cpu {
namespace {

// Number of input cells the average divides by for the window starting at (h0, w0) (before clipping).
int64_t avg_divisor(const Pool2dGeometry& g, int64_t h0, int64_t w0, bool count_include_pad) {
  if (count_include_pad) {
    // The window clipped to the padded input, as PyTorch (it can be smaller than kh·kw only at a ragged end).
    const int64_t h1 = std::min(h0 + g.kernel_h, g.height + g.pad_h), w1 = std::min(w0 + g.kernel_w, g.width + g.pad_w);
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
  return g.kernel_h == 2 && g.kernel_w == 2 && g.stride_h == 2 && g.stride_w == 2 && g.pad_h == 0 && g.pad_w == 0;
}

// Cell v at flat index at replaces the best so far when larger, or when it is a NaN and the best is not.
template <class T>
inline void take_if_better(T v, int64_t at, T& best, int64_t& best_at) {
  if (v > best || (v != v && best == best)) best = v, best_at = at;
}

template <class T>
void max_pool_2x2_typed(const T* x, const Pool2dGeometry& g, T* y, int64_t* arg) {
  const int64_t planes = g.batch * g.channels, W = g.width, in_plane = g.height * W, out_plane = g.out_h * g.out_w;
#pragma omp parallel for schedule(static) if (planes * in_plane > kParallelGrain)
  for (int64_t p = 0; p < planes; ++p) {
    const T* src = x + p * in_plane;
    T* y_p = y + p * out_plane;
    int64_t* arg_p = arg + p * out_plane;
    for (int64_t oh = 0; oh < g.out_h; ++oh)
      for (int64_t ow = 0; ow < g.out_w; ++ow) {
        const int64_t at = 2 * oh * W + 2 * ow;  // the window's top-left cell
        T best = src[at];
        int64_t best_at = at;
        take_if_better(src[at + 1], at + 1, best, best_at);
        take_if_better(src[at + W], at + W, best, best_at);
        take_if_better(src[at + W + 1], at + W + 1, best, best_at);
        y_p[oh * g.out_w + ow] = best;
        arg_p[oh * g.out_w + ow] = best_at;
      }
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
        const T share = gy[p * out_plane + oh * g.out_w + ow] / static_cast<T>(avg_divisor(g, h0, w0, include_pad));
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

void max_pool2d_reference(const Tensor& x, const Pool2dGeometry& geo, Tensor& out, Tensor& argmax) {
  visit_floating(x.dtype(), "max_pool2d_reference", [&](auto tag) {
    using T = typename decltype(tag)::type;
    max_pool_reference_typed<T>(x.data<T>(), geo, out.data<T>(), argmax.data<int64_t>());
  });
}

void max_pool2d(const Tensor& x, const Pool2dGeometry& geo, Tensor& out, Tensor& argmax) {
  visit_floating(x.dtype(), "max_pool2d", [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (is_2x2_stride_2(geo)) max_pool_2x2_typed<T>(x.data<T>(), geo, out.data<T>(), argmax.data<int64_t>());
    else max_pool_reference_typed<T>(x.data<T>(), geo, out.data<T>(), argmax.data<int64_t>());
  });
}

void max_pool2d_backward(const Tensor& g, const Tensor& argmax, const Pool2dGeometry& geo, Tensor& dx) {
  visit_floating(g.dtype(), "max_pool2d_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
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
