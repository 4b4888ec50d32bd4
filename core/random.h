// Seeded random numbers that are the same on every machine and at every thread count.
//
// A Generator is xoshiro256** seeded through splitmix64, and every distribution is computed here (no
// std::*_distribution, whose results differ between standard libraries). Draws are sequential, so the
// number of threads cannot change them. nl::manual_seed(s) reseeds the default generator.
//
//   uniform:  53 random bits (24 for float32) → [0, 1), then scaled to [lo, hi)
//   normal:   Box–Muller on two uniforms; both outputs are used, in order
//   randint:  Lemire's unbiased bounded integers on 64-bit draws
#pragma once

#include <cstdint>

#include "tensor.h"

namespace nl {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0x5eed);
  void seed(uint64_t seed);
  uint64_t next_u64();
  double next_double();                      // [0, 1) with 53 bits
  float next_float();                        // [0, 1) with 24 bits
  double next_normal();                      // standard normal
  int64_t next_int(int64_t lo, int64_t hi);  // [lo, hi)

  // Whole state, for checkpoints: the four words, the cached normal and whether it is valid.
  struct State {
    uint64_t s[4];
    double cached_normal;
    bool has_cached_normal;
  };
  State state() const;
  void set_state(const State& st);

 private:
  uint64_t s_[4];
  double cached_normal_ = 0;
  bool has_cached_normal_ = false;
};

Generator& default_generator();
void manual_seed(uint64_t seed);

// Uniform on [lo, hi).
Tensor rand(const Shape& shape, DType dtype = kFloat32, Generator* gen = nullptr, double lo = 0,
            double hi = 1);
// Normal with the given mean and standard deviation.
Tensor randn(const Shape& shape, DType dtype = kFloat32, Generator* gen = nullptr, double mean = 0,
             double stddev = 1);
// Integers in [lo, hi), int64.
Tensor randint(int64_t lo, int64_t hi, const Shape& shape, Generator* gen = nullptr);
// 1 with probability p, else 0.
Tensor bernoulli(const Shape& shape, double p, DType dtype = kFloat32, Generator* gen = nullptr);
// A random permutation of 0..n-1 (Fisher–Yates), int64.
Tensor randperm(int64_t n, Generator* gen = nullptr);

}  // namespace nl
