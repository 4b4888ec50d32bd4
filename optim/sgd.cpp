#include "optim/sgd.h"

#include "core/kernels_optim.h"

#include <cmath>

#include "autograd/engine.h"
#include "optim/clip.h"

namespace nl {
namespace {

void check_options(const SGDOptions& o) {
  check(o.lr >= 0, "SGD: lr must be >= 0, got ", o.lr);
  check(o.momentum >= 0, "SGD: momentum must be >= 0, got ", o.momentum);
  check(o.weight_decay >= 0, "SGD: weight_decay must be >= 0, got ", o.weight_decay);
  check(!o.nesterov || (o.momentum > 0 && o.dampening == 0),
        "SGD: nesterov needs momentum > 0 and dampening 0 (as PyTorch), got momentum ", o.momentum,
        " and dampening ", o.dampening);
  check(o.agc_lambda >= 0 && o.agc_eps > 0, "SGD: agc_lambda must be >= 0 and agc_eps > 0, got ",
        o.agc_lambda, " and ", o.agc_eps);
}

std::string buffer_name(size_t group, size_t index) {
  return cat_str("group", group, ".param", index, ".momentum_buffer");
}

}  // namespace

std::vector<ParamGroup> split_decay_groups(const Module& model, double weight_decay) {
  std::vector<ParamGroup> groups(2);
  groups[0].weight_decay = weight_decay;
  groups[1].weight_decay = 0.0;
  for (auto& [name, p] : model.named_parameters()) {
    ParamGroup& g = p.dim() >= 2 ? groups[0] : groups[1];
    g.params.push_back(p);
    g.names.push_back(name);
  }
  return groups;
}

namespace {
std::vector<ParamGroup> one_group(std::vector<Tensor> params) {
  std::vector<ParamGroup> groups(1);
  groups[0].params = std::move(params);
  return groups;
}
}  // namespace

SGD::SGD(std::vector<Tensor> params, SGDOptions options) : SGD(one_group(std::move(params)), options) {}

SGD::SGD(std::vector<ParamGroup> groups, SGDOptions options) : options_(options), groups_(std::move(groups)) {
  check_options(options_);
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const ParamGroup& g = groups_[gi];
    const Resolved r = resolve(g);
    check(r.lr >= 0 && r.weight_decay >= 0 && r.agc_lambda >= 0, "SGD: group ", gi,
          " needs lr, weight_decay and agc_lambda >= 0, got ", r.lr, ", ", r.weight_decay, ", ",
          r.agc_lambda);
    check(g.names.empty() || g.names.size() == g.params.size(), "SGD: group ", gi, " has ", g.params.size(),
          " parameters but ", g.names.size(), " names");
    for (size_t i = 0; i < g.params.size(); ++i) {
      const Tensor& p = g.params[i];
      check(p.defined(), "SGD: parameter ", i, " of group ", gi, " is undefined");
      check(is_floating(p.dtype()) && p.is_contiguous(), "SGD: parameter ", i, " of group ", gi,
            " must be a contiguous float tensor, got ", dtype_name(p.dtype()), " of shape ", p.shape());
      check(p.is_leaf() && p.requires_grad(), "SGD: parameter ", i, " of group ", gi, " (shape ", p.shape(),
            ") must be a leaf that requires grad");
      for (size_t gj = 0; gj <= gi; ++gj)
        for (size_t j = 0; j < (gj == gi ? i : groups_[gj].params.size()); ++j)
          check(!groups_[gj].params[j].same(p), "SGD: parameter ", i, " of group ", gi,
                " appears twice (also parameter ", j, " of group ", gj, ")");
    }
    momentum_.emplace_back(g.params.size());
  }
}

SGD::Resolved SGD::resolve(const ParamGroup& g) const {
  return {g.lr.value_or(options_.lr), g.weight_decay.value_or(options_.weight_decay),
          g.agc_lambda.value_or(options_.agc_lambda)};
}

double SGD::current_lr(size_t group) const {
  check(group < groups_.size(), "SGD::current_lr: group ", group, " does not exist (", groups_.size(),
        " groups)");
  return resolve(groups_[group]).lr * (schedule_ ? schedule_->factor(step_count_) : 1.0);
}

