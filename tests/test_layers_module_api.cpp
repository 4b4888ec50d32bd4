// The module API a study needs: state dicts, dtype moves, forward hooks, clone, lookups by name, and the
// in-place-on-leaf error.
#include <catch2/catch.hpp>

#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "core/ops.h"
#include "core/random.h"
#include "layers/activation.h"
#include "layers/bias.h"
#include "layers/conv.h"
#include "layers/dropout.h"
#include "layers/linear.h"
#include "layers/loss.h"
#include "layers/normalization.h"
#include "layers/pooling.h"
#include "layers/residual.h"
#include "optim/sgd.h"
#include "test_util.h"

using namespace nl;
using nl::test::allclose;

namespace {

// Linear → BatchNorm1d → ReLU → Linear, the MLP block every BN study starts from.
std::shared_ptr<Sequential> small_mlp(uint64_t seed, DType dtype = kFloat32) {
  Generator gen(seed);
  auto net = std::make_shared<Sequential>();
  net->add("fc1", std::make_shared<Linear>(6, 5, LinearOptions{.dtype = dtype, .generator = &gen}));
  net->add("bn1", std::make_shared<BatchNorm1d>(5, BatchNormOptions{.dtype = dtype}));
  net->add("relu", std::make_shared<ReLU>());
  net->add("fc2", std::make_shared<Linear>(5, 3, LinearOptions{.dtype = dtype, .generator = &gen}));
  return net;
}

std::vector<std::vector<double>> snapshot(const Module& m) {
  std::vector<std::vector<double>> out;
  for (const auto& [name, t] : m.state_dict()) out.push_back(t.to_vector<double>());
  return out;
}

// A few SGD steps in training mode, so that the running statistics and the weights move.
void train_a_little(Module& model, const Tensor& x, const Tensor& labels, int steps = 5) {
  SGD opt(model.parameters(), {.lr = 0.1, .momentum = 0.9});
  model.train();
  for (int i = 0; i < steps; ++i) {
    opt.zero_grad();
    cross_entropy(model(x), labels).backward();
    opt.step();
  }
}

struct NotCloneable : Module {
  Tensor w = ones({2}).requires_grad_();
  NotCloneable() { register_parameter("w", &w); }
  Tensor forward(const Tensor& x) override { return mul(x, w); }
  std::string type_name() const override { return "NotCloneable"; }
};

}  // namespace

// ---- state dicts ----------------------------------------------------------------------------------------

TEST_CASE("state_dict lists parameters then buffers, module by module, as PyTorch orders them",
          "[layers][module][state_dict]") {
  auto net = small_mlp(1);
  const std::vector<std::string> expected = {"fc1.weight",
                                             "fc1.bias",
                                             "bn1.weight",
                                             "bn1.bias",
                                             "bn1.running_mean",
                                             "bn1.running_var",
                                             "bn1.num_batches_tracked",
                                             "fc2.weight",
                                             "fc2.bias"};
  const StateDict state = net->state_dict();
  CHECK(state.keys() == expected);
  // Detached views of the model's own storage: not part of any graph, but they see training.
  CHECK_FALSE(state.at("fc1.weight").requires_grad());
  CHECK(state.at("fc1.weight").raw_data() == net->get_parameter("fc1.weight").raw_data());
  CHECK(state.at("bn1.num_batches_tracked").dtype() == kInt64);
  CHECK_THROWS_WITH(state.at("fc3.weight"), Catch::Contains("no key 'fc3.weight'"));
}

TEST_CASE("load_state_dict copies every tensor; the loaded model computes bit-equal outputs",
          "[layers][module][state_dict]") {
  auto a = small_mlp(1), b = small_mlp(2);
  const Tensor x = randn({8, 6});
  train_a_little(*a, x, randint(0, 3, {8}));
  a->eval();
  b->eval();
  CHECK(a->state_dict_problems(b->state_dict()).empty());
  const LoadStateDictResult r = b->load_state_dict(a->state_dict());
  CHECK(r.missing_keys.empty());
  CHECK(r.unexpected_keys.empty());
  {
    NoGradGuard no_record;
    CHECK((*b)(x).to_vector<float>() == (*a)(x).to_vector<float>());
  }
  // A copy, not an alias: training a again leaves b as it was.
  const auto before = snapshot(*b);
  train_a_little(*a, x, randint(0, 3, {8}));
  CHECK(snapshot(*b) == before);
}

