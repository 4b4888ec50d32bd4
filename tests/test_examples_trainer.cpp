// The bundled trainer: it learns, it resumes exactly, and it rejects bad options with clear messages.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

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

std::vector<std::pair<std::string, std::vector<double>>> snapshot(const Module& m) {
  std::vector<std::pair<std::string, std::vector<double>>> out;
  for (const auto& [name, t] : m.named_parameters()) out.emplace_back(name, t.to_vector<double>());
  for (const auto& [name, t] : m.named_buffers()) out.emplace_back(name, t.to_vector<double>());
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
      const Tensor x = randn({16, 1, 28, 28});
      const Tensor logits = net->forward(x);
      CHECK(logits.shape() == Shape{16, 10});
      sum(mul(logits, randn({16, 10}))).backward();
      for (const auto& [name, p] : net->named_parameters()) {
        INFO(name);
        CHECK(p.grad().defined());
      }
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
