#include "lab.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>

namespace lab {

using namespace nl;

// ---- data ----------------------------------------------------------------------------------------------

namespace {

Tensor standardized(const Tensor& x, double mean, double stddev) {
  NoGradGuard no_record;
  return div(sub(x, mean), stddev).contiguous();
}

}  // namespace

LabData load_data(const LabOptions& o) {
  LabData d;
  if (o.quick) {
    // Bars at 10 orientations: the same (N, 1, 28, 28) shapes as Fashion-MNIST, learnt in a few dozen steps.
    const TensorDataset train = make_bar_images({.samples_per_class = 64, .classes = 10, .seed = 1});
    const TensorDataset test = make_bar_images({.samples_per_class = 20, .classes = 10, .seed = 2});
    NoGradGuard no_record;
    const double mean = nl::mean(train.inputs()).item(), stddev = nl::stddev(train.inputs()).item();
    d.train_x = standardized(train.inputs(), mean, stddev);
    d.train_y = train.labels();
    d.test_x = standardized(test.inputs(), mean, stddev);
    d.test_y = test.labels();
    d.description = "synthetic bar images (--quick): 640 training, 200 test";
    return d;
  }
  const TensorDataset train = load_fashion_mnist("train", o.data_dir);
  const TensorDataset test = load_fashion_mnist("test", o.data_dir);
  d.train_x = standardized(train.inputs(), kFashionMnistMean, kFashionMnistStd);
  d.train_y = train.labels();
  d.test_x = standardized(test.inputs(), kFashionMnistMean, kFashionMnistStd);
  d.test_y = test.labels();
  d.description = "Fashion-MNIST (" + fashion_mnist_dir(o.data_dir) + "): 60000 training, 10000 test";
  return d;
}

LabData first_train_examples(const LabData& data, int64_t n) {
  LabData d = data;
  n = std::min(n, data.train_x.size(0));
  d.train_x = data.train_x.narrow(0, 0, n);
  d.train_y = data.train_y.narrow(0, 0, n);
  d.description += ", the first " + std::to_string(n) + " training images";
  return d;
}

std::shared_ptr<Sequential> lab_model(const std::string& model, const std::string& norm, uint64_t seed,
                                      const std::string& bias) {
  manual_seed(seed);  // the builders draw their initial weights from the default generator
  ModelConfig c;
  c.model = model;
  c.norm = norm;
  c.bias = bias;
  c.groups = 8;
  c.ghost_batch_size = 8;
  return build_model(c);
}

std::vector<std::vector<float>> parameter_values(const Module& model) {
  std::vector<std::vector<float>> out;
  for (const Tensor& p : model.parameters()) out.push_back(p.to_vector<float>());
  return out;
}

std::vector<uint64_t> seeds_for(const LabOptions& o, int64_t study_default) {
  std::vector<uint64_t> seeds;
  for (int64_t s = 0; s < (o.seeds > 0 ? o.seeds : study_default); ++s)
    seeds.push_back(static_cast<uint64_t>(s));
  return seeds;
}

// ---- training and evaluation ------------------------------------------------------------------------------

int64_t steps_per_epoch(const LabData& data, int64_t batch_size) { return data.train_x.size(0) / batch_size; }

TrainRecord train_steps(Module& model, const LabData& data, const TrainConfig& c,
                        const StepCallback& after_step, Progress* progress) {
  const int64_t per_epoch = steps_per_epoch(data, c.batch_size);
  check(per_epoch > 0, "train_steps: batch ", c.batch_size, " is larger than the ", data.train_x.size(0),
        " training examples");
  const int64_t total = c.steps > 0 ? c.steps : c.epochs * per_epoch;
  auto dataset = std::make_shared<TensorDataset>(data.train_x, data.train_y);
  DataLoader loader(dataset,
                    {.batch_size = c.batch_size, .shuffle = true, .seed = c.seed, .drop_last = true});
  SGD optimizer(model.parameters(), {.lr = c.lr, .momentum = c.momentum, .weight_decay = c.weight_decay});
  model.train();
  TrainRecord record;
  for (int64_t epoch = 0; record.steps < total; ++epoch) {
    for (const Batch& batch : loader.batches(epoch)) {
      optimizer.zero_grad();
      const Tensor logits = model(batch.inputs);
      const Tensor loss = cross_entropy(logits, batch.labels);
      const double value = loss.item();
      if (!std::isfinite(value)) {
        record.diverged = true;
        record.loss.push_back(value);
        record.accuracy.push_back(NAN);
        if (progress) progress->advance(total - record.steps);
        return record;
      }
      loss.backward();
      optimizer.step();
      ++record.steps;
      record.loss.push_back(value);
      record.accuracy.push_back(accuracy(logits, batch.labels));
      if (progress) progress->advance();
      if (after_step && !after_step(record.steps, value)) return record;
      if (record.steps == total) break;
    }
  }
  return record;
}

EvalResult evaluate(Module& model, const Tensor& x, const Tensor& y, int64_t batch_size, bool train_mode) {
  std::vector<std::pair<std::string, bool>> flags;
  for (auto& [name, m] : model.named_modules()) flags.emplace_back(name, m->is_training());
  model.train(train_mode);
  NoGradGuard no_record;
  double correct = 0, loss = 0;
  const int64_t n = x.size(0);
  for (int64_t start = 0; start < n; start += batch_size) {
    const int64_t count = std::min(batch_size, n - start);
    const Tensor logits = model(x.narrow(0, start, count));
    const Tensor labels = y.narrow(0, start, count);
    correct += accuracy(logits, labels) * static_cast<double>(count);
    loss += cross_entropy(logits, labels).item() * static_cast<double>(count);
  }
  // named_modules lists parents before children, so each child's own flag wins over its parent's recursive
  // train() call.
  for (const auto& [name, training] : flags) model.get_submodule(name).train(training);
  return {correct / static_cast<double>(n), loss / static_cast<double>(n)};
}

// ---- results -------------------------------------------------------------------------------------------

void StudyResult::check(const std::string& quantity, double value, const std::string& expected, bool ok) {
  table.push_back({quantity, value, expected, ok});
}

void StudyResult::report(const std::string& quantity, double value) {
  table.push_back({quantity, value, "", std::nullopt});
}

bool StudyResult::all_checks_pass() const {
  return std::all_of(table.begin(), table.end(), [](const TableRow& r) { return r.ok.value_or(true); });
}

namespace {

// JSON has no NaN or infinity: they are written as null and read back as NaN.
nlohmann::json number(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }
double number(const nlohmann::json& j) { return j.is_null() ? NAN : j.get<double>(); }

nlohmann::json numbers(const std::vector<double>& v) {
  nlohmann::json out = nlohmann::json::array();
  for (double x : v) out.push_back(number(x));
  return out;
}
std::vector<double> numbers(const nlohmann::json& j) {
  std::vector<double> out;
  for (const auto& x : j) out.push_back(number(x));
  return out;
}

}  // namespace

void to_json(nlohmann::json& j, const Line& l) {
  nlohmann::json ys = nlohmann::json::array();
  for (const auto& y : l.y) ys.push_back(numbers(y));
  j = {{"label", l.label}, {"x", numbers(l.x)}, {"y_per_seed", ys}};
}

void from_json(const nlohmann::json& j, Line& l) {
  l.label = j.at("label").get<std::string>();
  l.x = numbers(j.at("x"));
  l.y.clear();
  for (const auto& y : j.at("y_per_seed")) l.y.push_back(numbers(y));
}

void to_json(nlohmann::json& j, const Series& s) {
  j = {{"id", s.id},          {"title", s.title}, {"x_label", s.x_label},       {"y_label", s.y_label},
       {"log_x", s.log_x},    {"log_y", s.log_y}, {"categories", s.categories}, {"lines", s.lines},
       {"caption", s.caption}};
}

void from_json(const nlohmann::json& j, Series& s) {
  s.id = j.at("id").get<std::string>();
  s.title = j.at("title").get<std::string>();
  s.x_label = j.at("x_label").get<std::string>();
  s.y_label = j.at("y_label").get<std::string>();
  s.log_x = j.at("log_x").get<bool>();
  s.log_y = j.at("log_y").get<bool>();
  s.categories = j.at("categories").get<std::vector<std::string>>();
  s.lines = j.at("lines").get<std::vector<Line>>();
  s.caption = j.at("caption").get<std::string>();
}

void to_json(nlohmann::json& j, const TableRow& r) {
  j = {{"quantity", r.quantity}, {"value", number(r.value)}, {"expected", r.expected}};
  j["ok"] = r.ok ? nlohmann::json(*r.ok) : nlohmann::json(nullptr);
}

void from_json(const nlohmann::json& j, TableRow& r) {
  r.quantity = j.at("quantity").get<std::string>();
  r.value = number(j.at("value"));
  r.expected = j.at("expected").get<std::string>();
  r.ok = j.at("ok").is_null() ? std::nullopt : std::optional<bool>(j.at("ok").get<bool>());
}

void to_json(nlohmann::json& j, const StudyResult& r) {
  j = {{"study", r.study},
       {"claim", r.claim},
       {"source", r.source},
       {"command", r.command},
       {"settings", r.settings},
       {"series", r.series},
       {"table", r.table},
       {"verdict", {{"supported", r.supported}, {"text", r.verdict}}},
       {"wall_seconds", r.wall_seconds},
       {"machine", r.machine}};
}

void from_json(const nlohmann::json& j, StudyResult& r) {
  r.study = j.at("study").get<std::string>();
  r.claim = j.at("claim").get<std::string>();
  r.source = j.at("source").get<std::string>();
  r.command = j.at("command").get<std::string>();
  r.settings = j.at("settings");
  r.series = j.at("series").get<std::vector<Series>>();
  r.table = j.at("table").get<std::vector<TableRow>>();
  r.supported = j.at("verdict").at("supported").get<bool>();
  r.verdict = j.at("verdict").at("text").get<std::string>();
  r.wall_seconds = j.at("wall_seconds").get<double>();
  r.machine = j.at("machine").get<std::string>();
}

// ---- progress ------------------------------------------------------------------------------------------

void run_side_by_side(int64_t count, int jobs, const std::function<void(int64_t task)>& task) {
  check(jobs >= 1, "run_side_by_side: jobs must be >= 1, got ", jobs);
  if (jobs == 1) {
    for (int64_t i = 0; i < count; ++i) task(i);
    return;
  }
  std::exception_ptr first_error;
  std::mutex error_mutex;
  // schedule(dynamic, 1): a thread that finishes a short run takes the next one at once.
#pragma omp parallel for schedule(dynamic, 1) num_threads(jobs)
  for (int64_t i = 0; i < count; ++i) {
    {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (first_error) continue;  // an exception must not leave the parallel region: skip what is left
    }
    try {
      task(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!first_error) first_error = std::current_exception();
    }
  }
  if (first_error) std::rethrow_exception(first_error);
}

Progress::Progress(std::string study, int64_t total_steps, bool show)
    : study_(std::move(study)),
      total_(total_steps),
      show_(show && isatty(fileno(stderr))),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_) {}

