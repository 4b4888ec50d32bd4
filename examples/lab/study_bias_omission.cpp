// bias-omission: a bias right before BatchNorm is cancelled by its mean subtraction.
//
// Claim (Ioffe & Szegedy 2015, §3.2): for y = BN(Wx + b), the batch mean contains b, so b cancels: ∂L/∂b = 0
// and the network computes the same function without it, with fewer parameters.
//
// Protocol. The CNN with a bias before every BatchNorm (conv1, conv2, fc1), trained 300 steps (batch 64,
// lr 0.05, momentum 0.9, weight decay 5e-4 on every parameter).
//  - At steps 1, 10, 50, 100, 200, 300: max|∂L/∂b| / ‖∂L/∂W‖ per layer, in float32; at step 1 also in float64
//    (the initial weights moved with Module::to(kFloat64), on the first training batch).
//  - After training: remove_biases_before_normalization on a copy; the largest output difference in eval and
//    in train mode, and the parameter counts.
//  - Weight decay: the useless biases get no gradient from the loss, only the decay term λb, so with
//    momentum SGD they shrink by the same factor c_t as a scalar with gradient λc:
//        v_{t+1} = μ·v_t + λ·c_t (v_1 = λ·c_0),   c_{t+1} = c_t − η·v_{t+1},   c_0 = 1,
//    i.e. ‖b_t‖/‖b_0‖ = c_t, whatever the data.
#include <cmath>

#include "studies.h"

