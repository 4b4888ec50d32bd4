// Storage allocation with a small caching allocator.
//
// A training step allocates the same set of buffer sizes every time. Freed blocks are kept in per-size free
// lists and handed out again, so steady-state steps do not call the system allocator (and do not fault in
// fresh pages). The cache is bounded; nl::empty_cache() returns everything to the system.
#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/memory.h"
#include "core/tensor.h"

namespace nl {
namespace {

constexpr size_t kAlignment = 64;
constexpr size_t kMaxCachedBytes = size_t(4) << 30;

struct BlockCache {
  std::mutex mutex;
  std::unordered_map<size_t, std::vector<void*>> free_blocks;
  size_t cached_bytes = 0;
  MemoryStats stats;
};

BlockCache& cache() {
  static BlockCache* c = new BlockCache();  // never destroyed: storages may outlive static destructors
  return *c;
}

size_t rounded(size_t nbytes) { return (nbytes + kAlignment - 1) / kAlignment * kAlignment; }

}  // namespace

Storage::Storage(size_t nbytes_, Device device_) : nbytes(nbytes_), device(device_) {
  check(device_ == Device::CPU, "empty: cannot allocate on device ", device_name(device_),
        " (normlab was built for the CPU only)");
  const size_t size = rounded(nbytes_ == 0 ? 1 : nbytes_);
  BlockCache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    auto it = c.free_blocks.find(size);
    if (it != c.free_blocks.end() && !it->second.empty()) {
      data = it->second.back();
      it->second.pop_back();
      c.cached_bytes -= size;
      ++c.stats.cache_hits;
      c.stats.live_bytes += size;
      return;
    }
    ++c.stats.system_allocations;
    c.stats.live_bytes += size;
  }
  data = std::aligned_alloc(kAlignment, size);
  if (!data) throw Error(cat_str("empty: out of memory allocating ", nbytes_, " bytes"));
}

Storage::~Storage() {
  const size_t size = rounded(nbytes == 0 ? 1 : nbytes);
  BlockCache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  c.stats.live_bytes -= size;
  if (c.cached_bytes + size <= kMaxCachedBytes) {
    c.free_blocks[size].push_back(data);
    c.cached_bytes += size;
  } else {
    std::free(data);
  }
}

MemoryStats memory_stats() {
  BlockCache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  MemoryStats s = c.stats;
  s.cached_bytes = c.cached_bytes;
  return s;
}

void empty_cache() {
  BlockCache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  for (auto& [size, blocks] : c.free_blocks)
    for (void* p : blocks) std::free(p);
  c.free_blocks.clear();
  c.cached_bytes = 0;
}

}  // namespace nl
