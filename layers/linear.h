// Linear layer:  y = x · Wᵀ + b
//   x: (..., in)   W: (out, in)   b: (out) or undefined   y: (..., out)
// One fused op with its backward (layers/linear.cpp); x is viewed as (rows, in) with rows = Π(...):
//   forward:   y  = x · Wᵀ + b        one GEMM, Wᵀ passed as a transpose flag, b as the GEMM's initial C
//   backward:  dx = dy · W            dW = dyᵀ · x  (one GEMM each, in W's own layout)    db = Σ_rows dy
// Saved for the backward: x and W. The same layer composed from core ops (matmul + add) is the test oracle.
#pragma once

#include <cstdint>

#include "../core/random.h"
#include "module.h"

namespace nl {

// The functional form; bias may be an undefined Tensor.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

struct LinearOptions {
  bool bias = true;
  DType dtype = kFloat32;
  Generator* generator = nullptr;  // for the initial weights; null = the default generator
};

class Linear : public Module {
 public:
  // Weight and bias are initialized as PyTorch's (layers/init.h: default_layer_init_), from the options'
  // generator or the default one. Linear(784, 512, {.bias = false, .dtype = kFloat64}).
  Linear(int64_t in_features, int64_t out_features, const LinearOptions& options);
  // The short form.
  Linear(int64_t in_features, int64_t out_features, bool bias = true, DType dtype = kFloat32,
         Generator* gen = nullptr)
      : Linear(in_features, out_features, LinearOptions{.bias = bias, .dtype = dtype, .generator = gen}) {}

  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Linear"; }
  std::string describe() const override;

  int64_t in_features, out_features;
  Tensor weight;  // (out, in)
  Tensor bias;    // (out); undefined when the layer has no bias (see layers/bias.h)
 protected:
  std::shared_ptr<Module> clone_impl() const override { return copy_of(*this); }
};

}  // namespace nl
