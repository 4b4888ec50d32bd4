// TensorDataset and collate: construction checks, views, the memcpy gather against the generic path.
#include <catch2/catch.hpp>

#include "core/ops.h"
#include "data/dataset.h"

using namespace nl;
using Catch::Contains;

namespace {

// Row i of the inputs is (10i, 10i + 1, ..., 10i + 5) shaped (2, 3); label i % 3.
TensorDataset numbered_dataset(int64_t n) {
  std::vector<float> values;
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < 6; ++j) values.push_back(static_cast<float>(10 * i + j));
    labels.push_back(i % 3);
  }
  return TensorDataset(from_vector(values, {n, 2, 3}), from_vector(labels, {n}));
}

}  // namespace

TEST_CASE("TensorDataset holds (N, ...) inputs and int64 labels", "[data][dataset]") {
  const TensorDataset ds = numbered_dataset(5);
  CHECK(ds.size() == 5);
  CHECK(ds.example_shape() == Shape{2, 3});
  CHECK(ds.num_classes() == 3);
  const Example ex = ds.get(4);
  CHECK(ex.label == 1);
  CHECK(ex.input.shape() == Shape{2, 3});
  CHECK(ex.input.to_vector<float>() == std::vector<float>{40, 41, 42, 43, 44, 45});

  // float64 inputs are stored as float32; an empty dataset is allowed.
  const TensorDataset converted(from_vector<double>({1.5, 2.5}, {2}), from_vector<int64_t>({0, 4}));
  CHECK(converted.inputs().dtype() == kFloat32);
  CHECK(converted.example_shape() == Shape{});
  CHECK(converted.num_classes() == 5);
  const TensorDataset none(empty({0, 3}), empty({0}, kInt64));
  CHECK(none.size() == 0);
  CHECK(none.num_classes() == 0);
}

TEST_CASE("TensorDataset rejects bad inputs", "[data][dataset]") {
  REQUIRE_THROWS_WITH(TensorDataset(zeros({4, 2}), zeros({4})),
                      Contains("labels must be int64, got float32"));
  REQUIRE_THROWS_WITH(TensorDataset(zeros({4, 2}), zeros({3}, kInt64)),
                      Contains("labels must have shape [4]") && Contains("got [3]"));
  REQUIRE_THROWS_WITH(TensorDataset(zeros({4, 2}, kInt64), zeros({4}, kInt64)),
                      Contains("inputs must be float32 or float64, got int64"));
  REQUIRE_THROWS_WITH(TensorDataset(zeros({2}), from_vector<int64_t>({0, -1})),
                      Contains("label of sample 1 is -1"));
  REQUIRE_THROWS_WITH(TensorDataset(Tensor(), zeros({4}, kInt64)), Contains("must be defined"));
  const TensorDataset ds = numbered_dataset(3);
  REQUIRE_THROWS_WITH(ds.get(3), Contains("TensorDataset::get: index 3 is out of range for a dataset of 3"));
  REQUIRE_THROWS_WITH(ds.get(-1), Contains("index -1 is out of range"));
  const std::vector<int64_t> bad = {0, 7};
  REQUIRE_THROWS_WITH(ds.get_batch(bad), Contains("TensorDataset::get_batch: index 7 is out of range"));
  REQUIRE_THROWS_WITH(ds.get_batch({}), Contains("no indices"));
}

