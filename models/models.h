// The networks of the bundled trainers and studies, built from library modules by name, so that a program
// using the installed package gets the same nets as normlab-train (nl::build_model(config)).
//
//   mlp     Flatten → [Linear → norm → ReLU] × len(hidden) → Linear(…, 10)          (default hidden 512, 512)
//   cnn     the small VGG-style net:  [conv3×3 → norm → ReLU → maxpool 2] for 1→32 and 32→64 channels,
//           Flatten → Linear(3136, 128) → norm → ReLU → Linear(128, 10)             (input 1×28×28)
//   resnet  a small ResNet of BasicBlocks (widths 16, 32, 64; layers/residual.h) on 1×28×28
//
// With norm "batch", each BatchNorm and its ReLU run fused in one kernel unless fused_bn_relu is off; in the
// cnn, so does the max pool after them (an Identity keeps its place in the Sequential).
// The normalization is chosen by name (ModelConfig::norm). With "instance", the CNN's fully connected block
// has no normalization: InstanceNorm needs spatial positions to average over. `bias` decides whether the
// Linear/Conv2d layers that feed a normalization layer get a bias: "auto" and "off" = no bias before a
// normalization layer (its shift β makes a preceding bias redundant; BatchNorm and InstanceNorm cancel it
// exactly) and a bias everywhere else; "off" = no bias in any hidden layer, normalized or not; "on" = a bias
// everywhere. The classifier (last Linear) always has its bias.
//
// The BatchNorm knobs (bn_eps, bn_momentum, bn_affine) apply to every BatchNorm-family layer the builders
// make, and to nothing else:
//   norm "batch" (BatchNorm1d/2d), "ghost" (GhostBatchNorm), "noisy" (NoisyBatchNorm): all three.
//   norm "batchrenorm" (BatchRenorm): eps and affine. Its running μ and σ keep their own rate, the paper's
//     α = 0.01 (kBatchRenormDefaultMomentum): BatchNorm's momentum (0.1, or a cumulative average) means
//     something else there.
//   Other norms (layer, group, instance, rms) ignore them.
// With bn_affine off the layers have no γ and β (no weight or bias parameters): y = x̂. A bias before the
// layer is still dropped under bias "auto": the mean subtraction cancels it whether or not β follows.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "../core/normalization.h"
#include "../layers/module.h"

namespace nl {

struct ModelConfig {
  std::string model = "cnn";   // mlp | cnn | resnet
  std::string norm = "batch";  // none | batch | layer | group | instance | rms | batchrenorm | ghost | noisy
  std::string bias = "auto";   // auto | on | off
  std::vector<int64_t> mlp_hidden = {512, 512};
  int64_t groups = 8;              // GroupNorm groups (must divide every channel count)
  int64_t ghost_batch_size = 16;   // GhostBatchNorm virtual batch
  int64_t renorm_total_steps = 0;  // > 0: BatchRenorm's schedule is scaled to this run length
  // With norm "batch": BatchNorm and the ReLU after it run as one kernel (BatchNormOptions::fused_relu;
  // same values and gradients, two fewer passes over memory each way). The model then lists
  // "BatchNorm2d(..., fused_relu=true)" and no separate ReLU. In the cnn the 2×2 max pool after them joins
  // the kernel too (fused_max_pool), and an Identity stands where the MaxPool2d was.
  bool fused_bn_relu = true;
  // The BatchNorm family's settings (see the header comment for which layers take them).
  double bn_eps = kNormDefaultEps;  // >= 0, added to the variance
  // Weight of the new batch statistic in the running averages, in [0, 1]; nullopt: the cumulative average
  // over all training batches so far, factor 1/num_batches_tracked (PyTorch's momentum=None).
  std::optional<double> bn_momentum = kBatchNormDefaultMomentum;
  bool bn_affine = true;  // learnable γ (weight) and β (bias)
};

// Throws nl::Error naming the option when a name or a combination is not supported.
void validate(const ModelConfig& config);

std::shared_ptr<Sequential> build_model(const ModelConfig& config);

// "cnn, norm=batch (fused with its ReLU), bias=auto" — for headers; the BatchNorm settings follow when they
// differ from the defaults (", bn eps=0.001 momentum=cumulative affine=off").
std::string describe(const ModelConfig& config);

// The config as checkpoint metadata ("model.*" keys) and back, so normlab-predict rebuilds the same net.
// Doubles are written in their shortest form that reads back to the same value ("model.bn_eps",
// "model.bn_momentum", which is "cumulative" for nullopt). A checkpoint written before a key existed loads
// with the value its model was built with: fused_bn_relu off, bn_eps and bn_affine at their defaults, and
// bn_momentum at BatchNorm's default, or BatchRenorm's (0.01) when the norm is "batchrenorm".
std::map<std::string, std::string> to_metadata(const ModelConfig& config);
ModelConfig from_metadata(const std::map<std::string, std::string>& metadata);

}  // namespace nl
