// Normalization modules: state, mode logic and argument checks; the math is in core/ops_normalization.cpp.
#include "layers/normalization.h"

#include <algorithm>
#include <sstream>

#include "autograd/engine.h"
#include "core/ops.h"

namespace nl {

namespace {

std::string momentum_str(const std::optional<double>& m) { return m ? cat_str(*m) : std::string("None"); }

const char* bool_str(bool b) { return b ? "true" : "false"; }

std::string ranks_str(const std::vector<int64_t>& ranks) {
  std::ostringstream os;
  for (size_t i = 0; i < ranks.size(); ++i)
    os << (i ? (i + 1 == ranks.size() ? " or " : ", ") : "") << ranks[i];
  return os.str();
}

void check_positive(const char* layer, const char* what, int64_t value) {
  check(value >= 1, layer, ": ", what, " must be >= 1, got ", value);
}

void check_channels(const std::string& layer, const Tensor& x, int64_t expected) {
  check(x.size(1) == expected, layer, ": expected ", expected, " channels (dim 1) in input ", x.shape(),
        ", got ", x.size(1));
}

void add_count(Tensor& counter, int64_t by) { counter.fill_(counter.item() + static_cast<double>(by)); }

void check_dtype(const std::string& layer, DType dtype) {
  check(is_floating(dtype), layer, ": dtype must be float32 or float64, got ", dtype_name(dtype));
}

// running_mean −= bias: the statistic then describes the layer's input without the removed bias.
void subtract_from_running_mean(const std::string& layer, Tensor& running_mean, const Tensor& bias) {
  if (!running_mean.defined()) return;
  check(bias.shape() == running_mean.shape(), layer, ": the removed bias has shape ", bias.shape(),
        " but the running mean has shape ", running_mean.shape());
  NoGradGuard no_record;
  running_mean.copy_(sub(running_mean, bias.detach().to(running_mean.dtype())));
}

}  // namespace

// ---- BatchNorm
// -------------------------------------------------------------------------------------------------

BatchNorm::BatchNorm(int64_t num_features, BatchNormOptions options, std::string type_name,
                     std::vector<int64_t> accepted_ranks)
    : num_features_(num_features),
      options_(options),
      type_name_(std::move(type_name)),
      accepted_ranks_(std::move(accepted_ranks)) {
  check_positive(type_name_.c_str(), "num_features", num_features);
  check(options.eps >= 0, type_name_, ": eps must be >= 0, got ", options.eps);
  check(!options.momentum || (*options.momentum >= 0 && *options.momentum <= 1), type_name_,
        ": momentum must be in [0, 1], got ", momentum_str(options.momentum));
  check(!options.fused_max_pool || accepted_ranks_ == std::vector<int64_t>{4}, type_name_,
        ": fused_max_pool is only available for BatchNorm2d");
  check(!options.fused_max_pool || options.fused_relu, type_name_,
        ": fused_max_pool pools the fused ReLU's output, so it needs fused_relu");
  check_dtype(type_name_, options.dtype);
  if (options.affine) {
    weight = ones({num_features}, options.dtype).requires_grad_();
    bias = zeros({num_features}, options.dtype).requires_grad_();
  }
  if (options.track_running_stats) {
    running_mean = zeros({num_features}, options.dtype);
    running_var = ones({num_features}, options.dtype);
    num_batches_tracked = zeros({}, kInt64);
  }
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
  register_buffer("running_mean", &running_mean);
  register_buffer("running_var", &running_var);
  register_buffer("num_batches_tracked", &num_batches_tracked);
}

std::string BatchNorm::describe() const {
  return cat_str(type_name_, "(", num_features_, ", eps=", options_.eps,
                 ", momentum=", momentum_str(options_.momentum), ", affine=", bool_str(options_.affine),
                 ", track_running_stats=", bool_str(options_.track_running_stats),
                 options_.fused_relu ? ", fused_relu=true" : "",
                 options_.fused_max_pool ? ", fused_max_pool=true" : "",
                 running_stats_frozen_ ? ", running_stats_frozen" : "", ")");
}

void BatchNorm::check_input(const Tensor& x) const {
  check(x.defined(), type_name_, ": input is undefined");
  check(std::find(accepted_ranks_.begin(), accepted_ranks_.end(), x.dim()) != accepted_ranks_.end(),
        type_name_, ": expected a ", ranks_str(accepted_ranks_), "-D input, got ", x.dim(),
        "-D input of shape ", x.shape());
  check_channels(type_name_, x, num_features_);
}

void BatchNorm::absorb_removed_bias(const Tensor& b) {
  subtract_from_running_mean(type_name_, running_mean, b);
}

void BatchNorm::set_momentum(std::optional<double> momentum) {
  check(!momentum || (*momentum >= 0 && *momentum <= 1), type_name_, ": momentum must be in [0, 1], got ",
        momentum_str(momentum));
  options_.momentum = momentum;
}

double BatchNorm::next_update_factor() const {
  if (options_.momentum) return *options_.momentum;
  return cumulative_average_factor(static_cast<int64_t>(num_batches_tracked.item()) + 1);
}

Tensor BatchNorm::forward(const Tensor& x) {
  check_input(x);
  const auto op = options_.fused_max_pool ? batch_norm_relu_max_pool2d
                  : options_.fused_relu   ? batch_norm_relu
                                          : batch_norm;
  if (!uses_batch_stats()) return op(x, running_mean, running_var, weight, bias, false, 0.0, options_.eps);
  if (!updates_running_stats()) return op(x, Tensor(), Tensor(), weight, bias, true, 0.0, options_.eps);
  // Count the batch only once the op has accepted it (it throws on one value per channel).
  Tensor y = op(x, running_mean, running_var, weight, bias, true, next_update_factor(), options_.eps);
  add_count(num_batches_tracked, 1);
  return y;
}

BatchNorm1d::BatchNorm1d(int64_t num_features, BatchNormOptions options)
    : BatchNorm(num_features, options, "BatchNorm1d", {2, 3}) {}

BatchNorm2d::BatchNorm2d(int64_t num_features, BatchNormOptions options)
    : BatchNorm(num_features, options, "BatchNorm2d", {4}) {}

// ---- GhostBatchNorm
// ----------------------------------------------------------------------------------------------

GhostBatchNorm::GhostBatchNorm(int64_t num_features, int64_t virtual_batch_size, BatchNormOptions options)
    : BatchNorm(num_features, options, "GhostBatchNorm", {2, 3, 4}), virtual_batch_size_(virtual_batch_size) {
  check_positive("GhostBatchNorm", "virtual_batch_size", virtual_batch_size);
  check(!options.fused_relu, "GhostBatchNorm: fused_relu is only available for BatchNorm1d/2d");
}

std::string GhostBatchNorm::describe() const {
  return cat_str("GhostBatchNorm(", num_features_, ", virtual_batch_size=", virtual_batch_size_,
                 ", eps=", options_.eps, ", momentum=", momentum_str(options_.momentum),
                 ", affine=", bool_str(options_.affine),
                 ", track_running_stats=", bool_str(options_.track_running_stats), ")");
}

Tensor GhostBatchNorm::forward(const Tensor& x) {
  check_input(x);
  if (!uses_batch_stats())
    return batch_norm(x, running_mean, running_var, weight, bias, false, 0.0, options_.eps);
  const bool update = updates_running_stats();
  return ghost_batch_norm(x, virtual_batch_size_, update ? running_mean : Tensor(),
                          update ? running_var : Tensor(), update ? num_batches_tracked : Tensor(), weight,
                          bias, true, options_.momentum, options_.eps);
}

// ---- NoisyBatchNorm
// ----------------------------------------------------------------------------------------------

NoisyBatchNorm::NoisyBatchNorm(int64_t num_features, NoiseOptions noise, BatchNormOptions options)
    : BatchNorm(num_features, options, "NoisyBatchNorm", {2, 3, 4}), noise_(noise), generator_(noise.seed) {
  check(!options.fused_relu, "NoisyBatchNorm: fused_relu is only available for BatchNorm1d/2d");
  check(noise.mean_min <= noise.mean_max, "NoisyBatchNorm: mean_min ", noise.mean_min, " > mean_max ",
        noise.mean_max);
  check(0 <= noise.std_min && noise.std_min <= noise.std_max,
        "NoisyBatchNorm: need 0 <= std_min <= std_max, got ", noise.std_min, " and ", noise.std_max);
}

std::string NoisyBatchNorm::describe() const {
  return cat_str("NoisyBatchNorm(", num_features_, ", eps=", options_.eps,
                 ", momentum=", momentum_str(options_.momentum), ", noise mean in [", noise_.mean_min, ", ",
                 noise_.mean_max, "), noise std in [", noise_.std_min, ", ", noise_.std_max,
                 "), seed=", noise_.seed, ")");
}

Tensor NoisyBatchNorm::forward(const Tensor& x) {
  Tensor y = BatchNorm::forward(x);
  if (!is_training()) return y;
  last_mean_ = noise_.mean_min + (noise_.mean_max - noise_.mean_min) * generator_.next_double();
  last_std_ = noise_.std_min + (noise_.std_max - noise_.std_min) * generator_.next_double();
  return add(y, randn(y.shape(), y.dtype(), &generator_, last_mean_, last_std_));
}

// ---- BatchRenorm
// --------------------------------------------------------------------------------------------------

RenormSchedule batch_renorm_paper_schedule(int64_t warmup_steps, int64_t rmax_full_step,
                                           int64_t dmax_full_step, double rmax_final, double dmax_final) {
  check(warmup_steps >= 0 && rmax_full_step > warmup_steps && dmax_full_step > warmup_steps,
        "batch_renorm_paper_schedule: need 0 <= warmup_steps < rmax_full_step and dmax_full_step, got ",
        warmup_steps, ", ", rmax_full_step, ", ", dmax_full_step);
  check(rmax_final >= 1 && dmax_final >= 0,
        "batch_renorm_paper_schedule: need rmax_final >= 1 and dmax_final >= 0, got ", rmax_final, " and ",
        dmax_final);
  // 0 before warmup_steps, rising linearly to 1 at full_step.
  auto ramp = [warmup_steps](int64_t step, int64_t full_step) {
    if (step <= warmup_steps) return 0.0;
    return std::min(1.0,
                    static_cast<double>(step - warmup_steps) / static_cast<double>(full_step - warmup_steps));
  };
  return {[=](int64_t step) { return 1.0 + (rmax_final - 1.0) * ramp(step, rmax_full_step); },
          [=](int64_t step) { return dmax_final * ramp(step, dmax_full_step); }};
}

BatchRenorm::BatchRenorm(int64_t num_features, BatchRenormOptions options)
    : num_features_(num_features), options_(std::move(options)) {
  check_positive("BatchRenorm", "num_features", num_features);
  check(options_.schedule.rmax && options_.schedule.dmax,
        "BatchRenorm: the schedule needs both rmax and dmax");
  check(options_.momentum >= 0 && options_.momentum <= 1, "BatchRenorm: momentum must be in [0, 1], got ",
        options_.momentum);
  check_dtype("BatchRenorm", options_.dtype);
  if (options_.affine) {
    weight = ones({num_features}, options_.dtype).requires_grad_();
    bias = zeros({num_features}, options_.dtype).requires_grad_();
  }
  running_mean = zeros({num_features}, options_.dtype);
  running_std = ones({num_features}, options_.dtype);
  num_batches_tracked = zeros({}, kInt64);
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
  register_buffer("running_mean", &running_mean);
  register_buffer("running_std", &running_std);
  register_buffer("num_batches_tracked", &num_batches_tracked);
}

std::string BatchRenorm::describe() const {
  return cat_str("BatchRenorm(", num_features_, ", eps=", options_.eps, ", momentum=", options_.momentum,
                 ", affine=", bool_str(options_.affine),
                 ", step=", static_cast<int64_t>(num_batches_tracked.item()), ", rmax=", current_rmax(),
                 ", dmax=", current_dmax(), ")");
}

void BatchRenorm::absorb_removed_bias(const Tensor& b) {
  subtract_from_running_mean("BatchRenorm", running_mean, b);
}

double BatchRenorm::current_rmax() const {
  return options_.schedule.rmax(static_cast<int64_t>(num_batches_tracked.item()));
}
double BatchRenorm::current_dmax() const {
  return options_.schedule.dmax(static_cast<int64_t>(num_batches_tracked.item()));
}

Tensor BatchRenorm::forward(const Tensor& x) {
  check(x.defined() && x.dim() >= 2 && x.dim() <= 4,
        "BatchRenorm: expected a 2-D, 3-D or 4-D input (N, C, ...), got ", x.defined() ? x.shape() : Shape{});
  check_channels("BatchRenorm", x, num_features_);
  if (!is_training())
    return batch_renorm(x, running_mean, running_std, weight, bias, false, 1.0, 0.0, options_.momentum,
                        options_.eps);
  const double rmax = current_rmax(), dmax = current_dmax();
  check(rmax >= 1 && dmax >= 0, "BatchRenorm: the schedule gave rmax ", rmax, " and dmax ", dmax, " at step ",
        static_cast<int64_t>(num_batches_tracked.item()), " (need rmax >= 1, dmax >= 0)");
  Tensor y = batch_renorm(x, running_mean, running_std, weight, bias, true, rmax, dmax, options_.momentum,
                          options_.eps);
  add_count(num_batches_tracked, 1);
  return y;
}

// ---- FrozenBatchNorm
// ----------------------------------------------------------------------------------------------

FrozenBatchNorm::FrozenBatchNorm(int64_t num_features, FrozenBatchNormOptions options)
    : num_features_(num_features), eps_(options.eps) {
  check_positive("FrozenBatchNorm", "num_features", num_features);
  check(options.eps >= 0, "FrozenBatchNorm: eps must be >= 0, got ", options.eps);
  check_dtype("FrozenBatchNorm", options.dtype);
  weight = ones({num_features}, options.dtype);
  bias = zeros({num_features}, options.dtype);
  running_mean = zeros({num_features}, options.dtype);
  running_var = ones({num_features}, options.dtype);
  register_buffer("weight", &weight);
  register_buffer("bias", &bias);
  register_buffer("running_mean", &running_mean);
  register_buffer("running_var", &running_var);
}

std::shared_ptr<FrozenBatchNorm> FrozenBatchNorm::from(const BatchNorm& bn) {
  check(bn.running_mean.defined(), "FrozenBatchNorm::from: ", bn.type_name(),
        " has no running statistics (track_running_stats=false)");
  auto frozen = std::make_shared<FrozenBatchNorm>(
      bn.num_features(), FrozenBatchNormOptions{.eps = bn.options().eps, .dtype = bn.running_mean.dtype()});
  NoGradGuard no_record;
  frozen->running_mean.copy_(bn.running_mean);
  frozen->running_var.copy_(bn.running_var);
  if (bn.weight.defined()) frozen->weight.copy_(bn.weight.detach());
  if (bn.bias.defined()) frozen->bias.copy_(bn.bias.detach());
  return frozen;
}

std::string FrozenBatchNorm::describe() const {
  return cat_str("FrozenBatchNorm(", num_features_, ", eps=", eps_, ")");
}

Tensor FrozenBatchNorm::forward(const Tensor& x) {
  check(x.defined() && x.dim() >= 2 && x.dim() <= 4,
        "FrozenBatchNorm: expected a 2-D, 3-D or 4-D input (N, C, ...), got ",
        x.defined() ? x.shape() : Shape{});
  check_channels("FrozenBatchNorm", x, num_features_);
  return batch_norm(x, running_mean, running_var, weight, bias, false, 0.0, eps_);
}

// ---- InstanceNorm
// ------------------------------------------------------------------------------------------------

InstanceNorm::InstanceNorm(int64_t num_features, InstanceNormOptions options, std::string type_name,
                           int64_t spatial_dims)
    : num_features_(num_features),
      options_(options),
      type_name_(std::move(type_name)),
      spatial_dims_(spatial_dims) {
  check_positive(type_name_.c_str(), "num_features", num_features);
  check(options.eps >= 0, type_name_, ": eps must be >= 0, got ", options.eps);
  check(options.momentum >= 0 && options.momentum <= 1, type_name_, ": momentum must be in [0, 1], got ",
        options.momentum);
  check_dtype(type_name_, options.dtype);
  if (options.affine) {
    weight = ones({num_features}, options.dtype).requires_grad_();
    bias = zeros({num_features}, options.dtype).requires_grad_();
  }
  if (options.track_running_stats) {
    running_mean = zeros({num_features}, options.dtype);
    running_var = ones({num_features}, options.dtype);
  }
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
  register_buffer("running_mean", &running_mean);
  register_buffer("running_var", &running_var);
}

std::string InstanceNorm::describe() const {
  return cat_str(type_name_, "(", num_features_, ", eps=", options_.eps, ", momentum=", options_.momentum,
                 ", affine=", bool_str(options_.affine),
                 ", track_running_stats=", bool_str(options_.track_running_stats), ")");
}

void InstanceNorm::absorb_removed_bias(const Tensor& b) {
  subtract_from_running_mean(type_name_, running_mean, b);
}

Tensor InstanceNorm::forward(const Tensor& x) {
  const int64_t batched = spatial_dims_ + 2;
  check(x.defined() && (x.dim() == batched || x.dim() == batched - 1), type_name_, ": expected a ", batched,
        "-D (batched) or ", batched - 1, "-D (unbatched) input, got ", x.defined() ? x.shape() : Shape{});
  if (x.dim() == batched - 1) return forward(x.unsqueeze(0)).squeeze(0);
  check_channels(type_name_, x, num_features_);
  const bool use_input_stats = is_training() || !options_.track_running_stats;
  return instance_norm(x, running_mean, running_var, weight, bias, use_input_stats, options_.momentum,
                       options_.eps);
}

InstanceNorm1d::InstanceNorm1d(int64_t num_features, InstanceNormOptions options)
    : InstanceNorm(num_features, options, "InstanceNorm1d", 1) {}
InstanceNorm2d::InstanceNorm2d(int64_t num_features, InstanceNormOptions options)
    : InstanceNorm(num_features, options, "InstanceNorm2d", 2) {}

// ---- GroupNorm
// ------------------------------------------------------------------------------------------------------

GroupNorm::GroupNorm(int64_t num_groups, int64_t num_channels, GroupNormOptions options)
    : num_groups_(num_groups), num_channels_(num_channels), options_(options) {
  check_positive("GroupNorm", "num_groups", num_groups);
  check_positive("GroupNorm", "num_channels", num_channels);
  check(num_channels % num_groups == 0, "GroupNorm: num_groups ", num_groups,
        " does not divide num_channels ", num_channels);
  check(options.eps >= 0, "GroupNorm: eps must be >= 0, got ", options.eps);
  check_dtype("GroupNorm", options.dtype);
  if (options.affine) {
    weight = ones({num_channels}, options.dtype).requires_grad_();
    bias = zeros({num_channels}, options.dtype).requires_grad_();
  }
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
}

std::string GroupNorm::describe() const {
  return cat_str("GroupNorm(", num_groups_, ", ", num_channels_, ", eps=", options_.eps,
                 ", affine=", bool_str(options_.affine), ")");
}

Tensor GroupNorm::forward(const Tensor& x) {
  check(x.defined() && x.dim() >= 2, "GroupNorm: expected an input of shape (N, C, ...), got ",
        x.defined() ? x.shape() : Shape{});
  check_channels("GroupNorm", x, num_channels_);
  return group_norm(x, num_groups_, weight, bias, options_.eps);
}

// ---- LayerNorm
// ---------------------------------------------------------------------------------------------------

LayerNorm::LayerNorm(Shape normalized_shape, LayerNormOptions options)
    : normalized_shape_(std::move(normalized_shape)), options_(options) {
  check(!normalized_shape_.empty() && numel_of(normalized_shape_) > 0,
        "LayerNorm: normalized_shape must be non-empty with positive sizes, got ", normalized_shape_);
  check(options.eps >= 0, "LayerNorm: eps must be >= 0, got ", options.eps);
  check_dtype("LayerNorm", options.dtype);
  if (options.elementwise_affine) {
    weight = ones(normalized_shape_, options.dtype).requires_grad_();
    if (options.bias) bias = zeros(normalized_shape_, options.dtype).requires_grad_();
  }
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
}

std::string LayerNorm::describe() const {
  return cat_str("LayerNorm(", normalized_shape_, ", eps=", options_.eps,
                 ", elementwise_affine=", bool_str(options_.elementwise_affine),
                 ", bias=", bool_str(options_.bias), ")");
}

Tensor LayerNorm::forward(const Tensor& x) {
  return layer_norm(x, normalized_shape_, weight, bias, options_.eps);
}

// ---- RMSNorm
// -----------------------------------------------------------------------------------------------------

RMSNorm::RMSNorm(Shape normalized_shape, RMSNormOptions options)
    : normalized_shape_(std::move(normalized_shape)), options_(options) {
  check(!normalized_shape_.empty() && numel_of(normalized_shape_) > 0,
        "RMSNorm: normalized_shape must be non-empty with positive sizes, got ", normalized_shape_);
  check(!options.eps || *options.eps >= 0, "RMSNorm: eps must be >= 0, got ", options.eps.value_or(0));
  check_dtype("RMSNorm", options.dtype);
  if (options.elementwise_affine) weight = ones(normalized_shape_, options.dtype).requires_grad_();
  register_parameter("weight", &weight);
}

std::string RMSNorm::describe() const {
  return cat_str("RMSNorm(", normalized_shape_,
                 ", eps=", options_.eps ? cat_str(*options_.eps) : std::string("None"),
                 ", elementwise_affine=", bool_str(options_.elementwise_affine), ")");
}

Tensor RMSNorm::forward(const Tensor& x) { return rms_norm(x, normalized_shape_, weight, options_.eps); }

}  // namespace nl
