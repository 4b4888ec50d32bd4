// Finite-difference gradient checks.
//
// gradcheck(f, inputs) compares the autograd gradient of L = Σ f(inputs) ⊙ u, for a random upstream
// gradient u (a plain sum would hide bugs: BatchNorm's input gradient of Σy is exactly zero), with central
// differences  (L(x + h e_i) − L(x − h e_i)) / 2h  for every element i of every input that requires grad.
// Inputs must be float64. On a mismatch it throws nl::Error naming the op, the input, the index, the
// expected (numerical) and computed (analytical) values.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "../core/tensor.h"

namespace nl {

struct GradcheckOptions {
  double eps = 1e-6;   // finite-difference step
  double atol = 1e-5;  // |analytical − numerical| <= atol + rtol·|numerical|
  double rtol = 1e-3;
  uint64_t seed = 1234;  // for the upstream gradient
};

using GradcheckFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Returns true, or throws describing the first mismatch. `name` labels the op in the message; by default
// it is the op recorded on f's output.
bool gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs, const GradcheckOptions& options = {},
               const std::string& name = "");

}  // namespace nl