void SGD::update(const Tensor& w_in, const Tensor& g, Tensor& buf, double lr, double wd) {
  Tensor w = w_in;  // a handle to the parameter: the kernel updates the model's tensor in place
  const SGDOptions& o = options_;
  kernels::SgdStep s;
  s.lr = lr;
  s.momentum = o.momentum;
  s.dampening = o.dampening;
  s.nesterov = o.nesterov;
  s.weight_decay = o.decoupled_weight_decay ? 0.0 : wd;
  s.decoupled_decay = o.decoupled_weight_decay ? wd : 0.0;
  s.first_step = o.momentum != 0 && !buf.defined();
  if (o.momentum != 0 && !buf.defined()) buf = empty_like(w);
  kernels::sgd_update(s, w, g, buf);
}

void SGD::step() {
  NoGradGuard no_record;
  const double factor = schedule_ ? schedule_->factor(step_count_) : 1.0;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const Resolved r = resolve(groups_[gi]);
    const double lr = r.lr * factor;
    for (size_t i = 0; i < groups_[gi].params.size(); ++i) {
      const Tensor& p = groups_[gi].params[i];
      Tensor g = p.grad();
      if (!g.defined()) continue;
      check(g.is_contiguous(), "SGD: the gradient of parameter ", i, " of group ", gi, " is not contiguous");
      if (r.agc_lambda > 0) {
        adaptive_clip_grad_(p, r.agc_lambda, options_.agc_eps);
        g = p.grad();
      }
      update(p, g, momentum_[gi][i], lr, r.weight_decay);
    }
  }
  ++step_count_;
}

void SGD::zero_grad() {
  for (ParamGroup& g : groups_)
    for (Tensor& p : g.params) p.zero_grad();
}

std::vector<std::pair<std::string, Tensor>> SGD::state_tensors() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    for (size_t i = 0; i < momentum_[gi].size(); ++i)
      if (momentum_[gi][i].defined()) out.emplace_back(buffer_name(gi, i), momentum_[gi][i]);
  return out;
}

std::vector<std::string> SGD::check_state(int64_t step_count,
                                          const std::vector<std::pair<std::string, Tensor>>& buffers) const {
  std::vector<std::string> problems;
  if (step_count < 0) problems.push_back(cat_str("optimizer step count ", step_count, " is negative"));
  for (const auto& [name, t] : buffers) {
    const Tensor* param = nullptr;
    for (size_t gi = 0; gi < groups_.size() && !param; ++gi)
      for (size_t i = 0; i < groups_[gi].params.size(); ++i)
        if (buffer_name(gi, i) == name) param = &groups_[gi].params[i];
    if (!param) {
      problems.push_back(cat_str("optimizer state '", name, "' matches no parameter of this optimizer"));
      continue;
    }
    if (t.shape() != param->shape())
      problems.push_back(cat_str("optimizer state '", name, "' has shape ", t.shape(),
                                 " but its parameter has shape ", param->shape()));
    else if (t.dtype() != param->dtype())
      problems.push_back(cat_str("optimizer state '", name, "' is ", dtype_name(t.dtype()),
                                 " but its parameter is ", dtype_name(param->dtype())));
  }
  return problems;
}

void SGD::load_state(int64_t step_count, const std::vector<std::pair<std::string, Tensor>>& buffers) {
  const std::vector<std::string> problems = check_state(step_count, buffers);
  check(problems.empty(), "SGD::load_state: ", problems.empty() ? "" : problems.front());
  NoGradGuard no_record;
  for (auto& group : momentum_)
    for (Tensor& b : group) b = Tensor();
  for (const auto& [name, t] : buffers)
    for (size_t gi = 0; gi < groups_.size(); ++gi)
      for (size_t i = 0; i < groups_[gi].params.size(); ++i)
        if (buffer_name(gi, i) == name) momentum_[gi][i] = t.detach().contiguous().clone();
  step_count_ = step_count;
}

}  // namespace nl
