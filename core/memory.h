// What the caching allocator (core/storage.cpp) has done: used by tests and benchmarks to check that a
// steady-state training step makes no system allocation.
#pragma once

#include <cstddef>
#include <cstdint>

namespace nl {

struct MemoryStats {
  int64_t system_allocations = 0;  // blocks obtained from the system allocator
  int64_t cache_hits = 0;          // blocks reused from the cache
  size_t live_bytes = 0;           // bytes held by live storages
  size_t cached_bytes = 0;         // bytes held in the cache, free for reuse
};

MemoryStats memory_stats();
// Returns every cached block to the system.
void empty_cache();

}  // namespace nl
