// The BN lab's shared pieces: what every study uses, so that each study file reads as its protocol only.
//
//   LabOptions    what `normlab-lab run` was asked (seeds, --quick, data folder, threads)
//   LabData       the training and test images, standardized with the training set's mean and std
//   lab_model     the common CNN (or MLP) with a chosen normalization, built by the library's builders
//   train_steps   SGD with momentum and weight decay on EVERY parameter (γ and β included), constant lr,
//                 a callback after each step; a NaN or infinite loss ends the run cleanly (diverged)
//   evaluate      accuracy and mean loss over a test set in eval or train mode, at a chosen batch size
//   Series        one figure: lines of (x, y) points, y recorded once per seed; the report draws the mean
//                 and, with several seeds, a band of ± one standard deviation
//   StudyResult   everything one study reports: claim, source, command, settings, series, table, verdict
//   Progress      one terminal line per study with the steps done and the estimated time left
//
// The results are written by report.h (results.json, one CSV per series, report.html).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <normlab/normlab.h>

namespace lab {

using nl::Tensor;

struct LabOptions {
  int64_t seeds = 0;     // 0 = each study's own default
  bool quick = false;    // seconds per study, on synthetic data (for the tests)
  std::string data_dir;  // Fashion-MNIST folder ("" = the default lookup)
  int threads = 2;
  int jobs = 1;         // independent training runs side by side (run_side_by_side), each on one thread
  std::string command;  // how to reproduce a study; the study name is appended
  bool show_progress = true;
};

// Inputs (N, 1, 28, 28) float32, standardized; labels (N) int64.
struct LabData {
  Tensor train_x, train_y, test_x, test_y;
  std::string description;
};

// Fashion-MNIST (standardized with kFashionMnistMean/Std), or with quick, small synthetic bar images
// (10 classes, 28×28) that a CNN learns in a few dozen steps.
LabData load_data(const LabOptions& options);
// The first n training examples (the small-batch and ICS protocols train on a subset).
LabData first_train_examples(const LabData& data, int64_t n);

// The trainer's CNN (model "cnn") or MLP ("mlp") with `norm`, no bias before a normalization layer unless
// `bias` says "on", and the BatchNorm knobs left at PyTorch's defaults. Seeded: the same seed gives the same
// initial weights.
std::shared_ptr<nl::Sequential> lab_model(const std::string& model, const std::string& norm, uint64_t seed,
                                          const std::string& bias = "auto");

struct TrainConfig {
  int64_t batch_size = 64;
  double lr = 0.05;
  double momentum = 0.9;
  double weight_decay = 5e-4;  // on every parameter, γ and β included
  int64_t steps = 0;           // 0 = epochs × batches per epoch (the last partial batch dropped)
  int64_t epochs = 1;
  uint64_t seed = 1;  // the data order
};

struct TrainRecord {
  std::vector<double> loss;      // per step
  std::vector<double> accuracy;  // per step, on the training batch
  bool diverged = false;         // the loss became NaN or infinite (the run stopped there)
  int64_t steps = 0;
};

// Called after each step (1-based) with the loss of that step; return false to stop early.
using StepCallback = std::function<bool(int64_t step, double loss)>;

// Trains in training mode from the current weights. The data order is a pure function of (seed, epoch).
TrainRecord train_steps(nl::Module& model, const LabData& data, const TrainConfig& config,
                        const StepCallback& after_step = nullptr, struct Progress* progress = nullptr);
int64_t steps_per_epoch(const LabData& data, int64_t batch_size);

struct EvalResult {
  double accuracy = 0, loss = 0;
};
// train_mode: the forgotten model.eval() (BatchNorm normalizes each test batch with its own statistics and,
// as in PyTorch, updates its running statistics). The model's flags are restored afterwards.
EvalResult evaluate(nl::Module& model, const Tensor& x, const Tensor& y, int64_t batch_size,
                    bool train_mode = false);

// ---- what a study reports ------------------------------------------------------------------------------

struct Line {
  std::string label;
  std::vector<double> x;
  std::vector<std::vector<double>> y;  // y[seed][point]; every seed has x.size() points (NaN = no value)
};

struct Series {
  std::string id;  // file-name safe: the CSV is <study>-<id>.csv
  std::string title, x_label, y_label;
  bool log_x = false, log_y = false;
  std::vector<std::string> categories;  // non-empty: a bar chart over these (x is the category index)
  std::vector<Line> lines;
  std::string caption;  // one or two sentences under the figure: what to look at
};

// A row of the study's table: a measured quantity, what the claim expects of it, and whether it does.
struct TableRow {
  std::string quantity;
  double value = 0;
  std::string expected;  // e.g. "<= 1e-4", "> eval at batch 2"; empty = reported, not checked
  std::optional<bool> ok;
};

struct StudyResult {
  std::string study, claim, source, command;
  nlohmann::json settings = nlohmann::json::object();
  std::vector<Series> series;
  std::vector<TableRow> table;
  bool supported = false;
  std::string verdict;      // one or two sentences: what the measurement says about the claim
  double wall_seconds = 0;  // set by normlab-lab around the study's run
  std::string machine;

