// fold_batchnorm, recompute_batchnorm_stats and the model-wide freeze switch; the formulas and the
// conventions are in layers/batchnorm_tools.h.
#include "layers/batchnorm_tools.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "autograd/engine.h"
#include "layers/activation.h"
#include "layers/conv.h"
#include "layers/linear.h"
#include "layers/normalization.h"
#include "layers/pooling.h"

namespace nl {

namespace {

// What a BatchNorm contributes to a fold, as float64 vectors (C).
struct FoldStats {
  std::vector<double> mean, var, gamma, beta;
  double eps;
};

std::optional<FoldStats> fold_stats_of(Module& m, const std::string& name) {
  auto vec = [](const Tensor& t, double fallback, int64_t n) {
    return t.defined() ? t.to_vector<double>() : std::vector<double>(static_cast<size_t>(n), fallback);
  };
  if (auto* bn = dynamic_cast<BatchNorm*>(&m)) {
    if (!bn->running_mean.defined()) return std::nullopt;
    check(!bn->is_training(), "fold_batchnorm: '", name, "' (", bn->type_name(),
          ") is in training mode; call eval() first (folding uses the running statistics)");
    const int64_t C = bn->num_features();
    return FoldStats{vec(bn->running_mean, 0, C), vec(bn->running_var, 1, C), vec(bn->weight, 1, C),
                     vec(bn->bias, 0, C), bn->options().eps};
  }
  if (auto* frozen = dynamic_cast<FrozenBatchNorm*>(&m)) {
    const int64_t C = frozen->running_mean.numel();
    return FoldStats{vec(frozen->running_mean, 0, C), vec(frozen->running_var, 1, C),
                     vec(frozen->weight, 1, C), vec(frozen->bias, 0, C), frozen->eps()};
  }
  return std::nullopt;
}

// W' = W·s per output channel (dim 0), b' = (b − mean)·s + β. Returns false when the layer cannot be folded.
bool fold_into(Tensor& weight, Tensor& bias, const FoldStats& st) {
  const int64_t C = static_cast<int64_t>(st.mean.size());
  if (weight.size(0) != C) return false;
  std::vector<double> w = weight.to_vector<double>();
  const std::vector<double> b =
      bias.defined() ? bias.to_vector<double>() : std::vector<double>(static_cast<size_t>(C), 0.0);
  const int64_t per_channel = weight.numel() / C;
  std::vector<double> new_bias(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    const double s = st.gamma[c] / std::sqrt(st.var[c] + st.eps);
    for (int64_t i = 0; i < per_channel; ++i) w[c * per_channel + i] *= s;
    new_bias[c] = (b[c] - st.mean[c]) * s + st.beta[c];
  }
  const DType dt = weight.dtype();
  const bool grad = weight.requires_grad();
  NoGradGuard no_record;
  weight = from_vector(w, weight.shape()).to(dt);
  bias = from_vector(new_bias, {C}).to(dt);
  if (grad) {
    weight.requires_grad_();
    bias.requires_grad_();
  }
  return true;
}

}  // namespace

std::vector<BatchNorm*> batch_norm_layers(Module& model) {
  std::vector<BatchNorm*> out;
  for (auto& [name, m] : model.named_modules())
    if (auto* bn = dynamic_cast<BatchNorm*>(m)) out.push_back(bn);
  return out;
}

std::vector<std::string> fold_batchnorm(Module& model) {
  std::vector<std::string> folded;
  for (auto& [prefix, m] : model.named_modules()) {
    auto* seq = dynamic_cast<Sequential*>(m);
    if (!seq) continue;
    for (size_t i = 1; i < seq->size(); ++i) {
      const std::string child_name = seq->named_children()[i].first;
      const std::string full_name = prefix.empty() ? child_name : prefix + "." + child_name;
      Module* prev = (*seq)[i - 1].get();
      auto* linear = dynamic_cast<Linear*>(prev);
      auto* conv = dynamic_cast<Conv2d*>(prev);
      if (!linear && !(conv && !conv->options.weight_standardization)) continue;
      const std::optional<FoldStats> st = fold_stats_of(*(*seq)[i], full_name);
      if (!st) continue;
      const bool ok =
          linear ? fold_into(linear->weight, linear->bias, *st) : fold_into(conv->weight, conv->bias, *st);
      if (!ok) continue;
      // A BatchNorm with a fused ReLU leaves its ReLU behind (and its max pool, when it had one).
      auto* bn = dynamic_cast<BatchNorm*>((*seq)[i].get());
      if (bn && bn->options().fused_max_pool)
        seq->replace_child(child_name, std::make_shared<Sequential>(std::vector<ModulePtr>{
                                           std::make_shared<ReLU>(), std::make_shared<MaxPool2d>(2)}));
      else if (bn && bn->options().fused_relu)
        seq->replace_child(child_name, std::make_shared<ReLU>());
      else
        seq->replace_child(child_name, std::make_shared<Identity>());
      folded.push_back(full_name);
    }
  }
  return folded;
}

int64_t recompute_batchnorm_stats(Module& model, const std::function<Tensor()>& next_batch,
                                  int64_t num_batches) {
  check(num_batches >= 1, "recompute_batchnorm_stats: num_batches must be >= 1, got ", num_batches);
  check(static_cast<bool>(next_batch), "recompute_batchnorm_stats: next_batch is empty");

  // Remember every module's mode and every BatchNorm's momentum, freeze flag and step count.
  struct SavedBn {
    BatchNorm* bn;
    std::optional<double> momentum;
    bool frozen;
    double steps;
  };
  std::vector<std::pair<Module*, bool>> modes;
  for (auto& [name, m] : model.named_modules()) modes.emplace_back(m, m->is_training());
  const std::vector<BatchNorm*> bns = batch_norm_layers(model);
  std::vector<SavedBn> saved;
  for (BatchNorm* bn : bns)
    if (bn->running_mean.defined())
      saved.push_back(
          {bn, bn->options().momentum, bn->running_stats_frozen(), bn->num_batches_tracked.item()});

  auto restore = [&] {
    // named_modules lists parents before children, so each module's own call comes last for it.
    for (auto& [m, was_training] : modes) m->train(was_training);
    for (const SavedBn& s : saved) {
      s.bn->set_momentum(s.momentum);
      s.bn->freeze_running_stats(s.frozen);
      s.bn->num_batches_tracked.fill_(s.steps);
    }
  };

  model.eval();
  for (const SavedBn& s : saved) {
    s.bn->train(true);
    s.bn->set_momentum(std::nullopt);  // cumulative average: factor 1/k at the k-th batch
    s.bn->freeze_running_stats(false);
    s.bn->num_batches_tracked.fill_(0);
  }
  int64_t used = 0;
  try {
    NoGradGuard no_record;
    for (; used < num_batches; ++used) {
      const Tensor x = next_batch();
      if (!x.defined()) break;
      model(x);
    }
  } catch (...) {
    restore();
    throw;
  }
  restore();
  check(used >= 1, "recompute_batchnorm_stats: next_batch returned no batch");
  return used;
}

int64_t recompute_batchnorm_stats(Module& model, const std::vector<Tensor>& batches) {
  size_t next = 0;
  return recompute_batchnorm_stats(
      model, [&]() { return next < batches.size() ? batches[next++] : Tensor(); },
      static_cast<int64_t>(std::max<size_t>(batches.size(), 1)));
}

int64_t set_batchnorm_running_stats_frozen(Module& model, bool frozen) {
  const std::vector<BatchNorm*> bns = batch_norm_layers(model);
  for (BatchNorm* bn : bns) bn->freeze_running_stats(frozen);
  return static_cast<int64_t>(bns.size());
}

}  // namespace nl