TEST_CASE("strict loading names every missing and unexpected key and changes nothing",
          "[layers][module][state_dict][errors]") {
  auto net = small_mlp(1);
  StateDict state = small_mlp(2)->state_dict();
  state.erase("fc2.bias");
  state.erase("bn1.running_var");
  state.insert("fc3.weight", zeros({2, 2}));
  const auto before = snapshot(*net);
  try {
    net->load_state_dict(state);
    FAIL("a wrong state dict was accepted");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK_THAT(msg, Catch::Contains("3 problems") && Catch::Contains("nothing was loaded"));
    CHECK_THAT(msg, Catch::Contains("missing key 'fc2.bias'"));
    CHECK_THAT(msg, Catch::Contains("missing key 'bn1.running_var'"));
    CHECK_THAT(msg, Catch::Contains("unexpected key 'fc3.weight'"));
  }
  CHECK(snapshot(*net) == before);

  // Non-strict: the missing and unexpected keys are reported, the rest is loaded.
  const LoadStateDictResult r = net->load_state_dict(state, /*strict=*/false);
  CHECK(r.missing_keys == std::vector<std::string>{"bn1.running_var", "fc2.bias"});
  CHECK(r.unexpected_keys == std::vector<std::string>{"fc3.weight"});
  CHECK(net->get_parameter("fc1.weight").to_vector<float>() == state.at("fc1.weight").to_vector<float>());
}

TEST_CASE("a shape mismatch is an error in any mode, naming the key and both shapes",
          "[layers][module][state_dict][errors]") {
  auto net = small_mlp(1);
  StateDict state = net->state_dict();
  state.set("fc1.weight", zeros({5, 7}));
  const auto before = snapshot(*net);
  for (const bool strict : {true, false}) {
    CHECK_THROWS_WITH(
        net->load_state_dict(state, strict),
        Catch::Contains("'fc1.weight' has shape [5, 7] in the state dict but [5, 6] in the model"));
    CHECK(snapshot(*net) == before);
  }
  // Floating values do not go into an integer buffer.
  StateDict floats = net->state_dict();
  floats.set("bn1.num_batches_tracked", scalar_tensor(3.5));
  CHECK_THROWS_WITH(net->load_state_dict(floats), Catch::Contains("'bn1.num_batches_tracked' is float32"));
}

TEST_CASE("load_state_dict converts dtypes: a float32 state dict loads into a float64 model",
          "[layers][module][state_dict]") {
  auto f32 = small_mlp(1);
  auto f64 = small_mlp(2, kFloat64);
  f64->load_state_dict(f32->state_dict());
  CHECK(f64->get_parameter("fc1.weight").dtype() == kFloat64);
  CHECK(f64->get_parameter("fc1.weight").to(kFloat32).to_vector<float>() ==
        f32->get_parameter("fc1.weight").to_vector<float>());
}

// ---- dtype and device
// --------------------------------------------------------------------------------------

TEST_CASE("to(kFloat64) converts every floating parameter and buffer in place; they stay leaves",
          "[layers][module][to]") {
  auto net = small_mlp(1);
  const Tensor w = net->get_parameter("fc1.weight");  // a handle held from before, as an optimizer holds it
  const std::vector<float> w_values = w.to_vector<float>();
  SGD opt(net->parameters(), {.lr = 0.1});
  cross_entropy((*net)(randn({4, 6})), randint(0, 3, {4})).backward();

  CHECK(&net->to(kFloat64) == net.get());
  for (const auto& [name, t] : net->state_dict())
    CHECK(t.dtype() == (name == "bn1.num_batches_tracked" ? kInt64 : kFloat64));
  for (const auto& [name, p] : net->named_parameters()) {
    CHECK(p.requires_grad());
    CHECK(p.is_leaf());
    CHECK(p.grad().dtype() == kFloat64);  // the gradient moved with it
  }
  CHECK(w.same(net->get_parameter("fc1.weight")));
  CHECK(w.dtype() == kFloat64);
  CHECK(w.to(kFloat32).to_vector<float>() == w_values);

  // The optimizer built before the move updates the float64 parameters, and they receive gradients.
  opt.zero_grad();
  cross_entropy((*net)(randn({4, 6}, kFloat64)), randint(0, 3, {4})).backward();
  const std::vector<double> before = w.to_vector<double>();
  opt.step();
  CHECK(w.to_vector<double>() != before);
}

