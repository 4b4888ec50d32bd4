// Timing and memory-bandwidth helpers for normlab-bench.
//
// A result is the median (with min and max) of `iters` timed runs after `warmup` untimed ones. Timed code
// runs on the caller's thread count (normlab-bench sets 2).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace nl::bench {

struct Result {
  std::string name;
  double median_ms = 0, min_ms = 0, max_ms = 0;
  int iters = 0;
  double bytes = 0;  // bytes a minimal implementation must move (0 = not a bandwidth workload)
  double flops = 0;  // floating-point operations (0 = not reported)
};

inline Result time_it(const std::string& name, const std::function<void()>& fn, int iters, int warmup) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> ms;
  for (int i = 0; i < iters; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::vector<double> sorted = ms;
  std::sort(sorted.begin(), sorted.end());
  const size_t n = sorted.size();
  Result r;
  r.name = name;
  r.median_ms = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
  r.min_ms = sorted.front();
  r.max_ms = sorted.back();
  r.iters = iters;
  return r;
}

}  // namespace nl::bench
