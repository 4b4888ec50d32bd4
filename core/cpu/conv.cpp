// im2col and col2im on the CPU (see core/kernels_conv.h for the layout).
//
// One col row is one (c, i, j): input channel c seen through kernel tap (i, j). Each row is written by one
// thread, so im2col parallelizes over rows. col2im adds many col entries into the same x cell, but only
// rows of the same channel c touch channel c of x: it parallelizes over channels, and each thread walks its
// channel's kh·kw rows in order, so the sums are race-free and their order does not depend on the thread
// count.
#include "core/cpu/cpu_conv.h"
#include "core/cpu/cpu_kernels.h"

namespace nl::cpu {
namespace {

template <class T>
void im2col_typed(const T* x, const Conv2dGeometry& g, int64_t n0, int64_t count, T* col) {
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
void col2im_typed(const T* col, const Conv2dGeometry& g, int64_t n0, int64_t count, T* dx) {
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

}  // namespace

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

}  // namespace nl::cpu
