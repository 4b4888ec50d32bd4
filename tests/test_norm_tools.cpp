// fold_batchnorm, recompute_batchnorm_stats and the model-wide freeze switch.
#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "autograd/engine.h"
#include "core/normalization.h"
#include "core/ops.h"
#include "core/random.h"
#include "layers/activation.h"
#include "layers/batchnorm_tools.h"
#include "layers/conv.h"
#include "layers/dropout.h"
#include "layers/linear.h"
#include "layers/normalization.h"
#include "test_util.h"

using namespace nl;
using test::allclose;
using test::values;

namespace {

// ‖a − b‖ / ‖b‖
double relative_error(const Tensor& a, const Tensor& b) {
  const auto va = values(a), vb = values(b);
  double num = 0, den = 0;
  for (size_t i = 0; i < va.size(); ++i) num += (va[i] - vb[i]) * (va[i] - vb[i]), den += vb[i] * vb[i];
  return std::sqrt(num / den);
}

// A few training steps so the running statistics are not the initial ones, then random γ, β and eval.
void train_then_eval(Module& model, const Shape& input_shape, Generator& gen) {
  model.train();
  {
    NoGradGuard no_record;
    for (int i = 0; i < 4; ++i) model(randn(input_shape, kFloat32, &gen, 0.5, 2.0));
  }
  for (auto& [name, t] : model.named_parameters())
    if (name.find("weight") != std::string::npos && t.dim() == 1)
      t.detach().copy_(rand(t.shape(), kFloat32, &gen, 0.5, 2.0));
  model.eval();
}

}  // namespace

TEST_CASE("fold_batchnorm: Linear + BatchNorm1d folds into the Linear, creating a missing bias",
          "[norm][tools][fold]") {
  Generator gen(51);
  auto first = std::make_shared<Linear>(6, 8, true, kFloat32, &gen);
  auto second = std::make_shared<Linear>(8, 3, false, kFloat32, &gen);
  Sequential model({first, std::make_shared<BatchNorm1d>(8), std::make_shared<ReLU>(), second,
                    std::make_shared<BatchNorm1d>(3)});
  train_then_eval(model, {16, 6}, gen);
  const Tensor x = randn({10, 6}, kFloat32, &gen);
  const Tensor y_ref = model(x);
  const auto folded = fold_batchnorm(model);
  CHECK(folded == std::vector<std::string>{"1", "4"});
  CHECK(model[1]->type_name() == "Identity");
  CHECK(model[4]->type_name() == "Identity");
  CHECK(second->bias.defined());
  CHECK(second->bias.requires_grad());
  CHECK(model.named_buffers().empty());
  CHECK(relative_error(model(x), y_ref) < 1e-5);
}

TEST_CASE("fold_batchnorm: Conv2d + BatchNorm2d in a nested Sequential", "[norm][tools][fold]") {
  Generator gen(52);
  auto features = std::make_shared<Sequential>(std::vector<ModulePtr>{
      std::make_shared<Conv2d>(3, 8, 3, Conv2dOptions{.padding = 1, .generator = &gen}),
      std::make_shared<BatchNorm2d>(8), std::make_shared<ReLU>(),
      std::make_shared<Conv2d>(8, 4, 3, Conv2dOptions{.bias = false, .generator = &gen}),
      std::make_shared<BatchNorm2d>(4)});
  Sequential model({features});
  train_then_eval(model, {4, 3, 8, 8}, gen);
  const Tensor x = randn({2, 3, 8, 8}, kFloat32, &gen);
  const Tensor y_ref = model(x);
  CHECK(fold_batchnorm(model) == std::vector<std::string>{"0.1", "0.4"});
  CHECK(relative_error(model(x), y_ref) < 1e-5);
  CHECK(fold_batchnorm(model).empty());  // nothing left to fold
}

TEST_CASE("fold_batchnorm: what is not folded, and BatchNorm in training mode is an error",
          "[norm][tools][fold]") {
  Generator gen(53);
  // A BatchNorm first, one after a ReLU, one without running statistics, one after a standardized conv.
  Sequential model({std::make_shared<BatchNorm1d>(4), std::make_shared<ReLU>(),
                    std::make_shared<BatchNorm1d>(4), std::make_shared<Linear>(4, 4, true, kFloat32, &gen),
                    std::make_shared<BatchNorm1d>(4, BatchNormOptions{.track_running_stats = false})});
  model.eval();
  CHECK(fold_batchnorm(model).empty());
  CHECK_THROWS_WITH(model.replace_child("9", std::make_shared<Identity>()),
                    Catch::Contains("no child named '9'"));
  Sequential ws(
      {std::make_shared<Conv2d>(2, 2, 1, Conv2dOptions{.weight_standardization = true, .generator = &gen}),
       std::make_shared<BatchNorm2d>(2)});
  ws.eval();
  CHECK(fold_batchnorm(ws).empty());

  Sequential training(
      {std::make_shared<Linear>(3, 2, true, kFloat32, &gen), std::make_shared<BatchNorm1d>(2)});
  CHECK_THROWS_WITH(fold_batchnorm(training), Catch::Contains("'1'") && Catch::Contains("training mode"));
}