namespace lab {

using namespace nl;

namespace {

const std::vector<std::pair<std::string, std::string>> kLayers = {
    {"conv1", "0"}, {"conv2", "3"}, {"fc1", "7"}};

double bias_gradient_ratio(Module& model, const std::string& layer) {
  const Tensor db = model.get_parameter(layer + ".bias").grad();
  const Tensor dw = model.get_parameter(layer + ".weight").grad();
  return max(abs(db)).item() / norm(dw).item();
}

}  // namespace

StudyResult run_bias_omission(const LabOptions& o) {
  StudyResult r;
  r.study = "bias-omission";
  r.claim =
      "A bias added right before BatchNorm is cancelled by the mean subtraction: it gets no gradient, and "
      "the network without it computes the same outputs with fewer parameters.";
  r.source = "Ioffe & Szegedy 2015, §3.2 (\"the bias b can be ignored\")";
  const LabData data = load_data(o);
  const std::vector<uint64_t> seeds = seeds_for(o, 1);
  const int64_t steps = o.quick ? 40 : 300;
  const std::vector<int64_t> probe_steps =
      o.quick ? std::vector<int64_t>{1, 10, 20, 40} : std::vector<int64_t>{1, 10, 50, 100, 200, 300};
  const TrainConfig train{.batch_size = 64, .lr = 0.05, .steps = steps};
  r.settings = {{"data", data.description},
                {"model", "cnn, BatchNorm, bias before every BatchNorm"},
                {"batch_size", train.batch_size},
                {"lr", train.lr},
                {"momentum", train.momentum},
                {"weight_decay", train.weight_decay},
                {"steps", steps},
                {"seeds", seeds}};

  std::vector<Line> ratio_lines, decay_lines;
  for (const auto& [name, index] : kLayers) {
    ratio_lines.push_back({name, {}, {}});
    decay_lines.push_back({name + " (measured)", {}, {}});
    for (int64_t s : probe_steps) ratio_lines.back().x.push_back(static_cast<double>(s));
    for (int64_t s = 0; s <= steps; ++s) decay_lines.back().x.push_back(static_cast<double>(s));
  }
  Line predicted{"c_t (pure weight decay)", {}, {}};
  std::vector<double> worst32, worst64, eval_gap, train_gap, params_with, params_without;
  Progress progress(r.study, static_cast<int64_t>(seeds.size()) * steps, o.show_progress);
  for (uint64_t seed : seeds) {
    auto model = lab_model("cnn", "batch", seed, /*bias=*/"on");

    // Step 1 in float64: the initial weights on the first 64 training images.
    {
      auto f64 = model->clone();
      f64->to(kFloat64);
      cross_entropy((*f64)(data.train_x.narrow(0, 0, 64).to(kFloat64)), data.train_y.narrow(0, 0, 64))
          .backward();
      double worst = 0;
      for (const auto& [name, index] : kLayers) worst = std::max(worst, bias_gradient_ratio(*f64, index));
      worst64.push_back(worst);
    }

    std::vector<std::vector<double>> ratios(kLayers.size()), bias_norms(kLayers.size());
    std::vector<double> initial_norm;
    for (const auto& [name, index] : kLayers)
      initial_norm.push_back(norm(model->get_parameter(index + ".bias")).item());
    for (size_t l = 0; l < kLayers.size(); ++l) bias_norms[l].push_back(1.0);
    TrainConfig c = train;
    c.seed = seed;
    train_steps(
        *model, data, c,
        [&](int64_t step, double) {
          for (size_t l = 0; l < kLayers.size(); ++l) {
            const std::string& index = kLayers[l].second;
            bias_norms[l].push_back(norm(model->get_parameter(index + ".bias")).item() / initial_norm[l]);
            if (std::find(probe_steps.begin(), probe_steps.end(), step) != probe_steps.end())
              ratios[l].push_back(bias_gradient_ratio(*model, index));
          }
          return true;
        },
        &progress);
    double worst = 0;
    for (size_t l = 0; l < kLayers.size(); ++l) {
      ratio_lines[l].y.push_back(ratios[l]);
      decay_lines[l].y.push_back(bias_norms[l]);
      for (double v : ratios[l]) worst = std::max(worst, v);
    }
    worst32.push_back(worst);

    // The same network without those biases.
    auto without = model->clone();
    remove_biases_before_normalization(*without);
    params_with.push_back(static_cast<double>(model->num_parameters()));
    params_without.push_back(static_cast<double>(without->num_parameters()));
    NoGradGuard no_record;
    const Tensor probe = data.test_x.narrow(0, 0, std::min<int64_t>(1000, data.test_x.size(0)));
    for (bool training : {false, true}) {
      auto a = model->clone(), b = without->clone();  // train mode moves the running statistics: use copies
      a->train(training);
      b->train(training);
      const Tensor ya = (*a)(probe), yb = (*b)(probe);
      (training ? train_gap : eval_gap).push_back(max(abs(sub(ya, yb))).item() / max(abs(ya)).item());
    }
  }
  // The pure-decay factor c_t, with PyTorch's momentum rule (the buffer starts as the first gradient).
  {
    std::vector<double> c{1.0};
    double v = 0;
    for (int64_t t = 0; t < steps; ++t) {
      const double g = train.weight_decay * c.back();
      v = t == 0 ? g : train.momentum * v + g;
      c.push_back(c.back() - train.lr * v);
      predicted.x.push_back(static_cast<double>(t));
    }
    predicted.x.push_back(static_cast<double>(steps));
    predicted.y.push_back(c);
  }
  decay_lines.push_back(predicted);
  double decay_error = 0;  // max over layers and steps of |measured − c_t|, mean over seeds
  for (size_t l = 0; l + 1 < decay_lines.size(); ++l)
    for (const auto& seed_values : decay_lines[l].y)
      for (size_t t = 0; t < seed_values.size(); ++t)
        decay_error = std::max(decay_error, std::abs(seed_values[t] - predicted.y[0][t]));

  r.series.push_back(
      {"gradient-ratio",
       "max|∂L/∂b| / ‖∂L/∂W‖ of the biases before BatchNorm",
       "training step",
       "ratio (float32)",
       false,
       true,
       {},
       ratio_lines,
       "Zero up to float32 rounding at every step: the loss does not depend on these biases."});
  r.series.push_back(
      {"weight-decay",
       "What weight decay does to the useless biases",
       "training step",
       "‖b_t‖ / ‖b_0‖",
       false,
       false,
       {},
       decay_lines,
       "With no gradient from the loss, each bias only decays: its norm follows the pure weight-decay "
       "factor c_t of momentum SGD."});
  r.check("max bias-gradient ratio, float32, all probed steps", mean_of(worst32), "≤ 1e-4",
          mean_of(worst32) <= 1e-4);
  r.check("max bias-gradient ratio, float64, step 1", mean_of(worst64), "≤ 1e-12", mean_of(worst64) <= 1e-12);
  r.check("output difference without the biases, eval mode (relative)", mean_of(eval_gap), "≤ 1e-5",
          mean_of(eval_gap) <= 1e-5);
  r.check("output difference without the biases, train mode (relative)", mean_of(train_gap), "≤ 1e-5",
          mean_of(train_gap) <= 1e-5);
  r.report("parameters with the biases", mean_of(params_with));
  r.report("parameters without them", mean_of(params_without));
  r.check("max |‖b_t‖/‖b_0‖ − c_t|", decay_error, "≤ 1e-3", decay_error <= 1e-3);
  r.supported = r.all_checks_pass();
  r.verdict = r.supported
                  ? "The biases before BatchNorm get a gradient of " + format_number(mean_of(worst32)) +
                        " of the weights' (float32; " + format_number(mean_of(worst64)) +
                        " in float64), removing them changes no output, saves " +
                        format_number(mean_of(params_with) - mean_of(params_without)) +
                        " parameters, and weight decay alone shrinks them."
                  : "At least one check failed: see the table.";
  return r;
}

}  // namespace lab