TEST_CASE("to(Device::CUDA) is an error naming the device in a build without CUDA; the model is unchanged",
          "[layers][module][to][errors]") {
  auto net = small_mlp(1);
  const auto before = snapshot(*net);
  CHECK_THROWS_WITH(net->to(Device::CUDA), Catch::Contains("no cuda backend"));
  CHECK(snapshot(*net) == before);
  CHECK(&net->to(Device::CPU) == net.get());
  CHECK_THROWS_WITH(net->to(kInt64), Catch::Contains("must be floating"));
}

TEST_CASE("every layer takes a dtype option", "[layers][module][to]") {
  const BatchNormOptions bn{.dtype = kFloat64};
  CHECK(BatchNorm2d(3, bn).running_mean.dtype() == kFloat64);
  CHECK(GhostBatchNorm(3, 2, bn).weight.dtype() == kFloat64);
  CHECK(BatchRenorm(3, {.dtype = kFloat64}).running_std.dtype() == kFloat64);
  CHECK(FrozenBatchNorm(3, {.dtype = kFloat64}).running_var.dtype() == kFloat64);
  CHECK(InstanceNorm2d(3, {.affine = true, .track_running_stats = true, .dtype = kFloat64})
            .running_mean.dtype() == kFloat64);
  CHECK(GroupNorm(1, 3, {.dtype = kFloat64}).weight.dtype() == kFloat64);
  CHECK(LayerNorm({3}, {.dtype = kFloat64}).bias.dtype() == kFloat64);
  CHECK(RMSNorm({3}, {.dtype = kFloat64}).weight.dtype() == kFloat64);
  CHECK(Linear(3, 2, {.dtype = kFloat64}).weight.dtype() == kFloat64);
  CHECK(Conv2d(3, 2, 3, Conv2dOptions{.dtype = kFloat64}).weight.dtype() == kFloat64);
  CHECK_THROWS_WITH(BatchNorm1d(3, {.dtype = kInt64}), Catch::Contains("BatchNorm1d: dtype must be"));
  // The short positional form still works.
  CHECK_FALSE(Linear(3, 2, false).bias.defined());
}

TEST_CASE("a model moved to float64 passes gradcheck end to end, and round-trips through a state dict",
          "[layers][module][to][state_dict]") {
  Generator gen(3);
  auto make = [](uint64_t seed) {
    Generator g(seed);
    auto net = std::make_shared<Sequential>();
    net->add("conv", std::make_shared<Conv2d>(2, 3, 3, Conv2dOptions{.padding = 1, .generator = &g}));
    net->add("bn", std::make_shared<BatchNorm2d>(3));
    net->add("relu", std::make_shared<ReLU>());
    net->add("pool", std::make_shared<GlobalAvgPool2d>());
    net->add("fc", std::make_shared<Linear>(3, 2, true, kFloat32, &g));
    return net;
  };
  auto net = make(1);
  net->to(kFloat64);
  const Tensor x = randn({4, 2, 5, 5}, kFloat64, &gen).requires_grad_();
  // Through every layer (BatchNorm in training mode: batch statistics), for the input and every parameter;
  // gradcheck perturbs the tensors in place, so the model's own parameters are the inputs.
  std::vector<Tensor> inputs{x};
  for (const Tensor& p : net->parameters()) inputs.push_back(p);
  CHECK(inputs.size() == 7);
  CHECK(gradcheck([&](const std::vector<Tensor>&) { return (*net)(x); }, inputs, {}, "conv-bn-relu-pool-fc"));

  // Save, load into a fresh model (float32 until moved), and get bit-equal outputs in both modes.
  auto fresh = make(2);
  fresh->to(kFloat64);
  fresh->load_state_dict(net->state_dict());
  NoGradGuard no_record;
  for (const bool training : {false, true}) {
    net->train(training);
    fresh->train(training);
    const Tensor probe = randn({3, 2, 5, 5}, kFloat64, &gen);
    CHECK((*fresh)(probe).to_vector<double>() == (*net)(probe).to_vector<double>());
  }
}

