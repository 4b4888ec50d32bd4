// The bundled trainer: it learns, it resumes exactly, and it rejects bad options with clear messages.
#include <catch2/catch.hpp>
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

#include "models.h"
#include "trainer.h"
#include "test_util.h"

using namespace nl;
using namespace nl::examples;
using test::allclose;
namespace fs = std::filesystem;

namespace {

// A 28×28 batch through the net and back: ten logits per sample, and a gradient for every parameter.
void check_forward_and_backward(Module& net) {
  const Tensor logits = net(randn({16, 1, 28, 28}));
  CHECK(logits.shape() == Shape{16, 10});
  sum(mul(logits, randn({16, 10}))).backward();
  for (const auto& [name, p] : net.named_parameters()) {
    INFO(name);
    CHECK(p.grad().defined());
  }
}

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("normlab_trainer_" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

TrainOptions quick_cnn() {
  TrainOptions o;
  o.model.model = "cnn";
  o.model.norm = "batch";
  o.synthetic = 60;  // 600 training images, 10 classes: 9 steps per epoch at batch 64
  o.epochs = 2;
  o.warmup_steps = 3;
  o.quiet = true;
  return o;
}

using Snapshot = std::vector<std::pair<std::string, std::vector<double>>>;

Snapshot parameters_of(const Module& m) {
  Snapshot out;
  for (const auto& [name, t] : m.named_parameters()) out.emplace_back(name, t.to_vector<double>());
  return out;
}

Snapshot buffers_of(const Module& m) {
  Snapshot out;
  for (const auto& [name, t] : m.named_buffers()) out.emplace_back(name, t.to_vector<double>());
  return out;
}

Snapshot snapshot(const Module& m) {
  Snapshot out = parameters_of(m);
  for (auto& entry : buffers_of(m)) out.push_back(std::move(entry));
  return out;
}

void check_identical(const Snapshot& actual, const Snapshot& expected) {
  REQUIRE(actual.size() == expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    INFO(expected[i].first);
    CHECK(actual[i].first == expected[i].first);
    CHECK(actual[i].second == expected[i].second);  // bit-identical
  }
}

// normlab-train's command line, parsed the way main() does ("--bn-eps 1e-3 ..."); throws CLI::ParseError.
TrainOptions parse_command_line(const std::string& arguments) {
  TrainOptions o;
  CLI::App app{"normlab-train"};
  add_command_line_options(app, o);
  app.parse(arguments, false);
  return o;
}

// The training set train() builds from o.synthetic (the bar images are already in [0, 1]: mean 0, std 1).
std::shared_ptr<TensorDataset> synthetic_training_set(const TrainOptions& o) {
  BarImagesOptions bars;
  bars.samples_per_class = o.synthetic;
  bars.classes = 10;
  bars.seed = o.seed;
  return std::make_shared<TensorDataset>(make_bar_images(bars));
}

// The first `count` inputs of the training loader's epoch `epoch`.
std::vector<Tensor> training_batches(const TrainOptions& o, int64_t epoch, int64_t count) {
  DataLoader loader(synthetic_training_set(o),
                    {.batch_size = o.batch_size, .shuffle = true, .seed = o.seed, .drop_last = true});
  std::vector<Tensor> inputs;
  for (const Batch& batch : loader.batches(epoch)) {
    if (static_cast<int64_t>(inputs.size()) == count) break;
    inputs.push_back(batch.inputs);
  }
  REQUIRE(static_cast<int64_t>(inputs.size()) == count);
  return inputs;
}

std::vector<BatchNorm*> batch_norms_of(Module& model) {
  std::vector<BatchNorm*> out;
  for (auto& [name, m] : model.named_modules())
    if (auto* bn = dynamic_cast<BatchNorm*>(m)) out.push_back(bn);
  return out;
}

}  // namespace

TEST_CASE("the CNN with BatchNorm trains a few hundred steps to a loss well below chance", "[trainer]") {
  // Fashion-MNIST when it is installed (300 steps of the real data would take long in a unit test, so the
  // synthetic set stands in here; the README reports the full runs).
  TrainOptions o = quick_cnn();
  o.synthetic = 1000;  // 10000 images: 156 steps per epoch, 312 steps in all
  const std::vector<EpochMetrics> h = train(o).history;
  REQUIRE(h.size() == 2);
  const double chance_loss = std::log(10.0);
  CHECK(h.back().train_loss < 0.25 * chance_loss);
  CHECK(h.back().test_loss < 0.25 * chance_loss);
  CHECK(h.back().test_accuracy > 0.9);
}

TEST_CASE("a resumed run continues exactly where the checkpoint left off", "[trainer]") {
  TempDir dir;
  std::vector<std::pair<std::string, std::vector<double>>> straight, resumed;

  TrainOptions o = quick_cnn();
  const TrainResult full = train(o);
  const std::vector<EpochMetrics>& h_straight = full.history;
  straight = snapshot(*full.model);

  // The same run, interrupted after epoch 1 and resumed from its checkpoint.
  TrainOptions part = quick_cnn();
  part.save = dir.file("run.safetensors");
  part.stop_after_epochs = 1;
  REQUIRE(train(part).history.size() == 1);
  TrainOptions rest;
  rest.resume = dir.file("run.safetensors");
  rest.quiet = true;
  const TrainResult continued = train(rest);
  const std::vector<EpochMetrics>& h_rest = continued.history;
  resumed = snapshot(*continued.model);

  REQUIRE(h_rest.size() == 1);
  CHECK(h_rest[0].epoch == 2);
  CHECK(h_rest[0].train_loss == h_straight[1].train_loss);
  CHECK(h_rest[0].test_accuracy == h_straight[1].test_accuracy);
  REQUIRE(resumed.size() == straight.size());
  for (size_t i = 0; i < straight.size(); ++i) {
    INFO(straight[i].first);
    CHECK(resumed[i] == straight[i]);  // bit-identical weights and buffers
  }
}

TEST_CASE("the trainer rejects bad options with messages naming the option", "[trainer][errors]") {
  TrainOptions o = quick_cnn();
  o.model.norm = "magic";
  REQUIRE_THROWS_WITH(train(o), Catch::Contains("--norm: unknown normalization 'magic'"));
  o = quick_cnn();
  o.model.model = "mlp";
  o.model.norm = "instance";
  REQUIRE_THROWS_WITH(train(o), Catch::Contains("InstanceNorm needs spatial dims"));
  o = quick_cnn();
  o.batch_size = 1;
  REQUIRE_THROWS_WITH(train(o), Catch::Contains("--batch-size: expected >= 2"));
  o = quick_cnn();
  o.bn_mode_at_test = "sometimes";
  REQUIRE_THROWS_WITH(train(o), Catch::Contains("--bn-mode-at-test: expected eval or train"));
  o = quick_cnn();
  o.synthetic = 0;
  o.data_dir = "/nonexistent/fashion";
  REQUIRE_THROWS_WITH(train(o), Catch::Contains("dataset-fashion-mnist"));
  TrainOptions r;
  r.resume = "/nonexistent/run.safetensors";
  REQUIRE_THROWS_WITH(train(r), Catch::Contains("/nonexistent/run.safetensors"));
}

TEST_CASE("every model and normalization the trainer offers builds and runs forward and backward",
          "[trainer]") {
  for (const std::string model : {"mlp", "cnn", "resnet"})
    for (const std::string norm :
         {"none", "batch", "layer", "group", "instance", "rms", "batchrenorm", "ghost", "noisy"}) {
      ModelConfig c;
      c.model = model;
      c.norm = norm;
      const bool unsupported =
          (model == "mlp" && norm == "instance") || (model == "resnet" && (norm == "layer" || norm == "rms"));
      INFO(model << " / " << norm);
      if (unsupported) {
        CHECK_THROWS_AS(build_model(c), Error);
        continue;
      }
      auto net = build_model(c);
      check_forward_and_backward(*net);
    }
}

TEST_CASE("bias=auto drops exactly the biases that feed a normalization layer", "[trainer]") {
  ModelConfig c;
  c.model = "cnn";
  c.norm = "batch";
  auto with_bn = build_model(c);
  CHECK(biases_before_normalization(*with_bn).empty());
  c.bias = "on";
  CHECK(biases_before_normalization(*build_model(c)).size() == 3);
  c.norm = "none";
  c.bias = "auto";
  int biases = 0;
  for (const auto& [name, p] : build_model(c)->named_parameters()) biases += p.dim() == 1;
  CHECK(biases == 4);
}

TEST_CASE("model settings survive the round trip through checkpoint metadata", "[trainer]") {
  ModelConfig c;
  c.model = "mlp";
  c.norm = "ghost";
  c.mlp_hidden = {64, 32};
  c.ghost_batch_size = 8;
  const ModelConfig back = from_metadata(to_metadata(c));
  CHECK(back.model == "mlp");
  CHECK(back.norm == "ghost");
  CHECK(back.mlp_hidden == std::vector<int64_t>{64, 32});
  CHECK(back.ghost_batch_size == 8);
  CHECK(back.fused_bn_relu);
  c.fused_bn_relu = false;
  CHECK_FALSE(from_metadata(to_metadata(c)).fused_bn_relu);
  // Checkpoints from before the fused BatchNorm + ReLU have no key: their models had separate ReLUs.
  auto old = to_metadata(c);
  old.erase("model.fused_bn_relu");
  CHECK_FALSE(from_metadata(old).fused_bn_relu);
  auto m = to_metadata(c);
  m.erase("model.norm");
  REQUIRE_THROWS_WITH(from_metadata(m), Catch::Contains("metadata has no 'model.norm'"));
}

TEST_CASE("the fused BatchNorm + ReLU model computes what the unfused one does", "[trainer][relu]") {
  for (const std::string model : {"mlp", "cnn"}) {
    INFO(model);
    ModelConfig c;
    c.model = model;
    c.fused_bn_relu = false;
    auto unfused = build_model(c);
    c.fused_bn_relu = true;
    auto fused = build_model(c);
    // Same parameters (the ReLU modules have none), so one state dict loads into the other.
    const auto params = unfused->named_parameters(), fused_params = fused->named_parameters();
    REQUIRE(params.size() == fused_params.size());
    int fused_layers = 0;
    for (const auto& [name, child] : fused->named_children())
      if (auto* bn = dynamic_cast<BatchNorm*>(child.get())) fused_layers += bn->options().fused_relu;
    CHECK(fused_layers == (model == "mlp" ? 2 : 3));
    CHECK(fused->named_children().size() + fused_layers == unfused->named_children().size());
    for (size_t i = 0; i < params.size(); ++i) {
      NoGradGuard no_record;
      Tensor dst = fused_params[i].second.detach();
      dst.copy_(params[i].second);
    }
    const Tensor x = randn({8, 1, 28, 28});
    const Tensor u = randn({8, 10});
    const Tensor y_unfused = unfused->forward(x), y_fused = fused->forward(x);
    CHECK(allclose(y_fused, y_unfused, 1e-5, 1e-5));
    sum(mul(y_unfused, u)).backward();
    sum(mul(y_fused, u)).backward();
    for (size_t i = 0; i < params.size(); ++i) {
      INFO(params[i].first);
      CHECK(allclose(fused_params[i].second.grad(), params[i].second.grad(), 1e-4, 1e-5));
    }
  }
}

TEST_CASE("the CNN's fused max pools leave every module at its index, so checkpoints keep their keys",
          "[trainer][pool]") {
  ModelConfig c;
  c.model = "cnn";
  auto fused = build_model(c);
  // The layout of the previous builds, with BatchNorm fused with its ReLU only: an Identity now stands where
  // each MaxPool2d was, its pool done inside the BatchNorm before it.
  const std::vector<std::string> types{"Conv2d",   "BatchNorm2d", "Identity", "Conv2d",      "BatchNorm2d",
                                       "Identity", "Flatten",     "Linear",   "BatchNorm1d", "Linear"};
  REQUIRE(fused->size() == types.size());
  for (size_t i = 0; i < types.size(); ++i) CHECK((*fused)[i]->type_name() == types[i]);
  for (size_t i : {size_t{1}, size_t{4}})
    CHECK(dynamic_cast<BatchNorm*>((*fused)[i].get())->options().fused_max_pool);
  std::vector<std::string> names;
  for (const auto& [name, t] : fused->named_parameters()) names.push_back(name);
  for (const auto& [name, t] : fused->named_buffers()) names.push_back(name);
  CHECK(names == std::vector<std::string>{"0.weight",
                                          "1.weight",
                                          "1.bias",
                                          "3.weight",
                                          "4.weight",
                                          "4.bias",
                                          "7.weight",
                                          "8.weight",
                                          "8.bias",
                                          "9.weight",
                                          "9.bias",
                                          "1.running_mean",
                                          "1.running_var",
                                          "1.num_batches_tracked",
                                          "4.running_mean",
                                          "4.running_var",
                                          "4.num_batches_tracked",
                                          "8.running_mean",
                                          "8.running_var",
                                          "8.num_batches_tracked"});
  CHECK(describe(ModelConfig{}) == "cnn, norm=batch (fused with its ReLU and max pool), bias=auto");
}

TEST_CASE("normlab-predict classifies PNG files with a trained checkpoint", "[trainer][predict]") {
  TempDir dir;
  TrainOptions o = quick_cnn();
  o.synthetic = 300;
  o.epochs = 1;
  o.save = dir.file("bars.safetensors");
  train(o);
  // Fresh bar images (another seed), written as 8-bit PNGs: classify them from the files.
  BarImagesOptions bars;
  bars.samples_per_class = 2;
  bars.classes = 10;
  bars.seed = 777;
  const TensorDataset test = make_bar_images(bars);
  std::vector<std::string> paths;
  for (int64_t i = 0; i < test.size(); ++i) {
    const std::vector<float> px = test.get(i).input.to_vector<float>();
    std::vector<unsigned char> bytes(px.size());
    for (size_t k = 0; k < px.size(); ++k)
      bytes[k] = static_cast<unsigned char>(std::lround(std::clamp(px[k], 0.0f, 1.0f) * 255));
    paths.push_back(dir.file("img" + std::to_string(i) + ".png"));
    REQUIRE(stbi_write_png(paths.back().c_str(), 28, 28, 1, bytes.data(), 28) != 0);
  }
  const std::vector<Prediction> predictions = classify_images(o.save, paths);
  REQUIRE(predictions.size() == paths.size());
  int correct = 0;
  for (size_t i = 0; i < predictions.size(); ++i) {
    CHECK(predictions[i].path == paths[i]);
    CHECK(predictions[i].probability > 0);
    CHECK(predictions[i].probability <= 1);
    correct += predictions[i].label == test.labels().to_vector<int64_t>()[i];
  }
  CHECK(correct >= 18);  // of 20
  std::ofstream(dir.file("broken.png")) << "not a png";
  REQUIRE_THROWS_WITH(classify_images(o.save, {dir.file("broken.png")}), Catch::Contains("broken.png"));
}

// ---- the BatchNorm settings (--bn-eps, --bn-momentum, --bn-affine) and precise statistics -----------------

TEST_CASE("the BatchNorm settings reach every BatchNorm-family layer the builders make", "[trainer][bn]") {
  for (const std::string model : {"mlp", "cnn", "resnet"})
    for (const std::string norm : {"batch", "ghost", "noisy", "batchrenorm"}) {
      INFO(model << " / " << norm);
      ModelConfig c;
      c.model = model;
      c.norm = norm;
      int64_t layers_with_defaults = 0;
      auto with_defaults = build_model(c);
      for (auto& [name, m] : with_defaults->named_modules())
        layers_with_defaults += dynamic_cast<BatchNorm*>(m) || dynamic_cast<BatchRenorm*>(m);
      REQUIRE(layers_with_defaults > 0);

      c.bn_eps = 1e-3;
      c.bn_momentum = 0.25;
      c.bn_affine = false;
      auto net = build_model(c);
      int64_t layers = 0;
      for (auto& [name, m] : net->named_modules()) {
        INFO(name);
        if (auto* bn = dynamic_cast<BatchNorm*>(m)) {
          ++layers;
          CHECK(bn->options().eps == 1e-3);
          CHECK(bn->options().momentum == std::optional(0.25));
          CHECK_FALSE(bn->options().affine);
          CHECK_FALSE(bn->weight.defined());
          CHECK_FALSE(bn->bias.defined());
        } else if (auto* renorm = dynamic_cast<BatchRenorm*>(m)) {
          ++layers;  // BatchRenorm keeps its options private: its description shows them
          // Its running μ and σ keep the paper's rate: BatchNorm's momentum does not apply.
          CHECK_THAT(renorm->describe(), Catch::Contains("eps=0.001, momentum=0.01, affine=false"));
          CHECK_FALSE(renorm->weight.defined());
          CHECK_FALSE(renorm->bias.defined());
        } else {
          continue;
        }
        CHECK(m->named_parameters().empty());  // affine off: no γ, no β
      }
      CHECK(layers == layers_with_defaults);
      // Without γ and β (and with the fused kernels of norm "batch") the nets still run both ways.
      check_forward_and_backward(*net);
    }
  // The defaults are the layers' own (PyTorch's), and the cumulative average reaches the layers as nullopt.
  ModelConfig c;
  c.model = "mlp";
  auto defaults = build_model(c);
  for (BatchNorm* bn : batch_norms_of(*defaults)) {
    CHECK(bn->options().eps == kNormDefaultEps);
    CHECK(bn->options().momentum == std::optional(kBatchNormDefaultMomentum));
    CHECK(bn->options().affine);
    CHECK(bn->weight.defined());
  }
  c.bn_momentum = std::nullopt;
  auto cumulative = build_model(c);
  for (BatchNorm* bn : batch_norms_of(*cumulative)) CHECK_FALSE(bn->options().momentum.has_value());
  CHECK(describe(c) == "mlp, norm=batch (fused with its ReLU), bias=auto, bn momentum=cumulative");
  c.bn_eps = 1e-3;
  c.bn_affine = false;
  CHECK(describe(c) ==
        "mlp, norm=batch (fused with its ReLU), bias=auto, bn eps=0.001 momentum=cumulative affine=off");
}

TEST_CASE("bad BatchNorm settings are rejected with messages naming the option", "[trainer][bn][errors]") {
  ModelConfig c;
  c.bn_eps = -1e-5;
  REQUIRE_THROWS_WITH(build_model(c), Catch::Contains("--bn-eps: expected a finite number >= 0"));
  c.bn_eps = std::nan("");
  REQUIRE_THROWS_WITH(build_model(c), Catch::Contains("--bn-eps"));
  c = ModelConfig{};
  c.bn_momentum = 1.5;
  REQUIRE_THROWS_WITH(build_model(c),
                      Catch::Contains("--bn-momentum: expected a number in [0, 1] or 'cumulative', got 1.5"));
  c.bn_momentum = -0.1;
  REQUIRE_THROWS_WITH(build_model(c), Catch::Contains("--bn-momentum"));

  // On the command line, CLI11 checks them while parsing (and names the option).
  const TrainOptions defaults = parse_command_line("");
  CHECK(defaults.model.bn_eps == kNormDefaultEps);
  CHECK(defaults.model.bn_momentum == std::optional(kBatchNormDefaultMomentum));
  CHECK(defaults.model.bn_affine);
  CHECK(defaults.recompute_bn_stats == 0);
  const TrainOptions set =
      parse_command_line("--bn-momentum cumulative --bn-eps 1e-3 --bn-affine off --recompute-bn-stats 5");
  CHECK_FALSE(set.model.bn_momentum.has_value());
  CHECK(set.model.bn_eps == 1e-3);
  CHECK_FALSE(set.model.bn_affine);
  CHECK(set.recompute_bn_stats == 5);
  CHECK(parse_command_line("--bn-momentum 0.3").model.bn_momentum == std::optional(0.3));
  CHECK(parse_command_line("--bn-momentum 0").model.bn_momentum == std::optional(0.0));
  CHECK(parse_command_line("--bn-affine on").model.bn_affine);
  for (const auto& [arguments, message] : std::vector<std::pair<std::string, std::string>>{
           {"--bn-momentum 2", "--bn-momentum: expected a number in [0, 1] or 'cumulative', got '2'"},
           {"--bn-momentum fast", "--bn-momentum: expected a number in [0, 1] or 'cumulative', got 'fast'"},
           {"--bn-momentum 0.1x", "--bn-momentum: expected a number in [0, 1] or 'cumulative', got '0.1x'"},
           {"--bn-eps -1", "--bn-eps: expected a finite number >= 0, got '-1'"},
           {"--bn-eps inf", "--bn-eps: expected a finite number >= 0, got 'inf'"},
           {"--bn-eps tiny", "--bn-eps: expected a finite number >= 0, got 'tiny'"},
           {"--bn-affine maybe", "--bn-affine"},
           {"--recompute-bn-stats -3", "--recompute-bn-stats: expected an integer >= 0, got '-3'"},
           {"--recompute-bn-stats 2.5", "--recompute-bn-stats: expected an integer >= 0, got '2.5'"}}) {
    INFO(arguments);
    REQUIRE_THROWS_AS(parse_command_line(arguments), CLI::ParseError);
    REQUIRE_THROWS_WITH(parse_command_line(arguments), Catch::Contains(message));
  }

  // --recompute-bn-stats, checked by train().
  TrainOptions o = quick_cnn();
  o.recompute_bn_stats = -1;
  REQUIRE_THROWS_WITH(train(o), Catch::Contains("--recompute-bn-stats: expected >= 0, got -1"));
  o.recompute_bn_stats = 10;  // 600 images at batch 64: 9 batches
  REQUIRE_THROWS_WITH(train(o), Catch::Contains("--recompute-bn-stats: expected at most 9"));
  o.recompute_bn_stats = 2;
  for (const std::string norm : {"none", "layer", "batchrenorm"}) {
    o.model.norm = norm;
    REQUIRE_THROWS_WITH(train(o), Catch::Contains("--recompute-bn-stats: needs BatchNorm layers") &&
                                      Catch::Contains("got --norm " + norm));
  }
}

TEST_CASE("the BatchNorm settings survive checkpoint metadata, and old checkpoints load with the defaults",
          "[trainer][bn]") {
  ModelConfig c;
  c.bn_eps = 0.1 + 0.2;  // 0.30000000000000004: only an exact representation reads back to it
  c.bn_momentum = 1.0 / 3.0;
  c.bn_affine = false;
  ModelConfig back = from_metadata(to_metadata(c));
  CHECK(back.bn_eps == c.bn_eps);
  CHECK(back.bn_momentum == c.bn_momentum);
  CHECK_FALSE(back.bn_affine);
  c.bn_eps = 1e-5;
  c.bn_momentum = std::nullopt;
  const std::map<std::string, std::string> m = to_metadata(c);
  CHECK(m.at("model.bn_eps") == "1e-05");
  CHECK(m.at("model.bn_momentum") == "cumulative");
  CHECK(m.at("model.bn_affine") == "0");
  CHECK_FALSE(from_metadata(m).bn_momentum.has_value());

  // Written before the settings existed: no keys, and the defaults.
  for (const std::string norm : {"batch", "batchrenorm"}) {
    INFO(norm);
    ModelConfig before;
    before.norm = norm;
    std::map<std::string, std::string> old = to_metadata(before);
    for (const char* key : {"model.bn_eps", "model.bn_momentum", "model.bn_affine"}) old.erase(key);
    back = from_metadata(old);
    CHECK(back.bn_eps == kNormDefaultEps);
    CHECK(back.bn_momentum == std::optional(kBatchNormDefaultMomentum));
    CHECK(back.bn_affine);
  }

  // Corrupt values name the key, or the option when the value is out of range.
  std::map<std::string, std::string> bad = to_metadata(ModelConfig{});
  bad["model.bn_eps"] = "1e-5abc";
  REQUIRE_THROWS_WITH(from_metadata(bad),
                      Catch::Contains("metadata 'model.bn_eps' is not a number: '1e-5abc'"));
  bad = to_metadata(ModelConfig{});
  bad["model.bn_momentum"] = "";
  REQUIRE_THROWS_WITH(from_metadata(bad), Catch::Contains("metadata 'model.bn_momentum' is not a number"));
  bad["model.bn_momentum"] = "2";
  REQUIRE_THROWS_WITH(from_metadata(bad), Catch::Contains("--bn-momentum: expected a number in [0, 1]"));
}

TEST_CASE("with the cumulative momentum the running statistics are the average over every training batch",
          "[trainer][bn]") {
  TrainOptions o = quick_cnn();
  o.model.model = "mlp";
  o.model.mlp_hidden = {64, 32};
  o.model.bn_momentum = std::nullopt;
  o.epochs = 1;

  SECTION("it learns") {
    o.synthetic = 300;  // 46 steps
    const TrainResult r = train(o);
    CHECK(r.history.back().test_accuracy > 0.5);  // chance: 0.1
    const std::vector<BatchNorm*> bns = batch_norms_of(*r.model);
    REQUIRE(bns.size() == 2);
    for (BatchNorm* bn : bns) {
      CHECK_FALSE(bn->options().momentum.has_value());
      CHECK(bn->num_batches_tracked.item() == 46);
    }
  }
  SECTION("with the weights held still (lr 0) they equal the precise statistics over the epoch") {
    o.lr = 0;
    const TrainResult r = train(o);
    const std::shared_ptr<Module> precise = r.model->clone();
    recompute_batchnorm_stats(*precise, training_batches(o, 0, 9));
    check_identical(parameters_of(*r.model), parameters_of(*precise));
    const Snapshot actual = buffers_of(*r.model), expected = buffers_of(*precise);
    REQUIRE(actual.size() == expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
      INFO(expected[i].first);
      CHECK(allclose(from_vector(actual[i].second), from_vector(expected[i].second), 1e-6, 1e-6));
    }
  }
}

TEST_CASE(
    "normlab-train --recompute-bn-stats sets the precise statistics before each evaluation and leaves the "
    "weights",
    "[trainer][bn]") {
  TrainOptions o = quick_cnn();
  o.epochs = 1;
  const TrainResult ema = train(o);
  o.recompute_bn_stats = 4;
  const TrainResult precise = train(o);

  // The same training (same batches, same weights), then the statistics recompute_batchnorm_stats gives
  // over the first 4 batches of the training loader's epoch 0.
  check_identical(parameters_of(*precise.model), parameters_of(*ema.model));
  CHECK(precise.history[0].train_loss == ema.history[0].train_loss);
  const Snapshot ema_buffers = buffers_of(*ema.model);
  recompute_batchnorm_stats(*ema.model, training_batches(o, 0, 4));
  check_identical(buffers_of(*precise.model), buffers_of(*ema.model));
  int changed = 0;
  for (size_t i = 0; i < ema_buffers.size(); ++i) changed += ema_buffers[i] != buffers_of(*ema.model)[i];
  CHECK(changed == 6);  // running_mean and running_var of the 3 BatchNorms; num_batches_tracked is kept
  CHECK(precise.history[0].test_loss != ema.history[0].test_loss);
}

TEST_CASE("a resumed run with the BatchNorm settings and precise statistics continues exactly",
          "[trainer][bn]") {
  TempDir dir;
  TrainOptions o = quick_cnn();
  o.model.bn_momentum = std::nullopt;
  o.model.bn_eps = 1e-3;
  o.model.bn_affine = false;
  o.recompute_bn_stats = 3;
  const TrainResult full = train(o);

  TrainOptions part = o;
  part.save = dir.file("run.safetensors");
  part.stop_after_epochs = 1;
  REQUIRE(train(part).history.size() == 1);
  TrainOptions rest;  // the model settings come from the checkpoint; --recompute-bn-stats is given again
  rest.resume = dir.file("run.safetensors");
  rest.recompute_bn_stats = 3;
  rest.quiet = true;
  const TrainResult continued = train(rest);
  REQUIRE(continued.history.size() == 1);
  CHECK(continued.history[0].train_loss == full.history[1].train_loss);
  CHECK(continued.history[0].test_loss == full.history[1].test_loss);
  check_identical(snapshot(*continued.model), snapshot(*full.model));
  for (BatchNorm* bn : batch_norms_of(*continued.model)) {
    CHECK_FALSE(bn->options().momentum.has_value());
    CHECK(bn->options().eps == 1e-3);
    CHECK_FALSE(bn->options().affine);
  }
}

TEST_CASE("normlab-train --json writes one JSON object per epoch and line, appending on --resume",
          "[trainer][json]") {
  TempDir dir;
  TrainOptions part = quick_cnn();
  part.json = dir.file("metrics.jsonl");
  part.save = dir.file("run.safetensors");
  part.stop_after_epochs = 1;
  const std::vector<EpochMetrics> first = train(part).history;
  TrainOptions rest;
  rest.resume = part.save;
  rest.json = part.json;
  rest.quiet = true;
  const std::vector<EpochMetrics> second = train(rest).history;

  std::ifstream in(part.json);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  REQUIRE(lines.size() == 2);
  const std::vector<std::string> keys{"epoch",         "train_loss", "train_accuracy",   "test_loss",
                                      "test_accuracy", "seconds",    "steps_per_second", "lr",
                                      "model",         "norm",       "bn_mode_at_test"};
  for (size_t i = 0; i < lines.size(); ++i) {
    INFO(lines[i]);
    const nlohmann::ordered_json j = nlohmann::ordered_json::parse(lines[i]);
    REQUIRE(j.is_object());
    std::vector<std::string> names;
    for (const auto& [key, value] : j.items()) names.push_back(key);
    CHECK(names == keys);
    const EpochMetrics& m = i == 0 ? first[0] : second[0];
    CHECK(j["epoch"].get<int64_t>() == static_cast<int64_t>(i + 1));
    // Doubles are written so that they read back exactly.
    CHECK(j["train_loss"].get<double>() == m.train_loss);
    CHECK(j["train_accuracy"].get<double>() == m.train_accuracy);
    CHECK(j["test_loss"].get<double>() == m.test_loss);
    CHECK(j["test_accuracy"].get<double>() == m.test_accuracy);
    CHECK(j["lr"].get<double>() == m.lr);
    CHECK(j["seconds"].is_number());
    CHECK(j["steps_per_second"].is_number());
    CHECK(j["model"] == "cnn");
    CHECK(j["norm"] == "batch");
    CHECK(j["bn_mode_at_test"] == "eval");
  }
}
