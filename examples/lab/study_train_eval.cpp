// train-eval: the forgotten model.eval().
//
// Claim: in training mode BatchNorm normalizes each batch with that batch's own statistics, so evaluating a
// trained net without model.eval() makes its predictions depend on the test batch (worse the smaller the
// batch) and overwrites the running statistics; in eval mode it uses the running statistics, and a sample's
// output does not depend on what else is in its batch.
//
// Protocol. The BN CNN, trained 1 epoch (batch 64, lr 0.05 constant, momentum 0.9, weight decay 5e-4).
//  A. Test accuracy in eval mode and in train mode at test batches 2, 8, 64 and 1000; eval-mode logits at
//     batch 1 against batch 1000 on the same images; a train-mode pass over the test set at batch 64 on a
//     copy of the model: how far its running statistics move and what that does to its eval accuracy.
//  B. 200 steps with BN momentum 0.1, 0.01 and cumulative (PyTorch's momentum=None), then precise population
//     statistics (recompute_batchnorm_stats over 100 training batches): the accuracy of each, and a check
//     that the momentum changed only the buffers (the weights are bit-equal across the three runs).
#include <cmath>

#include "studies.h"

namespace lab {

using namespace nl;

namespace {

// max over BatchNorm layers of ‖after − before‖ / ‖before‖ for running_mean and running_var.
double running_stats_change(Module& before, Module& after) {
  double worst = 0;
  const auto a = batch_norm_layers(before), b = batch_norm_layers(after);
  for (size_t i = 0; i < a.size(); ++i)
    for (auto [x, y] :
         {std::pair{a[i]->running_mean, b[i]->running_mean}, {a[i]->running_var, b[i]->running_var}})
      worst = std::max(worst, norm(sub(y, x)).item() / norm(x).item());
  return worst;
}

}  // namespace

StudyResult run_train_eval(const LabOptions& o) {
  StudyResult r;
  r.study = "train-eval";
  r.claim =
      "Without model.eval(), BatchNorm uses each test batch's own statistics: accuracy depends on the test "
      "batch (and collapses at small batches) and the running statistics are overwritten; in eval mode a "
      "sample's output is independent of its batch.";
  r.source = "Ioffe & Szegedy 2015 (§3.1, inference with population statistics); every BN tutorial's warning";
  const LabData data = load_data(o);
  const std::vector<uint64_t> seeds = seeds_for(o, 1);
  const TrainConfig train{.batch_size = 64, .lr = 0.05, .epochs = o.quick ? 4 : 1};
  const int64_t part_b_steps = o.quick ? 20 : 200, precise_batches = o.quick ? 10 : 100;
  const int64_t same_images = o.quick ? 200 : data.test_x.size(0);
  const std::vector<int64_t> test_batches = {2, 8, 64, 1000};
  const std::vector<std::string> momenta = {"0.1", "0.01", "cumulative"};
  r.settings = {{"data", data.description},        {"model", "cnn, BatchNorm"},
                {"batch_size", train.batch_size},  {"lr", train.lr},
                {"momentum", train.momentum},      {"weight_decay", train.weight_decay},
                {"epochs", train.epochs},          {"seeds", seeds},
                {"part_b_steps", part_b_steps},    {"precise_bn_batches", precise_batches},
                {"images_at_batch_1", same_images}};

  Line eval_line{"eval mode (running statistics)", {}, {}},
      train_line{"train mode (batch statistics)", {}, {}};
  for (int64_t b : test_batches)
    eval_line.x.push_back(static_cast<double>(b)), train_line.x.push_back(static_cast<double>(b));
  Line ema_line{"running average", {0, 1, 2}, {}}, precise_line{"precise statistics", {0, 1, 2}, {}};
  std::vector<double> eval_acc, logit_gap, disagreements, drift, acc_after_drift, bit_equal;
  Progress progress(r.study,
                    static_cast<int64_t>(seeds.size()) *
                        (train.epochs * steps_per_epoch(data, train.batch_size) + 3 * part_b_steps),
                    o.show_progress);
  for (uint64_t seed : seeds) {
    auto model = lab_model("cnn", "batch", seed);
    TrainConfig c = train;
    c.seed = seed;
    train_steps(*model, data, c, nullptr, &progress);

    // A. Accuracy against the test batch size, in both modes (train mode on copies: it moves the buffers).
    std::vector<double> eval_row, train_row;
    for (int64_t b : test_batches) {
      eval_row.push_back(evaluate(*model, data.test_x, data.test_y, b).accuracy);
      auto copy = model->clone();
      train_row.push_back(evaluate(*copy, data.test_x, data.test_y, b, /*train_mode=*/true).accuracy);
    }
    eval_line.y.push_back(eval_row);
    train_line.y.push_back(train_row);
    eval_acc.push_back(eval_row.back());

    // Eval mode is independent of the batch: each image alone against the same images at batch 1000.
    {
      model->eval();
      NoGradGuard no_record;
      const Tensor x = data.test_x.narrow(0, 0, same_images);
      std::vector<Tensor> big;
      for (int64_t s = 0; s < same_images; s += 1000)
        big.push_back((*model)(x.narrow(0, s, std::min<int64_t>(1000, same_images - s))));
      const Tensor together = cat(big, 0);
      double gap = 0, differ = 0;
      for (int64_t i = 0; i < same_images; ++i) {
        const Tensor alone = (*model)(x.narrow(0, i, 1));
        gap = std::max(gap, max(abs(sub(alone, together.narrow(0, i, 1)))).item());
        differ += argmax(alone, 1).item() != argmax(together.narrow(0, i, 1), 1).item();
      }
      logit_gap.push_back(gap);
      disagreements.push_back(differ);
    }

    // A train-mode pass over the test set (the forgotten model.eval() during a validation loop).
    auto validated = model->clone();
    evaluate(*validated, data.test_x, data.test_y, 64, /*train_mode=*/true);
    drift.push_back(running_stats_change(*model, *validated));
    acc_after_drift.push_back(evaluate(*validated, data.test_x, data.test_y, 1000).accuracy);

    // B. The momentum of the running average changes only the buffers.
    std::vector<double> ema_row, precise_row;
    std::vector<std::vector<float>> first_weights;
    bool equal = true;
    for (const std::string& m : momenta) {
      auto net = lab_model("cnn", "batch", seed);
      for (BatchNorm* bn : batch_norm_layers(*net))
        bn->set_momentum(m == "cumulative" ? std::nullopt : std::optional<double>(std::stod(m)));
      TrainConfig short_run = c;
      short_run.steps = part_b_steps;
      train_steps(*net, data, short_run, nullptr, &progress);
      const auto weights = parameter_values(*net);
      if (first_weights.empty()) first_weights = weights;
      equal = equal && weights == first_weights;
      ema_row.push_back(evaluate(*net, data.test_x, data.test_y, 1000).accuracy);
      int64_t next = 0;
      recompute_batchnorm_stats(
          *net,
          [&]() {
            const int64_t b = train.batch_size, n = data.train_x.size(0) / b;
            return next < std::min(precise_batches, n) ? data.train_x.narrow(0, b * next++, b) : Tensor();
          },
          precise_batches);
      precise_row.push_back(evaluate(*net, data.test_x, data.test_y, 1000).accuracy);
    }
    ema_line.y.push_back(ema_row);
    precise_line.y.push_back(precise_row);
    bit_equal.push_back(equal ? 1 : 0);
  }

  r.series.push_back(
      {"accuracy-vs-test-batch",
       "Test accuracy against the test batch size",
       "test batch size",
       "test accuracy",
       true,
       false,
       {},
       {eval_line, train_line},
       "Eval mode gives the same accuracy at every batch size; train mode normalizes each test batch "
       "with its own statistics and falls apart at small batches."});
  r.series.push_back(
      {"momentum",
       "Part B: the running average's momentum after " + std::to_string(part_b_steps) + " steps",
       "BN momentum",
       "test accuracy",
       false,
       false,
       momenta,
       {ema_line, precise_line},
       "The weights are bit-equal across the three runs: only the running statistics differ, and "
       "precise statistics over " +
           std::to_string(precise_batches) + " training batches replace them."});

  const double train_at_2 = mean_of([&] {
    std::vector<double> v;
    for (auto& row : train_line.y) v.push_back(row[0]);
    return v;
  }());
  r.report("test accuracy, eval mode, batch 1000", mean_of(eval_acc));
  r.check("test accuracy, train mode, batch 2", train_at_2, "well below eval mode (≥ 5 points)",
          train_at_2 <= mean_of(eval_acc) - 0.05);
  r.check("max |logit(batch 1) − logit(batch 1000)|, eval mode",
          *std::max_element(logit_gap.begin(), logit_gap.end()), "≤ 1e-4 (float32 rounding)",
          *std::max_element(logit_gap.begin(), logit_gap.end()) <= 1e-4);
  r.check("predictions that differ, batch 1 vs 1000", mean_of(disagreements), "0",
          mean_of(disagreements) == 0);
  r.report("running statistics moved by a train-mode test pass (max relative change)", mean_of(drift));
  r.report("eval accuracy after that pass", mean_of(acc_after_drift));
  r.check("weights bit-equal across momenta 0.1, 0.01, cumulative", mean_of(bit_equal), "1",
          mean_of(bit_equal) == 1);
  r.supported = r.all_checks_pass();
  r.verdict =
      r.supported
          ? "Eval mode is independent of the batch to float32 rounding; train mode at batch 2 loses " +
                format_number(100 * (mean_of(eval_acc) - train_at_2)) +
                " points of accuracy, and a train-mode pass over the test set moves the running statistics."
          : "At least one check failed: see the table.";
  return r;
}

}  // namespace lab
