// Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay, following
// PyTorch's torch.optim.SGD exactly. For each parameter w with gradient g, at step t with learning rate
// lr = group lr · schedule(t):
//
//   coupled weight decay (default):   g ← g + wd·w
//   momentum μ > 0:                   buf ← g                          on the first step
//                                     buf ← μ·buf + (1 − dampening)·g  afterwards
//                                     step = nesterov ? g + μ·buf : buf
//   no momentum:                      step = g
//   decoupled weight decay (SGDW):    w ← w − lr·wd·w   (applied to w directly, not through g or buf)
//   update:                           w ← w − lr·step
//
// Optional adaptive gradient clipping (optim/clip.h) runs on g first, per group (agc_lambda > 0).
//
// Parameter groups carry their own lr, weight decay and AGC λ; split_decay_groups() builds the usual
// two groups, with no weight decay on 1-D tensors (biases, normalization γ and β).
//
// Each parameter is updated by one fused pass (kernels::sgd_update, core/kernels_optim.h) under NoGradGuard;
// momentum buffers are allocated on the first step and reused after, so a step allocates nothing.
// The state a checkpoint needs is the step count and the momentum buffers (optim/checkpoint.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "../core/tensor.h"
#include "../layers/module.h"
#include "schedule.h"

namespace nl {

struct SGDOptions {
  double lr = 0.01;
  double momentum = 0.0;
  double dampening = 0.0;
  bool nesterov = false;
  double weight_decay = 0.0;
  bool decoupled_weight_decay = false;
  double agc_lambda = 0.0;  // adaptive gradient clipping threshold λ; 0 = off
  double agc_eps = 1e-3;
};

// A set of parameters with its own settings; unset fields take the optimizer's SGDOptions.
struct ParamGroup {
  std::vector<Tensor> params;
  std::optional<double> lr;
  std::optional<double> weight_decay;
  std::optional<double> agc_lambda;
  std::vector<std::string> names;  // optional, parallel to params (split_decay_groups fills it)
};

// Two groups from model.named_parameters(): [0] tensors of rank >= 2 with weight_decay, [1] tensors of rank
// <= 1 (biases, normalization γ and β) with weight decay 0. Empty groups are kept, so indices stay fixed.
std::vector<ParamGroup> split_decay_groups(const Module& model, double weight_decay);

class SGD {
 public:
  SGD(std::vector<Tensor> params, SGDOptions options);
  SGD(std::vector<ParamGroup> groups, SGDOptions options);

  // One update of every parameter that has a gradient (parameters without one are left alone).
  void step();
  // Drops every parameter's gradient.
  void zero_grad();

  // lr = group lr · schedule(step_count()); null schedule = constant.
  void set_schedule(SchedulePtr schedule) { schedule_ = std::move(schedule); }
  const SchedulePtr& schedule() const { return schedule_; }
  // The learning rate group `group` uses at the next step.
  double current_lr(size_t group = 0) const;

  const SGDOptions& options() const { return options_; }
  const std::vector<ParamGroup>& groups() const { return groups_; }
  int64_t step_count() const { return step_count_; }

  // ---- state for checkpoints
  // The existing momentum buffers, named "group<g>.param<i>.momentum_buffer".
  std::vector<std::pair<std::string, Tensor>> state_tensors() const;
  // Every problem with restoring this state (unknown names, shapes or dtypes that do not match the
  // parameters, a negative step count); empty when load_state would succeed.
  std::vector<std::string> check_state(int64_t step_count,
                                       const std::vector<std::pair<std::string, Tensor>>& buffers) const;
  // Replaces the state (after check_state found no problem; throws otherwise). Buffers not listed are
  // dropped.
  void load_state(int64_t step_count, const std::vector<std::pair<std::string, Tensor>>& buffers);

 private:
  struct Resolved {
    double lr, weight_decay, agc_lambda;
  };
  Resolved resolve(const ParamGroup& g) const;
  void update(const Tensor& w, const Tensor& g, Tensor& buf, double lr, double wd);

  SGDOptions options_;
  std::vector<ParamGroup> groups_;
  std::vector<std::vector<Tensor>> momentum_;  // parallel to groups_[g].params; undefined until first use
  SchedulePtr schedule_;
  int64_t step_count_ = 0;
};

}  // namespace nl
