// safetensors files and checkpoints: byte layout, round trips (bit-identical outputs, resumed training),
// and rejection of mismatched, truncated and corrupt files with the model left unchanged.
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <unistd.h>

#include "autograd/engine.h"
#include "core/file_util.h"
#include "core/ops.h"
#include "core/random.h"
#include "core/safetensors.h"
#include "layers/activation.h"
#include "layers/conv.h"
#include "layers/linear.h"
#include "layers/loss.h"
#include "layers/pooling.h"
#include "optim/checkpoint.h"
#include "test_util.h"

using namespace nl;

namespace {

std::string temp_path(const std::string& name) {
  return cat_str("/tmp/normlab_test_", ::getpid(), "_", name, ".safetensors");
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// A module with a buffer, like a normalization layer's running statistics.
struct Scaled : Module {
  Tensor scale = ones({4}).requires_grad_();
  Tensor running = zeros({4});
  Scaled() {
    register_parameter("scale", &scale);
    register_buffer("running", &running);
  }
  Tensor forward(const Tensor& x) override { return mul(add(x, running), scale); }
  std::string type_name() const override { return "Scaled"; }
};

std::shared_ptr<Sequential> make_cnn(uint64_t seed) {
  Generator gen(seed);
  auto net = std::make_shared<Sequential>();
  net->emplace<Conv2d>(3, 4, 3, Conv2dOptions{.padding = 1, .generator = &gen});
  net->emplace<ReLU>();
  net->emplace<MaxPool2d>(2);
  net->emplace<Flatten>();
  net->emplace<Linear>(4 * 4 * 4, 4, true, kFloat32, &gen);
  net->emplace<Scaled>();
  auto* s = static_cast<Scaled*>((*net)[5].get());
  s->running.copy_(randn({4}, kFloat32, &gen));
  return net;
}

// Every parameter and buffer value, in order, for "unchanged" checks.
std::vector<std::vector<float>> snapshot(const Module& m) {
  std::vector<std::vector<float>> out;
  for (auto& [n, t] : m.named_parameters()) out.push_back(t.to_vector<float>());
  for (auto& [n, t] : m.named_buffers()) out.push_back(t.to_vector<float>());
  return out;
}

void train_steps(Module& net, SGD& opt, int steps, uint64_t seed) {
  Generator gen(seed);
  for (int s = 0; s < steps; ++s) {
    const Tensor x = randn({6, 3, 8, 8}, kFloat32, &gen);
    const Tensor y = randint(0, 4, {6}, &gen);
    opt.zero_grad();
    cross_entropy(net(x), y).backward();
    opt.step();
  }
}

}  // namespace

TEST_CASE("safetensors layout: little-endian header length, JSON header padded to 8 bytes, raw data",
          "[optim][checkpoint][safetensors]") {
  const Tensor a = tensor({1.5, -2.0}), b = from_vector(std::vector<int64_t>{7, 8, 9}, {3, 1});
  const std::string bytes = encode_safetensors({{"a", a}, {"b", b}}, {{"note", "hi"}});
  uint64_t n = 0;
  for (int k = 0; k < 8; ++k) n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[k])) << (8 * k);
  CHECK(n % 8 == 0);
  const std::string header = bytes.substr(8, n);
  CHECK(header.find(R"("__metadata__":{"note":"hi"})") != std::string::npos);
  CHECK(header.find(R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})") != std::string::npos);
  CHECK(header.find(R"("b":{"dtype":"I64","shape":[3,1],"data_offsets":[8,32]})") != std::string::npos);
  REQUIRE(bytes.size() == 8 + n + 32);
  float a0;
  int64_t b2;
  std::memcpy(&a0, bytes.data() + 8 + n, 4);
  std::memcpy(&b2, bytes.data() + 8 + n + 8 + 16, 8);
  CHECK(a0 == 1.5f);
  CHECK(b2 == 9);

  const SafetensorsContents back = decode_safetensors(bytes, "memory");
  REQUIRE(back.tensors.size() == 2);
  CHECK(back.tensors[1].first == "b");
  CHECK(back.tensors[1].second.shape() == Shape{3, 1});
  CHECK(test::values(back.tensors[1].second) == std::vector<double>{7, 8, 9});
  CHECK(back.metadata.at("note") == "hi");
}

