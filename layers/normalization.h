// Normalization layers: the stateful side of core/normalization.h. Each module owns its γ/β parameters and
// running-statistics buffers and its training flag, and calls the functional op; the math is there.
//
//   BatchNorm1d, BatchNorm2d   PyTorch's BatchNorm (train: batch stats + running update; eval: running stats)
//   GhostBatchNorm             BatchNorm over virtual sub-batches (Hoffer et al. 2017)
//   NoisyBatchNorm             BatchNorm plus step-varying noise in training (Santurkar et al. 2018)
//   BatchRenorm                Batch Renormalization with rmax/dmax schedules (Ioffe 2017)
//   FrozenBatchNorm            fixed statistics and affine, all buffers (torchvision's FrozenBatchNorm2d)
//   InstanceNorm1d/2d, GroupNorm, LayerNorm, RMSNorm   PyTorch's layers, same defaults
//
// docs/normalization.md has the table of what each normalizes over, what it keeps and how train differs
// from eval, and the conventions (momentum direction, biased vs unbiased variance). Default constants live
// in core/normalization.h.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "../core/normalization.h"
#include "../core/random.h"
#include "module.h"

namespace nl {

// ---- BatchNorm
// -------------------------------------------------------------------------------------------------

struct BatchNormOptions {
  double eps = kNormDefaultEps;
  // Weight of the new batch statistic in the running average. nullopt: cumulative average, factor
  // 1/num_batches_tracked (PyTorch's momentum=None).
  std::optional<double> momentum = kBatchNormDefaultMomentum;
  bool affine = true;               // learnable weight (γ, init 1) and bias (β, init 0)
  bool track_running_stats = true;  // keep running_mean/var; when false, batch statistics in eval too
  // BatchNorm1d/2d only: apply a ReLU to the output in the same kernel (batch_norm_relu), the way
  // inference engines fuse BN + ReLU. The layer's output is then relu(BN(x)) and the pre-ReLU values are
  // never stored. Off by default, so that a model reads exactly like its PyTorch counterpart.
  bool fused_relu = false;
  // BatchNorm2d with fused_relu only: also apply the 2×2, stride-2 max pool that follows in most CNNs, in the
  // same kernel (batch_norm_relu_max_pool2d). The layer's output is then max_pool2d(relu(BN(x)), 2), of shape
  // (N, C, H/2, W/2), and neither the full-size output nor its gradient is stored.
  bool fused_max_pool = false;
  DType dtype = kFloat32;  // of the parameters and running statistics (Module::to converts later)
};

// The BatchNorm family's shared state and behaviour; BatchNorm1d/2d and the variants below fix the ranks.
class BatchNorm : public Module {
 public:
  Tensor weight, bias;               // (C), when affine
  Tensor running_mean, running_var;  // (C), init 0 and 1, when track_running_stats
  Tensor num_batches_tracked;        // int64 scalar: training steps that updated the running statistics

  BatchNorm(int64_t num_features, BatchNormOptions options, std::string type_name,
            std::vector<int64_t> accepted_ranks);

  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return type_name_; }
  std::string describe() const override;
  bool cancels_preceding_bias() const override { return true; }
  void absorb_removed_bias(const Tensor& bias) override;

  // Freeze the running statistics without freezing γ and β: in training mode the layer still normalizes
  // with the batch statistics (and gradients flow through them), but running_mean, running_var and
  // num_batches_tracked are left untouched. Eval mode is unaffected (running statistics). Off by default.
  void freeze_running_stats(bool frozen = true) { running_stats_frozen_ = frozen; }
  bool running_stats_frozen() const { return running_stats_frozen_; }

  int64_t num_features() const { return num_features_; }
  const BatchNormOptions& options() const { return options_; }
  // Changes the running-average momentum (nullopt: cumulative average); recompute_batchnorm_stats uses it.
  void set_momentum(std::optional<double> momentum);

 protected:
  // Checks the rank and the channel count (dim 1); throws naming the layer and the shape.
  void check_input(const Tensor& x) const;
  // Training normalizes with batch statistics; so does eval when there are no running statistics.
  bool uses_batch_stats() const { return is_training() || !running_mean.defined(); }
  bool updates_running_stats() const {
    return is_training() && running_mean.defined() && !running_stats_frozen_;
  }
  // The running-average factor for the next update: the momentum, or 1/(num_batches_tracked + 1).
  double next_update_factor() const;

  int64_t num_features_;
  BatchNormOptions options_;

 private:
  std::string type_name_;
  std::vector<int64_t> accepted_ranks_;
  bool running_stats_frozen_ = false;

 protected:
  std::shared_ptr<Module> clone_impl() const override { return copy_of(*this); }
};

// (N, C) or (N, C, L).
class BatchNorm1d : public BatchNorm {
 public:
  explicit BatchNorm1d(int64_t num_features, BatchNormOptions options = {});

 protected:
  std::shared_ptr<Module> clone_impl() const override { return copy_of(*this); }
};

