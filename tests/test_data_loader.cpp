// DataLoader: seeded order, full coverage of an epoch, exact resume, seeded transforms, and errors raised on
// the background thread arriving at the caller.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <numeric>
#include <thread>

#include <catch2/catch.hpp>

#include "data/dataloader.h"

using namespace nl;
using Catch::Contains;

namespace {

// n examples of shape (1, 4, 4); every pixel of example i is i, its label is i % 7.
std::shared_ptr<TensorDataset> numbered_images(int64_t n) {
  std::vector<float> values;
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < n; ++i) {
    values.insert(values.end(), 16, static_cast<float>(i));
    labels.push_back(i % 7);
  }
  return std::make_shared<TensorDataset>(from_vector(values, {n, 1, 4, 4}), from_vector(labels, {n}));
}

struct Recorded {
  std::vector<int64_t> indices;
  std::vector<float> inputs;
  std::vector<int64_t> labels;
  bool operator==(const Recorded&) const = default;
};

Recorded record(const Batch& b) {
  return {b.indices, b.inputs.to_vector<float>(), b.labels.to_vector<int64_t>()};
}

// Every batch of one epoch, starting at first_batch.
std::vector<Recorded> run_epoch(DataLoader& loader, int64_t epoch, int64_t first_batch = 0) {
  std::vector<Recorded> out;
  for (const Batch& b : loader.batches(epoch, first_batch)) out.push_back(record(b));
  return out;
}

std::vector<int64_t> concatenated_indices(const std::vector<Recorded>& batches) {
  std::vector<int64_t> all;
  for (const Recorded& r : batches) all.insert(all.end(), r.indices.begin(), r.indices.end());
  return all;
}

// A dataset whose get() throws for one index, with an nl::Error or with a type of its own.
struct CustomError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
class FailingDataset : public Dataset {
 public:
  FailingDataset(int64_t n, int64_t bad_index, bool custom) : n_(n), bad_(bad_index), custom_(custom) {}
  int64_t size() const override { return n_; }
  Example get(int64_t index) const override {
    if (index == bad_) {
      if (custom_) throw CustomError("custom failure");
      throw Error(cat_str("bad sample ", index));
    }
    return {full({2}, static_cast<double>(index)), 0};
  }

 private:
  int64_t n_, bad_;
  bool custom_;
};

// A dataset that takes a while per example, to catch the loader mid-batch.
class SlowDataset : public Dataset {
 public:
  explicit SlowDataset(std::atomic<int>* calls) : calls_(calls) {}
  int64_t size() const override { return 40; }
  Example get(int64_t index) const override {
    ++*calls_;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return {full({3}, static_cast<double>(index)), index % 2};
  }

 private:
  std::atomic<int>* calls_;
};

}  // namespace

TEST_CASE("DataLoader: the same seed gives the same order, a different seed or epoch a different one",
          "[data][loader]") {
  const auto ds = numbered_images(50);
  DataLoader a(ds, {.batch_size = 8, .shuffle = true, .seed = 7});
  DataLoader b(ds, {.batch_size = 8, .shuffle = true, .seed = 7});
  DataLoader c(ds, {.batch_size = 8, .shuffle = true, .seed = 8});
  const std::vector<Recorded> a0 = run_epoch(a, 0), a1 = run_epoch(a, 1);
  CHECK(run_epoch(b, 0) == a0);
  CHECK(run_epoch(b, 1) == a1);
  CHECK(concatenated_indices(run_epoch(c, 0)) != concatenated_indices(a0));
  CHECK(concatenated_indices(a1) != concatenated_indices(a0));
  // The order is epoch_order(), cut into batches, and is a shuffle (not the identity).
  CHECK(concatenated_indices(a0) == a.epoch_order(0));
  std::vector<int64_t> identity(50);
  std::iota(identity.begin(), identity.end(), 0);
  CHECK(a.epoch_order(0) != identity);
  // Running epoch 0 again (after epoch 1) reproduces it.
  CHECK(run_epoch(a, 0) == a0);
}

