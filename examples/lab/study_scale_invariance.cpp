// scale-invariance: the weights that feed BatchNorm are scale-invariant, and their effective learning rate
// is η/‖W‖².
//
// Claim (Ioffe & Szegedy 2015, §3.3; van Laarhoven 2017; Wan et al. 2021): BN(cWx) = BN(Wx), so the loss does
// not change when W is scaled by c; its gradient scales by 1/c and is orthogonal to W. Plain SGD then only
// grows ‖W‖ (each step adds an orthogonal vector), so the effective step η/‖W‖² falls; with weight decay λ
// and momentum μ the angle W turns through per step settles at √(2ηλ/(1 + μ)).
//
// Protocol. The BN CNN; W = conv2's weight (the conv before the second BatchNorm).
//  A. On one batch of 64: W → c·W for c ∈ {0.1, 10}: the largest relative change of the BatchNorm's output,
//     against BN's eps residual predicted from the channel variances v of conv2's output,
//     max_channel |√((v + eps)/(v + eps/c²)) − 1| (eps is not scaled, so it matters more as c shrinks);
//     ‖∂L/∂(cW)‖·c/‖∂L/∂W‖ (1 by the law) and cos(∂L/∂W, W) (0).
//  B. 1 epoch, lr 0.05, momentum 0.9, no weight decay: ‖W‖ and η/‖W‖² per step.
//  C. 3 epochs with weight decay 5e-4: the angle between successive W, against √(2ηλ/(1 + μ)).
#include <cmath>

#include "studies.h"

