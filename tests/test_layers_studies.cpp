// Three small BN studies, written against the installed package's API only (<normlab/normlab.h>) as a user
// would write them:
//  - bias omission: a bias right before BatchNorm gets no gradient, and removing it from a trained model
//    changes nothing the model computes, in training mode or in eval mode;
//  - scale invariance: scaling the weights that feed BatchNorm by α changes neither the output nor the
//    direction of their gradient, divides its size by α, and that gradient is orthogonal to the weights;
//  - mean shift at initialization (De & Smith 2020): in a deep ReLU MLP without normalization the hidden
//    vectors of different examples become nearly parallel with depth; BatchNorm keeps them apart. Read
//    with forward hooks on every ReLU.
#include <catch2/catch.hpp>

#include <normlab/normlab.h>

using namespace nl;

TEST_CASE("study: a bias before BatchNorm gets no gradient, and removing it changes no output (float64)",
          "[layers][study][bias]") {
  manual_seed(11);
  ModelConfig config;
  config.model = "cnn";
  config.norm = "batch";
  config.bias = "on";  // every conv and hidden Linear keeps its bias, also those feeding a BatchNorm
  std::shared_ptr<Sequential> model = build_model(config);
  model->to(kFloat64);
  const std::vector<std::string> before_bn = biases_before_normalization(*model);
  REQUIRE(before_bn.size() == 3);

  const TensorDataset data = make_bar_images({.samples_per_class = 16, .seed = 3});
  const Tensor x = data.inputs().to(kFloat64), labels = data.labels();

  // 1. The gradient of each such bias is zero up to rounding: BatchNorm subtracts the batch mean, which
  //    contains the bias, so ∂L/∂b = Σ_batch ∂L/∂(x̂) · ∂x̂/∂b = 0.
  cross_entropy((*model)(x), labels).backward();
  for (const std::string& name : before_bn) {
    const std::string weight = name.substr(0, name.size() - 4) + "weight";
    const double bias_grad = norm(model->get_parameter(name).grad()).item();
    const double weight_grad = norm(model->get_parameter(weight).grad()).item();
    INFO(name << ": |dL/db| = " << bias_grad << ", |dL/dW| = " << weight_grad);
    CHECK(weight_grad > 1e-6);
    CHECK(bias_grad <= 1e-12 * weight_grad);
  }
  // The classifier's bias feeds no normalization: its gradient is not small.
  CHECK(norm(model->get_parameter("9.bias").grad()).item() > 1e-3);

  // 2. Train a little, then remove the biases: outputs are unchanged in both modes.
  SGD optimizer(model->parameters(), {.lr = 0.05, .momentum = 0.9});
  for (int step = 0; step < 20; ++step) {
    optimizer.zero_grad();
    cross_entropy((*model)(x), labels).backward();
    optimizer.step();
  }
  NoGradGuard no_record;
  const Tensor probe = x.narrow(0, 0, 16);
  model->eval();
  const Tensor eval_before = (*model)(probe);
  auto train_copy = model->clone();
  train_copy->train();
  const Tensor train_before = (*train_copy)(probe);

  CHECK(remove_biases_before_normalization(*model) == before_bn);
  CHECK(biases_before_normalization(*model).empty());
  const Tensor eval_after = (*model)(probe);
  model->train();
  const Tensor train_after = (*model)(probe);
  CHECK(max(abs(sub(eval_after, eval_before))).item() <= 1e-12 * max(abs(eval_before)).item());
  CHECK(max(abs(sub(train_after, train_before))).item() <= 1e-12 * max(abs(train_before)).item());
}