  // Adds a checked row; the study's verdict is up to the study (usually: every checked row ok).
  void check(const std::string& quantity, double value, const std::string& expected, bool ok);
  void report(const std::string& quantity, double value);
  bool all_checks_pass() const;
};

void to_json(nlohmann::json& j, const Line& l);
void from_json(const nlohmann::json& j, Line& l);
void to_json(nlohmann::json& j, const Series& s);
void from_json(const nlohmann::json& j, Series& s);
void to_json(nlohmann::json& j, const TableRow& r);
void from_json(const nlohmann::json& j, TableRow& r);
void to_json(nlohmann::json& j, const StudyResult& r);
void from_json(const nlohmann::json& j, StudyResult& r);

// A study: its name, its claim in one line, and the program that measures it.
struct Study {
  std::string name;
  std::string claim;
  std::function<StudyResult(const LabOptions&)> run;
};

// ---- the progress line -----------------------------------------------------------------------------------

struct Progress {
  Progress(std::string study, int64_t total_steps, bool show);
  ~Progress();
  void advance(int64_t steps = 1);
  void add_total(int64_t steps) { total_ += steps; }

 private:
  std::mutex mutex_;  // tasks run side by side advance one progress line
  std::string study_;
  int64_t total_, done_ = 0;
  bool show_;
  std::chrono::steady_clock::time_point start_, last_print_;
};

// Runs task(0) .. task(count − 1), independent training runs, `jobs` at a time. With jobs > 1 each task runs
// on one OpenMP thread and every library kernel inside it stays on that thread (nested parallel regions are
// inactive, and OpenBLAS runs single-threaded inside one), so a task's result does not depend on which tasks
// run beside it or in what order. At small batches a step barely gets faster on a second thread (at batch 2
// the CNN's step takes about as long on one thread as on two), so two runs side by side nearly double the
// throughput. A task must not touch the default generator (give the layers their own Generator) and must
// write only its own results. The first exception a task throws is rethrown here after all tasks end.
void run_side_by_side(int64_t count, int jobs, const std::function<void(int64_t task)>& task);

// Every parameter's values, in order, for "bit-equal" checks.
std::vector<std::vector<float>> parameter_values(const nl::Module& model);
// Seeds 0 .. n − 1, n = options.seeds, or `study_default` when the user gave none.
std::vector<uint64_t> seeds_for(const LabOptions& options, int64_t study_default);

// The average of the last `window` values at every position (of fewer at the start), for noisy curves.
std::vector<double> moving_average(const std::vector<double>& v, size_t window);
// Mean and sample standard deviation (0 for a single value) of the finite values.
double mean_of(const std::vector<double>& v);
double stddev_of(const std::vector<double>& v);
// "2.3e-07" style for tables.
std::string format_number(double v);

}  // namespace lab