TEST_CASE("safetensors round-trips float64, scalars, empty tensors, strided views and escaped names",
          "[optim][checkpoint][safetensors]") {
  const Tensor m = arange(0.0, 6.0, 1.0, kFloat64).reshape({2, 3});
  const std::string weird = "quote\" backslash\\ newline\n tab\t ü";
  const std::string bytes = encode_safetensors({{"scalar", full({}, 3.25, kFloat64)},
                                                {"empty", zeros({0, 4})},
                                                {"transposed", m.t()},
                                                {weird, ones({1})}},
                                               {{weird, weird}});
  const SafetensorsContents back = decode_safetensors(bytes, "memory");
  REQUIRE(back.tensors.size() == 4);
  CHECK(back.tensors[0].second.shape() == Shape{});
  CHECK(back.tensors[0].second.item() == 3.25);
  CHECK(back.tensors[1].second.shape() == Shape{0, 4});
  CHECK(test::values(back.tensors[2].second) == std::vector<double>{0, 3, 1, 4, 2, 5});
  CHECK(back.tensors[3].first == weird);
  CHECK(back.metadata.at(weird) == weird);
  CHECK_THROWS_WITH(encode_safetensors({{"x", ones({1})}, {"x", ones({1})}}), Catch::Contains("twice"));
}

TEST_CASE("a model checkpoint round trip restores bit-identical outputs", "[optim][checkpoint]") {
  const std::string path = temp_path("roundtrip");
  auto a = make_cnn(1), b = make_cnn(2);
  const Tensor x = randn({2, 3, 8, 8});
  const std::vector<float> ya = (*a)(x).to_vector<float>();
  REQUIRE((*b)(x).to_vector<float>() != ya);
  save_model(path, *a, {{"experiment", "roundtrip"}});
  load_model(path, *b);
  CHECK((*b)(x).to_vector<float>() == ya);
  CHECK(snapshot(*b) == snapshot(*a));
  CHECK(read_checkpoint_metadata(path).at("experiment") == "roundtrip");
  CHECK(read_checkpoint_metadata(path).at("normlab.format") == "checkpoint-v1");
  std::remove(path.c_str());
}

TEST_CASE("a full checkpoint resumes training exactly: momentum buffers, step count and schedule position",
          "[optim][checkpoint]") {
  const std::string path = temp_path("resume");
  auto a = make_cnn(3);
  SGD opt_a(split_decay_groups(*a, 1e-3), {.lr = 0.1, .momentum = 0.9, .nesterov = true});
  opt_a.set_schedule(sequence({linear_warmup(2, 0.5), cosine_schedule(10)}, {2}));
  train_steps(*a, opt_a, 3, 10);
  save_checkpoint(path, *a, opt_a);
  train_steps(*a, opt_a, 2, 11);

  auto b = make_cnn(4);
  SGD opt_b(split_decay_groups(*b, 1e-3), {.lr = 0.1, .momentum = 0.9, .nesterov = true});
  opt_b.set_schedule(sequence({linear_warmup(2, 0.5), cosine_schedule(10)}, {2}));
  load_checkpoint(path, *b, opt_b);
  CHECK(opt_b.step_count() == 3);
  CHECK(opt_b.current_lr(0) == opt_a.schedule()->factor(3) * 0.1);
  CHECK(opt_b.state_tensors().size() == opt_a.state_tensors().size());
  train_steps(*b, opt_b, 2, 11);
  CHECK(snapshot(*b) == snapshot(*a));
  CHECK(opt_b.step_count() == 5);

  // A full checkpoint also loads as a plain model file.
  auto c = make_cnn(5);
  load_model(path, *c);
  std::remove(path.c_str());
}

