// Small helpers shared by the tests.
#pragma once

#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace nl::test {

// Element-wise |a − b| <= atol + rtol·|b|, with shapes equal; reports the first mismatch.
inline bool allclose(const Tensor& a, const Tensor& b, double rtol = 1e-5, double atol = 1e-6) {
  if (a.shape() != b.shape()) {
    UNSCOPED_INFO("shapes differ: " << shape_str(a.shape()) << " vs " << shape_str(b.shape()));
    return false;
  }
  const std::vector<double> va = a.to_vector<double>(), vb = b.to_vector<double>();
  for (size_t i = 0; i < va.size(); ++i) {
    const bool both_nan = std::isnan(va[i]) && std::isnan(vb[i]);
    if (!both_nan && !(std::abs(va[i] - vb[i]) <= atol + rtol * std::abs(vb[i]))) {
      UNSCOPED_INFO("first mismatch at flat index " << i << ": " << va[i] << " vs " << vb[i]);
      return false;
    }
  }
  return true;
}

inline std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

}  // namespace nl::test
