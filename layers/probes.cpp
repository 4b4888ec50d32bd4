// ActivationProbe, parameter_stats, WeightAngleTracker and compare_running_to_population; the formulas and
// the conventions are in layers/probes.h. Everything reads tensors as float64 from plain loops over the
// (N, C, S) layout: S = 1 for (N, C), L for (N, C, L), H·W for (N, C, H, W).
#include "layers/probes.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "autograd/engine.h"
#include "core/error.h"
#include "layers/normalization.h"

namespace nl {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// Below this many elements a loop over channels runs on one thread (thread start-up would cost more).
constexpr int64_t kParallelElements = 32768;

// The tensor's values on the CPU, contiguous, detached (a view of the same data when it already is).
Tensor cpu_contiguous(const Tensor& t) {
  Tensor x = t.detach();
  if (x.device() != Device::CPU) x = x.to(Device::CPU);
  return x.contiguous();
}

// Per channel of x viewed as (N, C, S): the count m = N·S, the mean μ_c and M2_c = Σ (x − μ_c)², in float64,
// in two passes (the second subtracts the mean first, so no cancellation).
struct ChannelMoments {
  int64_t count = 0;
  std::vector<double> mean, m2;  // (C)
};

ChannelMoments channel_moments(const Tensor& input, const char* op) {
  const Tensor x = cpu_contiguous(input);
  const int64_t N = x.size(0), C = x.size(1);
  const int64_t S = N * C > 0 ? x.numel() / (N * C) : 0;
  ChannelMoments out;
  out.count = N * S;
  out.mean.assign(static_cast<size_t>(C), kNaN);
  out.m2.assign(static_cast<size_t>(C), kNaN);
  if (out.count == 0) return out;
  visit_floating(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* data = x.data<T>();
#pragma omp parallel for schedule(static) if (x.numel() > kParallelElements)
    for (int64_t c = 0; c < C; ++c) {
      double sum = 0;
      for (int64_t n = 0; n < N; ++n) {
        const T* row = data + (n * C + c) * S;
#pragma omp simd reduction(+ : sum)
        for (int64_t s = 0; s < S; ++s) sum += static_cast<double>(row[s]);
      }
      const double mean = sum / static_cast<double>(N * S);
      double m2 = 0;
      for (int64_t n = 0; n < N; ++n) {
        const T* row = data + (n * C + c) * S;
#pragma omp simd reduction(+ : m2)
        for (int64_t s = 0; s < S; ++s) {
          const double d = static_cast<double>(row[s]) - mean;
          m2 += d * d;
        }
      }
      out.mean[c] = mean;
      out.m2[c] = m2;
    }
  });
  return out;
}

// The values of channel c of x viewed as (N, C, S), as float64, into `out` (resized to N·S).
void gather_channel(const Tensor& x, int64_t c, std::vector<double>& out) {
  const int64_t N = x.size(0), C = x.size(1), S = x.numel() / (N * C);
  out.resize(static_cast<size_t>(N * S));
  visit_floating(x.dtype(), "ActivationProbe", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* data = x.data<T>();
    for (int64_t n = 0; n < N; ++n)
      for (int64_t s = 0; s < S; ++s) out[n * S + s] = static_cast<double>(data[(n * C + c) * S + s]);
  });
}

void check_percentiles(const std::vector<double>& q, const char* op) {
  for (size_t k = 0; k < q.size(); ++k)
    check(q[k] >= 0 && q[k] <= 100, op, ": percentile ", k, " must be in [0, 100], got ", q[k]);
}

// numpy's _lerp: a + (b − a)·t, computed from the nearer end so that t = 1 gives b exactly.
double lerp(double a, double b, double t) {
  const double diff = b - a;
  return t < 0.5 ? a + diff * t : b - diff * (1 - t);
}

