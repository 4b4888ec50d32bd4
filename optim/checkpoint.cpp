#include "optim/checkpoint.h"

#include <charconv>

#include "autograd/engine.h"
#include "core/safetensors.h"

namespace nl {
namespace {

const std::string kOptimizerPrefix = "optimizer.";
const std::string kStepKey = "optimizer.step_count";

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

using Named = std::vector<std::pair<std::string, Tensor>>;

StateDict model_state(const Module& model) {
  StateDict state = model.state_dict();
  for (const auto& [name, t] : state)
    check(!starts_with(name, kOptimizerPrefix), "save_checkpoint: the model tensor '", name,
          "' uses the prefix 'optimizer.', which checkpoints reserve for the optimizer state");
  return state;
}

Metadata with_user_metadata(Metadata base, const Metadata& user, const char* op) {
  for (const auto& [k, v] : user) {
    check(!starts_with(k, "normlab.") && !starts_with(k, kOptimizerPrefix), op, ": metadata key '", k,
          "' is reserved (keys starting with 'normlab.' or 'optimizer.')");
    base[k] = v;
  }
  return base;
}

[[noreturn]] void report(const char* op, const std::string& path, const std::vector<std::string>& problems) {
  std::string msg = cat_str(op, ": ", path, " does not match: ", problems.size(),
                            problems.size() == 1 ? " problem" : " problems", " (nothing was loaded)");
  for (const std::string& p : problems) msg += "\n  " + p;
  throw Error(msg);
}

struct SplitFile {
  StateDict model;
  Named optimizer;  // names without the prefix
  Metadata metadata;
};

SplitFile read_split(const std::string& path) {
  SafetensorsContents c = load_safetensors(path);
  SplitFile s;
  s.metadata = std::move(c.metadata);
  for (auto& [name, t] : c.tensors) {
    if (starts_with(name, kOptimizerPrefix))
      s.optimizer.emplace_back(name.substr(kOptimizerPrefix.size()), std::move(t));
    else
      s.model.insert(name, t);
  }
  return s;
}

}  // namespace

void save_model(const std::string& path, const Module& model, const Metadata& metadata) {
  save_safetensors(path, model_state(model).entries(),
                   with_user_metadata({{"normlab.format", "checkpoint-v1"}}, metadata, "save_model"));
}

void load_model(const std::string& path, Module& model) {
  const SplitFile file = read_split(path);
  const std::vector<std::string> problems = model.state_dict_problems(file.model, /*strict=*/true);
  if (!problems.empty()) report("load_model", path, problems);
  model.load_state_dict(file.model);
}

void save_checkpoint(const std::string& path, const Module& model, const SGD& optimizer,
                     const Metadata& metadata) {
  Named tensors = model_state(model).entries();
  for (auto& [name, t] : optimizer.state_tensors()) tensors.emplace_back(kOptimizerPrefix + name, t);
  Metadata meta = {{"normlab.format", "checkpoint-v1"}, {kStepKey, std::to_string(optimizer.step_count())}};
  if (optimizer.schedule()) meta["optimizer.schedule"] = optimizer.schedule()->describe();
  save_safetensors(path, tensors, with_user_metadata(meta, metadata, "save_checkpoint"));
}

void load_checkpoint(const std::string& path, Module& model, SGD& optimizer) {
  const SplitFile file = read_split(path);
  std::vector<std::string> problems = model.state_dict_problems(file.model, /*strict=*/true);

  int64_t step_count = 0;
  const auto it = file.metadata.find(kStepKey);
  if (it == file.metadata.end()) {
    problems.push_back(cat_str("no optimizer state: the metadata lacks '", kStepKey,
                               "' (a model-only file? use load_model)"));
  } else {
    const std::string& s = it->second;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), step_count);
    if (ec != std::errc() || end != s.data() + s.size())
      problems.push_back(cat_str("metadata '", kStepKey, "' is \"", s, "\", not an integer"));
    else
      for (const std::string& p : optimizer.check_state(step_count, file.optimizer)) problems.push_back(p);
  }
  if (!problems.empty()) report("load_checkpoint", path, problems);
  model.load_state_dict(file.model);
  optimizer.load_state(step_count, file.optimizer);
}

Metadata read_checkpoint_metadata(const std::string& path) { return load_safetensors(path).metadata; }

}  // namespace nl