TEST_CASE("loading rejects mismatched names and shapes, listing every problem, and changes nothing",
          "[optim][checkpoint][errors]") {
  const std::string path = temp_path("mismatch");
  Sequential saved;
  saved.emplace<Linear>(4, 3);
  saved.emplace<Linear>(3, 2);
  save_model(path, saved);

  Sequential other;
  other.emplace<Linear>(5, 3);         // 0.weight has another shape
  other.emplace<Linear>(3, 2, false);  // 1.bias is not in the model
  other.emplace<Linear>(2, 2);         // 2.weight and 2.bias are not in the file
  const auto before = snapshot(other);
  try {
    load_model(path, other);
    FAIL("load_model accepted a mismatched file");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK_THAT(msg, Catch::Contains("4 problems"));
    CHECK_THAT(msg, Catch::Contains("'0.weight' has shape [3, 4] in the state dict but [3, 5] in the model"));
    CHECK_THAT(msg, Catch::Contains("unexpected key '1.bias'"));
    CHECK_THAT(msg, Catch::Contains("missing key '2.weight'"));
    CHECK_THAT(msg, Catch::Contains("missing key '2.bias'"));
    CHECK_THAT(msg, Catch::Contains(path));
  }
  CHECK(snapshot(other) == before);

  // A float64 model loads a float32 file, converting each tensor (as load_state_dict does).
  Sequential wider;
  wider.emplace<Linear>(4, 3, true, kFloat64);
  wider.emplace<Linear>(3, 2, true, kFloat64);
  load_model(path, wider);
  for (const auto& [name, t] : saved.named_parameters()) {
    const Tensor loaded = wider.get_parameter(name);
    CHECK(loaded.dtype() == kFloat64);
    CHECK(loaded.to(kFloat32).to_vector<float>() == t.to_vector<float>());
  }

  // A model-only file is not a full checkpoint.
  SGD opt(saved.parameters(), {.lr = 0.1});
  CHECK_THROWS_WITH(load_checkpoint(path, saved, opt), Catch::Contains("no optimizer state"));
  std::remove(path.c_str());
}

TEST_CASE("loading optimizer state that does not fit the optimizer is rejected before the model changes",
          "[optim][checkpoint][errors]") {
  const std::string path = temp_path("optim_mismatch");
  auto a = make_cnn(6);
  SGD opt_a(a->parameters(), {.lr = 0.1, .momentum = 0.9});
  train_steps(*a, opt_a, 1, 1);
  save_checkpoint(path, *a, opt_a);

  auto b = make_cnn(7);
  SGD opt_b(split_decay_groups(*b, 0.0), {.lr = 0.1, .momentum = 0.9});  // other grouping: names differ
  const auto before = snapshot(*b);
  CHECK_THROWS_WITH(load_checkpoint(path, *b, opt_b), Catch::Contains("optimizer state 'group0.param1"));
  CHECK(snapshot(*b) == before);
  CHECK(opt_b.step_count() == 0);
  std::remove(path.c_str());
}

TEST_CASE(
    "truncated and corrupt files are rejected with a message naming the problem; the model is unchanged",
    "[optim][checkpoint][errors]") {
  const std::string path = temp_path("corrupt");
  auto model = make_cnn(8);
  save_model(path, *make_cnn(9));
  const std::string good = read_file(path, "test");
  const auto before = snapshot(*model);
  uint64_t n = 0;
  for (int k = 0; k < 8; ++k) n |= static_cast<uint64_t>(static_cast<unsigned char>(good[k])) << (8 * k);

  auto rejects = [&](const std::string& bytes, const std::string& expected_message) {
    write_bytes(path, bytes);
    INFO("expecting: " << expected_message);
    CHECK_THROWS_WITH(load_model(path, *model), Catch::Contains(expected_message));
    CHECK(snapshot(*model) == before);
  };
  rejects(good.substr(0, good.size() - 5), "truncated");
  rejects(good.substr(0, 8 + n / 2), "truncated");
  rejects(good.substr(0, 5), "truncated");
  rejects(good + "xyz", "trailing bytes");
  std::string bad_json = good;
  bad_json[8] = '[';
  rejects(bad_json, "corrupt header");
  std::string bad_length = good;
  bad_length[7] = '\x7f';
  rejects(bad_length, "header length");
  std::string bad_dtype = good;
  bad_dtype.replace(bad_dtype.find("\"F32\""), 5, "\"BF6\"");
  rejects(bad_dtype, "dtype \"BF6\"");
  std::string bad_offsets = good;
  const size_t at = bad_offsets.find("\"data_offsets\":[0,");
  REQUIRE(at != std::string::npos);
  bad_offsets.replace(at, 18, "\"data_offsets\":[4,");
  rejects(bad_offsets, "data_offsets span");
  std::remove(path.c_str());
  CHECK_THROWS_WITH(load_model(path, *model), Catch::Contains("cannot open"));
}

TEST_CASE("checkpoints refuse reserved metadata keys", "[optim][checkpoint][errors]") {
  Linear fc(2, 2);
  CHECK_THROWS_WITH(save_model(temp_path("reserved"), fc, {{"normlab.format", "x"}}),
                    Catch::Contains("reserved"));
}