// (N, C, H, W).
class BatchNorm2d : public BatchNorm {
 public:
  explicit BatchNorm2d(int64_t num_features, BatchNormOptions options = {});

 protected:
  std::shared_ptr<Module> clone_impl() const override { return copy_of(*this); }
};

// Ghost BatchNorm: in training, each run of virtual_batch_size consecutive samples is normalized with its
// own statistics (an error when virtual_batch_size does not divide N). The running statistics are updated
// once PER VIRTUAL BATCH, in order (num_batches_tracked counts virtual batches), as Hoffer et al. describe;
// Keras instead averages the virtual batches' statistics and updates once. Eval: running statistics, as
// BatchNorm. Accepts (N, C), (N, C, L) and (N, C, H, W).
class GhostBatchNorm : public BatchNorm {
 public:
  GhostBatchNorm(int64_t num_features, int64_t virtual_batch_size, BatchNormOptions options = {});
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  int64_t virtual_batch_size() const { return virtual_batch_size_; }

 private:
  int64_t virtual_batch_size_;

 protected:
  std::shared_ptr<Module> clone_impl() const override { return copy_of(*this); }
};

// The "noisy BatchNorm" of Santurkar et al. 2018: in training only, after BatchNorm (after γ, β), every
// activation gets independent Gaussian noise whose distribution changes at every step:
//   at step t:  μ_t ~ U(mean_min, mean_max),  σ_t ~ U(std_min, std_max)     (non-zero mean, non-unit std)
//   y ← y + ε,  ε_i ~ N(μ_t, σ_t²) i.i.d. per activation
// All draws come from the module's own Generator, seeded with `seed`. The noise is a constant for autograd.
// Eval mode adds nothing. Accepts (N, C), (N, C, L) and (N, C, H, W).
struct NoiseOptions {
  double mean_min = 0.5, mean_max = 1.5;  // the per-step noise mean is drawn from [mean_min, mean_max)
  double std_min = 1.5, std_max = 2.5;    // the per-step noise std is drawn from [std_min, std_max)
  uint64_t seed = 0x5eed;
};

class NoisyBatchNorm : public BatchNorm {
 public:
  NoisyBatchNorm(int64_t num_features, NoiseOptions noise = {}, BatchNormOptions options = {});
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  Generator& generator() { return generator_; }
  // The distribution used at the last training step (for logging in the studies).
  double last_noise_mean() const { return last_mean_; }
  double last_noise_std() const { return last_std_; }

 private:
  NoiseOptions noise_;
  Generator generator_;
  double last_mean_ = 0, last_std_ = 0;

 protected:
  std::shared_ptr<Module> clone_impl() const override { return copy_of(*this); }
};

// ---- Batch Renormalization
// ---------------------------------------------------------------------------------

// rmax and dmax as functions of the training step (0 for the first training forward).
struct RenormSchedule {
  std::function<double(int64_t)> rmax;
  std::function<double(int64_t)> dmax;
};

// Ioffe 2017's schedule: plain BatchNorm (rmax = 1, dmax = 0) for the first warmup_steps, then linear ramps
// reaching rmax_final at rmax_full_step and dmax_final at dmax_full_step, constant afterwards.
RenormSchedule batch_renorm_paper_schedule(int64_t warmup_steps = 5000, int64_t rmax_full_step = 40000,
                                           int64_t dmax_full_step = 25000, double rmax_final = 3.0,
                                           double dmax_final = 5.0);

struct BatchRenormOptions {
  double eps = kNormDefaultEps;
  double momentum = kBatchRenormDefaultMomentum;  // rate of the running μ and σ updates
  bool affine = true;
  RenormSchedule schedule = batch_renorm_paper_schedule();
  DType dtype = kFloat32;  // of the parameters and running statistics (Module::to converts later)
};

// Training: batch_renorm with rmax = schedule.rmax(step), dmax = schedule.dmax(step), step =
// num_batches_tracked before the increment; eval: y = γ·(x − running_mean)/running_std + β.
// Buffers running_mean (init 0) and running_std (init 1; it includes eps). Accepts ranks 2 to 4.
class BatchRenorm : public Module {
 public:
  Tensor weight, bias;
  Tensor running_mean, running_std;
  Tensor num_batches_tracked;

  explicit BatchRenorm(int64_t num_features, BatchRenormOptions options = {});
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "BatchRenorm"; }
  std::string describe() const override;
  bool cancels_preceding_bias() const override { return true; }
  void absorb_removed_bias(const Tensor& bias) override;
  // rmax and dmax the next training forward will use.
  double current_rmax() const;
  double current_dmax() const;

 private:
  int64_t num_features_;
  BatchRenormOptions options_;

 protected:
  std::shared_ptr<Module> clone_impl() const override { return copy_of(*this); }
};

// ---- FrozenBatchNorm
// -----------------------------------------------------------------------------------------

// y = weight·(x − running_mean)/sqrt(running_var + eps) + bias in every mode, never updated. All four are
// buffers (nothing for the optimizer); the input still gets its gradient. Accepts ranks 2 to 4.
struct FrozenBatchNormOptions {
  double eps = kNormDefaultEps;
  DType dtype = kFloat32;  // of the four buffers
};

