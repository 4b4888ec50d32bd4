#include "trainer.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

namespace nl::examples {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Data {
  std::shared_ptr<TensorDataset> train, test;
  std::string description;
  double mean = 0, stddev = 1;  // the input normalization, saved in checkpoints for normlab-predict
};

std::shared_ptr<TensorDataset> normalized(const TensorDataset& d, double mean, double stddev) {
  // Once for the whole set, so batches come straight from memory (no per-sample transform).
  NoGradGuard no_record;
  return std::make_shared<TensorDataset>(div(sub(d.inputs(), mean), stddev), d.labels());
}

Data load_data(const TrainOptions& o) {
  Data d;
  if (o.synthetic > 0) {
    BarImagesOptions bars;
    bars.samples_per_class = o.synthetic;
    bars.classes = 10;
    bars.seed = o.seed;
    const TensorDataset train = make_bar_images(bars);
    bars.samples_per_class = std::max<int64_t>(o.synthetic / 5, 10);
    bars.seed = o.seed + 1000;
    const TensorDataset test = make_bar_images(bars);
    d.train = normalized(train, d.mean, d.stddev);
    d.test = normalized(test, d.mean, d.stddev);
    d.description = "synthetic bar images (" + std::to_string(d.train->size()) + " train, " +
                    std::to_string(d.test->size()) + " test)";
    return d;
  }
  d.mean = kFashionMnistMean;
  d.stddev = kFashionMnistStd;
  d.train = normalized(load_fashion_mnist("train", o.data_dir), d.mean, d.stddev);
  d.test = normalized(load_fashion_mnist("test", o.data_dir), d.mean, d.stddev);
  d.description = "Fashion-MNIST from " + fashion_mnist_dir(o.data_dir);
  return d;
}

SchedulePtr make_schedule(const TrainOptions& o, int64_t total_steps) {
  if (o.schedule == "constant") return constant_schedule();
  check(o.schedule == "cosine", "--schedule: expected cosine or constant, got '", o.schedule, "'");
  const int64_t warmup = std::min(o.warmup_steps, total_steps / 2);
  if (warmup <= 0) return cosine_schedule(total_steps);
  return sequence({linear_warmup(warmup, 0.1), cosine_schedule(total_steps - warmup)}, {warmup});
}

// ---- the run's settings, as checkpoint metadata
// ------------------------------------------------------------

std::string exact(double v) {
  std::ostringstream s;
  s.precision(17);
  s << v;
  return s.str();
}

Metadata run_metadata(const TrainOptions& o, const Data& data, int64_t next_epoch) {
  Metadata m = to_metadata(o.model);
  m["data.mean"] = exact(data.mean);
  m["data.std"] = exact(data.stddev);
  const auto& num = exact;
  m["trainer.next_epoch"] = std::to_string(next_epoch);
  m["trainer.epochs"] = std::to_string(o.epochs);
  m["trainer.batch_size"] = std::to_string(o.batch_size);
  m["trainer.lr"] = num(o.lr);
  m["trainer.momentum"] = num(o.momentum);
  m["trainer.weight_decay"] = num(o.weight_decay);
  m["trainer.warmup_steps"] = std::to_string(o.warmup_steps);
  m["trainer.schedule"] = o.schedule;
  m["trainer.seed"] = std::to_string(o.seed);
  m["trainer.synthetic"] = std::to_string(o.synthetic);
  return m;
}

// Restores the settings a checkpoint was trained with; returns the epoch to continue with.
int64_t apply_metadata(const Metadata& m, TrainOptions& o) {
  auto get = [&m](const std::string& key) {
    auto it = m.find(key);
    check(it != m.end(), "--resume: checkpoint metadata has no '", key, "' (not written by normlab-train?)");
    return it->second;
  };
  o.model = from_metadata(m);
  o.epochs = std::stoll(get("trainer.epochs"));
  o.batch_size = std::stoll(get("trainer.batch_size"));
  o.lr = std::stod(get("trainer.lr"));
  o.momentum = std::stod(get("trainer.momentum"));
  o.weight_decay = std::stod(get("trainer.weight_decay"));
  o.warmup_steps = std::stoll(get("trainer.warmup_steps"));
  o.schedule = get("trainer.schedule");
  o.seed = std::stoull(get("trainer.seed"));
  o.synthetic = std::stoll(get("trainer.synthetic"));
  const int64_t next_epoch = std::stoll(get("trainer.next_epoch"));
  check(next_epoch < o.epochs, "--resume: the run in this checkpoint is complete (", o.epochs, " of ",
        o.epochs, " epochs)");
  return next_epoch;
}

// ---- output
// --------------------------------------------------------------------------------------------------

class Progress {
 public:
  Progress(bool enabled, int64_t epoch, int64_t epochs, int64_t total)
      : tty_(enabled && ::isatty(1)),
        plain_(enabled && !tty_),
        epoch_(epoch),
        epochs_(epochs),
        total_(total) {}