// percentile() on values it may reorder. The order statistics are found with nth_element, smallest first:
// after nth_element at k, positions > k hold exactly the larger order statistics, so the search for the next
// one starts at k + 1.
std::vector<double> percentile_in_place(std::vector<double>& values, const std::vector<double>& q) {
  const int64_t m = static_cast<int64_t>(values.size());
  if (std::any_of(values.begin(), values.end(), [](double v) { return std::isnan(v); }))
    return std::vector<double>(q.size(), kNaN);
  // Position h = (m − 1)·(q/100), as numpy computes it (q/100 first), between order statistics lo and lo+1.
  std::vector<double> h(q.size());
  std::vector<int64_t> needed;
  for (size_t k = 0; k < q.size(); ++k) {
    h[k] = static_cast<double>(m - 1) * (q[k] / 100.0);
    const int64_t lo = static_cast<int64_t>(std::floor(h[k]));
    needed.push_back(lo);
    needed.push_back(std::min(lo + 1, m - 1));
  }
  std::sort(needed.begin(), needed.end());
  needed.erase(std::unique(needed.begin(), needed.end()), needed.end());
  int64_t start = 0;
  for (const int64_t k : needed) {
    std::nth_element(values.begin() + start, values.begin() + k, values.end());
    start = k + 1;
  }
  std::vector<double> out(q.size());
  for (size_t k = 0; k < q.size(); ++k) {
    const int64_t lo = static_cast<int64_t>(std::floor(h[k]));
    const int64_t hi = std::min(lo + 1, m - 1);
    out[k] = lerp(values[lo], values[hi], h[k] - static_cast<double>(lo));
  }
  return out;
}

double sum_of_squares(const Tensor& t, const char* op) {
  const Tensor x = cpu_contiguous(t);
  return visit_floating(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* data = x.data<T>();
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < x.numel(); ++i) s += static_cast<double>(data[i]) * static_cast<double>(data[i]);
    return s;
  });
}

// max over the values, propagating NaN (std::max would drop it depending on the order).
double nan_max(const std::vector<double>& v) {
  double m = 0;
  for (const double d : v)
    if (d > m || std::isnan(d)) m = d;
  return m;
}

}  // namespace

// ---- percentiles --------------------------------------------------------------------------------------

std::vector<double> percentile(std::vector<double> values, const std::vector<double>& q) {
  check(!values.empty(), "percentile: values is empty (a percentile needs at least one value)");
  check_percentiles(q, "percentile");
  return percentile_in_place(values, q);
}

// ---- ActivationProbe ----------------------------------------------------------------------------------

struct ActivationProbe::State {
  ActivationProbeOptions options;
  int64_t calls = 0;
  std::vector<ActivationRecord> records;
  std::vector<double> channel_values;  // reused from call to call

  void observe(const Module& module, const Tensor& output) {
    const bool training = module.is_training();
    if (options.every > 0 && !training) return;
    const int64_t step = calls++;
    if (options.every > 0 && step % options.every != 0) return;

    NoGradGuard no_record;
    check(output.defined() && output.dim() >= 2, "ActivationProbe: the output of ", module.describe(),
          " has shape ", output.defined() ? output.shape() : Shape{},
          ", expected (N, C), (N, C, L) or (N, C, H, W)");
    check(options.channel < output.size(1), "ActivationProbe: channel ", options.channel,
          " is out of range for the output of ", module.describe(), ", of shape ", output.shape(),
          " (channels are dim 1)");
    const Tensor y = cpu_contiguous(output);
    const ChannelMoments moments = channel_moments(y, "ActivationProbe");

    ActivationRecord record;
    record.step = step;
    record.training = training;
    record.count = moments.count;
    record.mean = moments.mean;
    record.var.resize(moments.m2.size());
    for (size_t c = 0; c < moments.m2.size(); ++c)
      record.var[c] = moments.m2[c] / static_cast<double>(moments.count);
    if (moments.count == 0) {
      record.percentiles.assign(options.percentiles.size(), kNaN);
    } else {
      gather_channel(y, options.channel, channel_values);
      record.percentiles = percentile_in_place(channel_values, options.percentiles);
    }
    records.push_back(std::move(record));
  }
};

ActivationProbe::ActivationProbe(Module& module, ActivationProbeOptions options)
    : state_(std::make_shared<State>()) {
  check(options.every >= 0, "ActivationProbe: every must be >= 0 (0 records every call), got ",
        options.every);
  check(options.channel >= 0, "ActivationProbe: channel must be >= 0, got ", options.channel);
  check_percentiles(options.percentiles, "ActivationProbe");
  state_->options = std::move(options);
  // The hook shares the state, so it stays valid whatever happens to this object; detach() takes it off.
  handle_ = module.register_forward_hook(
      [state = state_](Module& m, const Tensor&, const Tensor& output) { state->observe(m, output); });
  attached_ = true;
}

