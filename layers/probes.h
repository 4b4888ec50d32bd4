// Probes: what the BN-lab studies measure while a model trains. They only read the model; none changes what
// it computes, and nothing here costs anything until a probe is attached (Module::operator() skips the hook
// machinery when a module has no hooks; there is no global state).
//
// ActivationProbe(module, options)
//   A forward hook on one module. For the output y of shape (N, C), (N, C, L) or (N, C, H, W) of a recorded
//   call it keeps, in float64, with m = N·L or N·H·W values per channel:
//       mean[c] = (1/m) Σ_{n,s} y[n, c, s]                     (C)
//       var[c]  = (1/m) Σ_{n,s} (y[n, c, s] − mean[c])²        (C)  biased, as BatchNorm normalizes with
//       percentiles[k] = the q_k-th percentile of y[:, options.channel, ...]   (one per q_k, in order)
//   Percentiles interpolate linearly between order statistics, as numpy.percentile's default: with the m
//   values sorted, v_0 ≤ … ≤ v_{m−1}, the q-th percentile is at position h = (m − 1)·q/100, between v_⌊h⌋
//   and v_⌊h⌋+1 (the values 0, 1, …, 100 give exactly 15, 50, 85; 1, 2, 3, 4 give 1.45, 2.5, 3.55). A
//   channel holding a NaN has NaN percentiles; a call with m = 0 records NaNs.
//   This is Ioffe & Szegedy's figure 1 (the 15th, 50th and 85th percentiles of one input to a sigmoid over
//   training). Note what the module's output is: a BatchNorm built with fused_relu (the trainers' default)
//   outputs relu(BN(x)), and max_pool2d of it with fused_max_pool. Probe an unfused BatchNorm for the
//   normalized values, or the layer before it for what BatchNorm receives.
//   Which calls: with every = k > 0 the probe counts the forward calls made while the module is in training
//   mode (eval-mode calls are ignored, not counted) and records counted calls 0, k, 2k, …; with every = 0
//   it counts and records every call, in any mode. A record's `step` is the call's number in that count (the
//   training step, when the module runs once per step). The statistics are computed under NoGradGuard from
//   the output's values; the output itself is passed on untouched.
//   detach() removes the hook (later calls record nothing; the records stay); the destructor does too. A
//   probe can be moved (the hook follows it), not copied. The module must not be destroyed while the probe
//   records; a probe that outlives its module is harmless.
//
// parameter_stats(model, lr)
//   For every named parameter w (in named_parameters() order), in float64:
//       weight_norm = ‖w‖₂,  grad_norm = ‖∂L/∂w‖₂ (0 when w has no .grad),  effective_lr = lr / ‖w‖₂²
//   The effective learning rate is the step size that matters for a scale-invariant weight (one feeding a
//   BatchNorm): L(αw) = L(w), so ∇L(αw) = ∇L(w)/α, and an SGD step changes the direction w/‖w‖ as a step of
//   lr/‖w‖² on the unit sphere would (van Laarhoven 2017; Hoffer et al. 2018). For a weight that is not
//   scale-invariant it is only a number. A zero weight has effective_lr = +inf.
//
// WeightAngleTracker(model)
//   Keeps float64 copies of the model's parameters. Each record() returns, for every named parameter (in
//   named_parameters() order), the angle θ ∈ [0, π] in radians between w now and w at the previous record():
//       θ = arccos(⟨w_prev, w⟩ / (‖w_prev‖·‖w‖))
//   computed as 2·atan2(‖u − v‖, ‖u + v‖) with u = w_prev/‖w_prev‖, v = w/‖w‖ (Kahan): the same angle,
//   without arccos's loss of half the digits near 0 (arccos cannot tell an angle below ~1e−8 from 0, and
//   successive SGD steps turn a weight by little), and exactly 0 for an unchanged weight. θ is NaN on the
//   first record(), for a parameter seen for the first time or whose shape changed, and when either vector
//   is zero (no direction; a BatchNorm β starts at 0). Every record() therefore returns one entry per
//   parameter, so that a study can print one column per parameter from the start. The model must outlive
//   the tracker.
//
// compare_running_to_population(model, next_batch, num_batches)
//   For every BatchNorm-family layer (BatchNorm and its subclasses BatchNorm1d/2d, GhostBatchNorm,
//   NoisyBatchNorm) that keeps running statistics, the true statistics of the layer's INPUT over num_batches
//   batches, next to its running_mean and running_var. The pass runs with the whole model in eval mode, so
//   every layer, the earlier BatchNorms included, behaves as at inference: the population is the one each
//   layer sees when the model is deployed, with the current weights and running statistics. Per channel c,
//   over all M = Σ_batches N·spatial values x of the channel:
//       population_mean[c] = (1/M) Σ x
//       population_var[c]  = 1/(M − 1) Σ (x − population_mean[c])²     unbiased, as running_var
//   accumulated in float64 with Chan et al.'s parallel update: each batch gives its count m_b, mean μ_b and
//   M2_b = Σ (x − μ_b)² (two passes), and merging it into the totals (M, μ, M2) is
//       δ = μ_b − μ,   M' = M + m_b,   μ' = μ + δ·m_b/M',   M2' = M2 + M2_b + δ²·M·m_b/M'
//   Sums of x and x² would cancel catastrophically when |mean| ≫ std; this does not. Summary per layer:
//       max_abs_mean_diff = max_c |running_mean[c] − population_mean[c]|
//       max_rel_var_diff  = max_c |running_var[c] / population_var[c] − 1|
//   (inf when a population variance is 0, NaN when the running one is 0 too; population_var is NaN when
//   M = 1). next_batch returns the next input batch; an undefined Tensor ends the pass early. Afterwards
//   every module's training flag is as before; no graph is recorded; the running statistics do not change
//   (eval mode does not update them). A layer called several times per forward accumulates every call.
//   Errors name the op when num_batches < 1, when no batch arrives, and when a layer's input is not
//   (N, C, ...) with its C. Layers are listed in named_modules() order; a model without such a layer gives
//   an empty list (and no batch is drawn). BatchRenorm (running_std) and FrozenBatchNorm (never updated)
//   are not compared.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../core/tensor.h"
#include "module.h"

