// Inverted dropout, as PyTorch: in training each element is kept with probability 1 − p and scaled by
// 1/(1 − p), so the expected output equals the input and evaluation needs no rescaling:
//   y = x ⊙ m / (1 − p),   m_i ~ Bernoulli(1 − p)   (p = 1: y = 0)
//   dx = dy ⊙ m / (1 − p)
// In eval mode (or with p = 0) y = x. The mask comes from a seeded nl::Generator. The form that takes the
// mask explicitly exists so a test can fix the mask and gradcheck the op.
#pragma once

#include "../core/random.h"
#include "module.h"

namespace nl {

// y = x ⊙ mask / (1 − p); mask (0/1, x's shape and dtype) is not differentiated.
Tensor dropout_with_mask(const Tensor& x, const Tensor& mask, double p);
// Draws the keep-mask from `gen` (the default generator when null) when training and p > 0, else returns x.
Tensor dropout(const Tensor& x, double p, bool training, Generator* gen = nullptr);

class Dropout : public Module {
 public:
  // gen must outlive the module; null = the default generator.
  explicit Dropout(double p = 0.5, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override { return dropout(x, p, is_training(), gen); }
  std::string type_name() const override { return "Dropout"; }
  std::string describe() const override { return cat_str("Dropout(p=", p, ")"); }
  double p;
  Generator* gen;

 protected:
  std::shared_ptr<Module> clone_impl() const override { return copy_of(*this); }
};

}  // namespace nl
