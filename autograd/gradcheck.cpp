#include "autograd/gradcheck.h"

#include <cmath>

#include "autograd/engine.h"
#include "core/ops.h"
#include "core/random.h"

namespace nl {

bool gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs, const GradcheckOptions& opt,
               const std::string& name_in) {
  for (size_t i = 0; i < inputs.size(); ++i)
    check(inputs[i].dtype() == kFloat64, "gradcheck: input ", i, " is ", dtype_name(inputs[i].dtype()),
          "; finite differences need float64");

  // Analytical: one backward pass with the random upstream gradient u.
  for (const Tensor& x : inputs) const_cast<Tensor&>(x).zero_grad();
  const Tensor y = f(inputs);
  check(y.requires_grad(), "gradcheck: the output does not require grad; no input reaches it");
  const std::string name = !name_in.empty() ? name_in : (y.grad_fn() ? y.grad_fn()->op : "op");
  Generator gen(opt.seed);
  const Tensor u = randn(y.shape(), kFloat64, &gen);
  y.backward(u);

  auto loss = [&]() {
    NoGradGuard no_record;
    return sum(mul(f(inputs), u)).item();
  };

  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    if (!x.requires_grad()) continue;
    check(x.is_contiguous(), "gradcheck: input ", i, " must be contiguous");
    const Tensor grad = x.grad();
    const std::vector<double> analytic =
        grad.defined() ? grad.to_vector<double>() : std::vector<double>(static_cast<size_t>(x.numel()), 0.0);
    double* p = x.data<double>();
    for (int64_t k = 0; k < x.numel(); ++k) {
      const double saved = p[k];
      p[k] = saved + opt.eps;
      const double plus = loss();
      p[k] = saved - opt.eps;
      const double minus = loss();
      p[k] = saved;
      const double numeric = (plus - minus) / (2 * opt.eps);
      const double err = std::abs(analytic[k] - numeric);
      if (!(err <= opt.atol + opt.rtol * std::abs(numeric)))
        throw Error(cat_str("gradcheck failed for ", name, ": input ", i, " (shape ", x.shape(),
                            "), flat index ", k, ": expected (finite differences) ", numeric,
                            ", computed (backward) ", analytic[k], ", difference ", err));
    }
  }
  return true;
}

}  // namespace nl