  void update(int64_t done, double loss, double accuracy) {
    if (!tty_ && !plain_) return;
    const double elapsed = seconds_since(start_);
    if (tty_) {
      if (done != total_ && elapsed - last_draw_ < 0.1) return;  // redraw at most 10 times a second
      last_draw_ = elapsed;
      constexpr int kWidth = 30;
      const int filled = static_cast<int>(kWidth * done / std::max<int64_t>(total_, 1));
      const double eta = done > 0 ? elapsed / done * (total_ - done) : 0.0;
      std::printf("\repoch %lld/%lld [%s%s] %lld/%lld  ETA %4.0fs  loss %.4f  acc %5.1f%%  ",
                  static_cast<long long>(epoch_), static_cast<long long>(epochs_),
                  std::string(filled, '=').c_str(), std::string(kWidth - filled, ' ').c_str(),
                  static_cast<long long>(done), static_cast<long long>(total_), eta, loss, 100 * accuracy);
      if (done == total_) std::printf("\n");
      std::fflush(stdout);
    } else if (done == total_ || done * 5 / total_ != (done - 1) * 5 / total_) {
      // Plain lines for logs: five per epoch.
      std::printf("epoch %lld/%lld  step %lld/%lld  %.1fs  loss %.4f  acc %.1f%%\n",
                  static_cast<long long>(epoch_), static_cast<long long>(epochs_),
                  static_cast<long long>(done), static_cast<long long>(total_), elapsed, loss,
                  100 * accuracy);
      std::fflush(stdout);
    }
  }

 private:
  bool tty_, plain_;
  int64_t epoch_, epochs_, total_;
  Clock::time_point start_ = Clock::now();
  double last_draw_ = -1;
};

struct Evaluation {
  double loss = 0, accuracy = 0;
};

Evaluation evaluate(Module& model, const TensorDataset& test, int64_t batch_size, bool train_mode) {
  // "train" mode at test time is the classic pitfall: BatchNorm normalizes each test batch with its own
  // statistics (and, as in PyTorch, even updates its running statistics).
  model.train(train_mode);
  NoGradGuard no_record;
  DataLoader loader(std::shared_ptr<const Dataset>(&test, [](const Dataset*) {}),
                    {.batch_size = batch_size, .shuffle = false, .seed = 0, .drop_last = false});
  double loss_sum = 0, correct = 0;
  Batch batch;
  loader.start_epoch(0);
  while (loader.next(batch)) {
    const Tensor logits = model(batch.inputs);
    const double n = static_cast<double>(batch.size());
    loss_sum += cross_entropy(logits, batch.labels).item() * n;
    correct += accuracy(logits, batch.labels) * n;
  }
  model.train(true);
  const double total = static_cast<double>(test.size());
  return {loss_sum / total, correct / total};
}

// Precise BatchNorm statistics from the first num_batches batches of `loader`'s epoch 0.
void recompute_bn_stats(Module& model, DataLoader& loader, int64_t num_batches) {
  loader.start_epoch(0);
  recompute_batchnorm_stats(
      model,
      [&loader] {
        Batch batch;
        return loader.next(batch) ? batch.inputs : Tensor();
      },
      num_batches);
}

// One line of the --json file. ordered_json keeps the keys in the order written here.
std::string metrics_json_line(const EpochMetrics& m, const TrainOptions& o) {
  const nlohmann::ordered_json line = {{"epoch", m.epoch},
                                       {"train_loss", m.train_loss},
                                       {"train_accuracy", m.train_accuracy},
                                       {"test_loss", m.test_loss},
                                       {"test_accuracy", m.test_accuracy},
                                       {"seconds", m.seconds},
                                       {"steps_per_second", m.steps_per_second},
                                       {"lr", m.lr},
                                       {"model", o.model.model},
                                       {"norm", o.model.norm},
                                       {"bn_mode_at_test", o.bn_mode_at_test}};
  return line.dump();  // one line: no indentation; NaN and infinities become null
}

// ---- the command line
// ----------------------------------------------------------------------------------------

// The number `text` spells out whole (locale-independent), or nullopt.
std::optional<double> parse_number(const std::string& text) {
  double value = 0;
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, value);
  if (text.empty() || error != std::errc() || stop != end) return std::nullopt;
  return value;
}

