// The training loop behind normlab-train: Fashion-MNIST (or a synthetic stand-in), a model from the
// library's builders (models/models.h), SGD with momentum and weight decay (none on biases and normalization
// γ/β), a linear warm-up then cosine learning rate, and an evaluation on the test set after every epoch.
//
// Resuming. After every epoch the trainer can save a checkpoint (model, optimizer state, and the run's
// settings as metadata). --resume restores all of it and continues with the next epoch: the data order of an
// epoch is a pure function of (seed, epoch) (data/dataloader.h) and the schedule a pure function of the step
// count, so a resumed run computes exactly what an uninterrupted one would have.
// (NoisyBatchNorm's noise generator is the one piece of state not saved: its draws differ after a resume.)
//
// Precise BatchNorm statistics. With recompute_bn_stats = N > 0, the running statistics of every BatchNorm
// are recomputed before each evaluation (layers/batchnorm_tools.h, recompute_batchnorm_stats) from the first
// N batches of the training loader's epoch-0 order: the same batches every time, so the statistics depend on
// the weights alone. The weights are untouched, the training data order is not disturbed, and the recomputed
// statistics are what the checkpoint saves (a resumed run continues exactly; see trainer.cpp).
//
// Metrics. With --json, one JSON object per epoch, one per line (appended to on --resume), with the keys
// epoch, train_loss, train_accuracy, test_loss, test_accuracy, seconds, steps_per_second, lr, model, norm,
// bn_mode_at_test (a non-finite number is written as null).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "models.h"

namespace CLI {
class App;
}

namespace nl::examples {

struct TrainOptions {
  ModelConfig model;
  int64_t batch_size = 64;
  double lr = 0.1;
  double momentum = 0.9;
  double weight_decay = 5e-4;
  int64_t epochs = 1;
  int64_t warmup_steps = 100;
  std::string schedule = "cosine";  // cosine | constant
  uint64_t seed = 1;
  int threads = 2;
  std::string data_dir;                  // Fashion-MNIST folder ("" = default lookup)
  int64_t synthetic = 0;                 // > 0: train on this many synthetic bar images per class instead
  std::string save;                      // checkpoint written after every epoch ("" = none)
  std::string resume;                    // checkpoint to continue from ("" = start fresh)
  std::string bn_mode_at_test = "eval";  // eval | train ("train" reproduces the forgotten model.eval())
  std::string json;                      // JSON lines, one per epoch ("" = none)
  int64_t stop_after_epochs = 0;         // > 0: stop this invocation after that many epochs (resume later)
  int64_t eval_batch_size = 1000;
  // > 0: precise BatchNorm statistics from this many training batches before each evaluation (at most one
  // epoch's worth; needs --norm batch, ghost or noisy). Not saved in checkpoints: give it again on --resume.
  int64_t recompute_bn_stats = 0;
  bool quiet = false;  // no per-epoch output (tests)
};

struct EpochMetrics {
  int64_t epoch = 0;  // 1-based
  double train_loss = 0, train_accuracy = 0, test_loss = 0, test_accuracy = 0;
  double seconds = 0, steps_per_second = 0, lr = 0;
};

struct TrainResult {
  std::vector<EpochMetrics> history;  // one entry per epoch run in this call
  std::shared_ptr<Sequential> model;  // the trained model
};

// normlab-train's command line: adds every option to `app`, each parsing into its field of `options` (the
// BatchNorm settings into options.model). Values CLI11 can check on their own (--bn-momentum a number in
// [0, 1] or "cumulative", --bn-eps >= 0, --bn-affine on|off, --recompute-bn-stats >= 0) are checked while
// parsing, with a CLI::ParseError naming the option; the rest when train() starts.
void add_command_line_options(CLI::App& app, TrainOptions& options);

// Runs the whole training. Throws nl::Error for bad options, missing data or a checkpoint that does not fit.
TrainResult train(TrainOptions options);

}  // namespace nl::examples
