// Learning-rate schedules. A schedule is a pure function of the step count t (0 for the first optimizer
// step): it returns a factor, and each parameter group steps with lr = group lr · factor(t). Being a pure
// function, a schedule has no state of its own: restoring the optimizer's step count (checkpoints) restores
// the schedule's position.
//
//   constant            1
//   step(n, γ)          γ^⌊t/n⌋
//   multi_step(M, γ)    γ^(number of milestones m in M with m <= t)
//   cosine(T, f_min)    f_min + (1 − f_min)·(1 + cos(π·min(t, T)/T))/2      (stays at f_min after T)
//   linear_warmup(W, f0) f0 + (1 − f0)·min(t, W)/W                            (PyTorch's LinearLR)
//   sequence([s0, s1, ...], [m1, ...])   s0(t) before m1, then s1(t − m1) before m2, ...  (SequentialLR)
// The factors match PyTorch's StepLR, MultiStepLR, CosineAnnealingLR (closed form), LinearLR and
// SequentialLR. Warm-up then cosine: sequence({linear_warmup(W, 0.1), cosine(T − W)}, {W}).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace nl {

class LRSchedule {
 public:
  virtual ~LRSchedule() = default;
  virtual double factor(int64_t step) const = 0;
  virtual std::string describe() const = 0;
};

using SchedulePtr = std::shared_ptr<const LRSchedule>;

SchedulePtr constant_schedule();
SchedulePtr step_schedule(int64_t step_size, double gamma = 0.1);
SchedulePtr multi_step_schedule(std::vector<int64_t> milestones, double gamma = 0.1);
SchedulePtr cosine_schedule(int64_t total_steps, double min_factor = 0.0);
SchedulePtr linear_warmup(int64_t warmup_steps, double start_factor = 1.0 / 3.0);
// schedules.size() == milestones.size() + 1; milestones strictly increasing and positive.
SchedulePtr sequence(std::vector<SchedulePtr> schedules, std::vector<int64_t> milestones);

}  // namespace nl
