// StateDict: a model's state as an ordered map, dotted name → tensor, like the OrderedDict that PyTorch's
// state_dict() returns. Module::state_dict() fills one (every parameter and buffer, module by module);
// Module::load_state_dict() reads one; save_model/load_model write and read one as a safetensors file.
//
// Entries keep their insertion order; names are unique. Lookups by name are O(1).
#pragma once

#include <cstddef>
#include <initializer_list>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../core/tensor.h"

namespace nl {

class StateDict {
 public:
  using Entry = std::pair<std::string, Tensor>;

  StateDict() = default;
  StateDict(std::initializer_list<Entry> entries);

  // Appends an entry; an error when the name is already present or the tensor is undefined.
  void insert(const std::string& name, const Tensor& tensor);
  // Replaces the tensor of an existing entry (keeps its position), or appends a new one.
  void set(const std::string& name, const Tensor& tensor);
  // Removes an entry; an error naming the key when there is none.
  void erase(const std::string& name);

  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  // The tensor stored under `name`; an error naming the key when there is none.
  const Tensor& at(const std::string& name) const;
  // nullptr when there is no such entry.
  const Tensor* find(const std::string& name) const;

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  std::vector<std::string> keys() const;
  std::vector<Entry>::const_iterator begin() const { return entries_.begin(); }
  std::vector<Entry>::const_iterator end() const { return entries_.end(); }
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  std::vector<Entry> entries_;
  std::unordered_map<std::string, size_t> index_;  // name → position in entries_
};

}  // namespace nl
