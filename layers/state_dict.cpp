#include "layers/state_dict.h"

namespace nl {

StateDict::StateDict(std::initializer_list<Entry> entries) {
  for (const auto& [name, tensor] : entries) insert(name, tensor);
}

void StateDict::insert(const std::string& name, const Tensor& tensor) {
  check(!contains(name), "StateDict::insert: the key '", name, "' is already present");
  check(tensor.defined(), "StateDict::insert: the tensor for '", name, "' is undefined");
  index_.emplace(name, entries_.size());
  entries_.emplace_back(name, tensor);
}

void StateDict::set(const std::string& name, const Tensor& tensor) {
  check(tensor.defined(), "StateDict::set: the tensor for '", name, "' is undefined");
  const auto it = index_.find(name);
  if (it == index_.end()) return insert(name, tensor);
  entries_[it->second].second = tensor;
}

void StateDict::erase(const std::string& name) {
  const auto it = index_.find(name);
  check(it != index_.end(), "StateDict::erase: no key '", name, "'");
  entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(it->second));
  index_.clear();
  for (size_t i = 0; i < entries_.size(); ++i) index_.emplace(entries_[i].first, i);
}

const Tensor& StateDict::at(const std::string& name) const {
  const Tensor* t = find(name);
  check(t != nullptr, "StateDict: no key '", name, "' (", entries_.size(), " keys)");
  return *t;
}

const Tensor* StateDict::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second].second;
}

std::vector<std::string> StateDict::keys() const {
  std::vector<std::string> out;
  for (const auto& [name, tensor] : entries_) out.push_back(name);
  return out;
}

}  // namespace nl
