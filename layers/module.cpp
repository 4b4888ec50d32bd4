#include "layers/module.h"

#include "core/error.h"

namespace nl {

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

Tensor* Module::find_tensor(const std::string& dotted) {
  const size_t dot = dotted.find('.');
  if (dot == std::string::npos) {
    for (auto& [name, t] : params_)
      if (name == dotted) return t;
    for (auto& [name, t] : buffers_)
      if (name == dotted) return t;
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

Sequential::Sequential(std::vector<ModulePtr> modules) {
  for (auto& m : modules) add(std::move(m));
}

Sequential& Sequential::add(ModulePtr module) {
  register_module(std::to_string(size()), std::move(module));
  return *this;
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (const auto& [name, child] : named_children()) h = child->forward(h);
  return h;
}

}  // namespace nl
