#include "optim/clip.h"

#include <cmath>

#include "autograd/engine.h"
#include "core/ops.h"

namespace nl {

double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm) {
  check(max_norm > 0, "clip_grad_norm_: max_norm must be > 0, got ", max_norm);
  NoGradGuard no_record;
  double total_sq = 0;
  for (const Tensor& p : params) {
    const Tensor g = p.grad();
    if (g.defined()) total_sq += sum(square(g.to(kFloat64))).item();
  }
  const double total = std::sqrt(total_sq);
  const double coef = max_norm / (total + 1e-6);
  if (coef < 1.0)
    for (const Tensor& p : params) {
      Tensor g = p.grad();
      if (g.defined()) g.mul_(coef);
    }
  return total;
}

void adaptive_clip_grad_(const Tensor& param, double lambda, double eps) {
  check(lambda > 0, "adaptive_clip_grad_: lambda must be > 0, got ", lambda);
  check(eps > 0, "adaptive_clip_grad_: eps must be > 0, got ", eps);
  Tensor g = param.grad();
  if (!g.defined()) return;
  NoGradGuard no_record;
  const int64_t units = param.dim() == 0 ? 1 : param.size(0);
  const Tensor W = param.detach().reshape({units, -1}), G = g.reshape({units, -1});
  const Tensor w_norm = maximum(sqrt(sum(square(W), {1}, true)), full({}, eps, W.dtype()));
  const Tensor g_norm = sqrt(sum(square(G), {1}, true));
  const Tensor max_norm = mul(w_norm, lambda);
  // The 1e-6 floor only matters where the unit is not clipped (‖G_i‖ = 0 cannot exceed λ‖W_i‖*).
  const Tensor scale = where(gt(g_norm, max_norm), div(max_norm, maximum(g_norm, full({}, 1e-6, W.dtype()))),
                             ones({}, W.dtype()));
  g.copy_(mul(G, scale).reshape(g.shape()));
}

void adaptive_clip_grad_(const std::vector<Tensor>& params, double lambda, double eps) {
  for (const Tensor& p : params) adaptive_clip_grad_(p, lambda, eps);
}

}  // namespace nl
