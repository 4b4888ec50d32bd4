// The fused SGD update (core/kernels_optim.h): reads w, g and the momentum buffer once and writes w and the
// buffer once, instead of the five passes of the same update written with in-place tensor ops.
#include "core/cpu/cpu_kernels.h"
#include "core/cpu/cpu_optim.h"

namespace nl::cpu {

void sgd_update(const kernels::SgdStep& s, Tensor& w, const Tensor& g, Tensor& buf) {
  visit_floating(w.dtype(), "sgd_update", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* pw = w.data<T>();
    const T* pg = g.data<T>();
    T* pb = s.momentum != 0 ? buf.data<T>() : nullptr;
    const T lr = static_cast<T>(s.lr), wd = static_cast<T>(s.weight_decay);
    const T mom = static_cast<T>(s.momentum), keep = static_cast<T>(1 - s.dampening);
    const T shrink = static_cast<T>(1 - s.lr * s.decoupled_decay);
    const bool nesterov = s.nesterov, first = s.first_step;
    const int64_t n = w.numel();
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) {
      T d = pg[i] + wd * pw[i];
      if (pb) {
        const T b = first ? d : mom * pb[i] + keep * d;
        pb[i] = b;
        d = nesterov ? d + mom * b : b;
      }
      pw[i] = pw[i] * shrink - lr * d;
    }
  });
}

}  // namespace nl::cpu