Progress::~Progress() {
  if (show_) std::fprintf(stderr, "\r\033[K");
}

void Progress::advance(int64_t steps) {
  std::lock_guard<std::mutex> lock(mutex_);
  done_ += steps;
  if (!show_) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_print_ < std::chrono::milliseconds(250) && done_ < total_) return;
  last_print_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double left =
      done_ > 0 ? elapsed * static_cast<double>(total_ - done_) / static_cast<double>(done_) : 0;
  std::fprintf(stderr, "\r\033[K%s: %lld/%lld steps, %.0f s, about %.0f s left", study_.c_str(),
               static_cast<long long>(done_), static_cast<long long>(total_), elapsed, left);
}

// ---- numbers -------------------------------------------------------------------------------------------

std::vector<double> moving_average(const std::vector<double>& v, size_t window) {
  std::vector<double> out;
  double sum = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    sum += v[i];
    if (i >= window) sum -= v[i - window];
    out.push_back(sum / static_cast<double>(std::min(i + 1, window)));
  }
  return out;
}

double mean_of(const std::vector<double>& v) {
  double s = 0;
  int64_t n = 0;
  for (double x : v)
    if (std::isfinite(x)) s += x, ++n;
  return n > 0 ? s / static_cast<double>(n) : NAN;
}

double stddev_of(const std::vector<double>& v) {
  const double m = mean_of(v);
  double s = 0;
  int64_t n = 0;
  for (double x : v)
    if (std::isfinite(x)) s += (x - m) * (x - m), ++n;
  return n > 1 ? std::sqrt(s / static_cast<double>(n - 1)) : 0.0;
}

std::string format_number(double v) {
  if (!std::isfinite(v)) return std::isnan(v) ? "NaN" : (v > 0 ? "inf" : "-inf");
  char buf[32];
  const double a = std::abs(v);
  if (v == std::floor(v) && a < 1e9)
    std::snprintf(buf, sizeof buf, "%.0f", v);
  else if (a != 0 && (a < 1e-3 || a >= 1e6))
    std::snprintf(buf, sizeof buf, "%.2e", v);
  else
    std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

}  // namespace lab
