// Copies, fills, axpy and gather/scatter along one dimension.
#include <cstring>

#include "core/cpu/cpu_kernels.h"
#include "core/cpu/strided.h"

namespace nl::cpu {

void copy(const Tensor& src, Tensor& dst) {
  const int64_t n = src.numel();
  if (n == 0) return;
  visit_dtype(src.dtype(), [&](auto src_tag) {
    using S = typename decltype(src_tag)::type;
    visit_dtype(dst.dtype(), [&](auto dst_tag) {
      using D = typename decltype(dst_tag)::type;
      D* out = base_ptr<D>(dst);
      const S* in = base_ptr<S>(src);
      if (src.is_contiguous() && dst.is_contiguous()) {
        if constexpr (std::is_same_v<S, D>) {
          std::memcpy(out, in, static_cast<size_t>(n) * sizeof(D));
        } else {
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
          for (int64_t i = 0; i < n; ++i) out[i] = static_cast<D>(in[i]);
        }
        return;
      }
      // General case: walk rows of the last dimension in both views.
      Shape shape = src.shape(), s_str = src.strides(), d_str = dst.strides();
      if (shape.empty()) shape = {1}, s_str = {1}, d_str = {1};
      const int64_t inner = shape.back(), rows = n / inner, s_step = s_str.back(), d_step = d_str.back();
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
      for (int64_t r = 0; r < rows; ++r) {
        const S* row = in + row_offset(r, shape, s_str);
        D* o = out + row_offset(r, shape, d_str);
        for (int64_t j = 0; j < inner; ++j) o[j * d_step] = static_cast<D>(row[j * s_step]);
      }
    });
  });
}

void fill(Tensor& dst, double value) {
  visit_dtype(dst.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = dst.data<T>();
    const T v = static_cast<T>(value);
    const int64_t n = dst.numel();
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) p[i] = v;
  });
}

void axpy(double alpha, const Tensor& src, Tensor& dst) {
  visit_dtype(dst.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* s = src.data<T>();
    T* d = dst.data<T>();
    const T a = static_cast<T>(alpha);
    const int64_t n = dst.numel();
    if (alpha == 1.0) {
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
      for (int64_t i = 0; i < n; ++i) d[i] += s[i];
    } else {
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
      for (int64_t i = 0; i < n; ++i) d[i] += a * s[i];
    }
  });
}

void index_select(const Tensor& x, int64_t outer, int64_t size, int64_t inner, const Tensor& index,
                  Tensor& out) {
  const int64_t* idx = index.data<int64_t>();
  const int64_t count = index.numel();
  visit_dtype(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();
    T* po = out.data<T>();
#pragma omp parallel for schedule(static) if (outer * count * inner > kParallelGrain)
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < count; ++i)
        std::memcpy(po + (o * count + i) * inner, px + (o * size + idx[i]) * inner, sizeof(T) * inner);
  });
}

void index_add(const Tensor& g, int64_t outer, int64_t size, int64_t inner, const Tensor& index, Tensor& dx) {
  const int64_t* idx = index.data<int64_t>();
  const int64_t count = index.numel();
  visit_dtype(g.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pg = g.data<T>();
    T* pd = dx.data<T>();
    // Parallel over `outer` only: the same index may repeat, so rows of one outer slice are summed in order.
#pragma omp parallel for schedule(static) if (outer * count * inner > kParallelGrain)
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < count; ++i) {
        const T* src = pg + (o * count + i) * inner;
        T* dst = pd + (o * size + idx[i]) * inner;
        for (int64_t j = 0; j < inner; ++j) dst[j] += src[j];
      }
  });
}

}  // namespace nl::cpu