TEST_CASE("DataLoader: an epoch visits every sample exactly once", "[data][loader]") {
  const int64_t n = 23, batch_size = 5;
  const auto ds = numbered_images(n);
  std::vector<int64_t> all(n);
  std::iota(all.begin(), all.end(), 0);

  SECTION("without drop_last the last batch is short") {
    DataLoader loader(ds, {.batch_size = batch_size, .shuffle = true, .seed = 3});
    CHECK(loader.num_batches() == 5);
    const std::vector<Recorded> batches = run_epoch(loader, 2);
    REQUIRE(batches.size() == 5);
    for (size_t i = 0; i < 4; ++i) CHECK(batches[i].indices.size() == 5);
    CHECK(batches[4].indices.size() == 3);
    std::vector<int64_t> seen = concatenated_indices(batches);
    std::sort(seen.begin(), seen.end());
    CHECK(seen == all);
    // Rows hold the samples their indices name.
    for (const Recorded& r : batches)
      for (size_t row = 0; row < r.indices.size(); ++row) {
        CHECK(r.inputs[row * 16] == static_cast<float>(r.indices[row]));
        CHECK(r.inputs[row * 16 + 15] == static_cast<float>(r.indices[row]));
        CHECK(r.labels[row] == r.indices[row] % 7);
      }
  }
  SECTION("with drop_last the short batch is dropped, and the rest appear once") {
    DataLoader loader(ds, {.batch_size = batch_size, .shuffle = true, .seed = 3, .drop_last = true});
    CHECK(loader.num_batches() == 4);
    const std::vector<Recorded> batches = run_epoch(loader, 2);
    REQUIRE(batches.size() == 4);
    for (const Recorded& r : batches) CHECK(r.indices.size() == 5);
    const std::vector<int64_t> order = loader.epoch_order(2);
    CHECK(concatenated_indices(batches) == std::vector<int64_t>(order.begin(), order.begin() + 20));
    std::vector<int64_t> seen = concatenated_indices(batches);
    std::sort(seen.begin(), seen.end());
    CHECK(std::adjacent_find(seen.begin(), seen.end()) == seen.end());
  }
  SECTION("without shuffling the order is 0..N-1 in every epoch") {
    DataLoader loader(ds, {.batch_size = batch_size, .shuffle = false});
    CHECK(concatenated_indices(run_epoch(loader, 0)) == all);
    CHECK(concatenated_indices(run_epoch(loader, 5)) == all);
  }
  SECTION("a batch larger than the data set") {
    DataLoader keep(ds, {.batch_size = 100});
    CHECK(keep.num_batches() == 1);
    CHECK(run_epoch(keep, 0)[0].indices.size() == 23);
    DataLoader drop(ds, {.batch_size = 100, .drop_last = true});
    CHECK(drop.num_batches() == 0);
    CHECK(run_epoch(drop, 0).empty());
  }
  SECTION("an empty data set has no batches") {
    DataLoader loader(numbered_images(0), {.batch_size = 4});
    CHECK(loader.num_batches() == 0);
    CHECK(run_epoch(loader, 0).empty());
  }
}

TEST_CASE("DataLoader: resuming at (epoch, batch) gives the batches an uninterrupted run gives",
          "[data][loader]") {
  const auto ds = numbered_images(37);
  const auto augment = std::make_shared<Compose>(std::vector<std::shared_ptr<const Transform>>{
      std::make_shared<RandomCrop>(4, 4, 1), std::make_shared<RandomHorizontalFlip>()});
  for (const bool with_transform : {false, true}) {
    INFO("with transform: " << with_transform);
    const DataLoaderOptions options{.batch_size = 6, .shuffle = true, .seed = 21};
    DataLoader full(ds, options, with_transform ? augment : nullptr);
    std::vector<std::vector<Recorded>> epochs;
    for (int64_t e = 0; e < 3; ++e) epochs.push_back(run_epoch(full, e));

    DataLoader resumed(ds, options, with_transform ? augment : nullptr);
    resumed.start_epoch(1, 4);
    CHECK(resumed.epoch() == 1);
    CHECK(resumed.next_batch() == 4);
    Batch batch;
    for (int64_t b = 4; b < resumed.num_batches(); ++b) {
      REQUIRE(resumed.next(batch));
      CHECK(record(batch) == epochs[1][b]);
      CHECK(resumed.next_batch() == b + 1);
    }
    CHECK_FALSE(resumed.next(batch));
    CHECK_FALSE(resumed.next(batch));  // stays at the end
    CHECK(run_epoch(resumed, 2) == epochs[2]);
  }
}

TEST_CASE("DataLoader: transforms draw from a generator seeded by (seed, epoch, sample)", "[data][loader]") {
  const auto ds = numbered_images(12);
  // Pixels differ within an image so that crops and flips show.
  std::vector<float> values(12 * 16);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i);
  const auto varied = std::make_shared<TensorDataset>(from_vector(values, {12, 1, 4, 4}), ds->labels());
  const auto crop = std::make_shared<RandomCrop>(3, 3, 2);
  DataLoader loader(varied, {.batch_size = 5, .shuffle = true, .seed = 4}, crop);
  for (int64_t epoch : {0, 1}) {
    for (const Batch& b : loader.batches(epoch)) {
      REQUIRE(b.inputs.shape() == Shape{b.size(), 1, 3, 3});
      for (int64_t row = 0; row < b.size(); ++row) {
        const int64_t index = b.indices[row];
        Generator gen(DataLoader::transform_seed(4, epoch, index));
        const Tensor expected = (*crop)(varied->get(index).input, gen);
        CHECK(b.inputs.select(0, row).to_vector<float>() == expected.to_vector<float>());
      }
    }
  }
  // Different epochs augment the same sample differently (for at least one of the 12 samples).
  auto by_sample = [&](int64_t epoch) {
    std::vector<std::vector<float>> out(12);
    for (const Batch& b : loader.batches(epoch))
      for (int64_t row = 0; row < b.size(); ++row)
        out[b.indices[row]] = b.inputs.select(0, row).to_vector<float>();
    return out;
  };
  CHECK(by_sample(0) != by_sample(1));
  CHECK(by_sample(0) == by_sample(0));
}

