// DataLoader (data/dataloader.h): the seeded order, batch assembly, and the one-batch-ahead worker thread.
//
// The caller and the worker share one slot (ready_batch_ / ready_error_) guarded by mutex_:
//   worker:  waits until the slot is empty and there is a batch left to prepare, builds it without the lock,
//            then fills the slot, unless start_epoch() has made a new request meanwhile (then it drops it)
//   caller:  next() waits until the slot is full, empties it, and so lets the worker start the next batch
// so at most one prepared batch waits while the caller trains on the previous one.
#include "data/dataloader.h"

#include <algorithm>
#include <numeric>
#include <utility>

#include "core/random.h"

namespace nl {
namespace {

constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;
// Separate streams so that the shuffle and the augmentation never share a generator seed.
constexpr uint64_t kShuffleStream = 1, kTransformStream = 2;

// splitmix64's output function: a bijection on 64-bit words with good avalanche.
uint64_t finalize(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

// φ is odd, so value ↦ φ·(value + 1) is a bijection mod 2^64, and finalize is one too.
uint64_t mix_seed(uint64_t seed, uint64_t value) { return finalize(finalize(seed) + kGolden * (value + 1)); }

uint64_t DataLoader::shuffle_seed(uint64_t seed, int64_t epoch) {
  return mix_seed(mix_seed(seed, kShuffleStream), static_cast<uint64_t>(epoch));
}

uint64_t DataLoader::transform_seed(uint64_t seed, int64_t epoch, int64_t index) {
  return mix_seed(mix_seed(mix_seed(seed, kTransformStream), static_cast<uint64_t>(epoch)),
                  static_cast<uint64_t>(index));
}

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options,
                       std::shared_ptr<const Transform> transform)
    : dataset_(std::move(dataset)), transform_(std::move(transform)), options_(options) {
  check(dataset_ != nullptr, "DataLoader: dataset is null");
  check(options_.batch_size >= 1, "DataLoader: batch_size must be >= 1, got ", options_.batch_size);
  dataset_size_ = dataset_->size();
  check(dataset_size_ >= 0, "DataLoader: dataset reports a negative size ", dataset_size_);
  num_batches_ = options_.drop_last ? dataset_size_ / options_.batch_size
                                    : (dataset_size_ + options_.batch_size - 1) / options_.batch_size;
  worker_ = std::thread(&DataLoader::worker_loop, this);
}

DataLoader::~DataLoader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  worker_.join();
}

std::vector<int64_t> DataLoader::epoch_order(int64_t epoch) const {
  check(epoch >= 0, "DataLoader::epoch_order: epoch must be >= 0, got ", epoch);
  std::vector<int64_t> order(static_cast<size_t>(dataset_size_));
  if (!options_.shuffle) {
    std::iota(order.begin(), order.end(), int64_t{0});
    return order;
  }
  Generator gen(shuffle_seed(options_.seed, epoch));
  const Tensor perm = randperm(dataset_size_, &gen);
  std::copy_n(perm.data<int64_t>(), dataset_size_, order.begin());
  return order;
}

void DataLoader::start_epoch(int64_t epoch, int64_t first_batch) {
  check(epoch >= 0, "DataLoader::start_epoch: epoch must be >= 0, got ", epoch);
  check(first_batch >= 0 && first_batch <= num_batches_, "DataLoader::start_epoch: first_batch ", first_batch,
        " is out of range: an epoch has ", num_batches_, " batches (", dataset_size_, " samples, batch size ",
        options_.batch_size, options_.drop_last ? ", drop_last" : "", ")");
  auto order = std::make_shared<const std::vector<int64_t>>(epoch_order(epoch));
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++request_;
    started_ = true;
    failed_ = false;
    epoch_ = epoch;
    order_ = std::move(order);
    worker_batch_ = consumer_batch_ = first_batch;
    worker_stopped_ = first_batch >= num_batches_;
    ready_ = false;
    ready_batch_ = Batch{};
    ready_error_ = nullptr;
  }
  changed_.notify_all();
}

bool DataLoader::next(Batch& batch) {
  std::unique_lock<std::mutex> lock(mutex_);
  check(started_, "DataLoader::next: no epoch started; call start_epoch(epoch) first");
  check(!failed_, "DataLoader::next: epoch ", epoch_, " stopped at batch ", consumer_batch_,
        " after an error; call start_epoch to go on");
  if (consumer_batch_ >= num_batches_) return false;
  changed_.wait(lock, [&] { return ready_; });
  ready_ = false;
  if (ready_error_) {
    failed_ = true;
    const std::exception_ptr error = std::exchange(ready_error_, nullptr);
    lock.unlock();
    std::rethrow_exception(error);
  }
  batch = std::exchange(ready_batch_, Batch{});
  ++consumer_batch_;
  lock.unlock();
  changed_.notify_all();  // the slot is free: the worker may prepare the next batch
  return true;
}

int64_t DataLoader::epoch() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return epoch_;
}

int64_t DataLoader::next_batch() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return consumer_batch_;
}

Batch DataLoader::make_batch(int64_t epoch, const std::vector<int64_t>& indices) const {
  if (!transform_) return dataset_->get_batch(indices);
  std::vector<Example> examples;
  examples.reserve(indices.size());
  for (const int64_t index : indices) {
    Example example = dataset_->get(index);
    Generator gen(transform_seed(options_.seed, epoch, index));
    example.input = (*transform_)(example.input, gen);
    examples.push_back(std::move(example));
  }
  return collate(examples, indices);
}

void DataLoader::worker_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    changed_.wait(lock, [&] { return stop_ || (!worker_stopped_ && !ready_); });
    if (stop_) return;
    const uint64_t request = request_;
    const int64_t epoch = epoch_, batch_index = worker_batch_;
    const std::shared_ptr<const std::vector<int64_t>> order = order_;
    lock.unlock();

    Batch batch;
    std::exception_ptr error;
    try {
      const int64_t begin = batch_index * options_.batch_size;
      const int64_t end = std::min(begin + options_.batch_size, dataset_size_);
      batch = make_batch(epoch, std::vector<int64_t>(order->begin() + begin, order->begin() + end));
    } catch (const Error& e) {
      try {
        error = std::make_exception_ptr(
            Error(cat_str("DataLoader: epoch ", epoch, ", batch ", batch_index, ": ", e.what())));
      } catch (...) {
        error = std::current_exception();
      }
    } catch (...) {
      error = std::current_exception();
    }

    lock.lock();
    if (request != request_) continue;  // start_epoch was called meanwhile: this batch is not wanted
    ready_batch_ = std::move(batch);
    ready_error_ = error;
    ready_ = true;
    ++worker_batch_;
    if (error || worker_batch_ >= num_batches_) worker_stopped_ = true;
    changed_.notify_all();
  }
}

}  // namespace nl