TEST_CASE("fold_batchnorm: a FrozenBatchNorm folds too", "[norm][tools][fold]") {
  Generator gen(54);
  auto frozen = std::make_shared<FrozenBatchNorm>(3);
  frozen->running_mean.copy_(tensor({0.5, -1.0, 2.0}));
  frozen->running_var.copy_(tensor({2.0, 0.5, 1.0}));
  frozen->weight.copy_(tensor({1.5, -0.5, 1.0}));
  Sequential model({std::make_shared<Linear>(4, 3, true, kFloat32, &gen), frozen});
  const Tensor x = randn({5, 4}, kFloat32, &gen);
  const Tensor y_ref = model(x);
  CHECK(fold_batchnorm(model) == std::vector<std::string>{"1"});
  CHECK(relative_error(model(x), y_ref) < 1e-5);
}

TEST_CASE("recompute_batchnorm_stats: the mean of batch means and of unbiased batch variances",
          "[norm][tools][precise]") {
  Generator gen(55);
  auto bn = std::make_shared<BatchNorm1d>(3);
  // Dropout before the BatchNorm must be off during the pass (eval), or the statistics would be of noise.
  Sequential model({std::make_shared<Dropout>(0.5, &gen), bn});
  model.train();
  model(randn({8, 3}, kFloat32, &gen));  // some EMA state to be replaced
  const double steps_before = bn->num_batches_tracked.item();

  std::vector<Tensor> batches;
  for (int i = 0; i < 5; ++i) batches.push_back(randn({8, 3}, kFloat32, &gen, i, 1.0 + i));
  CHECK(recompute_batchnorm_stats(model, batches) == 5);

  std::vector<double> mean(3, 0.0), var(3, 0.0);
  for (const Tensor& b : batches) {
    const auto m = values(nl::mean(b, {0})), v = values(nl::var(b, {0}, /*unbiased=*/true));
    for (int c = 0; c < 3; ++c) mean[c] += m[c] / 5, var[c] += v[c] / 5;
  }
  CHECK(allclose(bn->running_mean, from_vector(mean).to(kFloat32), 1e-5, 1e-6));
  CHECK(allclose(bn->running_var, from_vector(var).to(kFloat32), 1e-5, 1e-6));
  // Equal batch sizes: that is the paper's m/(m−1)·E_B[σ²_B].
  // Everything else is as before.
  CHECK(model.is_training());
  CHECK(bn->is_training());
  CHECK(bn->options().momentum == 0.1);
  CHECK(bn->num_batches_tracked.item() == steps_before);
}

TEST_CASE("recompute_batchnorm_stats: a batch source, num_batches, early end, and restored modes",
          "[norm][tools][precise]") {
  Generator gen(56);
  auto bn = std::make_shared<BatchNorm2d>(2, BatchNormOptions{.momentum = std::nullopt});
  bn->freeze_running_stats();
  auto relu = std::make_shared<ReLU>();
  Sequential model({relu, bn});
  model.eval();
  relu->train(true);  // a mixed state to restore
  int calls = 0;
  Tensor first;
  auto source = [&]() {
    ++calls;
    Tensor x = randn({4, 2, 3, 3}, kFloat32, &gen, 1.0, 2.0);
    if (calls == 1) first = x;
    return x;
  };
  CHECK(recompute_batchnorm_stats(model, source, 1) == 1);
  CHECK(calls == 1);
  const Tensor h = relu->forward(first);
  CHECK(allclose(bn->running_mean, nl::mean(h, {0, 2, 3}), 1e-5, 1e-6));
  CHECK(allclose(bn->running_var, nl::var(h, {0, 2, 3}, true), 1e-5, 1e-6));
  CHECK_FALSE(model.is_training());
  CHECK(relu->is_training());
  CHECK_FALSE(bn->is_training());
  CHECK(bn->running_stats_frozen());
  CHECK_FALSE(bn->options().momentum.has_value());

  int left = 2;
  auto short_source = [&]() { return left-- > 0 ? randn({4, 2, 3, 3}, kFloat32, &gen) : Tensor(); };
  CHECK(recompute_batchnorm_stats(model, short_source, 10) == 2);
  CHECK_THROWS_WITH(recompute_batchnorm_stats(
                        model, [] { return Tensor(); }, 3),
                    Catch::Contains("no batch"));
  CHECK_THROWS_WITH(recompute_batchnorm_stats(model, source, 0), Catch::Contains("num_batches"));
  // An error inside the pass (one value per channel) still restores the state.
  CHECK_THROWS_WITH(recompute_batchnorm_stats(
                        model,
                        [] {
                          return ones({1, 2, 1, 1});
                        },
                        1),
                    Catch::Contains("more than 1 value per channel"));
  CHECK_FALSE(bn->is_training());
  CHECK(bn->running_stats_frozen());
}

TEST_CASE("set_batchnorm_running_stats_frozen: every BatchNorm of a model", "[norm][tools][switches]") {
  Generator gen(57);
  auto a = std::make_shared<BatchNorm1d>(3);
  auto b = std::make_shared<GhostBatchNorm>(3, 2);
  Sequential model({a, std::make_shared<ReLU>(), b});
  CHECK(batch_norm_layers(model) == std::vector<BatchNorm*>{a.get(), b.get()});
  CHECK(set_batchnorm_running_stats_frozen(model) == 2);
  model(randn({4, 3}, kFloat32, &gen, 3.0));
  CHECK(values(a->running_mean) == std::vector<double>{0, 0, 0});
  CHECK(values(b->running_mean) == std::vector<double>{0, 0, 0});
  CHECK(set_batchnorm_running_stats_frozen(model, false) == 2);
  model(randn({4, 3}, kFloat32, &gen, 3.0));
  CHECK(values(a->running_mean) != std::vector<double>{0, 0, 0});
}