TEST_CASE("TensorDataset::get_batch gathers the rows the generic collate path would", "[data][dataset]") {
  const TensorDataset ds = numbered_dataset(6);
  const std::vector<int64_t> indices = {5, 0, 3, 3};
  const Batch fast = ds.get_batch(indices);
  const Batch generic = ds.Dataset::get_batch(indices);  // get() per sample, then collate
  for (const Batch* b : {&fast, &generic}) {
    CHECK(b->size() == 4);
    CHECK(b->indices == indices);
    CHECK(b->inputs.shape() == Shape{4, 2, 3});
    CHECK(b->inputs.dtype() == kFloat32);
    CHECK(b->labels.dtype() == kInt64);
    CHECK(b->labels.to_vector<int64_t>() == std::vector<int64_t>{2, 0, 0, 0});
  }
  CHECK(fast.inputs.to_vector<float>() == generic.inputs.to_vector<float>());
  CHECK(fast.inputs.select(0, 0).to_vector<float>() == ds.get(5).input.to_vector<float>());
  // The batch is a copy: writing to it leaves the dataset alone.
  Tensor copy = fast.inputs;
  copy.fill_(-1.0);
  CHECK(ds.get(5).input.to_vector<float>() == std::vector<float>{50, 51, 52, 53, 54, 55});
}

TEST_CASE("collate stacks examples and names a sample whose shape differs", "[data][dataset]") {
  const std::vector<Example> examples = {{tensor({1, 2}), 4}, {tensor({3, 4}, kFloat64), 5}};
  const Batch b = collate(examples, {10, 11});
  CHECK(b.inputs.shape() == Shape{2, 2});
  CHECK(b.inputs.to_vector<float>() == std::vector<float>{1, 2, 3, 4});
  CHECK(b.labels.to_vector<int64_t>() == std::vector<int64_t>{4, 5});
  CHECK(b.indices == std::vector<int64_t>{10, 11});

  const std::vector<Example> mixed = {{zeros({2, 2}), 0}, {zeros({2, 3}), 1}};
  REQUIRE_THROWS_WITH(collate(mixed, {7, 8}),
                      Contains("sample 8 has shape [2, 3] but sample 7 has shape [2, 2]"));
  REQUIRE_THROWS_WITH(collate({}, {}), Contains("no examples"));
  REQUIRE_THROWS_WITH(collate(examples, {1}), Contains("2 examples but 1 indices"));
}

TEST_CASE("Subset gives the chosen examples of a dataset, in the chosen order", "[data][dataset][subset]") {
  const auto ds = std::make_shared<TensorDataset>(numbered_dataset(6));
  const Subset sub(ds, {4, 1, 1, 5});
  CHECK(sub.size() == 4);
  const Example ex = sub.get(0);
  CHECK(ex.label == 4 % 3);
  CHECK(ex.input.to_vector<float>() == std::vector<float>{40, 41, 42, 43, 44, 45});
  CHECK(sub.get(2).input.to_vector<float>() == ds->get(1).input.to_vector<float>());  // repeats allowed

  const std::vector<int64_t> rows = {3, 0};
  const Batch b = sub.get_batch(rows);
  CHECK(b.inputs.shape() == Shape{2, 2, 3});
  CHECK(b.labels.to_vector<int64_t>() == std::vector<int64_t>{5 % 3, 4 % 3});
  CHECK(b.inputs.select(0, 0).to_vector<float>() == ds->get(5).input.to_vector<float>());
  CHECK(b.indices == rows);  // positions in the subset, not in the dataset

  // A subset of a subset.
  const Subset inner(std::make_shared<Subset>(sub), {3});
  CHECK(inner.get(0).input.to_vector<float>() == ds->get(5).input.to_vector<float>());
}

TEST_CASE("Subset rejects indices out of range, at construction and on access", "[data][dataset][subset]") {
  const auto ds = std::make_shared<TensorDataset>(numbered_dataset(3));
  CHECK_THROWS_WITH(Subset(ds, {0, 3}),
                    Contains("Subset: index 3 (position 1) is out of range") && Contains("3 examples"));
  CHECK_THROWS_WITH(Subset(ds, {-1}), Contains("index -1"));
  CHECK_THROWS_WITH(Subset(nullptr, {}), Contains("Subset: the dataset is null"));
  const Subset sub(ds, {2});
  CHECK_THROWS_WITH(sub.get(1), Contains("Subset::get"));
  const std::vector<int64_t> bad = {0, 1};
  CHECK_THROWS_WITH(sub.get_batch(bad), Contains("Subset::get_batch"));
  CHECK(Subset(ds, {}).size() == 0);
}