namespace nl {

// ---- percentiles --------------------------------------------------------------------------------------

// The q-th percentiles (each q in [0, 100]) of `values`, interpolated linearly as numpy.percentile's
// default; one result per q, in the order given. NaN results when a value is NaN. An error naming the op for
// empty values and for q outside [0, 100]. Takes the values by copy: it partially sorts them.
std::vector<double> percentile(std::vector<double> values, const std::vector<double>& q);

// ---- ActivationProbe ----------------------------------------------------------------------------------

struct ActivationProbeOptions {
  // Record every k-th forward call made in training mode (eval-mode calls are ignored); 0 = record every
  // call, in any mode.
  int64_t every = 1;
  // The channel (dim 1 of the output) whose percentiles are recorded.
  int64_t channel = 0;
  // Which percentiles, each in [0, 100] (Ioffe & Szegedy's figure 1: 15, 50, 85).
  std::vector<double> percentiles = {15, 50, 85};
};

struct ActivationRecord {
  int64_t step = 0;                 // the call's number among the counted calls (see above)
  bool training = false;            // the module's mode during the call
  int64_t count = 0;                // values per channel, m = N·spatial
  std::vector<double> mean;         // (C) per-channel mean of the output
  std::vector<double> var;          // (C) per-channel biased variance
  std::vector<double> percentiles;  // of channel options.channel, one per options.percentiles
};

class ActivationProbe {
 public:
  // Attaches the hook. An error naming the argument when every < 0, channel < 0 or a percentile is outside
  // [0, 100]. A channel ≥ C is an error at a recorded call (C is not known before).
  explicit ActivationProbe(Module& module, ActivationProbeOptions options = {});
  ~ActivationProbe();
  ActivationProbe(const ActivationProbe&) = delete;
  ActivationProbe& operator=(const ActivationProbe&) = delete;
  // A moved-from probe holds no hook and no records; only destroy or assign to it.
  ActivationProbe(ActivationProbe&& other) noexcept;
  ActivationProbe& operator=(ActivationProbe&& other) noexcept;

  const std::vector<ActivationRecord>& records() const;
  // The number of calls counted so far (recorded or skipped).
  int64_t calls_counted() const;
  // Drops the records (the call count continues).
  void clear();
  // Removes the hook; idempotent.
  void detach();
  bool attached() const { return attached_; }
  const ActivationProbeOptions& options() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
  HookHandle handle_;
  bool attached_ = false;
};

// ---- parameter statistics -----------------------------------------------------------------------------

struct ParameterStats {
  std::string name;         // dotted, as named_parameters()
  double weight_norm = 0;   // ‖w‖₂
  double grad_norm = 0;     // ‖∂L/∂w‖₂, 0 when there is no gradient
  double effective_lr = 0;  // lr / ‖w‖₂²
};

// An error naming lr when it is negative or not finite.
std::vector<ParameterStats> parameter_stats(const Module& model, double lr);

struct WeightAngle {
  std::string name;  // dotted, as named_parameters()
  double angle = 0;  // radians in [0, π]; NaN when there is no previous weight or no direction (see above)
};

class WeightAngleTracker {
 public:
  explicit WeightAngleTracker(const Module& model) : model_(&model) {}
  // The angle of every parameter since the previous record(); keeps the current weights for the next one.
  std::vector<WeightAngle> record();
  // Forgets the kept weights: the next record() returns NaN angles.
  void reset() { previous_.clear(); }

 private:
  struct Kept {
    std::string name;
    Shape shape;
    std::vector<double> values;  // float64 copy, row-major
  };
  const Module* model_;
  std::vector<Kept> previous_;
};

// ---- running versus population statistics -------------------------------------------------------------

struct PopulationStatsComparison {
  std::string name;         // the layer's dotted name ("" for the model itself)
  std::string type;         // its type_name(), e.g. "BatchNorm2d"
  int64_t num_batches = 0;  // batches run through the model
  int64_t count = 0;        // values per channel accumulated, M = Σ_batches N·spatial
  std::vector<double> population_mean, population_var;  // (C), the variance unbiased
  std::vector<double> running_mean, running_var;        // (C), the layer's buffers, as float64
  double max_abs_mean_diff = 0;                         // max_c |running_mean − population_mean|
  double max_rel_var_diff = 0;                          // max_c |running_var / population_var − 1|
};

std::vector<PopulationStatsComparison> compare_running_to_population(
    Module& model, const std::function<Tensor()>& next_batch, int64_t num_batches);
// The same over a list of input batches (all of them; an error when the list is empty).
std::vector<PopulationStatsComparison> compare_running_to_population(Module& model,
                                                                     const std::vector<Tensor>& batches);

}  // namespace nl
