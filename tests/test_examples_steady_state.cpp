// A steady-state training step takes every tensor buffer from the caching allocator (core/storage.cpp):
// after a warm-up, no step asks the system allocator for tensor memory.
#include <catch2/catch.hpp>

#include "models.h"

using namespace nl;

TEST_CASE("steady-state training steps make no system allocation for tensors", "[trainer][memory]") {
  for (const std::string kind : {"mlp", "cnn"}) {
    INFO(kind);
    ModelConfig c;
    c.model = kind;
    c.norm = "batch";
    auto model = build_model(c);
    SGDOptions o;
    o.lr = 0.01;
    o.momentum = 0.9;
    SGD opt(split_decay_groups(*model, 5e-4), o);
    const Tensor x = randn({32, 1, 28, 28});
    const Tensor y = randint(0, 10, {32});
    auto step = [&] {
      const Tensor loss = cross_entropy(model->forward(x), y);
      opt.zero_grad();
      loss.backward();
      opt.step();
    };
    for (int i = 0; i < 3; ++i) step();
    const MemoryStats before = memory_stats();
    for (int i = 0; i < 5; ++i) step();
    const MemoryStats after = memory_stats();
    CHECK(after.system_allocations == before.system_allocations);
    CHECK(after.cache_hits > before.cache_hits);  // the buffers were recycled
  }
}