// ---- hooks ----------------------------------------------------------------------------------------------

TEST_CASE("forward hooks see each module's input and output, wherever it sits in the tree",
          "[layers][module][hooks]") {
  auto net = small_mlp(1);
  Tensor seen_in, seen_out;
  int pre_calls = 0;
  HookHandle h =
      net->get_submodule("bn1").register_forward_hook([&](Module& m, const Tensor& in, const Tensor& out) {
        CHECK(m.type_name() == "BatchNorm1d");
        seen_in = in;
        seen_out = out;
      });
  HookHandle pre = net->register_forward_pre_hook([&](Module&, const Tensor&) { ++pre_calls; });
  const Tensor x = randn({8, 6});
  const Tensor y = (*net)(x);
  REQUIRE(seen_in.defined());
  NoGradGuard no_record;
  CHECK(allclose(seen_in, linear(x, net->get_parameter("fc1.weight"), net->get_parameter("fc1.bias"))));
  CHECK(seen_out.shape() == Shape{8, 5});
  CHECK(pre_calls == 1);

  // remove() takes the hook off; a second remove() does nothing.
  h.remove();
  h.remove();
  seen_in = Tensor();
  (*net)(x);
  CHECK_FALSE(seen_in.defined());
  CHECK(pre_calls == 2);
  pre.remove();
  (*net)(x);
  CHECK(pre_calls == 2);
}

TEST_CASE("a hook that returns a tensor replaces the input or the output", "[layers][module][hooks]") {
  ReLU relu;
  const Tensor x = tensor({-1, 2, -3});
  HookHandle pre = relu.register_forward_pre_hook([](Module&, const Tensor& in) { return neg(in); });
  CHECK(relu(x).to_vector<float>() == std::vector<float>{1, 0, 3});
  HookHandle post =
      relu.register_forward_hook([](Module&, const Tensor&, const Tensor& out) { return mul(out, 10.0); });
  CHECK(relu(x).to_vector<float>() == std::vector<float>{10, 0, 30});
  pre.remove();
  post.remove();
  CHECK(relu(x).to_vector<float>() == std::vector<float>{0, 2, 0});
  // forward() bypasses the hooks.
  relu.register_forward_hook([](Module&, const Tensor&, const Tensor& out) { return mul(out, 0.0); });
  CHECK(relu.forward(x).to_vector<float>() == std::vector<float>{0, 2, 0});
}

TEST_CASE("a forward hook that registers a tensor hook observes the module's output gradient",
          "[layers][module][hooks]") {
  auto net = small_mlp(1, kFloat64);
  Tensor out_grad;
  net->get_submodule("relu").register_forward_hook([&](Module&, const Tensor&, const Tensor& out) {
    out.register_hook([&](const Tensor& g) { out_grad = g.clone(); });
  });
  const Tensor x = randn({8, 6}, kFloat64);
  const Tensor y = (*net)(x);
  const Tensor u = randn(y.shape(), kFloat64);
  y.backward(u);
  REQUIRE(out_grad.defined());
  // y = h · W2ᵀ + b2, so dL/dh = u · W2.
  CHECK(allclose(out_grad, matmul(u, net->get_parameter("fc2.weight").detach()), 1e-12, 1e-12));
}

TEST_CASE("a hook handle outliving its module is harmless", "[layers][module][hooks]") {
  HookHandle h;
  {
    ReLU relu;
    h = relu.register_forward_hook([](Module&, const Tensor&, const Tensor&) {});
  }
  h.remove();
  SUCCEED("remove() after the module died did nothing");
}

// ---- clone ----------------------------------------------------------------------------------------------

