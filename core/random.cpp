#include "core/random.h"

#include <cmath>

namespace nl {
namespace {

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

Generator& pick(Generator* gen) { return gen ? *gen : default_generator(); }

template <class F>
Tensor fill_with(const Shape& shape, DType dtype, const char* op, F draw) {
  Tensor t = empty(shape, dtype);
  visit_floating(dtype, op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = t.data<T>();
    for (int64_t i = 0, n = t.numel(); i < n; ++i) p[i] = static_cast<T>(draw());
  });
  return t;
}

}  // namespace

Generator::Generator(uint64_t s) { seed(s); }

void Generator::seed(uint64_t s) {
  for (uint64_t& w : s_) w = splitmix64(s);
  has_cached_normal_ = false;
}

uint64_t Generator::next_u64() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Generator::next_double() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
float Generator::next_float() { return static_cast<float>(next_u64() >> 40) * 0x1.0p-24f; }

double Generator::next_normal() {
  if (has_cached_normal_) {
    has_cached_normal_ = false;
    return cached_normal_;
  }
  // Box–Muller: u1 in (0, 1] so the log is finite.
  const double u1 = 1.0 - next_double(), u2 = next_double();
  const double radius = std::sqrt(-2.0 * std::log(u1)), angle = 2.0 * M_PI * u2;
  cached_normal_ = radius * std::sin(angle);
  has_cached_normal_ = true;
  return radius * std::cos(angle);
}

int64_t Generator::next_int(int64_t lo, int64_t hi) {
  check(lo < hi, "randint: empty range [", lo, ", ", hi, ")");
  const uint64_t range = static_cast<uint64_t>(hi - lo);
  // Lemire: multiply-shift with rejection of the biased low region.
  __uint128_t m = static_cast<__uint128_t>(next_u64()) * range;
  uint64_t low = static_cast<uint64_t>(m);
  if (low < range) {
    const uint64_t threshold = -range % range;
    while (low < threshold) {
      m = static_cast<__uint128_t>(next_u64()) * range;
      low = static_cast<uint64_t>(m);
    }
  }
  return lo + static_cast<int64_t>(m >> 64);
}

Generator::State Generator::state() const {
  return {{s_[0], s_[1], s_[2], s_[3]}, cached_normal_, has_cached_normal_};
}
void Generator::set_state(const State& st) {
  for (int i = 0; i < 4; ++i) s_[i] = st.s[i];
  cached_normal_ = st.cached_normal;
  has_cached_normal_ = st.has_cached_normal;
}

Generator& default_generator() {
  static Generator g;
  return g;
}
void manual_seed(uint64_t seed) { default_generator().seed(seed); }

Tensor rand(const Shape& shape, DType dtype, Generator* gen, double lo, double hi) {
  Generator& g = pick(gen);
  if (dtype == kFloat32)
    return fill_with(shape, dtype, "rand",
                     [&] { return lo + (hi - lo) * static_cast<double>(g.next_float()); });
  return fill_with(shape, dtype, "rand", [&] { return lo + (hi - lo) * g.next_double(); });
}

Tensor randn(const Shape& shape, DType dtype, Generator* gen, double mean, double stddev) {
  Generator& g = pick(gen);
  return fill_with(shape, dtype, "randn", [&] { return mean + stddev * g.next_normal(); });
}

Tensor randint(int64_t lo, int64_t hi, const Shape& shape, Generator* gen) {
  Generator& g = pick(gen);
  Tensor t = empty(shape, kInt64);
  int64_t* p = t.data<int64_t>();
  for (int64_t i = 0, n = t.numel(); i < n; ++i) p[i] = g.next_int(lo, hi);
  return t;
}

Tensor bernoulli(const Shape& shape, double p, DType dtype, Generator* gen) {
  check(p >= 0 && p <= 1, "bernoulli: probability must be in [0, 1], got ", p);
  Generator& g = pick(gen);
  return fill_with(shape, dtype, "bernoulli", [&] { return g.next_double() < p ? 1.0 : 0.0; });
}

Tensor randperm(int64_t n, Generator* gen) {
  Generator& g = pick(gen);
  Tensor t = arange(n, kInt64);
  int64_t* p = t.data<int64_t>();
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[i], p[g.next_int(0, i + 1)]);
  return t;
}

}  // namespace nl
