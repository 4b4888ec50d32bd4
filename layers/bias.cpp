#include "layers/bias.h"

#include "layers/conv.h"
#include "layers/linear.h"

namespace nl {
namespace {

// The bias member of a Linear or Conv2d; nullptr for any other module.
Tensor* bias_member(Module& m) {
  if (auto* l = dynamic_cast<Linear*>(&m)) return &l->bias;
  if (auto* c = dynamic_cast<Conv2d*>(&m)) return &c->bias;
  return nullptr;
}

struct Found {
  std::string name;
  Tensor* bias;
  Module* normalization;  // the layer right after, which cancels the bias
};

std::vector<Found> find(Module& model) {
  std::vector<Found> out;
  for (auto& [path, module] : model.named_modules()) {
    if (dynamic_cast<Sequential*>(module) == nullptr) continue;
    const auto& kids = module->named_children();
    for (size_t i = 0; i + 1 < kids.size(); ++i) {
      Tensor* bias = bias_member(*kids[i].second);
      if (bias == nullptr || !bias->defined() || !kids[i + 1].second->cancels_preceding_bias()) continue;
      out.push_back(
          {(path.empty() ? "" : path + ".") + kids[i].first + ".bias", bias, kids[i + 1].second.get()});
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> biases_before_normalization(Module& model) {
  std::vector<std::string> names;
  for (const Found& f : find(model)) names.push_back(f.name);
  return names;
}

std::vector<std::string> remove_biases_before_normalization(Module& model) {
  std::vector<std::string> names;
  for (const Found& f : find(model)) {
    f.normalization->absorb_removed_bias(*f.bias);
    *f.bias = Tensor();
    names.push_back(f.name);
  }
  return names;
}

}  // namespace nl