TEST_CASE("clone is a deep copy: same outputs, own parameters, buffers and children",
          "[layers][module][clone]") {
  Generator gen(5);
  auto net = std::make_shared<Sequential>();
  net->add("stem", std::make_shared<Conv2d>(1, 4, 3, Conv2dOptions{.padding = 1, .bias = false}));
  net->add("bn", std::make_shared<BatchNorm2d>(4));
  net->add("block",
           std::make_shared<BasicBlock>(4, 8, 2, [](int64_t c) { return std::make_shared<BatchNorm2d>(c); }));
  net->add("pool", std::make_shared<GlobalAvgPool2d>());
  net->add("fc", std::make_shared<Linear>(8, 3));
  const Tensor x = randn({4, 1, 8, 8}, kFloat32, &gen);
  train_a_little(*net, x, randint(0, 3, {4}, &gen), 2);
  net->get_submodule("bn").eval();  // a per-module flag, copied as it is

  const std::shared_ptr<Module> copy = net->clone();
  CHECK(copy->to_string() == net->to_string());
  CHECK(snapshot(*copy) == snapshot(*net));
  CHECK_FALSE(copy->get_submodule("bn").is_training());
  CHECK(copy->get_submodule("block").is_training());
  for (const auto& [name, p] : copy->named_parameters()) {
    CHECK(p.requires_grad());
    CHECK(p.is_leaf());
    CHECK(p.raw_data() != net->get_parameter(name).raw_data());
    CHECK(p.grad().defined());  // gradients are copied too
  }
  // The BasicBlock's typed handles point at the copy's own children.
  auto& block = dynamic_cast<BasicBlock&>(copy->get_submodule("block"));
  CHECK(block.body.get() == &copy->get_submodule("block.body"));
  CHECK(block.body.get() != &net->get_submodule("block.body"));

  net->eval();
  copy->eval();
  {
    NoGradGuard no_record;
    CHECK((*copy)(x).to_vector<float>() == (*net)(x).to_vector<float>());
  }
  // Training the copy leaves the original untouched.
  const auto original = snapshot(*net);
  train_a_little(*copy, x, randint(0, 3, {4}, &gen), 2);
  CHECK(snapshot(*net) == original);
  CHECK(snapshot(*copy) != original);
}

TEST_CASE("clone keeps non-tensor settings and drops hooks", "[layers][module][clone]") {
  BatchNorm1d bn(3, {.momentum = std::nullopt});
  bn.freeze_running_stats();
  int calls = 0;
  bn.register_forward_hook([&](Module&, const Tensor&, const Tensor&) { ++calls; });
  auto copy = std::dynamic_pointer_cast<BatchNorm1d>(bn.clone());
  REQUIRE(copy != nullptr);
  CHECK(copy->running_stats_frozen());
  CHECK_FALSE(copy->options().momentum.has_value());
  (*copy)(randn({4, 3}));
  CHECK(calls == 0);
}

TEST_CASE("a module without clone_impl says how to add it; copying by value is an error",
          "[layers][module][clone][errors]") {
  Sequential net;
  net.add(std::make_shared<NotCloneable>());
  CHECK_THROWS_WITH(net.clone(), Catch::Contains("NotCloneable: clone() needs NotCloneable::clone_impl()"));
  Linear fc(2, 2);
  CHECK_THROWS_WITH([&] { Linear copy = fc; }(), Catch::Contains("cannot be copied by value"));
}

// ---- names and lookups ------------------------------------------------------------------------------------

