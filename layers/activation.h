// Activation modules: thin wrappers over the elementwise ops of core/ops.h (their math and gradients are
// there), plus Identity.
#pragma once

#include "../core/ops.h"
#include "module.h"

namespace nl {

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override { return relu(x); }
  std::string type_name() const override { return "ReLU"; }

 protected:
  std::shared_ptr<Module> clone_impl() const override { return copy_of(*this); }
};

class LeakyReLU : public Module {
 public:
  explicit LeakyReLU(double negative_slope = 0.01) : negative_slope(negative_slope) {}
  Tensor forward(const Tensor& x) override { return leaky_relu(x, negative_slope); }
  std::string type_name() const override { return "LeakyReLU"; }
  std::string describe() const override { return cat_str("LeakyReLU(negative_slope=", negative_slope, ")"); }
  double negative_slope;

 protected:
  std::shared_ptr<Module> clone_impl() const override { return copy_of(*this); }
};

// Exact GELU, x·Φ(x).
class GELU : public Module {
 public:
  Tensor forward(const Tensor& x) override { return gelu(x); }
  std::string type_name() const override { return "GELU"; }

 protected:
  std::shared_ptr<Module> clone_impl() const override { return copy_of(*this); }
};

class Sigmoid : public Module {
 public:
  Tensor forward(const Tensor& x) override { return sigmoid(x); }
  std::string type_name() const override { return "Sigmoid"; }

 protected:
  std::shared_ptr<Module> clone_impl() const override { return copy_of(*this); }
};

class Tanh : public Module {
 public:
  Tensor forward(const Tensor& x) override { return tanh(x); }
  std::string type_name() const override { return "Tanh"; }

 protected:
  std::shared_ptr<Module> clone_impl() const override { return copy_of(*this); }
};

// Returns its input: the stand-in where a layer is optional (e.g. "no normalization").
class Identity : public Module {
 public:
  Tensor forward(const Tensor& x) override { return x; }
  std::string type_name() const override { return "Identity"; }

 protected:
  std::shared_ptr<Module> clone_impl() const override { return copy_of(*this); }
};

}  // namespace nl