TEST_CASE("DataLoader: an error while preparing a batch is rethrown by next()", "[data][loader]") {
  SECTION("an nl::Error gets the epoch and batch in its message") {
    const auto ds = std::make_shared<FailingDataset>(12, 6, false);
    DataLoader loader(ds, {.batch_size = 4, .shuffle = false});
    loader.start_epoch(0);
    Batch batch;
    REQUIRE(loader.next(batch));
    CHECK(batch.indices == std::vector<int64_t>{0, 1, 2, 3});
    REQUIRE_THROWS_WITH(loader.next(batch), Contains("DataLoader: epoch 0, batch 1: bad sample 6"));
    CHECK(loader.next_batch() == 1);
    REQUIRE_THROWS_WITH(loader.next(batch), Contains("epoch 0 stopped at batch 1 after an error") &&
                                                Contains("call start_epoch"));
    // Starting again works up to the same failure; skipping past it works.
    loader.start_epoch(0);
    REQUIRE(loader.next(batch));
    REQUIRE_THROWS_AS(loader.next(batch), Error);
    loader.start_epoch(0, 2);
    REQUIRE(loader.next(batch));
    CHECK(batch.indices == std::vector<int64_t>{8, 9, 10, 11});
  }
  SECTION("other exception types pass through unchanged") {
    DataLoader loader(std::make_shared<FailingDataset>(8, 0, true), {.batch_size = 4, .shuffle = false});
    loader.start_epoch(0);
    Batch batch;
    REQUIRE_THROWS_AS(loader.next(batch), CustomError);
  }
  SECTION("an error in a transform") {
    const auto ds = numbered_images(4);
    DataLoader loader(ds, {.batch_size = 2}, std::make_shared<RandomCrop>(9, 9, 0));
    loader.start_epoch(0);
    Batch batch;
    REQUIRE_THROWS_WITH(loader.next(batch), Contains("DataLoader: epoch 0, batch 0: RandomCrop: a 9x9 crop "
                                                     "does not fit"));
  }
}

TEST_CASE("DataLoader: misuse is an nl::Error", "[data][loader]") {
  const auto ds = numbered_images(10);
  REQUIRE_THROWS_WITH(DataLoader(ds, {.batch_size = 0}), Contains("batch_size must be >= 1, got 0"));
  REQUIRE_THROWS_WITH(DataLoader(nullptr), Contains("dataset is null"));
  DataLoader loader(ds, {.batch_size = 3});
  Batch batch;
  REQUIRE_THROWS_WITH(loader.next(batch), Contains("no epoch started"));
  REQUIRE_THROWS_WITH(loader.start_epoch(0, 5),
                      Contains("first_batch 5 is out of range: an epoch has 4 batches"));
  REQUIRE_THROWS_WITH(loader.start_epoch(-1), Contains("epoch must be >= 0, got -1"));
  loader.start_epoch(0, 4);  // the end of the epoch is a valid place to resume
  CHECK_FALSE(loader.next(batch));
}

TEST_CASE("DataLoader: restarting or destroying mid-epoch is clean", "[data][loader]") {
  std::atomic<int> calls{0};
  const auto ds = std::make_shared<SlowDataset>(&calls);
  const DataLoaderOptions options{.batch_size = 8, .shuffle = true, .seed = 5};
  std::vector<int64_t> epoch3_first;
  {
    DataLoader reference(ds, options);
    reference.start_epoch(3);
    Batch b;
    REQUIRE(reference.next(b));
    epoch3_first = b.indices;
  }
  {
    // Restart while the worker is busy with epoch 0: the stale batch is dropped.
    DataLoader loader(ds, options);
    loader.start_epoch(0);
    Batch b;
    REQUIRE(loader.next(b));
    loader.start_epoch(3);
    REQUIRE(loader.next(b));
    CHECK(b.indices == epoch3_first);
    CHECK(b.inputs.to_vector<float>()[0] == static_cast<float>(epoch3_first[0]));
  }
  {
    // Destroyed while the worker prepares the next batch.
    DataLoader loader(ds, options);
    loader.start_epoch(0);
    Batch b;
    REQUIRE(loader.next(b));
  }
  // Destroyed without ever starting.
  { DataLoader loader(ds, options); }
  CHECK(calls.load() > 0);
}

TEST_CASE("DataLoader: the next batch is prepared in the background, one batch ahead", "[data][loader]") {
  std::atomic<int> calls{0};
  DataLoader loader(std::make_shared<SlowDataset>(&calls), {.batch_size = 8, .shuffle = false});
  loader.start_epoch(0);
  Batch b;
  REQUIRE(loader.next(b));
  // While we hold batch 0, the worker builds batch 1 (8 more get() calls) and then waits.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (calls.load() < 16 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK(calls.load() == 16);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(calls.load() == 16);  // no second batch ahead
  REQUIRE(loader.next(b));
  CHECK(b.indices.front() == 8);
}