TEST_CASE("study: BatchNorm makes the weights before it scale-invariant (float64)",
          "[layers][study][scale]") {
  // BatchNorm with eps = 0: the invariance is then exact (up to rounding); eps > 0 breaks it by about
  // eps/var(W·x), since the variance scales by α² and eps does not.
  Generator gen(5);
  auto model = std::make_shared<Sequential>();
  model->add("flatten", std::make_shared<Flatten>());
  model->add("fc1", std::make_shared<Linear>(784, 32, LinearOptions{.bias = false, .generator = &gen}));
  model->add("bn1", std::make_shared<BatchNorm1d>(32, BatchNormOptions{.eps = 0}));
  model->add("relu", std::make_shared<ReLU>());
  model->add("fc2", std::make_shared<Linear>(32, 4, LinearOptions{.generator = &gen}));
  model->to(kFloat64);
  const TensorDataset data = make_bar_images({.samples_per_class = 8, .size = 28, .seed = 4});
  const Tensor x = data.inputs().to(kFloat64), labels = data.labels();

  const std::string w_name = "fc1.weight";
  auto scaled = std::static_pointer_cast<Sequential>(model->clone());
  const double alpha = 7.5;
  {
    NoGradGuard no_record;
    scaled->get_parameter(w_name).mul_(alpha);
  }
  const Tensor loss = cross_entropy((*model)(x), labels);
  const Tensor loss_scaled = cross_entropy((*scaled)(x), labels);
  loss.backward();
  loss_scaled.backward();
  CHECK(std::abs(loss.item() - loss_scaled.item()) <= 1e-13 * loss.item());

  const Tensor w = model->get_parameter(w_name).detach();
  const Tensor g = model->get_parameter(w_name).grad(), g_scaled = scaled->get_parameter(w_name).grad();
  // Same direction, 1/α the size.
  CHECK(cosine_similarity(g.flatten(), g_scaled.flatten(), 0).item() >= 1 - 1e-12);
  CHECK(norm(g_scaled).item() == Approx(norm(g).item() / alpha).epsilon(1e-10));
  // Each output unit's gradient row is orthogonal to its weight row: ⟨w_j, ∂L/∂w_j⟩ = 0.
  for (int64_t j = 0; j < w.size(0); ++j)
    CHECK(std::abs(dot(w.select(0, j), g.select(0, j)).item()) <=
          1e-12 * norm(w.select(0, j)).item() * norm(g.select(0, j)).item() + 1e-18);
}

namespace {

// The mean cosine similarity between the hidden vectors of different examples: h: (N, D).
double mean_pairwise_cosine(const Tensor& h) {
  const Tensor unit = div(h, clamp(norm(h, 2, {1}, true), 1e-12, 1e300));
  const Tensor gram = matmul(unit, unit.t());
  const double n = static_cast<double>(h.size(0));
  return (sum(gram).item() - trace(gram).item()) / (n * (n - 1));
}

// Records, through forward hooks on every ReLU of a deep MLP, how alike the examples' representations are.
std::vector<double> cosine_by_depth(const std::string& norm_name, const Tensor& x) {
  manual_seed(9);
  ModelConfig config;
  config.model = "mlp";
  config.norm = norm_name;
  config.fused_bn_relu = false;  // a separate ReLU module to hook
  config.mlp_hidden = std::vector<int64_t>(12, 128);
  std::shared_ptr<Sequential> model = build_model(config);
  model->to(kFloat64);
  std::vector<double> by_depth;
  for (auto& [name, m] : model->named_modules())
    if (m->type_name() == "ReLU")
      m->register_forward_hook(
          [&](Module&, const Tensor&, const Tensor& out) { by_depth.push_back(mean_pairwise_cosine(out)); });
  NoGradGuard no_record;
  (*model)(x);
  return by_depth;
}

}  // namespace

TEST_CASE("study: at initialization, ReLU layers without BatchNorm make all examples alike (mean shift)",
          "[layers][study][mean_shift]") {
  const TensorDataset data = make_bar_images({.samples_per_class = 16, .seed = 6});
  const Tensor x = data.inputs().to(kFloat64);
  const std::vector<double> plain = cosine_by_depth("none", x), with_bn = cosine_by_depth("batch", x);
  REQUIRE(plain.size() == 12);
  REQUIRE(with_bn.size() == 12);
  for (size_t d = 0; d < plain.size(); ++d)
    UNSCOPED_INFO("depth " << d + 1 << ": " << plain[d] << " vs " << with_bn[d]);
  // Without normalization the representations converge towards one direction with depth ...
  CHECK(plain.back() > plain.front());
  CHECK(plain.back() > 0.95);
  // ... while BatchNorm re-centres every layer, so examples stay distinguishable.
  CHECK(with_bn.back() < 0.6);
  CHECK(with_bn.back() < plain.back() - 0.3);
}
