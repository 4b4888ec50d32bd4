#include "layers/module.h"

#include <algorithm>
#include <cstdint>

#include "autograd/engine.h"
#include "core/error.h"

namespace nl {

// ---- hooks --------------------------------------------------------------------------------------------

namespace detail {

struct HookLists {
  uint64_t next_id = 1;
  std::vector<std::pair<uint64_t, ForwardPreHook>> pre;
  std::vector<std::pair<uint64_t, ForwardHook>> post;
  bool empty() const { return pre.empty() && post.empty(); }
};

bool& module_copy_allowed() {
  thread_local bool allowed = false;
  return allowed;
}

}  // namespace detail

void HookHandle::remove() {
  if (auto lists = lists_.lock()) {
    auto drop = [this](auto& v) {
      v.erase(std::remove_if(v.begin(), v.end(), [this](const auto& h) { return h.first == id_; }), v.end());
    };
    drop(lists->pre);
    drop(lists->post);
  }
  lists_.reset();
}

Module::Module() : hooks_(std::make_shared<detail::HookLists>()) {}

Module::Module(const Module& other)
    : params_(other.params_),
      buffers_(other.buffers_),
      children_(other.children_),
      hooks_(std::make_shared<detail::HookLists>()),
      training_(other.training_) {
  // Still the original's member addresses and children: copy_of fixes them up (rebase_after_copy).
  check(std::exchange(detail::module_copy_allowed(), false), other.type_name(),
        ": a module cannot be copied by value (its registry points at its own members); use clone()");
}

HookHandle Module::add_forward_pre_hook(ForwardPreHook fn) {
  check(static_cast<bool>(fn), type_name(), ": register_forward_pre_hook got an empty function");
  const uint64_t id = hooks_->next_id++;
  hooks_->pre.emplace_back(id, std::move(fn));
  return HookHandle(hooks_, id);
}

HookHandle Module::add_forward_hook(ForwardHook fn) {
  check(static_cast<bool>(fn), type_name(), ": register_forward_hook got an empty function");
  const uint64_t id = hooks_->next_id++;
  hooks_->post.emplace_back(id, std::move(fn));
  return HookHandle(hooks_, id);
}

Tensor Module::operator()(const Tensor& x) {
  if (!x.defined()) throw Error(cat_str(describe(), ": the input is undefined"));
  if (hooks_->empty()) return forward(x);
  // Copies of the lists: a hook may remove itself (or add another) while they run.
  const auto pre = hooks_->pre;
  Tensor input = x;
  for (const auto& [id, hook] : pre)
    if (Tensor replaced = hook(*this, input); replaced.defined()) input = replaced;
  Tensor output = forward(input);
  const auto post = hooks_->post;
  for (const auto& [id, hook] : post)
    if (Tensor replaced = hook(*this, input, output); replaced.defined()) output = replaced;
  return output;
}

// ---- registry -----------------------------------------------------------------------------------------

void Module::check_new_name(const std::string& name) const {
  check(!name.empty() && name.find('.') == std::string::npos, type_name(), ": invalid name '", name,
        "' (names are non-empty and contain no '.')");
  for (const auto& [n, t] : params_) check(n != name, type_name(), ": '", name, "' is already registered");
  for (const auto& [n, t] : buffers_) check(n != name, type_name(), ": '", name, "' is already registered");
  for (const auto& [n, m] : children_) check(n != name, type_name(), ": '", name, "' is already registered");
}

void Module::register_parameter(const std::string& name, Tensor* member) {
  check_new_name(name);
  params_.emplace_back(name, member);
}

void Module::register_buffer(const std::string& name, Tensor* member) {
  check_new_name(name);
  buffers_.emplace_back(name, member);
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> child) {
  check(child != nullptr, type_name(), ": child '", name, "' is null");
  check_new_name(name);
  children_.emplace_back(name, std::move(child));
}

std::shared_ptr<Module> Module::child(const std::string& name) const {
  for (const auto& [n, c] : children_)
    if (n == name) return c;
  throw Error(cat_str(type_name(), ": no child named '", name, "'"));
}

void Module::collect(const std::string& prefix, bool params,
                     std::vector<std::pair<std::string, Tensor>>& out) const {
  for (const auto& [name, t] : params ? params_ : buffers_)
    if (t->defined()) out.emplace_back(prefix + name, *t);
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", params, out);
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect("", true, out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers() const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect("", false, out);
  return out;
}

std::vector<std::shared_ptr<Module>> Module::children() const {
  std::vector<std::shared_ptr<Module>> out;
  for (const auto& [name, child] : children_) out.push_back(child);
  return out;
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out{{"", this}};
  for (const auto& [name, child] : children_)
    for (auto& [sub, m] : child->named_modules()) out.emplace_back(sub.empty() ? name : name + "." + sub, m);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const Tensor& p : parameters()) n += p.numel();
  return n;
}

// ---- lookups ------------------------------------------------------------------------------------------

Module& Module::get_submodule(const std::string& dotted) {
  Module* m = this;
  std::string walked;  // the part of the path that exists, for the error message
  size_t start = 0;
  while (start < dotted.size()) {
    const size_t dot = std::min(dotted.find('.', start), dotted.size());
    const std::string name = dotted.substr(start, dot - start);
    Module* next = nullptr;
    for (const auto& [n, c] : m->children_)
      if (n == name) next = c.get();
    if (next == nullptr) {
      std::string known;
      for (const auto& [n, c] : m->children_) known += (known.empty() ? "" : ", ") + n;
      throw Error(cat_str(
          "get_submodule: no module '", dotted,
          "': ", walked.empty() ? std::string("the model") : "'" + walked + "' (" + m->type_name() + ")",
          " has no child '", name, "' (its children: ", known.empty() ? "none" : known, ")"));
    }
    walked += (walked.empty() ? "" : ".") + name;
    m = next;
    start = dot + 1;
  }
  return *m;
}

namespace {

// Splits "a.b.c" into ("a.b", "c").
std::pair<std::string, std::string> split_last(const std::string& dotted) {
  const size_t dot = dotted.rfind('.');
  if (dot == std::string::npos) return {"", dotted};
  return {dotted.substr(0, dot), dotted.substr(dot + 1)};
}

}  // namespace

Tensor Module::get_registered(const std::string& dotted, bool parameter) {
  const char* op = parameter ? "get_parameter" : "get_buffer";
  const char* kind = parameter ? "parameter" : "buffer";
  const auto [path, name] = split_last(dotted);
  Module& owner = get_submodule(path);
  for (const auto& [n, t] : parameter ? owner.params_ : owner.buffers_)
    if (n == name) {
      check(t->defined(), op, ": '", dotted, "' is not set (", owner.describe(), ")");
      return *t;
    }
  throw Error(
      cat_str(op, ": no ", kind, " '", dotted, "' (", owner.describe(), " has no ", kind, " '", name, "')"));
}

Tensor Module::get_parameter(const std::string& dotted) { return get_registered(dotted, true); }

Tensor Module::get_buffer(const std::string& dotted) { return get_registered(dotted, false); }

Tensor* Module::find_tensor(const std::string& dotted) {
  const size_t dot = dotted.find('.');
  if (dot == std::string::npos) {
    for (auto* list : {&params_, &buffers_})
      for (auto& [name, t] : *list)
        if (name == dotted) return t->defined() ? t : nullptr;
    return nullptr;
  }
  const std::string head = dotted.substr(0, dot);
  for (auto& [name, child] : children_)
    if (name == head) return child->find_tensor(dotted.substr(dot + 1));
  return nullptr;
}

void Module::replace_child(const std::string& name, std::shared_ptr<Module> child) {
  check(child != nullptr, type_name(), ": replacement for child '", name, "' is null");
  for (auto& [n, c] : children_)
    if (n == name) {
      c = std::move(child);
      return;
    }
  throw Error(cat_str(type_name(), ": no child named '", name, "' to replace"));
}

// ---- state dicts --------------------------------------------------------------------------------------

void Module::collect_state(const std::string& prefix, StateDict& out) const {
  for (const auto* list : {&params_, &buffers_})
    for (const auto& [name, t] : *list)
      if (t->defined()) out.insert(prefix + name, t->detach());
  for (const auto& [name, child] : children_) child->collect_state(prefix + name + ".", out);
}

StateDict Module::state_dict() const {
  StateDict out;
  collect_state("", out);
  return out;
}

std::vector<std::string> Module::state_dict_problems(const StateDict& state, bool strict) const {
  const StateDict mine = state_dict();
  std::vector<std::string> problems;
  for (const auto& [name, t] : mine) {
    const Tensor* given = state.find(name);
    if (given == nullptr) {
      if (strict)
        problems.push_back(
            cat_str("missing key '", name, "' (the model has ", t.shape(), " ", dtype_name(t.dtype()), ")"));
    } else if (given->shape() != t.shape()) {
      problems.push_back(cat_str("'", name, "' has shape ", given->shape(), " in the state dict but ",
                                 t.shape(), " in the model"));
    } else if (!is_floating(t.dtype()) && is_floating(given->dtype())) {
      problems.push_back(cat_str("'", name, "' is ", dtype_name(given->dtype()), " in the state dict but ",
                                 dtype_name(t.dtype()), " in the model (floating values do not convert to ",
                                 "integers)"));
    }
  }
  if (strict)
    for (const auto& [name, t] : state)
      if (!mine.contains(name))
        problems.push_back(cat_str("unexpected key '", name, "' (", t.shape(), " ", dtype_name(t.dtype()),
                                   ") is not in the model"));
  return problems;
}

LoadStateDictResult Module::load_state_dict(const StateDict& state, bool strict) {
  const std::vector<std::string> problems = state_dict_problems(state, strict);
  if (!problems.empty()) {
    std::string msg = cat_str("load_state_dict: the state dict does not match the model (", type_name(),
                              "): ", problems.size(), problems.size() == 1 ? " problem" : " problems",
                              " (nothing was loaded)");
    for (const std::string& p : problems) msg += "\n  " + p;
    throw Error(msg);
  }
  LoadStateDictResult result;
  const StateDict mine = state_dict();
  NoGradGuard no_record;
  for (const auto& [name, t] : mine) {
    const Tensor* given = state.find(name);
    if (given == nullptr) {
      result.missing_keys.push_back(name);
      continue;
    }
    Tensor dst = t;  // a view of the model's own storage
    dst.copy_(*given);
  }
  for (const auto& [name, t] : state)
    if (!mine.contains(name)) result.unexpected_keys.push_back(name);
  return result;
}

// ---- dtype and device -----------------------------------------------------------------------------------

Module& Module::to(DType dtype) {
  check(is_floating(dtype), type_name(), ".to: the target dtype must be floating, got ", dtype_name(dtype));
  NoGradGuard no_record;
  for (auto& [path, m] : named_modules())
    for (auto* list : {&m->params_, &m->buffers_})
      for (auto& [name, t] : *list) {
        if (!t->defined() || !is_floating(t->dtype()) || t->dtype() == dtype) continue;
        const Tensor grad = t->grad();
        t->set_data(t->detach().to(dtype));
        if (grad.defined()) t->set_grad(grad.to(dtype));
      }
  return *this;
}

Module& Module::to(Device device) {
  NoGradGuard no_record;
  // Everything is converted before anything is changed: a move that fails leaves the model as it was.
  std::vector<std::pair<Tensor*, Tensor>> moved;
  for (auto& [path, m] : named_modules())
    for (auto* list : {&m->params_, &m->buffers_})
      for (auto& [name, t] : *list)
        if (t->defined() && t->device() != device) moved.emplace_back(t, t->detach().to(device));
  for (auto& [t, data] : moved) {
    const Tensor grad = t->grad();
    t->set_data(data);
    if (grad.defined()) t->set_grad(grad.to(device));
  }
  return *this;
}

// ---- copies -------------------------------------------------------------------------------------------

std::shared_ptr<Module> Module::clone_impl() const {
  throw Error(cat_str(type_name(), ": clone() needs ", type_name(),
                      "::clone_impl(); override it as `return copy_of(*this);` (see layers/module.h)"));
}

std::shared_ptr<Module> Module::clone() const {
  std::shared_ptr<Module> copy = clone_impl();
  check(copy != nullptr && copy.get() != this && typeid(*copy) == typeid(*this), type_name(),
        "::clone_impl() must return a new ", type_name());
  return copy;
}

namespace {

// Its own copy of a registered tensor: data, requires_grad and gradient.
Tensor deep_copy(const Tensor& t) {
  Tensor out = t.detach().clone();
  if (t.requires_grad()) out.requires_grad_();
  if (t.grad().defined()) out.set_grad(t.grad().detach().clone());
  return out;
}

}  // namespace

void Module::rebase_after_copy(const void* original, const void* self, size_t size) {
  const auto from = reinterpret_cast<uintptr_t>(original);
  const auto to = reinterpret_cast<uintptr_t>(self);
  NoGradGuard no_record;
  for (auto* list : {&params_, &buffers_})
    for (auto& [name, member] : *list) {
      const auto at = reinterpret_cast<uintptr_t>(member);
      check(at >= from && at + sizeof(Tensor) <= from + size, type_name(), ": cannot clone: '", name,
            "' is not a member of the module (register the addresses of member tensors)");
      member = reinterpret_cast<Tensor*>(to + (at - from));
      if (member->defined()) *member = deep_copy(*member);
    }
  for (auto& [name, c] : children_) c = c->clone();
}

// ---- mode, gradients, printing ----------------------------------------------------------------------

void Module::train(bool on) {
  const bool changed = training_ != on;
  training_ = on;
  if (changed) on_mode_change();
  for (auto& [name, child] : children_) child->train(on);
}

void Module::zero_grad() {
  for (auto& [name, t] : params_)
    if (t->defined()) t->zero_grad();
  for (auto& [name, child] : children_) child->zero_grad();
}

void Module::tree(std::string& out, const std::string& name, int depth) const {
  out += std::string(2 * depth, ' ') + (name.empty() ? "" : "(" + name + "): ") + describe() + "\n";
  for (const auto& [child_name, child] : children_) child->tree(out, child_name, depth + 1);
}

std::string Module::to_string() const {
  std::string out;
  tree(out, "", 0);
  return out;
}

// ---- Sequential ---------------------------------------------------------------------------------------

Sequential::Sequential(std::vector<ModulePtr> modules) {
  for (auto& m : modules) add(std::move(m));
}

Sequential::Sequential(std::vector<std::pair<std::string, ModulePtr>> named_modules) {
  for (auto& [name, m] : named_modules) add(name, std::move(m));
}

Sequential& Sequential::add(ModulePtr module) { return add(std::to_string(size()), std::move(module)); }

Sequential& Sequential::add(const std::string& name, ModulePtr module) {
  register_module(name, std::move(module));
  return *this;
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (const auto& [name, child] : named_children()) h = (*child)(h);
  return h;
}

}  // namespace nl