ActivationProbe::~ActivationProbe() { detach(); }

ActivationProbe::ActivationProbe(ActivationProbe&& other) noexcept
    : state_(std::move(other.state_)),
      handle_(std::move(other.handle_)),
      attached_(std::exchange(other.attached_, false)) {}

ActivationProbe& ActivationProbe::operator=(ActivationProbe&& other) noexcept {
  if (this != &other) {
    detach();
    state_ = std::move(other.state_);
    handle_ = std::move(other.handle_);
    attached_ = std::exchange(other.attached_, false);
  }
  return *this;
}

void ActivationProbe::detach() {
  if (!attached_) return;
  handle_.remove();
  attached_ = false;
}

const std::vector<ActivationRecord>& ActivationProbe::records() const { return state_->records; }
int64_t ActivationProbe::calls_counted() const { return state_->calls; }
void ActivationProbe::clear() { state_->records.clear(); }
const ActivationProbeOptions& ActivationProbe::options() const { return state_->options; }

// ---- parameter statistics -----------------------------------------------------------------------------

std::vector<ParameterStats> parameter_stats(const Module& model, double lr) {
  check(std::isfinite(lr) && lr >= 0, "parameter_stats: lr must be a finite number >= 0, got ", lr);
  NoGradGuard no_record;
  std::vector<ParameterStats> out;
  for (const auto& [name, w] : model.named_parameters()) {
    ParameterStats s;
    s.name = name;
    const double w2 = sum_of_squares(w, "parameter_stats");
    s.weight_norm = std::sqrt(w2);
    const Tensor g = w.grad();
    s.grad_norm = g.defined() ? std::sqrt(sum_of_squares(g, "parameter_stats")) : 0.0;
    s.effective_lr = lr / w2;  // +inf for a zero weight
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<WeightAngle> WeightAngleTracker::record() {
  NoGradGuard no_record;
  std::vector<WeightAngle> angles;
  std::vector<Kept> now;
  const auto params = model_->named_parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    const auto& [name, w] = params[i];
    Kept current{name, w.shape(), cpu_contiguous(w).to_vector<double>()};
    // The same position holds the same name unless the model changed; search otherwise.
    const Kept* before = nullptr;
    if (i < previous_.size() && previous_[i].name == name)
      before = &previous_[i];
    else
      for (const Kept& k : previous_)
        if (k.name == name) before = &k;

    double angle = kNaN;
    if (before != nullptr && before->shape == current.shape) {
      const std::vector<double>& a = before->values;
      const std::vector<double>& b = current.values;
      double aa = 0, bb = 0;
      for (size_t j = 0; j < a.size(); ++j) aa += a[j] * a[j], bb += b[j] * b[j];
      const double na = std::sqrt(aa), nb = std::sqrt(bb);
      if (na > 0 && nb > 0 && std::isfinite(na) && std::isfinite(nb)) {
        // θ = 2·atan2(‖u − v‖, ‖u + v‖) for the unit vectors u, v (Kahan): accurate at every angle.
        double diff2 = 0, sum2 = 0;
        for (size_t j = 0; j < a.size(); ++j) {
          const double u = a[j] / na, v = b[j] / nb;
          diff2 += (u - v) * (u - v);
          sum2 += (u + v) * (u + v);
        }
        angle = 2 * std::atan2(std::sqrt(diff2), std::sqrt(sum2));
      }
    }
    angles.push_back({name, angle});
    now.push_back(std::move(current));
  }
  previous_ = std::move(now);
  return angles;
}

// ---- running versus population statistics -------------------------------------------------------------

namespace {

// One compared layer and its running totals (Chan et al.'s parallel update, see probes.h).
struct PopulationAccumulator {
  std::string name;
  BatchNorm* bn;
  int64_t count = 0;
  std::vector<double> mean, m2;  // (C)

  void add(const Tensor& x) {
    const int64_t C = bn->num_features();
    check(x.defined() && x.dim() >= 2 && x.size(1) == C, "compare_running_to_population: '", name, "' (",
          bn->describe(), ") got an input of shape ", x.defined() ? x.shape() : Shape{}, ", expected (N, ", C,
          ", ...)");
    const ChannelMoments batch = channel_moments(x, "compare_running_to_population");
    if (batch.count == 0) return;
    const double m_a = static_cast<double>(count), m_b = static_cast<double>(batch.count);
    const double m_ab = m_a + m_b;
    for (int64_t c = 0; c < C; ++c) {
      const double delta = batch.mean[c] - mean[c];
      mean[c] += delta * (m_b / m_ab);
      m2[c] += batch.m2[c] + delta * delta * (m_a * m_b / m_ab);
    }
    count += batch.count;
  }
};

// Puts every module's training flag back and takes the hooks off, also when the pass throws.
struct RestoreAfterPass {
  std::vector<std::pair<Module*, bool>> modes;
  std::vector<HookHandle> hooks;
  ~RestoreAfterPass() {
    for (HookHandle& h : hooks) h.remove();
    // named_modules lists parents before children, so each module's own call comes last for it.
    for (auto& [m, was_training] : modes) m->train(was_training);
  }
};

}  // namespace

std::vector<PopulationStatsComparison> compare_running_to_population(
    Module& model, const std::function<Tensor()>& next_batch, int64_t num_batches) {
  check(num_batches >= 1, "compare_running_to_population: num_batches must be >= 1, got ", num_batches);
  check(static_cast<bool>(next_batch), "compare_running_to_population: next_batch is empty");

  std::vector<PopulationAccumulator> layers;
  for (auto& [name, m] : model.named_modules())
    if (auto* bn = dynamic_cast<BatchNorm*>(m); bn != nullptr && bn->running_mean.defined()) {
      const auto C = static_cast<size_t>(bn->num_features());
      layers.push_back({name, bn, 0, std::vector<double>(C, 0.0), std::vector<double>(C, 0.0)});
    }
  if (layers.empty()) return {};

  int64_t used = 0;
  {
    RestoreAfterPass restore;
    for (auto& [name, m] : model.named_modules()) restore.modes.emplace_back(m, m->is_training());
    // `layers` is not resized from here on, so the hooks may hold pointers into it.
    for (PopulationAccumulator& layer : layers)
      restore.hooks.push_back(layer.bn->register_forward_pre_hook(
          [acc = &layer](Module&, const Tensor& input) { acc->add(input); }));
    model.eval();
    NoGradGuard no_record;
    for (; used < num_batches; ++used) {
      const Tensor x = next_batch();
      if (!x.defined()) break;
      model(x);
    }
  }
  check(used >= 1, "compare_running_to_population: next_batch returned no batch");

  std::vector<PopulationStatsComparison> out;
  for (const PopulationAccumulator& layer : layers) {
    PopulationStatsComparison r;
    r.name = layer.name;
    r.type = layer.bn->type_name();
    r.num_batches = used;
    r.count = layer.count;
    r.population_mean = layer.mean;
    r.population_var.resize(layer.m2.size());
    for (size_t c = 0; c < layer.m2.size(); ++c)
      r.population_var[c] = layer.count > 1 ? layer.m2[c] / static_cast<double>(layer.count - 1) : kNaN;
    if (layer.count == 0) r.population_mean.assign(layer.mean.size(), kNaN);
    r.running_mean = cpu_contiguous(layer.bn->running_mean).to_vector<double>();
    r.running_var = cpu_contiguous(layer.bn->running_var).to_vector<double>();
    std::vector<double> mean_diff(r.running_mean.size()), var_diff(r.running_var.size());
    for (size_t c = 0; c < mean_diff.size(); ++c) {
      mean_diff[c] = std::abs(r.running_mean[c] - r.population_mean[c]);
      var_diff[c] = std::abs(r.running_var[c] / r.population_var[c] - 1);
    }
    r.max_abs_mean_diff = nan_max(mean_diff);
    r.max_rel_var_diff = nan_max(var_diff);
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<PopulationStatsComparison> compare_running_to_population(Module& model,
                                                                     const std::vector<Tensor>& batches) {
  size_t next = 0;
  return compare_running_to_population(
      model, [&]() { return next < batches.size() ? batches[next++] : Tensor(); },
      static_cast<int64_t>(std::max<size_t>(batches.size(), 1)));
}

}  // namespace nl
