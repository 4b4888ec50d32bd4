// bn-vs-none: BatchNorm lets a network train faster and at higher learning rates.
//
// Claim (Ioffe & Szegedy 2015, §4.2): with BN the same network reaches a given accuracy in fewer steps and
// tolerates much higher learning rates, where the network without normalization diverges.
//
// Protocol. The CNN and the MLP (784-512-512-10), each with BatchNorm and without normalization (biases
// everywhere then), at learning rates {0.01, 0.03, 0.1, 0.3, 1, 3}: 1 epoch, batch 64, constant lr,
// momentum 0.9, weight decay 5e-4 on every parameter. Recorded: the loss curve, the final test accuracy, and
// the first step at which the training accuracy (a moving average over 50 steps) reaches 80%. A NaN or
// infinite loss ends that run; it is reported as diverged.
#include <cmath>

#include "studies.h"

namespace lab {

using namespace nl;

StudyResult run_bn_vs_none(const LabOptions& o) {
  StudyResult r;
  r.study = "bn-vs-none";
  r.claim =
      "BatchNorm trains faster and tolerates higher learning rates than the same network without "
      "normalization.";
  r.source = "Ioffe & Szegedy 2015, §4.2 (\"accelerating BN networks\": higher learning rates, fewer steps)";
  const LabData data = load_data(o);
  const std::vector<uint64_t> seeds = seeds_for(o, 1);
  const std::vector<double> lrs =
      o.quick ? std::vector<double>{0.1, 3} : std::vector<double>{0.01, 0.03, 0.1, 0.3, 1, 3};
  const TrainConfig base{.batch_size = 64, .epochs = o.quick ? 2 : 1};
  const double target = 0.8;
  const size_t window = o.quick ? 10 : 50;
  r.settings = {{"data", data.description},
                {"models", {"cnn", "mlp"}},
                {"learning_rates", lrs},
                {"batch_size", base.batch_size},
                {"epochs", base.epochs},
                {"momentum", base.momentum},
                {"weight_decay", base.weight_decay},
                {"target_train_accuracy", target},
                {"moving_average_steps", window},
                {"seeds", seeds}};

  struct Net {
    std::string model, norm, label;
  };
  const std::vector<Net> nets = {{"cnn", "batch", "CNN + BN"},
                                 {"cnn", "none", "CNN"},
                                 {"mlp", "batch", "MLP + BN"},
                                 {"mlp", "none", "MLP"}};
  std::vector<Line> accuracy_lines, steps_lines;
  std::vector<Series> curves;
  std::vector<std::vector<int>> diverged(nets.size(), std::vector<int>(lrs.size(), 0));
  const int64_t per_run = base.epochs * steps_per_epoch(data, base.batch_size);
  Progress progress(r.study, per_run * static_cast<int64_t>(nets.size() * lrs.size() * seeds.size()),
                    o.show_progress);
  for (size_t n = 0; n < nets.size(); ++n) {
    Line acc{nets[n].label, {lrs.begin(), lrs.end()}, {}}, reach{nets[n].label, {lrs.begin(), lrs.end()}, {}};
    Series curve{"loss-" + nets[n].model + (nets[n].norm == "batch" ? "-bn" : ""),
                 "Training loss, " + nets[n].label,
                 "step",
                 "training loss (moving average)",
                 false,
                 true,
                 {},
                 {},
                 ""};
    for (uint64_t seed : seeds) {
      std::vector<double> acc_row, reach_row;
      for (size_t i = 0; i < lrs.size(); ++i) {
        auto model = lab_model(nets[n].model, nets[n].norm, seed);
        TrainConfig c = base;
        c.lr = lrs[i];
        c.seed = seed;
        const TrainRecord rec = train_steps(*model, data, c, nullptr, &progress);
        diverged[n][i] += rec.diverged;
        acc_row.push_back(rec.diverged ? NAN : evaluate(*model, data.test_x, data.test_y, 1000).accuracy);
        const std::vector<double> smooth_acc = moving_average(rec.accuracy, window);
        double first = NAN;
        for (size_t s = 0; s < smooth_acc.size() && !rec.diverged; ++s)
          if (s + 1 >= window && smooth_acc[s] >= target) {
            first = static_cast<double>(s + 1);
            break;
          }
        reach_row.push_back(first);
        if (seed == seeds.front()) {
          // The loss curve, sampled every few steps (a diverged run shows up to its last finite loss).
          Line l{"lr " + format_number(lrs[i]), {}, {{}}};
          const std::vector<double> smooth = moving_average(rec.loss, window);
          const size_t every = std::max<size_t>(1, smooth.size() / 100);
          for (size_t s = 0; s < smooth.size(); s += every) {
            l.x.push_back(static_cast<double>(s + 1));
            l.y[0].push_back(std::isfinite(smooth[s]) ? smooth[s] : NAN);
          }
          curve.lines.push_back(l);
        }
      }
      acc.y.push_back(acc_row);
      reach.y.push_back(reach_row);
    }
    curve.caption = "Diverged runs stop at their last finite loss.";
    accuracy_lines.push_back(acc);
    steps_lines.push_back(reach);
    curves.push_back(curve);
  }
  r.series.push_back({"accuracy-vs-lr",
                      "Final test accuracy against the learning rate",
                      "learning rate",
                      "test accuracy",
                      true,
                      false,
                      {},
                      accuracy_lines,
                      "Missing points are diverged runs (the loss became NaN or infinite)."});
  r.series.push_back({"steps-to-target",
                      "Steps until the training accuracy reaches 80%",
                      "learning rate",
                      "steps (moving average over the window)",
                      true,
                      false,
                      {},
                      steps_lines,
                      "Missing points never reached 80% in the run (or diverged)."});
  for (const Series& s : curves) r.series.push_back(s);

  // The best accuracy of each net over the learning rates; the largest lr at which it still learns (the loss
  // stays finite and the test accuracy reaches 50%: a net whose ReLUs all died sits at chance, 10%, with a
  // finite loss, which is a failure too); and the steps to the target at lr 0.1.
  const double learns = 0.5;
  auto mean_accuracy = [&](size_t n, size_t i) {
    std::vector<double> v;
    for (const auto& row : accuracy_lines[n].y) v.push_back(row[i]);
    return mean_of(v);
  };
  auto best = [&](size_t n) {
    double b = 0;
    for (size_t i = 0; i < lrs.size(); ++i)
      if (std::isfinite(mean_accuracy(n, i))) b = std::max(b, mean_accuracy(n, i));
    return b;
  };
  auto largest_that_learns = [&](size_t n) {
    double lr = 0;
    for (size_t i = 0; i < lrs.size(); ++i)
      if (diverged[n][i] == 0 && mean_accuracy(n, i) >= learns) lr = lrs[i];
    return lr;
  };
  auto steps_at = [&](size_t n, double lr) {
    const size_t i = std::find(lrs.begin(), lrs.end(), lr) - lrs.begin();
    std::vector<double> v;
    for (const auto& row : steps_lines[n].y) v.push_back(i < row.size() ? row[i] : NAN);
    return mean_of(v);
  };
  int total_diverged = 0;
  for (const auto& row : diverged)
    for (int d : row) total_diverged += d;
  for (size_t n = 0; n < nets.size(); ++n) {
    r.report(nets[n].label + ": best test accuracy", best(n));
    r.report(nets[n].label + ": largest learning rate that learns (≥ 50%)", largest_that_learns(n));
    r.report(nets[n].label + ": steps to 80% training accuracy at lr 0.1", steps_at(n, 0.1));
  }
  r.report("diverged runs (NaN or infinite loss)", total_diverged);
  for (size_t n = 0; n < nets.size(); n += 2) {
    const std::string model = n == 0 ? "CNN" : "MLP";
    r.check(model + ": largest lr that learns, with BN", largest_that_learns(n),
            "> without (" + format_number(largest_that_learns(n + 1)) + ")",
            largest_that_learns(n) > largest_that_learns(n + 1));
    r.check(model + ": best accuracy with BN", best(n), "≥ without (" + format_number(best(n + 1)) + ")",
            best(n) >= best(n + 1));
  }
  r.supported = r.all_checks_pass();
  r.verdict = std::string(r.supported ? "With" : "Not everywhere: with") +
              " BatchNorm the CNN learns up to lr " + format_number(largest_that_learns(0)) + " (" +
              format_number(largest_that_learns(1)) + " without) and the MLP up to " +
              format_number(largest_that_learns(2)) + " (" + format_number(largest_that_learns(3)) +
              " without); at lr 0.1 the CNN reaches 80% training accuracy in " +
              format_number(steps_at(0, 0.1)) + " steps with BN and " + format_number(steps_at(1, 0.1)) +
              " without, the MLP in " + format_number(steps_at(2, 0.1)) + " and " +
              format_number(steps_at(3, 0.1)) + ".";
  return r;
}

}  // namespace lab