// A CLI11 check that the value is a number for which `ok` holds, or the word `or_word` when one is given.
// `expected` says what is accepted, in the help text and in the error (which CLI11 prefixes with the option).
CLI::Validator number_check(const std::string& expected, std::function<bool(double)> ok,
                            const std::string& or_word = "") {
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        if (!or_word.empty() && text == or_word) return "";
        const std::optional<double> value = parse_number(text);
        return value && ok(*value) ? "" : "expected " + expected + ", got '" + text + "'";
      },
      expected);
}

}  // namespace

void add_command_line_options(CLI::App& app, TrainOptions& o) {
  app.add_option("--model", o.model.model, "mlp | cnn | resnet")->capture_default_str();
  app.add_option("--norm", o.model.norm,
                 "none | batch | layer | group | instance | rms | batchrenorm | ghost | noisy")
      ->capture_default_str();
  app.add_option("--bias", o.model.bias,
                 "biases of the hidden Linear/Conv2d layers: auto (none before a normalization layer, where "
                 "beta makes them redundant) | on | off (none in any hidden layer)")
      ->capture_default_str();
  app.add_flag(
      "!--unfused-bn-relu", o.model.fused_bn_relu,
      "with --norm batch, run BatchNorm, the ReLU after it and (in the cnn) the max pool as separate "
      "modules instead of one fused kernel (same results; to look at the pre-ReLU values with hooks, "
      "or to time the fusion)");
  app.add_option("--groups", o.model.groups, "GroupNorm groups")->capture_default_str();
  app.add_option("--ghost-batch-size", o.model.ghost_batch_size, "GhostBatchNorm virtual batch size")
      ->capture_default_str();
  app.add_option("--hidden", o.model.mlp_hidden, "MLP hidden widths")->capture_default_str();

  // The BatchNorm settings: for --norm batch, ghost and noisy; batchrenorm takes eps and affine and keeps its
  // own momentum (models/models.h).
  const auto is_unit_interval = [](double v) { return v >= 0 && v <= 1; };
  app.add_option_function<std::string>(
         "--bn-momentum",
         [&o](const std::string& text) {
           // number_check has accepted it: "cumulative" or a number.
           o.model.bn_momentum = text == "cumulative" ? std::nullopt : parse_number(text);
         },
         "weight of each new batch in the running statistics, or cumulative (the average over all "
         "training batches so far, PyTorch's momentum=None; not for batchrenorm)")
      ->check(number_check("a number in [0, 1] or 'cumulative'", is_unit_interval, "cumulative"))
      ->default_str(cat_str(kBatchNormDefaultMomentum));
  app.add_option("--bn-eps", o.model.bn_eps, "added to the variance")
      ->check(number_check("a finite number >= 0", [](double v) { return std::isfinite(v) && v >= 0; }))
      ->capture_default_str();
  app.add_option_function<std::string>(
         "--bn-affine", [&o](const std::string& text) { o.model.bn_affine = text == "on"; },
         "on: learnable scale and shift (gamma, beta) | off: none")
      ->check(CLI::IsMember({"on", "off"}))
      ->default_str("on");
  app.add_option("--recompute-bn-stats", o.recompute_bn_stats,
                 "before each evaluation, set the BatchNorm running statistics to the precise ones over N "
                 "training batches (0: keep the running averages)")
      ->check(number_check("an integer >= 0", [](double v) { return v >= 0 && v == std::floor(v); }))
      ->capture_default_str();

  app.add_option("--batch-size", o.batch_size)->capture_default_str();
  app.add_option("--lr", o.lr, "peak learning rate")->capture_default_str();
  app.add_option("--momentum", o.momentum, "SGD momentum (for BatchNorm's, see --bn-momentum)")
      ->capture_default_str();
  app.add_option("--weight-decay", o.weight_decay, "on weights only (not on biases, γ, β)")
      ->capture_default_str();
  app.add_option("--epochs", o.epochs)->capture_default_str();
  app.add_option("--schedule", o.schedule, "cosine (after a linear warm-up) | constant")
      ->capture_default_str();
  app.add_option("--warmup-steps", o.warmup_steps)->capture_default_str();
  app.add_option("--seed", o.seed)->capture_default_str();
  app.add_option("--threads", o.threads)->capture_default_str();
  app.add_option("--data", o.data_dir,
                 "Fashion-MNIST folder (default: $NORMLAB_FASHION_MNIST or "
                 "/usr/share/datasets/fashion-mnist)");
  app.add_option("--synthetic", o.synthetic,
                 "train on N synthetic bar images per class instead (no download)");
  app.add_option("--save", o.save, "checkpoint written after every epoch (safetensors)");
  app.add_option("--resume", o.resume, "continue the run saved in this checkpoint, with its settings");
  app.add_option("--stop-after", o.stop_after_epochs, "stop after this many epochs (continue with --resume)");
  app.add_option("--bn-mode-at-test", o.bn_mode_at_test,
                 "eval | train (train reproduces the 'forgot model.eval()' pitfall)")
      ->capture_default_str();
  app.add_option("--eval-batch-size", o.eval_batch_size,
                 "test-set batch size (small batches make --bn-mode-at-test train fail visibly)")
      ->capture_default_str();
  app.add_option("--json", o.json, "write one JSON line of metrics per epoch to this file");
}

