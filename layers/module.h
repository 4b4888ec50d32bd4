// Module: the stateful side of the module/functional split.
//
// A module owns three kinds of state, kept apart:
//   parameters  learnable tensors, seen by the optimizer (weight, bias, γ, β)
//   buffers     state saved with the model but never optimized (running_mean, running_var, ...)
//   children    sub-modules, named ("features", "0", ...)
// and one flag, `training`, set recursively by train()/eval(). The math lives in stateless functions
// (core/ops.h and friends); forward() calls them with the module's state.
//
// Registration. A module registers the ADDRESSES of its member tensors: register_parameter("weight",
// &weight). The registry therefore always sees the current tensor, even after a member is replaced (as
// fold_batchnorm does). A member left undefined (e.g. bias=false) is simply not listed. Modules are held by
// std::shared_ptr and are not copyable, so the addresses stay valid.
//
// Names are dotted paths through the children: "features.0.weight", as in PyTorch.
//
// Writing a custom module takes a few lines (examples/custom_module.cpp):
//   struct Scale : nl::Module {
//     nl::Tensor alpha = nl::ones({1}).requires_grad_();
//     Scale() { register_parameter("alpha", &alpha); }
//     nl::Tensor forward(const nl::Tensor& x) override { return x * alpha; }
//     std::string type_name() const override { return "Scale"; }
//   };
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace nl {

class Module {
 public:
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  virtual ~Module() = default;

  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }
  // "Linear", "BatchNorm2d", ...
  virtual std::string type_name() const = 0;
  // One line with the type and its settings, e.g. "Linear(784, 512, bias=false)".
  virtual std::string describe() const { return type_name(); }
  // True for a normalization layer whose per-channel mean subtraction cancels a per-channel bias added just
  // before it (BatchNorm, InstanceNorm, ...): such a bias is useless and can be omitted.
  virtual bool cancels_preceding_bias() const { return false; }

  // ---- state, recursively, with dotted names; parameters and buffers in registration order
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  std::vector<Tensor> parameters() const;
  std::vector<std::pair<std::string, Tensor>> named_buffers() const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const {
    return children_;
  }
  std::vector<std::shared_ptr<Module>> children() const;
  // This module and every descendant, depth first, with dotted names ("" for this one).
  std::vector<std::pair<std::string, Module*>> named_modules();
  // The parameter or buffer with this dotted name; nullptr when there is none.
  Tensor* find_tensor(const std::string& dotted_name);
  // Puts `child` in place of this module's direct child `name` (same position); an error when there is no
  // such child. fold_batchnorm uses it to swap a folded BatchNorm for an Identity.
  void replace_child(const std::string& name, std::shared_ptr<Module> child);

  // ---- mode
  // Sets the training flag of this module and of every descendant.
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Drops every parameter's .grad (the next backward starts from zero).
  void zero_grad();

  // A multi-line tree of describe() lines, like printing a PyTorch model.
  std::string to_string() const;

 protected:
  // Registers member tensors and children; names must be unique within this module.
  void register_parameter(const std::string& name, Tensor* member);
  void register_buffer(const std::string& name, Tensor* member);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> child) {
    add_child(name, child);
    return child;
  }
  // Called after the training flag of this module changes (default: nothing).
  virtual void on_mode_change() {}

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> child);
  void check_new_name(const std::string& name) const;
  void collect(const std::string& prefix, bool params,
               std::vector<std::pair<std::string, Tensor>>& out) const;
  void tree(std::string& out, const std::string& name, int depth) const;

  std::vector<std::pair<std::string, Tensor*>> params_;
  std::vector<std::pair<std::string, Tensor*>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

using ModulePtr = std::shared_ptr<Module>;

// Runs its children in order. Children are named "0", "1", ...
class Sequential : public Module {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<ModulePtr> modules);
  Sequential& add(ModulePtr module);
  template <class M, class... Args>
  std::shared_ptr<M> emplace(Args&&... args) {
    auto m = std::make_shared<M>(std::forward<Args>(args)...);
    add(m);
    return m;
  }
  size_t size() const { return named_children().size(); }
  ModulePtr operator[](size_t i) const { return named_children().at(i).second; }

  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Sequential"; }
};

}  // namespace nl
