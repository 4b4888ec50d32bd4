// The networks of the bundled trainers, studies and benchmarks, built from library modules.
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
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <normlab/normlab.h>

namespace nl::examples {

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
};

// Throws nl::Error naming the option when a name or a combination is not supported.
void validate(const ModelConfig& config);

std::shared_ptr<Sequential> build_model(const ModelConfig& config);

// "cnn, norm=batch (fused with its ReLU), bias=auto" — for headers.
std::string summary(const ModelConfig& config);

// Fashion-MNIST's pixel mean and standard deviation over the training set (pixels scaled to [0, 1]): the
// trainers normalize every input with them.
inline constexpr double kFashionMnistMean = 0.2860, kFashionMnistStd = 0.3530;

// Classifies image files with a checkpoint written by normlab-train (what normlab-predict prints): each image
// is decoded, made gray 28×28 in [0, 1], normalized like the training data, and run through the model in
// eval mode. The normalization comes from the checkpoint ("data.mean", "data.std"), Fashion-MNIST's by
// default. A file that cannot be decoded throws nl::Error naming it.
struct Prediction {
  std::string path;
  int64_t label;
  std::string class_name;
  double probability;
};
std::vector<Prediction> classify_images(const std::string& checkpoint, const std::vector<std::string>& paths);

// The config as checkpoint metadata ("model.*" keys) and back, so normlab-predict rebuilds the same net.
std::map<std::string, std::string> to_metadata(const ModelConfig& config);
ModelConfig from_metadata(const std::map<std::string, std::string>& metadata);

}  // namespace nl::examples
