// DataLoader: splits a Dataset into batches in a seeded order, preparing the next batch on a background
// thread while the caller trains on the current one.
//
// Order. Epoch e visits the samples in the order
//     shuffle:  randperm(N) drawn from Generator(shuffle_seed(seed, e))      (core/random.h, Fisher–Yates)
//     no shuffle: 0, 1, ..., N−1
// and cuts it into batches of batch_size: batch b holds positions [b·B, min((b+1)·B, N)). With drop_last the
// last, short batch is dropped, so an epoch has floor(N/B) batches; otherwise ceil(N/B).
// The order of an epoch is a pure function of (seed, e): a loader can start at any (epoch, batch) and
// produce exactly the batches an uninterrupted run would have produced there (resuming from a checkpoint).
//
// Transforms. With a transform, sample i of epoch e is transformed with a fresh
// Generator(transform_seed(seed, e, i)), so augmentation is also a pure function of (seed, e, i): the same
// on resume, and independent of batch size and threads. Without one, batches come from
// Dataset::get_batch (one memcpy per row for a TensorDataset).
//
// Threads. One background thread prepares batches one ahead (prefetch of 1): while the caller holds batch b,
// batch b+1 is being built. start_epoch() discards anything prepared for an earlier request. An exception
// raised while preparing a batch is rethrown by next() when the caller reaches that batch (an nl::Error gets
// the epoch and batch prefixed to its message; other exception types pass through unchanged); the epoch then
// stops until start_epoch() is called again. The destructor stops and joins the thread.
//
// Use:
//   DataLoader loader(dataset, {.batch_size = 128, .shuffle = true, .seed = 1});
//   for (int64_t epoch = 0; epoch < epochs; ++epoch)
//     for (const Batch& batch : loader.batches(epoch)) train_step(batch.inputs, batch.labels);
// or, to resume at (epoch, batch) saved from loader.epoch() / loader.next_batch():
//   loader.start_epoch(epoch, batch);
//   Batch batch;
//   while (loader.next(batch)) train_step(batch.inputs, batch.labels);
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "dataset.h"
#include "transforms.h"

namespace nl {

// Combines a seed with a value into a new, well-mixed 64-bit seed: f(f(seed) + φ·(value + 1)) with f
// splitmix64's output function and φ = 0x9e3779b97f4a7c15. A bijection in each argument when the other is
// fixed, so under one seed two epochs (or two samples) never get the same seed.
//   shuffle_seed(seed, e)      = mix_seed(mix_seed(seed, 1), e)
//   transform_seed(seed, e, i) = mix_seed(mix_seed(mix_seed(seed, 2), e), i)
uint64_t mix_seed(uint64_t seed, uint64_t value);

struct DataLoaderOptions {
  int64_t batch_size = 64;
  bool shuffle = true;
  uint64_t seed = 0;
  bool drop_last = false;
};

class DataLoader {
 public:
  DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options = {},
             std::shared_ptr<const Transform> transform = nullptr);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  const DataLoaderOptions& options() const { return options_; }
  int64_t dataset_size() const { return dataset_size_; }
  int64_t num_batches() const { return num_batches_; }  // per epoch

  // The seeds behind the order and the augmentation (see the header comment).
  static uint64_t shuffle_seed(uint64_t seed, int64_t epoch);
  static uint64_t transform_seed(uint64_t seed, int64_t epoch, int64_t index);
  // The dataset indices of epoch `epoch`, in the order they are visited (all N, drop_last or not).
  std::vector<int64_t> epoch_order(int64_t epoch) const;

  // Starts (or restarts) at batch `first_batch` (0 <= first_batch <= num_batches()) of epoch `epoch` (>= 0).
  // The background thread begins preparing that batch at once.
  void start_epoch(int64_t epoch, int64_t first_batch = 0);
  // Moves the next batch of the current epoch into `batch` and returns true, or returns false when the epoch
  // is over. Rethrows an exception raised while preparing this batch.
  bool next(Batch& batch);
  // Where the loader stands: the epoch being read, and the index of the batch the next call to next() returns
  // (num_batches() once the epoch is over). Save these in a checkpoint and pass them to start_epoch.
  int64_t epoch() const;
  int64_t next_batch() const;

  // Range-for over one epoch: start_epoch(epoch, first_batch), then next() until it returns false.
  class Iterator;
  struct Sentinel {};
  class EpochRange {
   public:
    Iterator begin();
    Sentinel end() const { return {}; }

   private:
    friend class DataLoader;
    EpochRange(DataLoader* loader, int64_t epoch, int64_t first_batch)
        : loader_(loader), epoch_(epoch), first_batch_(first_batch) {}
    DataLoader* loader_;
    int64_t epoch_, first_batch_;
  };
  class Iterator {
   public:
    Batch& operator*() { return batch_; }  // may be moved from; ++ replaces it with the next batch
    Batch* operator->() { return &batch_; }
    Iterator& operator++() {
      done_ = !loader_->next(batch_);
      return *this;
    }
    bool operator==(Sentinel) const { return done_; }

   private:
    friend class EpochRange;
    explicit Iterator(DataLoader* loader) : loader_(loader) { ++*this; }
    DataLoader* loader_;
    Batch batch_;
    bool done_ = false;
  };
  EpochRange batches(int64_t epoch, int64_t first_batch = 0) { return EpochRange(this, epoch, first_batch); }

 private:
  Batch make_batch(int64_t epoch, const std::vector<int64_t>& indices) const;
  void worker_loop();

  const std::shared_ptr<const Dataset> dataset_;
  const std::shared_ptr<const Transform> transform_;
  const DataLoaderOptions options_;
  int64_t dataset_size_ = 0, num_batches_ = 0;

  // Shared between the caller and the background thread, guarded by mutex_.
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool stop_ = false;
  bool started_ = false;  // start_epoch has been called
  bool failed_ = false;   // preparing batch consumer_batch_ raised: the epoch has stopped
  uint64_t request_ = 0;  // bumped by start_epoch; a batch prepared for an older request is discarded
  int64_t epoch_ = 0;
  std::shared_ptr<const std::vector<int64_t>> order_;  // of epoch_
  int64_t worker_batch_ = 0;                           // next batch the worker prepares
  int64_t consumer_batch_ = 0;                         // next batch next() returns
  bool worker_stopped_ = true;  // no more batches to prepare for this request (end of epoch or an error)
  bool ready_ = false;          // ready_batch_ / ready_error_ hold batch consumer_batch_
  Batch ready_batch_;
  std::exception_ptr ready_error_;

  std::thread worker_;  // last: started after everything above is initialized
};

inline DataLoader::Iterator DataLoader::EpochRange::begin() {
  loader_->start_epoch(epoch_, first_batch_);
  return Iterator(loader_);
}

}  // namespace nl
