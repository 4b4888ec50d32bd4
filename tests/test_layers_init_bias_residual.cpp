// Initializers, the bias-omission helpers, residual blocks and a small ResNet.
#include <catch2/catch.hpp>

#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "core/ops.h"
#include "core/random.h"
#include "layers/activation.h"
#include "layers/bias.h"
#include "layers/conv.h"
#include "layers/init.h"
#include "layers/linear.h"
#include "layers/normalization.h"
#include "layers/residual.h"
#include "test_util.h"

using namespace nl;
using nl::test::allclose;

namespace {

// A stand-in for a normalization layer that subtracts the per-channel mean (as BatchNorm does), so a bias
// before it cancels. The real normalization layers live in layers/normalization.h.
struct MeanSubtract : Module {
  Tensor forward(const Tensor& x) override {
    std::vector<int64_t> axes = {0};
    for (int64_t d = 2; d < x.dim(); ++d) axes.push_back(d);
    return sub(x, mean(x, axes, true));
  }
  std::string type_name() const override { return "MeanSubtract"; }
  bool cancels_preceding_bias() const override { return true; }
};

double sample_std(const Tensor& t) { return stddev(t.to(kFloat64)).item(); }

}  // namespace

TEST_CASE("initializers draw from the documented ranges and variances, reproducibly", "[layers][init]") {
  Tensor w = empty({256, 128, 3, 3});  // fan_in = 1152, fan_out = 2304
  Generator gen(1);
  init::kaiming_uniform_(w, 0.0, init::FanMode::FanIn, init::Nonlinearity::Relu, &gen);
  const double bound = std::sqrt(2.0) * std::sqrt(3.0 / 1152);
  CHECK(max(abs(w)).item() <= bound);
  CHECK(sample_std(w) == Approx(bound / std::sqrt(3.0)).epsilon(0.02));

  init::kaiming_normal_(w, 0.0, init::FanMode::FanOut, init::Nonlinearity::Relu, &gen);
  CHECK(sample_std(w) == Approx(std::sqrt(2.0 / 2304)).epsilon(0.02));
  CHECK(mean(w).item() == Approx(0.0).margin(1e-3));

  init::xavier_uniform_(w, 1.0, &gen);
  const double xb = std::sqrt(6.0 / (1152 + 2304));
  CHECK(max(abs(w)).item() <= xb);
  CHECK(sample_std(w) == Approx(xb / std::sqrt(3.0)).epsilon(0.02));

  init::xavier_normal_(w, 2.0, &gen);
  CHECK(sample_std(w) == Approx(2.0 * std::sqrt(2.0 / (1152 + 2304))).epsilon(0.02));

  init::constant_(w, 0.5);
  CHECK(min(w).item() == 0.5);
  CHECK(max(w).item() == 0.5);
  init::zeros_(w);
  CHECK(max(abs(w)).item() == 0.0);
  init::ones_(w);
  CHECK(min(w).item() == 1.0);

  Tensor a = empty({4, 5}), b = empty({4, 5});
  Generator g1(9), g2(9);
  init::kaiming_uniform_(a, std::sqrt(5.0), init::FanMode::FanIn, init::Nonlinearity::LeakyRelu, &g1);
  init::kaiming_uniform_(b, std::sqrt(5.0), init::FanMode::FanIn, init::Nonlinearity::LeakyRelu, &g2);
  CHECK(test::values(a) == test::values(b));
  CHECK(init::gain(init::Nonlinearity::Tanh) == Approx(5.0 / 3.0));
  CHECK(init::gain(init::Nonlinearity::LeakyRelu, std::sqrt(5.0)) == Approx(std::sqrt(1.0 / 3.0)));
  Tensor vec = empty({5});
  CHECK_THROWS_WITH(init::kaiming_uniform_(vec), Catch::Contains("rank >= 2") && Catch::Contains("[5]"));
}

TEST_CASE("Linear and Conv2d defaults are PyTorch's U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias",
          "[layers][init]") {
  Generator gen(4);
  Linear fc(400, 300, true, kFloat32, &gen);
  const double bound = 1.0 / std::sqrt(400.0);
  CHECK(max(abs(fc.weight)).item() <= bound);
  CHECK(sample_std(fc.weight) == Approx(bound / std::sqrt(3.0)).epsilon(0.02));
  CHECK(max(abs(fc.bias)).item() <= bound);
  Generator g1(8), g2(8);
  Conv2d c1(8, 16, 3, {.generator = &g1}), c2(8, 16, 3, {.generator = &g2});
  CHECK(test::values(c1.weight) == test::values(c2.weight));
}