class FrozenBatchNorm : public Module {
 public:
  Tensor weight, bias, running_mean, running_var;

  explicit FrozenBatchNorm(int64_t num_features, FrozenBatchNormOptions options = {});
  FrozenBatchNorm(int64_t num_features, double eps) : FrozenBatchNorm(num_features, {.eps = eps}) {}
  // A frozen copy of a trained BatchNorm's statistics and affine (γ = 1, β = 0 when it has none).
  static std::shared_ptr<FrozenBatchNorm> from(const BatchNorm& bn);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "FrozenBatchNorm"; }
  std::string describe() const override;
  double eps() const { return eps_; }

 private:
  int64_t num_features_;
  double eps_;

 protected:
  std::shared_ptr<Module> clone_impl() const override { return copy_of(*this); }
};

// ---- InstanceNorm
// ------------------------------------------------------------------------------------------------

struct InstanceNormOptions {
  double eps = kNormDefaultEps;
  double momentum = kInstanceNormDefaultMomentum;
  bool affine = false;               // PyTorch's default
  bool track_running_stats = false;  // PyTorch's default; when true, eval uses the running statistics
  DType dtype = kFloat32;            // of the parameters and running statistics (Module::to converts later)
};

class InstanceNorm : public Module {
 public:
  Tensor weight, bias, running_mean, running_var;

  InstanceNorm(int64_t num_features, InstanceNormOptions options, std::string type_name,
               int64_t spatial_dims);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return type_name_; }
  std::string describe() const override;
  bool cancels_preceding_bias() const override { return true; }
  void absorb_removed_bias(const Tensor& bias) override;

 private:
  int64_t num_features_;
  InstanceNormOptions options_;
  std::string type_name_;
  int64_t spatial_dims_;

 protected:
  std::shared_ptr<Module> clone_impl() const override { return copy_of(*this); }
};

// (N, C, L), or (C, L) unbatched.
class InstanceNorm1d : public InstanceNorm {
 public:
  explicit InstanceNorm1d(int64_t num_features, InstanceNormOptions options = {});

 protected:
  std::shared_ptr<Module> clone_impl() const override { return copy_of(*this); }
};
// (N, C, H, W), or (C, H, W) unbatched.
class InstanceNorm2d : public InstanceNorm {
 public:
  explicit InstanceNorm2d(int64_t num_features, InstanceNormOptions options = {});

 protected:
  std::shared_ptr<Module> clone_impl() const override { return copy_of(*this); }
};

// ---- GroupNorm, LayerNorm, RMSNorm (same in train and eval)
// -------------------------------------------------

struct GroupNormOptions {
  double eps = kNormDefaultEps;
  bool affine = true;
  DType dtype = kFloat32;  // of the parameters and running statistics (Module::to converts later)
};

// (N, C, *); an error at construction when num_groups does not divide num_channels.
class GroupNorm : public Module {
 public:
  Tensor weight, bias;  // (C)

  GroupNorm(int64_t num_groups, int64_t num_channels, GroupNormOptions options = {});
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "GroupNorm"; }
  std::string describe() const override;
  // Only one channel per group subtracts a per-channel mean (G = C, InstanceNorm with affine).
  bool cancels_preceding_bias() const override { return num_groups_ == num_channels_; }

 private:
  int64_t num_groups_, num_channels_;
  GroupNormOptions options_;

 protected:
  std::shared_ptr<Module> clone_impl() const override { return copy_of(*this); }
};

struct LayerNormOptions {
  double eps = kNormDefaultEps;
  bool elementwise_affine = true;
  bool bias = true;        // PyTorch 2.x: elementwise_affine with bias=false learns only the weight
  DType dtype = kFloat32;  // of the parameters and running statistics (Module::to converts later)
};

class LayerNorm : public Module {
 public:
  Tensor weight, bias;  // normalized_shape

  explicit LayerNorm(Shape normalized_shape, LayerNormOptions options = {});
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "LayerNorm"; }
  std::string describe() const override;

 private:
  Shape normalized_shape_;
  LayerNormOptions options_;

 protected:
  std::shared_ptr<Module> clone_impl() const override { return copy_of(*this); }
};

struct RMSNormOptions {
  std::optional<double> eps = std::nullopt;  // nullopt: the machine epsilon of the input's dtype
  bool elementwise_affine = true;
  DType dtype = kFloat32;  // of the parameters and running statistics (Module::to converts later)
};

class RMSNorm : public Module {
 public:
  Tensor weight;  // normalized_shape

  explicit RMSNorm(Shape normalized_shape, RMSNormOptions options = {});
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "RMSNorm"; }
  std::string describe() const override;

 private:
  Shape normalized_shape_;
  RMSNormOptions options_;

 protected:
  std::shared_ptr<Module> clone_impl() const override { return copy_of(*this); }
};

}  // namespace nl
