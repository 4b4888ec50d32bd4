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
// std::shared_ptr and cannot be copied by value (clone() makes a deep copy), so the addresses stay valid.
//
// Names are dotted paths through the children: "features.0.weight", as in PyTorch.
//
// Calling. module(x) runs the forward pre-hooks, forward(x), then the forward hooks; containers call their
// children the same way, so a hook on any module of a tree fires wherever it sits. Call forward() directly
// only to bypass the hooks.
//
// State dicts, dtype moves and copies, as PyTorch's: state_dict()/load_state_dict(), to(kFloat64), clone().
// docs/pytorch.md lists the names side by side.
//
// Writing a custom module takes a few lines (examples/custom_module.cpp):
//   struct Scale : nl::Module {
//     nl::Tensor alpha = nl::ones({1}).requires_grad_();
//     Scale() { register_parameter("alpha", &alpha); }
//     nl::Tensor forward(const nl::Tensor& x) override { return x * alpha; }
//     std::string type_name() const override { return "Scale"; }
//     // Optional, for clone(): a copy made by the type's copy constructor.
//     std::shared_ptr<nl::Module> clone_impl() const override { return copy_of(*this); }
//   };
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/tensor.h"
#include "state_dict.h"

namespace nl {

class Module;

// fn(module, input) before forward; a defined result replaces the input.
using ForwardPreHook = std::function<Tensor(Module&, const Tensor& input)>;
// fn(module, input, output) after forward; a defined result replaces the output.
using ForwardHook = std::function<Tensor(Module&, const Tensor& input, const Tensor& output)>;

namespace detail {
struct HookLists;
}

// What register_forward_hook returns: remove() takes the hook off its module (again: nothing; after the
// module is gone: nothing). Dropping the handle leaves the hook in place, as in PyTorch.
class HookHandle {
 public:
  HookHandle() = default;
  void remove();

 private:
  friend class Module;
  HookHandle(std::weak_ptr<detail::HookLists> lists, uint64_t id) : lists_(std::move(lists)), id_(id) {}
  std::weak_ptr<detail::HookLists> lists_;
  uint64_t id_ = 0;
};

// What load_state_dict(state, strict = false) did not match; both empty after a strict load.
struct LoadStateDictResult {
  std::vector<std::string> missing_keys;     // in the model, not in the state dict (left as they were)
  std::vector<std::string> unexpected_keys;  // in the state dict, not in the model (ignored)
};

class Module {
 public:
  Module();
  Module& operator=(const Module&) = delete;
  virtual ~Module() = default;

  virtual Tensor forward(const Tensor& x) = 0;
  // Runs the forward pre-hooks, forward(x) and the forward hooks.
  Tensor operator()(const Tensor& x);
  // "Linear", "BatchNorm2d", ...
  virtual std::string type_name() const = 0;
  // One line with the type and its settings, e.g. "Linear(784, 512, bias=false)".
  virtual std::string describe() const { return type_name(); }
  // True for a normalization layer whose per-channel mean subtraction cancels a per-channel bias added just
  // before it (BatchNorm, InstanceNorm, ...): such a bias is useless and can be omitted.
  virtual bool cancels_preceding_bias() const { return false; }
  // Called by remove_biases_before_normalization when the per-channel bias b feeding this layer is removed:
  // a layer that keeps running statistics subtracts b from its running mean, so that eval mode computes
  // exactly what it computed with the bias. The default does nothing (no running statistics).
  virtual void absorb_removed_bias(const Tensor& bias) { (void)bias; }

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
  // The number of parameter elements (Σ numel over parameters()), as sum(p.numel() for p in parameters()).
  int64_t num_parameters() const;

  // ---- lookups by dotted name. The get_ forms throw an error naming the key (and the path that exists);
  // find_tensor returns nullptr for an unknown name and for an optional member that is absent.
  Module& get_submodule(const std::string& dotted_name);  // "" is this module
  Tensor get_parameter(const std::string& dotted_name);
  Tensor get_buffer(const std::string& dotted_name);
  Tensor* find_tensor(const std::string& dotted_name);
  // Puts `child` in place of this module's direct child `name` (same position); an error when there is no
  // such child. fold_batchnorm uses it to swap a folded BatchNorm for an Identity.
  void replace_child(const std::string& name, std::shared_ptr<Module> child);

  // ---- state dicts
  // Every parameter and buffer of the tree, module by module (a module's parameters, then its buffers,
  // then its children's), as PyTorch orders them. The tensors are detached views of the model's own
  // storage: they change when the model trains (clone them for a snapshot).
  StateDict state_dict() const;
  // Copies the state dict into the model's parameters and buffers (converting the dtype where it differs).
  // strict: every missing and every unexpected key is an error. In any mode a shape mismatch is an error
  // naming the key and both shapes. All checks come first: on any error nothing has been changed.
  LoadStateDictResult load_state_dict(const StateDict& state, bool strict = true);
  // The problems load_state_dict(state, strict) would report, one line each; empty when it would succeed.
  std::vector<std::string> state_dict_problems(const StateDict& state, bool strict = true) const;

  // ---- dtype and device: every floating parameter and buffer of the tree (and its .grad), converted in
  // place with Tensor::set_data, so the tensors stay registered, stay leaves, and optimizers built before
  // still hold them. Integer buffers (num_batches_tracked) keep their dtype. Returns *this.
  Module& to(DType dtype);
  // An error naming the device when this build cannot reach it (the CPU-only build has no CUDA backend).
  Module& to(Device device);

