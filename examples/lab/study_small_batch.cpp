// small-batch: BatchNorm degrades at small batches; normalizations that do not look across the batch do not.
//
// Claim (Wu & He 2018, Group Normalization, fig. 1): BN's error rises quickly as the batch shrinks, because
// its batch statistics get noisy and its running statistics (for eval) stop matching; GroupNorm is almost
// flat in the batch size.
//
// Protocol. The first 12,000 training images, 2 epochs at every batch size in {2, 4, 8, 16, 32, 128},
// lr = min(0.05·batch/32, 0.1), momentum 0.9, weight decay 5e-4 on every parameter, 2 seeds. The CNN with:
//   BatchNorm        BatchNorm2d, BatchNorm2d, BatchNorm1d
//   GroupNorm        GroupNorm(8, 32), GroupNorm(16, 64), LayerNorm(128)
//   LayerNorm-style  GroupNorm with 1 group in every layer (LayerNorm over (C, H, W) with a per-channel
//   affine) InstanceNorm     InstanceNorm2d (affine, no running statistics) in the convs, nothing in the fc
//   BatchRenorm      Ioffe 2017, its schedule compressed to the run's length
//   GhostBN          virtual batches of 8 (of the whole batch when it is smaller)
//   none             no normalization, biases everywhere
// Reported: test accuracy (eval mode, all test images) and the training loss of the last epoch, so a reader
// sees whether BN fails in training or only in evaluation.
#include <cmath>

#include "studies.h"