TEST_CASE("Sequential children can be named; lookups by dotted name name the missing key",
          "[layers][module][names][errors]") {
  auto net = small_mlp(1);
  CHECK(&net->get_submodule("bn1") == (*net)[1].get());
  CHECK(&net->get_submodule("") == net.get());
  CHECK(net->get_parameter("fc2.bias").shape() == Shape{3});
  CHECK(net->get_buffer("bn1.running_var").shape() == Shape{5});
  CHECK(net->num_parameters() == 6 * 5 + 5 + 5 + 5 + 5 * 3 + 3);
  CHECK_THROWS_WITH(net->get_submodule("bn2"),
                    Catch::Contains("has no child 'bn2'") && Catch::Contains("fc1, bn1, relu, fc2"));
  CHECK_THROWS_WITH(net->get_submodule("fc1.inner"), Catch::Contains("'fc1' (Linear) has no child 'inner'"));
  CHECK_THROWS_WITH(net->get_parameter("bn1.running_mean"),
                    Catch::Contains("no parameter 'bn1.running_mean'"));
  CHECK_THROWS_WITH(net->get_buffer("fc1.weight"), Catch::Contains("no buffer 'fc1.weight'"));
  CHECK_THROWS_WITH(net->add("fc1", std::make_shared<ReLU>()),
                    Catch::Contains("'fc1' is already registered"));

  // find_tensor: nullptr for an unknown name and for an optional member that is absent.
  Sequential no_bias;
  no_bias.add("fc", std::make_shared<Linear>(2, 2, false));
  CHECK(no_bias.find_tensor("fc.weight") != nullptr);
  CHECK(no_bias.find_tensor("fc.bias") == nullptr);
  CHECK(no_bias.find_tensor("fc.nothing") == nullptr);
  CHECK_THROWS_WITH(no_bias.get_parameter("fc.bias"), Catch::Contains("'fc.bias' is not set"));

  Sequential named({{"a", std::make_shared<ReLU>()}, {"b", std::make_shared<Tanh>()}});
  named.add(std::make_shared<Identity>());
  CHECK(named.named_children()[2].first == "2");
  auto relu = std::make_shared<ReLU>();
  auto tanh_layer = std::make_shared<Tanh>();
  Sequential unnamed({relu, tanh_layer});
  CHECK(unnamed.named_children()[1].first == "1");
}

TEST_CASE("pooling layers take an options struct or the short form", "[layers][module][names]") {
  CHECK(MaxPool2d(3, {.stride = 2, .padding = 1}).describe() == MaxPool2d(3, 2, 1).describe());
  const AvgPool2d avg(3, {.stride = 1, .padding = 1, .count_include_pad = false});
  CHECK(avg.stride == 1);
  CHECK_FALSE(avg.count_include_pad);
}

// ---- in-place updates of leaves ---------------------------------------------------------------------------

TEST_CASE("an in-place update of a leaf that requires grad is an error outside NoGradGuard",
          "[layers][module][errors]") {
  Linear fc(3, 2);
  CHECK_THROWS_WITH(fc.weight.fill_(0), Catch::Contains("fill_: a leaf tensor that requires grad"));
  CHECK_THROWS_WITH(fc.weight.mul_(2), Catch::Contains("mul_: a leaf tensor that requires grad"));
  CHECK_THROWS_WITH(fc.weight.add_(ones({2, 3})), Catch::Contains("add_: a leaf"));
  CHECK_THROWS_WITH(fc.weight.copy_(ones({2, 3})), Catch::Contains("copy_: a leaf"));
  {
    NoGradGuard no_record;
    fc.weight.fill_(0.5);
  }
  fc.weight.detach().mul_(2);  // the detached alias is allowed, as in PyTorch
  CHECK(fc.weight.to_vector<float>() == std::vector<float>(6, 1.0f));
}

// ---- removing the biases before a normalization ----------------------------------------------------------

