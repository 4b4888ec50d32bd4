// Residual blocks (He et al. 2016, the "BasicBlock" of ResNet-18/34) and a small ResNet built from them.
//
//   body(x)     = norm₂(conv₂(relu(norm₁(conv₁(x)))))     conv₁: 3×3, stride s;  conv₂: 3×3, stride 1
//   shortcut(x) = x                                       when the shape is kept (s = 1, in = out)
//               = norm(conv_1×1, stride s (x))            otherwise
//   y           = relu(body(x) + shortcut(x))
//
// The normalization is a factory, channels → module, so any normalization layer (BatchNorm2d, GroupNorm,
// ...) or none (Identity, the default) can be plugged in. A conv feeding a normalization that cancels a
// per-channel bias (Module::cancels_preceding_bias) is built without one.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "conv.h"
#include "module.h"

namespace nl {

using NormFactory = std::function<ModulePtr(int64_t channels)>;

class BasicBlock : public Module {
 public:
  // conv_options supplies dtype, generator, bias and weight standardization for every conv in the block
  // (stride, padding, dilation and groups are the block's own).
  BasicBlock(int64_t in_channels, int64_t out_channels, int64_t stride = 1, NormFactory norm = nullptr,
             Conv2dOptions conv_options = {});
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "BasicBlock"; }
  std::string describe() const override;

  int64_t in_channels, out_channels, stride;
  std::shared_ptr<Sequential> body;  // conv, norm, relu, conv, norm
  ModulePtr shortcut;                // Identity, or Sequential(conv 1×1, norm)
 protected:
  std::shared_ptr<Module> clone_impl() const override;
};

struct SmallResNetOptions {
  int64_t in_channels = 3;
  int64_t num_classes = 10;
  std::vector<int64_t> widths = {16, 32, 64};  // one stage per width; stages after the first halve H and W
  int64_t blocks_per_stage = 1;
  NormFactory norm = nullptr;  // null = Identity
  Conv2dOptions conv_options = {};
};

// stem (conv 3×3, norm, relu) → stages of BasicBlocks → GlobalAvgPool2d → Linear.  (N, C, H, W) → (N,
// classes)
std::shared_ptr<Sequential> small_resnet(const SmallResNetOptions& options = {});

}  // namespace nl