namespace lab {

using namespace nl;

namespace {

// The normalization after a layer with `channels` outputs; spatial: after a conv (N, C, H, W).
using NormMaker = std::function<ModulePtr(int64_t channels, bool spatial)>;

struct Normalization {
  std::string name;
  NormMaker make;  // null: no normalization (biases everywhere)
};

std::vector<Normalization> normalizations(int64_t batch, int64_t total_steps) {
  const int64_t ghost = batch >= 8 && batch % 8 == 0 ? 8 : batch;
  return {
      {"BatchNorm",
       [](int64_t c, bool spatial) -> ModulePtr {
         if (spatial) return std::make_shared<BatchNorm2d>(c);
         return std::make_shared<BatchNorm1d>(c);
       }},
      {"GroupNorm",
       [](int64_t c, bool spatial) -> ModulePtr {
         if (!spatial) return std::make_shared<LayerNorm>(Shape{c});
         return std::make_shared<GroupNorm>(c == 32 ? 8 : 16, c);
       }},
      {"LayerNorm-style (GN, 1 group)",
       [](int64_t c, bool) -> ModulePtr { return std::make_shared<GroupNorm>(1, c); }},
      {"InstanceNorm",
       [](int64_t c, bool spatial) -> ModulePtr {
         if (!spatial) return nullptr;
         return std::make_shared<InstanceNorm2d>(c, InstanceNormOptions{.affine = true});
       }},
      {"BatchRenorm",
       [total_steps](int64_t c, bool) -> ModulePtr {
         const int64_t t = std::max<int64_t>(total_steps, 20);
         return std::make_shared<BatchRenorm>(
             c, BatchRenormOptions{.schedule = batch_renorm_paper_schedule(t / 20, 2 * t / 5, t / 4)});
       }},
      {"GhostBN",
       [ghost](int64_t c, bool) -> ModulePtr { return std::make_shared<GhostBatchNorm>(c, ghost); }},
      {"none", nullptr},
  };
}

// The common CNN, with `make` after each of its three hidden layers (a bias only where nothing follows). The
// initial weights come from the run's own generator, so that runs can be built side by side.
std::shared_ptr<Sequential> cnn_with(const NormMaker& make, uint64_t seed) {
  auto gen = std::make_shared<Generator>(seed);
  auto net = std::make_shared<Sequential>();
  auto block = [&](ModulePtr layer_with_bias, ModulePtr layer_without, int64_t channels, bool spatial) {
    ModulePtr norm = make ? make(channels, spatial) : nullptr;
    net->add(norm ? layer_without : layer_with_bias);
    if (norm) net->add(norm);
    net->add(std::make_shared<ReLU>());
  };
  auto conv = [&](int64_t in, int64_t out, bool bias) {
    return std::make_shared<Conv2d>(in, out, 3,
                                    Conv2dOptions{.padding = 1, .bias = bias, .generator = gen.get()});
  };
  auto linear = [&](int64_t in, int64_t out, bool bias) {
    return std::make_shared<Linear>(in, out, LinearOptions{.bias = bias, .generator = gen.get()});
  };
  // Both candidates are built so that the generator advances the same way for every normalization.
  block(conv(1, 32, true), conv(1, 32, false), 32, true);
  net->add(std::make_shared<MaxPool2d>(2));
  block(conv(32, 64, true), conv(32, 64, false), 64, true);
  net->add(std::make_shared<MaxPool2d>(2));
  net->add(std::make_shared<Flatten>());
  block(linear(3136, 128, true), linear(3136, 128, false), 128, false);
  net->add(linear(128, 10, true));
  return net;
}

}  // namespace

StudyResult run_small_batch(const LabOptions& o) {
  StudyResult r;
  r.study = "small-batch";
  r.claim =
      "BatchNorm's accuracy degrades at small batches (noisy batch statistics, mismatched running "
      "statistics); GroupNorm and LayerNorm-style normalization, which do not look across the batch, do not.";
  r.source = "Wu & He 2018, Group Normalization (ECCV), figure 1";
  const LabData data = first_train_examples(load_data(o), o.quick ? 192 : 12000);
  const std::vector<uint64_t> seeds = seeds_for(o, o.quick ? 1 : 2);
  const std::vector<int64_t> batches =
      o.quick ? std::vector<int64_t>{2, 16} : std::vector<int64_t>{2, 4, 8, 16, 32, 128};
  const int64_t epochs = o.quick ? 1 : 2;
  r.settings = {
      {"data", data.description},        {"model", "cnn"},  {"batch_sizes", batches}, {"epochs", epochs},
      {"lr", "min(0.05·batch/32, 0.1)"}, {"momentum", 0.9}, {"weight_decay", 5e-4},   {"seeds", seeds},
      {"runs_side_by_side", o.jobs}};

  const size_t num_norms = normalizations(2, 1).size();
  std::vector<Line> accuracy_lines(num_norms), loss_lines(num_norms);
  int64_t total_steps = 0;
  for (int64_t b : batches) total_steps += epochs * steps_per_epoch(data, b);
  Progress progress(r.study, total_steps * static_cast<int64_t>(num_norms * seeds.size()), o.show_progress);
  for (size_t k = 0; k < num_norms; ++k) {
    accuracy_lines[k].label = loss_lines[k].label = normalizations(2, 1)[k].name;
    for (int64_t b : batches) {
      accuracy_lines[k].x.push_back(static_cast<double>(b));
      loss_lines[k].x.push_back(static_cast<double>(b));
    }
    accuracy_lines[k].y.assign(seeds.size(), std::vector<double>(batches.size()));
    loss_lines[k].y.assign(seeds.size(), std::vector<double>(batches.size()));
  }
  // One independent run per (normalization, seed, batch size); with --jobs they run side by side.
  const int64_t runs = static_cast<int64_t>(num_norms * seeds.size() * batches.size());
  run_side_by_side(runs, o.jobs, [&](int64_t run) {
    const size_t k = run / (seeds.size() * batches.size()), s = run / batches.size() % seeds.size(),
                 i = run % batches.size();
    const int64_t b = batches[i], per_epoch = steps_per_epoch(data, b);
    const Normalization norm = normalizations(b, epochs * per_epoch)[k];
    auto model = cnn_with(norm.make, seeds[s]);
    const TrainConfig c{.batch_size = b,
                        .lr = std::min(0.05 * static_cast<double>(b) / 32, 0.1),
                        .epochs = epochs,
                        .seed = seeds[s]};
    const TrainRecord rec = train_steps(*model, data, c, nullptr, &progress);
    accuracy_lines[k].y[s][i] =
        rec.diverged ? NAN : evaluate(*model, data.test_x, data.test_y, 1000).accuracy;
    const std::vector<double> last_epoch(rec.loss.end() - std::min<int64_t>(per_epoch, rec.loss.size()),
                                         rec.loss.end());
    loss_lines[k].y[s][i] = mean_of(last_epoch);
  });
  r.series.push_back(
      {"accuracy",
       "Test accuracy against the batch size",
       "batch size",
       "test accuracy (eval mode)",
       true,
       false,
       {},
       accuracy_lines,
       "BatchNorm (and its batch-based variants) lose accuracy as the batch shrinks; GroupNorm and "
       "LayerNorm-style normalization stay nearly flat."});
  r.series.push_back({"train-loss",
                      "Training loss of the last epoch against the batch size",
                      "batch size",
                      "training loss",
                      true,
                      false,
                      {},
                      loss_lines,
                      "Where BatchNorm's training loss stays low but its test accuracy falls, it fails in "
                      "evaluation (the running statistics), not in training."});

  // Accuracy at the smallest and a mid-sized batch (32, or the largest quick one), averaged over seeds.
  auto at = [&](size_t k, int64_t batch) {
    const size_t i = std::find(batches.begin(), batches.end(), batch) - batches.begin();
    std::vector<double> v;
    for (const auto& seed_row : accuracy_lines[k].y) v.push_back(seed_row[i]);
    return mean_of(v);
  };
  const int64_t small = batches.front(), mid = o.quick ? batches.back() : 32;
  const double bn_drop = at(0, mid) - at(0, small), gn_drop = at(1, mid) - at(1, small);
  for (size_t k = 0; k < num_norms; ++k)
    r.report(accuracy_lines[k].label + ": accuracy at batch " + std::to_string(small), at(k, small));
  r.report("BatchNorm: accuracy at batch " + std::to_string(mid), at(0, mid));
  r.check("BatchNorm's drop from batch " + std::to_string(mid) + " to " + std::to_string(small), bn_drop,
          "> GroupNorm's drop", bn_drop > gn_drop);
  r.report("GroupNorm's drop", gn_drop);
  // Does BN fail in training too, or only in evaluation? Its training loss at the smallest batch says.
  auto loss_at = [&](size_t k, int64_t batch) {
    const size_t i = std::find(batches.begin(), batches.end(), batch) - batches.begin();
    std::vector<double> v;
    for (const auto& seed_row : loss_lines[k].y) v.push_back(seed_row[i]);
    return mean_of(v);
  };
  r.report("BatchNorm: training loss at batch " + std::to_string(small), loss_at(0, small));
  r.report("BatchNorm: training loss at batch " + std::to_string(mid), loss_at(0, mid));
  r.report("GroupNorm: training loss at batch " + std::to_string(small), loss_at(1, small));
  const bool fails_in_training = loss_at(0, small) > 2 * loss_at(0, mid);
  r.supported = r.all_checks_pass();
  r.verdict =
      (r.supported ? "BatchNorm loses " : "BatchNorm does not lose more than GroupNorm: it loses ") +
      format_number(100 * bn_drop) + " points from batch " + std::to_string(mid) + " to batch " +
      std::to_string(small) + ", GroupNorm " + format_number(100 * gn_drop) + ". " +
      (fails_in_training ? "At batch " + std::to_string(small) +
                               " BatchNorm fails in training already (its training loss is " +
                               format_number(loss_at(0, small)) + " against " +
                               format_number(loss_at(0, mid)) + " at batch " + std::to_string(mid) + ")."
                         : "Its training loss stays low: it fails in evaluation (the running statistics).");
  return r;
}

}  // namespace lab
