// Datasets: indexed collections of labelled examples, and the Batch a DataLoader hands to a training step.
//
//   Example  one sample: `input` of any fixed shape S (float32) and an int64 class label
//   Batch    B examples stacked: inputs (B, S...) float32, labels (B) int64, and the dataset indices of the
//            rows, in row order
//
// A Dataset answers size() and get(i). get() is const and must be safe to call from several threads at once
// (the DataLoader calls it from its background thread), so a dataset holds no mutable state. get() may return
// a view of the dataset's own storage: treat it as read-only.
//
// get_batch(indices) stacks several examples. The default gets them one by one and copies each into the
// batch (collate); TensorDataset overrides it with one memcpy per row straight from its (N, S...) tensor,
// with no Tensor made per sample.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "../core/tensor.h"

namespace nl {

struct Example {
  Tensor input;  // shape S, float32
  int64_t label = 0;
};

struct Batch {
  Tensor inputs;                 // (B, S...) float32
  Tensor labels;                 // (B) int64
  std::vector<int64_t> indices;  // dataset index of each row
  int64_t size() const { return static_cast<int64_t>(indices.size()); }
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  // Example `index` (0 <= index < size()); throws nl::Error for an index out of range.
  virtual Example get(int64_t index) const = 0;
  // Examples `indices` stacked into a Batch (indices non-empty, each in range; repeats allowed).
  virtual Batch get_batch(std::span<const int64_t> indices) const;
};

// Stacks examples into a Batch: every input must have the same shape (an error names the first sample whose
// shape differs); inputs of another floating dtype are converted to float32. `indices` (one per example) is
// stored in the batch as is.
Batch collate(const std::vector<Example>& examples, std::vector<int64_t> indices);

// A dataset held in memory as two tensors: inputs (N, S...) and labels (N).
//   inputs: float32 or float64 (stored as contiguous float32; a float32 contiguous tensor is shared, not
//   copied) labels: int64, every label >= 0
class TensorDataset : public Dataset {
 public:
  TensorDataset(const Tensor& inputs, const Tensor& labels);

  int64_t size() const override { return size_; }
  // input is a view of row `index` of inputs() (no copy).
  Example get(int64_t index) const override;
  // One memcpy per row into a freshly allocated (B, S...) batch.
  Batch get_batch(std::span<const int64_t> indices) const override;

  const Tensor& inputs() const { return inputs_; }      // (N, S...) float32, contiguous
  const Tensor& labels() const { return labels_; }      // (N) int64
  Shape example_shape() const;                          // S
  int64_t num_classes() const { return num_classes_; }  // largest label + 1 (0 for an empty dataset)

 private:
  Tensor inputs_, labels_;
  int64_t size_ = 0, row_numel_ = 0, num_classes_ = 0;
};

// The examples of another dataset at the given indices, in that order (PyTorch's Subset): example i of the
// subset is example indices[i] of the dataset. Indices are checked against the dataset once, here; repeats
// are allowed. A batch's `indices` are positions in the subset. Holds the dataset alive.
class Subset : public Dataset {
 public:
  Subset(std::shared_ptr<const Dataset> dataset, std::vector<int64_t> indices);

  int64_t size() const override { return static_cast<int64_t>(indices_.size()); }
  Example get(int64_t index) const override;
  // One get_batch on the underlying dataset (a TensorDataset then copies rows without per-sample tensors).
  Batch get_batch(std::span<const int64_t> indices) const override;

  const Dataset& dataset() const { return *dataset_; }
  const std::vector<int64_t>& indices() const { return indices_; }

 private:
  std::shared_ptr<const Dataset> dataset_;
  std::vector<int64_t> indices_;
};

}  // namespace nl