  // ---- copies
  // A deep copy of the tree: its own parameters, buffers (and their gradients) and children, the same
  // settings and training flags. Hooks are not copied. Tensors shared between two modules (weight tying)
  // become two separate copies. Each module type provides clone_impl(); the library's layers all do.
  std::shared_ptr<Module> clone() const;

  // ---- hooks. fn may return nothing (it observes) or a Tensor (a defined one replaces the input/output).
  // To observe the gradient of a module's output, register a tensor hook on it from a forward hook:
  //   model.get_submodule("3").register_forward_hook([&](Module&, const Tensor&, const Tensor& out) {
  //     if (out.requires_grad()) out.register_hook([&](const Tensor& g) { seen = g.clone(); });
  //   });
  template <class F>
  HookHandle register_forward_pre_hook(F fn);
  template <class F>
  HookHandle register_forward_hook(F fn);

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
  // Copies made only through copy_of: the registry is rebased onto the copy's members there. Copying a
  // module by value anywhere else throws.
  Module(const Module& other);

  // Registers member tensors and children; names must be unique within this module.
  void register_parameter(const std::string& name, Tensor* member);
  void register_buffer(const std::string& name, Tensor* member);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> child) {
    add_child(name, child);
    return child;
  }
  // The direct child `name`; an error naming it when there is none.
  std::shared_ptr<Module> child(const std::string& name) const;
  // Called after the training flag of this module changes (default: nothing).
  virtual void on_mode_change() {}

  // clone() calls this for each module of the tree. Override it as `return copy_of(*this);`; a module that
  // keeps typed pointers to its children (std::shared_ptr<Sequential> body) points them at the copy's
  // children afterwards (layers/residual.cpp does). The default throws an error naming the type.
  virtual std::shared_ptr<Module> clone_impl() const;
  // A copy of `self` made by Derived's copy constructor, with every registered tensor deep-copied (data,
  // requires_grad, .grad) and every child cloned. Registered tensors must be members of Derived.
  template <class Derived>
  static std::shared_ptr<Derived> copy_of(const Derived& self);

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> child);
  void check_new_name(const std::string& name) const;
  void collect(const std::string& prefix, bool params,
               std::vector<std::pair<std::string, Tensor>>& out) const;
  void collect_state(const std::string& prefix, StateDict& out) const;
  Tensor get_registered(const std::string& dotted_name, bool parameter);
  void tree(std::string& out, const std::string& name, int depth) const;
  HookHandle add_forward_pre_hook(ForwardPreHook fn);
  HookHandle add_forward_hook(ForwardHook fn);
  // After a copy by value from `original` (of `size` bytes), points the registry at this object's members
  // and gives them their own copies of the data.
  void rebase_after_copy(const void* original, const void* self, size_t size);

  std::vector<std::pair<std::string, Tensor*>> params_;
  std::vector<std::pair<std::string, Tensor*>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  std::shared_ptr<detail::HookLists> hooks_;
  bool training_ = true;
};

using ModulePtr = std::shared_ptr<Module>;

// Runs its children in order. Children added without a name are named by position: "0", "1", ...
class Sequential : public Module {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<ModulePtr> modules);
  // Named children, in order: Sequential({{"conv", conv}, {"bn", bn}, {"relu", relu}}).
  explicit Sequential(std::vector<std::pair<std::string, ModulePtr>> named_modules);
  Sequential& add(ModulePtr module);
  Sequential& add(const std::string& name, ModulePtr module);
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

 protected:
  std::shared_ptr<Module> clone_impl() const override { return copy_of(*this); }
};

// ---------------------------------------------------------------------------------------------------------

namespace detail {
// Set by copy_of while a module is being copied by value; the Module copy constructor checks it.
bool& module_copy_allowed();
}  // namespace detail

template <class F>
HookHandle Module::register_forward_pre_hook(F fn) {
  using R = std::invoke_result_t<F&, Module&, const Tensor&>;
  if constexpr (std::is_void_v<R>) {
    return add_forward_pre_hook([fn = std::move(fn)](Module& m, const Tensor& in) mutable {
      fn(m, in);
      return Tensor();
    });
  } else {
    static_assert(std::is_convertible_v<R, Tensor>, "a forward pre-hook returns nothing or a Tensor");
    return add_forward_pre_hook(ForwardPreHook(std::move(fn)));
  }
}

template <class F>
HookHandle Module::register_forward_hook(F fn) {
  using R = std::invoke_result_t<F&, Module&, const Tensor&, const Tensor&>;
  if constexpr (std::is_void_v<R>) {
    return add_forward_hook([fn = std::move(fn)](Module& m, const Tensor& in, const Tensor& out) mutable {
      fn(m, in, out);
      return Tensor();
    });
  } else {
    static_assert(std::is_convertible_v<R, Tensor>, "a forward hook returns nothing or a Tensor");
    return add_forward_hook(ForwardHook(std::move(fn)));
  }
}

template <class Derived>
std::shared_ptr<Derived> Module::copy_of(const Derived& self) {
  static_assert(std::is_base_of_v<Module, Derived>);
  detail::module_copy_allowed() = true;  // consumed by the Module copy constructor
  std::shared_ptr<Derived> copy;
  try {
    copy = std::shared_ptr<Derived>(new Derived(self));
  } catch (...) {
    detail::module_copy_allowed() = false;
    throw;
  }
  static_cast<Module&>(*copy).rebase_after_copy(&self, copy.get(), sizeof(Derived));
  return copy;
}

}  // namespace nl