TrainResult train(TrainOptions o) {
  int64_t first_epoch = 0;
  Metadata resumed;
  if (!o.resume.empty()) {
    resumed = read_checkpoint_metadata(o.resume);
    first_epoch = apply_metadata(resumed, o);
  }
  check(o.batch_size >= 2,
        "--batch-size: expected >= 2 (BatchNorm needs more than one value per channel), got ", o.batch_size);
  check(o.epochs >= 1, "--epochs: expected >= 1, got ", o.epochs);
  check(o.bn_mode_at_test == "eval" || o.bn_mode_at_test == "train",
        "--bn-mode-at-test: expected eval or train, got '", o.bn_mode_at_test, "'");
  check(o.threads >= 1, "--threads: expected >= 1, got ", o.threads);
  validate(o.model);  // now, rather than after loading the data
  check(o.recompute_bn_stats >= 0, "--recompute-bn-stats: expected >= 0, got ", o.recompute_bn_stats);
  const std::string& norm = o.model.norm;
  check(o.recompute_bn_stats == 0 || norm == "batch" || norm == "ghost" || norm == "noisy",
        "--recompute-bn-stats: needs BatchNorm layers with running statistics (--norm batch, ghost or "
        "noisy), got --norm ",
        norm);
  set_num_threads(o.threads);
  manual_seed(o.seed);

  const Data data = load_data(o);
  DataLoader loader(data.train,
                    {.batch_size = o.batch_size, .shuffle = true, .seed = o.seed, .drop_last = true});
  const int64_t steps_per_epoch = loader.num_batches();
  const int64_t total_steps = steps_per_epoch * o.epochs;
  check(o.recompute_bn_stats <= steps_per_epoch, "--recompute-bn-stats: expected at most ", steps_per_epoch,
        " (the training batches in one epoch), got ", o.recompute_bn_stats);
  // The precise statistics come from a loader of their own: the training loader's options on the training
  // set (so, the training loader's batches), always read from the start of epoch 0. The training loader is
  // never touched, so the next epoch's data order cannot be disturbed: that order is a pure function of
  // (seed, epoch) (data/dataloader.h), loader.batches(epoch) restarts it at every epoch, and this loader has
  // its own position and prefetch thread. The pass draws nothing from the global generator either (no
  // dropout in these models, and BatchNorm draws nothing; only NoisyBatchNorm's own generator advances).
  // So a run with it trains on the same batches as one without, and a resumed run recomputes the same
  // statistics (which the checkpoint saves) as an uninterrupted one.
  std::unique_ptr<DataLoader> bn_stats_loader;
  if (o.recompute_bn_stats > 0) bn_stats_loader = std::make_unique<DataLoader>(data.train, loader.options());
  if (o.model.norm == "batchrenorm" && o.model.renorm_total_steps == 0)
    o.model.renorm_total_steps = total_steps;

  std::shared_ptr<Sequential> model = build_model(o.model);
  SGDOptions sgd;
  sgd.lr = o.lr;
  sgd.momentum = o.momentum;
  SGD optimizer(split_decay_groups(*model, o.weight_decay), sgd);
  optimizer.set_schedule(make_schedule(o, total_steps));
  if (!o.resume.empty()) load_checkpoint(o.resume, *model, optimizer);

  int64_t parameters = 0;
  for (const Tensor& p : model->parameters()) parameters += p.numel();
  if (!o.quiet) {
    std::printf("normlab-train: %s | %s, %lld parameters | %s | batch %lld, lr %g, momentum %g, wd %g, %s\n",
                runtime_summary().c_str(), describe(o.model).c_str(), static_cast<long long>(parameters),
                data.description.c_str(), static_cast<long long>(o.batch_size), o.lr, o.momentum,
                o.weight_decay, optimizer.schedule()->describe().c_str());
    if (o.recompute_bn_stats > 0)
      std::printf("precise BatchNorm statistics from %lld training batches before each evaluation\n",
                  static_cast<long long>(o.recompute_bn_stats));
    if (!o.resume.empty())
      std::printf("resumed from %s at epoch %lld, step %lld\n", o.resume.c_str(),
                  static_cast<long long>(first_epoch + 1), static_cast<long long>(optimizer.step_count()));
    std::fflush(stdout);
  }
  std::ofstream json;
  if (!o.json.empty()) {
    json.open(o.json, first_epoch > 0 ? std::ios::app : std::ios::trunc);
    check(json.good(), "--json: cannot open ", o.json, " for writing");
  }

  std::vector<EpochMetrics> history;
  const int64_t last_epoch =
      o.stop_after_epochs > 0 ? std::min(o.epochs, first_epoch + o.stop_after_epochs) : o.epochs;
  for (int64_t epoch = first_epoch; epoch < last_epoch; ++epoch) {
    model->train(true);
    Progress progress(!o.quiet, epoch + 1, o.epochs, steps_per_epoch);
    const auto start = Clock::now();
    double loss_sum = 0, correct = 0, seen = 0;
    const double lr_at_start = optimizer.current_lr();
    int64_t step = 0;
    for (const Batch& batch : loader.batches(epoch)) {
      const Tensor logits = (*model)(batch.inputs);
      const Tensor loss = cross_entropy(logits, batch.labels);
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      const double n = static_cast<double>(batch.size());
      const double batch_loss = loss.item();
      check(std::isfinite(batch_loss), "the loss became ", batch_loss, " at epoch ", epoch + 1, ", step ",
            step + 1, " (diverged: try a smaller --lr)");
      loss_sum += batch_loss * n;
      correct += accuracy(logits, batch.labels) * n;
      seen += n;
      progress.update(++step, loss_sum / seen, correct / seen);
    }
    const double train_seconds = seconds_since(start);
    if (bn_stats_loader) recompute_bn_stats(*model, *bn_stats_loader, o.recompute_bn_stats);
    const Evaluation test = evaluate(*model, *data.test, o.eval_batch_size, o.bn_mode_at_test == "train");

    EpochMetrics m;
    m.epoch = epoch + 1;
    m.train_loss = loss_sum / seen;
    m.train_accuracy = correct / seen;
    m.test_loss = test.loss;
    m.test_accuracy = test.accuracy;
    m.seconds = train_seconds;
    m.steps_per_second = static_cast<double>(steps_per_epoch) / train_seconds;
    m.lr = lr_at_start;
    history.push_back(m);
    if (!o.quiet) {
      std::printf(
          "epoch %lld/%lld  train loss %.4f acc %.2f%%  test loss %.4f acc %.2f%%  %.1fs  %.1f steps/s\n",
          static_cast<long long>(m.epoch), static_cast<long long>(o.epochs), m.train_loss,
          100 * m.train_accuracy, m.test_loss, 100 * m.test_accuracy, m.seconds, m.steps_per_second);
      std::fflush(stdout);
    }
    if (json) {
      json << metrics_json_line(m, o) << '\n';
      json.flush();
    }
    if (!o.save.empty()) save_checkpoint(o.save, *model, optimizer, run_metadata(o, data, epoch + 1));
  }
  return {history, model};
}

}  // namespace nl::examples
