// Dataset::get_batch, collate and TensorDataset (data/dataset.h).
#include "data/dataset.h"

#include <algorithm>
#include <cstring>

namespace nl {
namespace {

void check_index(int64_t index, int64_t size, const char* op) {
  check(index >= 0 && index < size, op, ": index ", index, " is out of range for a dataset of ", size,
        " examples");
}

}  // namespace

Batch Dataset::get_batch(std::span<const int64_t> indices) const {
  check(!indices.empty(), "Dataset::get_batch: no indices given");
  std::vector<Example> examples;
  examples.reserve(indices.size());
  for (const int64_t i : indices) examples.push_back(get(i));
  return collate(examples, std::vector<int64_t>(indices.begin(), indices.end()));
}

Batch collate(const std::vector<Example>& examples, std::vector<int64_t> indices) {
  check(!examples.empty(), "collate: no examples given");
  check(indices.size() == examples.size(), "collate: ", examples.size(), " examples but ", indices.size(),
        " indices");
  const int64_t count = static_cast<int64_t>(examples.size());
  for (int64_t i = 0; i < count; ++i)
    check(examples[i].input.defined(), "collate: sample ", indices[i], " has no input tensor");
  const Shape& example_shape = examples[0].input.shape();
  Shape batch_shape = {count};
  batch_shape.insert(batch_shape.end(), example_shape.begin(), example_shape.end());

  Batch batch;
  batch.inputs = empty(batch_shape, kFloat32);
  batch.labels = empty({count}, kInt64);
  const int64_t row_numel = numel_of(example_shape);
  float* out = batch.inputs.data<float>();
  int64_t* labels = batch.labels.data<int64_t>();
  for (int64_t i = 0; i < count; ++i) {
    const Tensor& input = examples[i].input;
    check(input.shape() == example_shape, "collate: sample ", indices[i], " has shape ", input.shape(),
          " but sample ", indices[0], " has shape ", example_shape, "; a batch needs equal shapes");
    const Tensor row = (input.dtype() == kFloat32 ? input : input.to(kFloat32)).contiguous();
    std::memcpy(out + i * row_numel, row.data<float>(), static_cast<size_t>(row_numel) * sizeof(float));
    labels[i] = examples[i].label;
  }
  batch.indices = std::move(indices);
  return batch;
}

TensorDataset::TensorDataset(const Tensor& inputs, const Tensor& labels) {
  check(inputs.defined() && labels.defined(), "TensorDataset: inputs and labels must be defined tensors");
  check(inputs.dim() >= 1, "TensorDataset: inputs must have shape (N, ...), got ", inputs.shape());
  check(is_floating(inputs.dtype()), "TensorDataset: inputs must be float32 or float64, got ",
        dtype_name(inputs.dtype()));
  check(labels.dtype() == kInt64, "TensorDataset: labels must be int64, got ", dtype_name(labels.dtype()));
  check(labels.dim() == 1 && labels.size(0) == inputs.size(0), "TensorDataset: labels must have shape [",
        inputs.size(0), "] to match inputs ", inputs.shape(), ", got ", labels.shape());
  // detach: a dataset is data, never part of a graph.
  inputs_ = (inputs.dtype() == kFloat32 ? inputs : inputs.to(kFloat32)).contiguous().detach();
  labels_ = labels.contiguous().detach();
  size_ = inputs.size(0);
  row_numel_ = numel_of(example_shape());
  const int64_t* y = labels_.data<int64_t>();
  for (int64_t i = 0; i < size_; ++i) {
    check(y[i] >= 0, "TensorDataset: label of sample ", i, " is ", y[i], "; class labels must be >= 0");
    num_classes_ = std::max(num_classes_, y[i] + 1);
  }
}

Shape TensorDataset::example_shape() const {
  return Shape(inputs_.shape().begin() + 1, inputs_.shape().end());
}

Example TensorDataset::get(int64_t index) const {
  check_index(index, size_, "TensorDataset::get");
  return {inputs_.select(0, index), labels_.data<int64_t>()[index]};
}

Batch TensorDataset::get_batch(std::span<const int64_t> indices) const {
  check(!indices.empty(), "TensorDataset::get_batch: no indices given");
  const int64_t count = static_cast<int64_t>(indices.size());
  Shape batch_shape = inputs_.shape();
  batch_shape[0] = count;
  Batch batch;
  batch.inputs = empty(batch_shape, kFloat32);
  batch.labels = empty({count}, kInt64);
  batch.indices.assign(indices.begin(), indices.end());
  const float* src = inputs_.data<float>();
  const int64_t* src_labels = labels_.data<int64_t>();
  float* dst = batch.inputs.data<float>();
  int64_t* dst_labels = batch.labels.data<int64_t>();
  const size_t row_bytes = static_cast<size_t>(row_numel_) * sizeof(float);
  for (int64_t i = 0; i < count; ++i) {
    const int64_t index = indices[i];
    check_index(index, size_, "TensorDataset::get_batch");
    std::memcpy(dst + i * row_numel_, src + index * row_numel_, row_bytes);
    dst_labels[i] = src_labels[index];
  }
  return batch;
}

Subset::Subset(std::shared_ptr<const Dataset> dataset, std::vector<int64_t> indices)
    : dataset_(std::move(dataset)), indices_(std::move(indices)) {
  check(dataset_ != nullptr, "Subset: the dataset is null");
  const int64_t n = dataset_->size();
  for (size_t i = 0; i < indices_.size(); ++i)
    check(indices_[i] >= 0 && indices_[i] < n, "Subset: index ", indices_[i], " (position ", i,
          ") is out of range for a dataset of ", n, " examples");
}

Example Subset::get(int64_t index) const {
  check_index(index, size(), "Subset::get");
  return dataset_->get(indices_[static_cast<size_t>(index)]);
}

Batch Subset::get_batch(std::span<const int64_t> indices) const {
  check(!indices.empty(), "Subset::get_batch: no indices given");
  std::vector<int64_t> underlying;
  underlying.reserve(indices.size());
  for (const int64_t index : indices) {
    check_index(index, size(), "Subset::get_batch");
    underlying.push_back(indices_[static_cast<size_t>(index)]);
  }
  Batch batch = dataset_->get_batch(underlying);
  batch.indices.assign(indices.begin(), indices.end());
  return batch;
}

}  // namespace nl
