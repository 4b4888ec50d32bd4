#include "optim/schedule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace nl {
namespace {

class Constant : public LRSchedule {
 public:
  double factor(int64_t) const override { return 1.0; }
  std::string describe() const override { return "constant"; }
};

class Step : public LRSchedule {
 public:
  Step(int64_t n, double gamma) : n_(n), gamma_(gamma) {}
  double factor(int64_t t) const override {
    return std::pow(gamma_, static_cast<double>(std::max<int64_t>(t, 0) / n_));
  }
  std::string describe() const override { return cat_str("step(", n_, ", gamma=", gamma_, ")"); }

 private:
  int64_t n_;
  double gamma_;
};

class MultiStep : public LRSchedule {
 public:
  MultiStep(std::vector<int64_t> m, double gamma) : milestones_(std::move(m)), gamma_(gamma) {}
  double factor(int64_t t) const override {
    const auto passed = std::upper_bound(milestones_.begin(), milestones_.end(), t) - milestones_.begin();
    return std::pow(gamma_, static_cast<double>(passed));
  }
  std::string describe() const override {
    return cat_str("multi_step(", milestones_, ", gamma=", gamma_, ")");
  }

 private:
  std::vector<int64_t> milestones_;
  double gamma_;
};

class Cosine : public LRSchedule {
 public:
  Cosine(int64_t total, double min_factor) : total_(total), min_(min_factor) {}
  double factor(int64_t t) const override {
    const double progress =
        static_cast<double>(std::clamp<int64_t>(t, 0, total_)) / static_cast<double>(total_);
    return min_ + (1.0 - min_) * 0.5 * (1.0 + std::cos(M_PI * progress));
  }
  std::string describe() const override { return cat_str("cosine(", total_, ", min_factor=", min_, ")"); }

 private:
  int64_t total_;
  double min_;
};

class LinearWarmup : public LRSchedule {
 public:
  LinearWarmup(int64_t n, double start) : n_(n), start_(start) {}
  double factor(int64_t t) const override {
    return start_ +
           (1.0 - start_) * static_cast<double>(std::clamp<int64_t>(t, 0, n_)) / static_cast<double>(n_);
  }
  std::string describe() const override {
    return cat_str("linear_warmup(", n_, ", start_factor=", start_, ")");
  }

 private:
  int64_t n_;
  double start_;
};

class Sequence : public LRSchedule {
 public:
  Sequence(std::vector<SchedulePtr> s, std::vector<int64_t> m)
      : schedules_(std::move(s)), milestones_(std::move(m)) {}
  double factor(int64_t t) const override {
    const auto k = std::upper_bound(milestones_.begin(), milestones_.end(), t) - milestones_.begin();
    const int64_t start = k == 0 ? 0 : milestones_[static_cast<size_t>(k - 1)];
    return schedules_[static_cast<size_t>(k)]->factor(t - start);
  }
  std::string describe() const override {
    std::string s = "sequence(";
    for (size_t i = 0; i < schedules_.size(); ++i)
      s +=
          (i ? cat_str(", from step ", milestones_[i - 1], ": ") : std::string()) + schedules_[i]->describe();
    return s + ")";
  }

 private:
  std::vector<SchedulePtr> schedules_;
  std::vector<int64_t> milestones_;
};

}  // namespace

SchedulePtr constant_schedule() { return std::make_shared<Constant>(); }

SchedulePtr step_schedule(int64_t step_size, double gamma) {
  check(step_size >= 1, "step_schedule: step_size must be >= 1, got ", step_size);
  check(gamma > 0, "step_schedule: gamma must be > 0, got ", gamma);
  return std::make_shared<Step>(step_size, gamma);
}

SchedulePtr multi_step_schedule(std::vector<int64_t> milestones, double gamma) {
  check(gamma > 0, "multi_step_schedule: gamma must be > 0, got ", gamma);
  for (size_t i = 1; i < milestones.size(); ++i)
    check(milestones[i] > milestones[i - 1], "multi_step_schedule: milestones must increase strictly, got ",
          milestones);
  return std::make_shared<MultiStep>(std::move(milestones), gamma);
}

SchedulePtr cosine_schedule(int64_t total_steps, double min_factor) {
  check(total_steps >= 1, "cosine_schedule: total_steps must be >= 1, got ", total_steps);
  check(min_factor >= 0 && min_factor <= 1, "cosine_schedule: min_factor must be in [0, 1], got ",
        min_factor);
  return std::make_shared<Cosine>(total_steps, min_factor);
}

SchedulePtr linear_warmup(int64_t warmup_steps, double start_factor) {
  check(warmup_steps >= 1, "linear_warmup: warmup_steps must be >= 1, got ", warmup_steps);
  check(start_factor >= 0 && start_factor <= 1, "linear_warmup: start_factor must be in [0, 1], got ",
        start_factor);
  return std::make_shared<LinearWarmup>(warmup_steps, start_factor);
}

SchedulePtr sequence(std::vector<SchedulePtr> schedules, std::vector<int64_t> milestones) {
  check(!schedules.empty() && schedules.size() == milestones.size() + 1, "sequence: got ", schedules.size(),
        " schedules and ", milestones.size(), " milestones; expected one more schedule than milestones");
  for (size_t i = 0; i < schedules.size(); ++i)
    check(schedules[i] != nullptr, "sequence: schedule ", i, " is null");
  for (size_t i = 0; i < milestones.size(); ++i)
    check(milestones[i] > (i ? milestones[i - 1] : 0),
          "sequence: milestones must be positive and increase strictly, got ", milestones);
  return std::make_shared<Sequence>(std::move(schedules), std::move(milestones));
}

}  // namespace nl
