// Bias omission. A per-channel bias added just before a normalization that subtracts the per-channel mean
// (BatchNorm, InstanceNorm: Module::cancels_preceding_bias() is true) cancels out exactly in training: it
// changes nothing the network computes, only costs parameters and optimizer work. These helpers find such
// biases and remove them.
//
// Eval mode subtracts the RUNNING mean instead, and on a trained model that statistic contains the bias: the
// layer saw x + b, so running_mean ≈ E[x] + b. Removing b alone would shift every eval output by
// −γ·b/√(running_var + eps). So removal also folds the bias into the statistic (Module::absorb_removed_bias):
//     running_mean ← running_mean − b        (what fold_batchnorm computes too)
// after which (x + b) − running_mean_old = x − running_mean_new exactly: train- and eval-mode outputs are
// unchanged, on a fresh model and on a trained one.
//
// "Feeds straight into" means: inside a Sequential, a Linear or Conv2d immediately followed by a module whose
// cancels_preceding_bias() is true. Removing sets the layer's bias member to an undefined Tensor; the module
// registry holds member addresses, so the bias disappears from named_parameters() (and from checkpoints and
// optimizers built afterwards).
#pragma once

#include <string>
#include <vector>

#include "module.h"

namespace nl {

// Dotted names ("features.0.bias") of the biases that feed straight into a normalization, in module order.
std::vector<std::string> biases_before_normalization(Module& model);
// Removes those biases; returns their names. Build the optimizer after calling this.
std::vector<std::string> remove_biases_before_normalization(Module& model);

}  // namespace nl