namespace lab {

using namespace nl;

namespace {

const std::string kConv = "3", kNorm = "4";  // conv2 and its BatchNorm in the trainer's CNN

struct ScaledPass {
  Tensor norm_output, weight_grad;
};

// One training-mode forward and backward on a copy of `model` with conv2's weight scaled by c.
ScaledPass scaled_pass(const Module& model, double c, const Tensor& x, const Tensor& y) {
  auto copy = model.clone();
  {
    NoGradGuard no_record;
    copy->get_parameter(kConv + ".weight").mul_(c);
  }
  ScaledPass out;
  HookHandle h = copy->get_submodule(kNorm).register_forward_hook(
      [&](Module&, const Tensor&, const Tensor& o) { out.norm_output = o.detach().clone(); });
  cross_entropy((*copy)(x), y).backward();
  h.remove();
  out.weight_grad = copy->get_parameter(kConv + ".weight").grad().clone();
  return out;
}

}  // namespace

StudyResult run_scale_invariance(const LabOptions& o) {
  StudyResult r;
  r.study = "scale-invariance";
  r.claim =
      "The weights before BatchNorm are scale-invariant: scaling them by c changes no output, scales their "
      "gradient by 1/c and keeps it orthogonal to them, so their effective learning rate is η/‖W‖².";
  r.source = "Ioffe & Szegedy 2015, §3.3; van Laarhoven 2017; Wan et al. 2021 (spherical motion dynamics)";
  const LabData data = load_data(o);
  const std::vector<uint64_t> seeds = seeds_for(o, 1);
  const double lr = 0.05, momentum = 0.9, wd = 5e-4, eps = kNormDefaultEps;
  const int64_t epoch_steps = steps_per_epoch(data, 64);
  const int64_t steps_b = o.quick ? 20 : epoch_steps, steps_c = o.quick ? 40 : 3 * epoch_steps;
  const double equilibrium = std::sqrt(2 * lr * wd / (1 + momentum));
  r.settings = {{"data", data.description},
                {"model", "cnn, BatchNorm"},
                {"weight", "conv2 (" + kConv + ".weight)"},
                {"scales", {0.1, 10}},
                {"lr", lr},
                {"momentum", momentum},
                {"weight_decay_part_c", wd},
                {"steps_part_b", steps_b},
                {"steps_part_c", steps_c},
                {"eps", eps},
                {"seeds", seeds}};

  std::vector<double> out_change[2], predicted[2], grad_law[2], cosines;
  Line weight_norm{"‖W‖ (no weight decay)", {}, {}}, eff_lr{"η/‖W‖² (no weight decay)", {}, {}};
  Line angle{"measured (moving average of 50 steps)", {}, {}}, theory{"√(2ηλ/(1 + μ))", {}, {}};
  for (int64_t s = 1; s <= steps_b; ++s)
    weight_norm.x.push_back(static_cast<double>(s)), eff_lr.x.push_back(static_cast<double>(s));
  for (int64_t s = 2; s <= steps_c; ++s)
    angle.x.push_back(static_cast<double>(s)), theory.x.push_back(static_cast<double>(s));
  theory.y.push_back(std::vector<double>(theory.x.size(), equilibrium));
  std::vector<double> late_angle, norm_growth, eff_lr_drop;
  Progress progress(r.study, static_cast<int64_t>(seeds.size()) * (steps_b + steps_c), o.show_progress);
  for (uint64_t seed : seeds) {
    auto model = lab_model("cnn", "batch", seed);
    const Tensor x = data.train_x.narrow(0, 0, 64), y = data.train_y.narrow(0, 0, 64);

    // A. Scaling W by c.
    const ScaledPass base = scaled_pass(*model, 1.0, x, y);
    std::vector<double> v;  // the per-channel variances of conv2's output on this batch, read by a probe
    {
      auto copy = model->clone();  // a training-mode forward moves the running statistics
      ActivationProbe conv_out(copy->get_submodule(kConv), {.every = 0});
      NoGradGuard no_record;
      (*copy)(x);
      v = conv_out.records().at(0).var;
    }
    const double scales[2] = {0.1, 10};
    for (int k = 0; k < 2; ++k) {
      const double c = scales[k];
      const ScaledPass p = scaled_pass(*model, c, x, y);
      out_change[k].push_back(max(abs(sub(p.norm_output, base.norm_output))).item() /
                              max(abs(base.norm_output)).item());
      double worst = 0;
      for (double var : v)
        worst = std::max(worst, std::abs(std::sqrt((var + eps) / (var + eps / (c * c))) - 1));
      predicted[k].push_back(worst);
      grad_law[k].push_back(norm(p.weight_grad).item() * c / norm(base.weight_grad).item());
    }
    cosines.push_back(cosine_similarity(base.weight_grad.flatten(),
                                        model->get_parameter(kConv + ".weight").detach().flatten(), 0)
                          .item());

    // B. No weight decay: ‖W‖ grows, η/‖W‖² falls.
    {
      auto net = model->clone();
      std::vector<double> norms, rates;
      train_steps(
          *net, data,
          {.batch_size = 64,
           .lr = lr,
           .momentum = momentum,
           .weight_decay = 0,
           .steps = steps_b,
           .seed = seed},
          [&](int64_t, double) {
            for (const ParameterStats& s : parameter_stats(*net, lr))
              if (s.name == kConv + ".weight")
                norms.push_back(s.weight_norm), rates.push_back(s.effective_lr);
            return true;
          },
          &progress);
      weight_norm.y.push_back(norms);
      eff_lr.y.push_back(rates);
      norm_growth.push_back(norms.back() / norms.front());
      eff_lr_drop.push_back(rates.back() / rates.front());
    }

    // C. Weight decay: the angular update settles near √(2ηλ/(1 + μ)).
    {
      auto net = model->clone();
      WeightAngleTracker tracker(*net);
      std::vector<double> angles;
      train_steps(
          *net, data,
          {.batch_size = 64,
           .lr = lr,
           .momentum = momentum,
           .weight_decay = wd,
           .steps = steps_c,
           .seed = seed},
          [&](int64_t step, double) {
            for (const WeightAngle& a : tracker.record())
              if (a.name == kConv + ".weight" && step > 1) angles.push_back(a.angle);
            return true;
          },
          &progress);
      angle.y.push_back(moving_average(angles, 50));
      late_angle.push_back(
          mean_of(std::vector<double>(angles.end() - std::max<size_t>(1, angles.size() / 10), angles.end())));
    }
  }

  r.series.push_back({"weight-norm",
                      "Part B: ‖W‖ of conv2 without weight decay",
                      "training step",
                      "‖W‖",
                      false,
                      false,
                      {},
                      {weight_norm},
                      "Every step adds a vector orthogonal to W, so ‖W‖ can only grow."});
  r.series.push_back({"effective-lr",
                      "Part B: the effective learning rate η/‖W‖²",
                      "training step",
                      "η/‖W‖²",
                      false,
                      true,
                      {},
                      {eff_lr},
                      "As ‖W‖ grows, the same η turns W by less and less."});
  r.series.push_back(
      {"angle",
       "Part C: the angle between successive weights, with weight decay",
       "training step",
       "angle per step (radians)",
       false,
       true,
       {},
       {angle, theory},
       "Weight decay shrinks ‖W‖ while the gradient grows it: the angular update settles near the "
       "equilibrium √(2ηλ/(1 + μ))."});
  for (int k = 0; k < 2; ++k) {
    const std::string c = k == 0 ? "0.1" : "10";
    r.check("c = " + c + ": relative change of BN's output", mean_of(out_change[k]),
            "≤ eps residual " + format_number(mean_of(predicted[k])) + " (+1e-5)",
            mean_of(out_change[k]) <= mean_of(predicted[k]) * 1.05 + 1e-5);
    r.check("c = " + c + ": ‖∂L/∂(cW)‖·c / ‖∂L/∂W‖", mean_of(grad_law[k]), "1 ± (2·residual + 1e-3)",
            std::abs(mean_of(grad_law[k]) - 1) <= 2 * mean_of(predicted[k]) + 1e-3);
  }
  r.check("cos(∂L/∂W, W)", mean_of(cosines), "|·| ≤ 1e-3", std::abs(mean_of(cosines)) <= 1e-3);
  r.check("‖W‖ after / before, no weight decay", mean_of(norm_growth), "> 1", mean_of(norm_growth) > 1);
  r.check("η/‖W‖² after / before, no weight decay", mean_of(eff_lr_drop), "< 1", mean_of(eff_lr_drop) < 1);
  r.report("angle per step over the last 10% of part C", mean_of(late_angle));
  r.check("that angle / √(2ηλ/(1 + μ))", mean_of(late_angle) / equilibrium, "within [0.5, 2]",
          mean_of(late_angle) / equilibrium >= 0.5 && mean_of(late_angle) / equilibrium <= 2);
  r.supported = r.all_checks_pass();
  r.verdict =
      "Scaling conv2's weight by 0.1 or 10 changes BatchNorm's output by " +
      format_number(mean_of(out_change[0])) + " and " + format_number(mean_of(out_change[1])) +
      " (BN's eps, which is not scaled, accounts for it), and its gradient follows the 1/c law. Part C ends "
      "at " +
      format_number(mean_of(late_angle) / equilibrium) + "× the equilibrium angle" +
      (r.supported ? "." : ": at least one check failed, see the table.");
  return r;
}

}  // namespace lab