TEST_CASE("biases that feed straight into a normalization are listed and removed", "[layers][bias]") {
  Sequential net;
  net.emplace<Conv2d>(3, 8, 3);            // 0: followed by a normalization → useless bias
  net.emplace<MeanSubtract>();             // 1
  net.emplace<ReLU>();                     // 2
  net.emplace<Conv2d>(8, 8, 3);            // 3: followed by ReLU → keeps its bias
  net.emplace<ReLU>();                     // 4
  auto inner = net.emplace<Sequential>();  // 5
  inner->emplace<Linear>(8, 4);            // 5.0: followed by a normalization
  inner->emplace<MeanSubtract>();
  inner->emplace<Linear>(4, 2, false);  // 5.2: already bias-free
  inner->emplace<MeanSubtract>();

  CHECK(biases_before_normalization(net) == std::vector<std::string>{"0.bias", "5.0.bias"});
  const size_t before = net.named_parameters().size();
  const Tensor x = randn({2, 3, 8, 8});
  const Tensor y0 = net[1]->forward(net[0]->forward(x));

  CHECK(remove_biases_before_normalization(net) == std::vector<std::string>{"0.bias", "5.0.bias"});
  CHECK(net.named_parameters().size() == before - 2);
  for (auto& [name, p] : net.named_parameters()) CHECK((name != "0.bias" && name != "5.0.bias"));
  CHECK(biases_before_normalization(net).empty());
  CHECK(net[0]->describe() == "Conv2d(3, 8, kernel_size=3, bias=false)");
  // The bias was useless: the normalized output is unchanged without it.
  CHECK(allclose(net[1]->forward(net[0]->forward(x)), y0, 1e-4, 1e-5));
}

TEST_CASE(
    "BasicBlock: identity and projection shortcuts, default Identity norm, bias-free convs before a "
    "cancelling norm",
    "[layers][residual]") {
  BasicBlock same(8, 8);
  CHECK(same.shortcut->type_name() == "Identity");
  CHECK(same(randn({2, 8, 6, 6})).shape() == Shape{2, 8, 6, 6});
  CHECK(same.body->size() == 5);
  CHECK((*same.body)[1]->type_name() == "Identity");
  CHECK(same.named_parameters().size() == 4);  // two convs with bias

  BasicBlock down(8, 16, 2, [](int64_t) { return std::make_shared<MeanSubtract>(); });
  CHECK(down.shortcut->type_name() == "Sequential");
  CHECK(down(randn({2, 8, 6, 6})).shape() == Shape{2, 16, 3, 3});
  for (auto& [name, p] : down.named_parameters()) CHECK(p.dim() == 4);  // no biases: the norm cancels them
  CHECK(down.named_parameters().size() == 3);
  CHECK_THROWS_WITH(down(randn({2, 4, 6, 6})), Catch::Contains("[2, 4, 6, 6]"));
}

TEST_CASE("gradcheck: a BasicBlock with a projection shortcut", "[layers][residual][gradcheck]") {
  Generator gen(7);
  BasicBlock block(2, 3, 2, nullptr, {.dtype = kFloat64, .generator = &gen});
  std::vector<Tensor> inputs = {randn({2, 2, 5, 5}, kFloat64, &gen).requires_grad_()};
  for (const Tensor& p : block.parameters()) inputs.push_back(p);
  CHECK(gradcheck([&](const std::vector<Tensor>& in) { return block(in[0]); }, inputs, {}, "BasicBlock"));
}

TEST_CASE("small_resnet maps images to class scores and trains", "[layers][residual]") {
  Generator gen(2);
  auto net = small_resnet({.in_channels = 3,
                           .num_classes = 5,
                           .widths = {4, 8},
                           .blocks_per_stage = 1,
                           .conv_options = {.generator = &gen}});
  const Tensor x = randn({4, 3, 8, 8}, kFloat32, &gen);
  const Tensor y = (*net)(x);
  CHECK(y.shape() == Shape{4, 5});
  sum(square(y)).backward();
  for (auto& [name, p] : net->named_parameters()) {
    INFO(name);
    CHECK(p.grad().defined());
  }
}

TEST_CASE(
    "with BatchNorm2d as the normalization, blocks build bias-free convs and the helper finds "
    "Conv2d -> BatchNorm2d biases",
    "[layers][residual][bias]") {
  BasicBlock block(4, 8, 2, [](int64_t c) { return std::make_shared<BatchNorm2d>(c); });
  for (auto& [name, p] : block.named_parameters()) {
    INFO(name);
    CHECK((name != "body.0.bias" && name != "body.3.bias" && name != "shortcut.0.bias"));  // convs: no bias
  }
  CHECK(block.named_parameters().size() == 3 + 2 * 3);  // three conv weights, three BatchNorm γ/β pairs
  CHECK(block(randn({4, 4, 6, 6})).shape() == Shape{4, 8, 3, 3});

  Sequential net;
  net.emplace<Conv2d>(3, 8, 3);
  net.emplace<BatchNorm2d>(8);
  net.emplace<Linear>(8, 8);
  CHECK(biases_before_normalization(net) == std::vector<std::string>{"0.bias"});
}
