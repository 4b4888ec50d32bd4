// Fused cross-entropy on the CPU (the formulas are in core/kernels_loss.h). Rows are independent: each is
// one thread's work, and its sums accumulate in double.
#include <cmath>

#include "core/cpu/cpu_kernels.h"
#include "core/cpu/cpu_loss.h"

namespace nl::cpu {
namespace {

template <class T>
void cross_entropy_typed(const T* z, const int64_t* t, int64_t rows, int64_t C, double eps, T* p, T* loss) {
#pragma omp parallel for schedule(static) if (rows * C > kParallelGrain)
  for (int64_t i = 0; i < rows; ++i) {
    const T* zi = z + i * C;
    T* pi = p + i * C;
    T m = zi[0];
    for (int64_t j = 1; j < C; ++j) m = zi[j] > m ? zi[j] : m;
    double s = 0, z_sum = 0;
    for (int64_t j = 0; j < C; ++j) {
      const double e = std::exp(static_cast<double>(zi[j]) - m);
      pi[j] = static_cast<T>(e);
      s += e;
      z_sum += zi[j];
    }
    const double lse = m + std::log(s);
    for (int64_t j = 0; j < C; ++j) pi[j] = static_cast<T>(pi[j] / s);
    loss[i] = static_cast<T>(lse - (1.0 - eps) * zi[t[i]] - (eps / static_cast<double>(C)) * z_sum);
  }
}

template <class T>
void cross_entropy_backward_typed(const T* p, const int64_t* t, int64_t rows, int64_t C, double eps,
                                  const T* row_grad, T* dz) {
  const T off_target = static_cast<T>(eps / static_cast<double>(C));
  const T on_target = static_cast<T>(1.0 - eps + eps / static_cast<double>(C));
#pragma omp parallel for schedule(static) if (rows * C > kParallelGrain)
  for (int64_t i = 0; i < rows; ++i) {
    const T gi = row_grad[i];
    const T* pi = p + i * C;
    T* di = dz + i * C;
    for (int64_t j = 0; j < C; ++j) di[j] += (pi[j] - (j == t[i] ? on_target : off_target)) * gi;
  }
}

}  // namespace

void cross_entropy(const Tensor& logits, const Tensor& targets, double label_smoothing, Tensor& probs,
                   Tensor& row_loss) {
  visit_floating(logits.dtype(), "cross_entropy", [&](auto tag) {
    using T = typename decltype(tag)::type;
    cross_entropy_typed<T>(logits.data<T>(), targets.data<int64_t>(), logits.size(0), logits.size(1),
                           label_smoothing, probs.data<T>(), row_loss.data<T>());
  });
}

void cross_entropy_backward(const Tensor& probs, const Tensor& targets, double label_smoothing,
                            const Tensor& row_grad, Tensor& dlogits) {
  visit_floating(probs.dtype(), "cross_entropy_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    cross_entropy_backward_typed<T>(probs.data<T>(), targets.data<int64_t>(), probs.size(0), probs.size(1),
                                    label_smoothing, row_grad.data<T>(), dlogits.data<T>());
  });
}

}  // namespace nl::cpu