TEST_CASE(
    "removing the biases before normalizations leaves a trained model's train and eval outputs unchanged",
    "[layers][module][bias]") {
  Generator gen(7);
  auto net = std::make_shared<Sequential>();
  net->add("conv1", std::make_shared<Conv2d>(1, 4, 3, Conv2dOptions{.padding = 1, .dtype = kFloat64}));
  net->add("bn", std::make_shared<BatchNorm2d>(4, BatchNormOptions{.dtype = kFloat64}));
  net->add("conv2", std::make_shared<Conv2d>(4, 4, 3, Conv2dOptions{.padding = 1, .dtype = kFloat64}));
  net->add("in", std::make_shared<InstanceNorm2d>(
                     4, InstanceNormOptions{.affine = true, .track_running_stats = true, .dtype = kFloat64}));
  net->add("conv3", std::make_shared<Conv2d>(4, 4, 3, Conv2dOptions{.padding = 1, .dtype = kFloat64}));
  net->add("renorm", std::make_shared<BatchRenorm>(4, BatchRenormOptions{.dtype = kFloat64}));
  net->add("pool", std::make_shared<GlobalAvgPool2d>());
  net->add("fc", std::make_shared<Linear>(4, 3, LinearOptions{.dtype = kFloat64}));
  net->add("ghost", std::make_shared<GhostBatchNorm>(3, 2, BatchNormOptions{.dtype = kFloat64}));
  const Tensor x = randn({8, 1, 6, 6}, kFloat64, &gen);
  train_a_little(*net, x, randint(0, 3, {8}, &gen), 10);
  {
    // Make the biases large, so that forgetting to fold them would show.
    NoGradGuard no_record;
    for (const char* b : {"conv1.bias", "conv2.bias", "conv3.bias", "fc.bias"})
      net->get_parameter(b).add_(ones_like(net->get_parameter(b)), 3.0);
  }

  NoGradGuard no_record;
  const Tensor probe = randn({4, 1, 6, 6}, kFloat64, &gen);
  net->eval();
  const Tensor eval_before = (*net)(probe);
  const Tensor running_mean = net->get_buffer("bn.running_mean").clone();
  const Tensor conv1_bias = net->get_parameter("conv1.bias").detach().clone();
  auto twin = net->clone();  // train mode changes the running statistics: compare on a copy
  twin->train();
  const Tensor train_before = (*twin)(probe);

  const auto removed = remove_biases_before_normalization(*net);
  CHECK(removed == std::vector<std::string>{"conv1.bias", "conv2.bias", "conv3.bias", "fc.bias"});
  CHECK(allclose(net->get_buffer("bn.running_mean"), sub(running_mean, conv1_bias), 0, 1e-15));
  CHECK(allclose((*net)(probe), eval_before, 1e-12, 1e-12));
  net->train();
  CHECK(allclose((*net)(probe), train_before, 1e-12, 1e-12));
}

TEST_CASE("layer functions given an undefined tensor name the function and the argument",
          "[layers][errors]") {
  const Tensor x = ones({2, 3, 4, 4}), w = ones({5, 3, 3, 3}), logits = ones({2, 3}), none;
  const Tensor targets = from_vector(std::vector<int64_t>{0, 1});
  CHECK_THROWS_WITH(linear(none, ones({2, 3})), "linear: x is undefined");
  CHECK_THROWS_WITH(linear(logits, none), "linear: weight is undefined");
  CHECK_THROWS_WITH(conv2d(none, w), "conv2d: x is undefined");
  CHECK_THROWS_WITH(conv2d(x, none), "conv2d: weight is undefined");
  CHECK_THROWS_WITH(standardize_weight(none), "standardize_weight: weight is undefined");
  CHECK_THROWS_WITH(max_pool2d(none, 2), "max_pool2d: x is undefined");
  CHECK_THROWS_WITH(avg_pool2d(none, 2), "avg_pool2d: x is undefined");
  CHECK_THROWS_WITH(adaptive_avg_pool2d(none, 1, 1), "adaptive_avg_pool2d: x is undefined");
  CHECK_THROWS_WITH(global_avg_pool2d(none), "global_avg_pool2d: x is undefined");
  CHECK_THROWS_WITH(cross_entropy(none, targets), "cross_entropy: logits is undefined");
  CHECK_THROWS_WITH(cross_entropy(logits, none), "cross_entropy: targets is undefined");
  CHECK_THROWS_WITH(nll_loss(logits, none), "nll_loss: targets is undefined");
  CHECK_THROWS_WITH(mse_loss(none, logits), "mse_loss: pred is undefined");
  CHECK_THROWS_WITH(accuracy(logits, none), "accuracy: targets is undefined");
  CHECK_THROWS_WITH(dropout(none, 0.5, true), "dropout: x is undefined");
  CHECK_THROWS_WITH(dropout(none, 0.5, false), "dropout: x is undefined");  // not passed through in eval
  CHECK_THROWS_WITH(dropout_with_mask(logits, none, 0.5), "dropout: mask is undefined");
  CHECK_THROWS_WITH(Linear(3, 2)(none), "Linear(3, 2): the input is undefined");
  CHECK_THROWS_WITH(Sequential().add("fc", std::make_shared<Linear>(3, 2))(none),
                    Catch::EndsWith(": the input is undefined"));
}
