// Tools around BatchNorm for inference and for the studies.
//
// fold_batchnorm(model)
//   For inference. Inside every Sequential of the model, a BatchNorm (any BatchNorm-family layer, or a
//   FrozenBatchNorm) immediately preceded by a Linear or Conv2d is folded into that layer, with
//   s = γ / sqrt(running_var + eps) per output channel:
//       W' = W · s          (each output row / filter scaled)
//       b' = (b − running_mean) · s + β        (b = 0 when the layer had no bias: the bias is created)
//   and replaced by an Identity (by a ReLU when the BatchNorm had fused_relu, by a ReLU and a 2×2 max pool
//   when it also had fused_max_pool). The folded model computes the unfolded model's EVAL output (up to
//   float rounding). Every BatchNorm to fold must be in eval mode (an error otherwise, naming it);
//   BatchNorms without running statistics, and Conv2d layers with weight standardization (which would undo
//   the scale), are left alone. Returns the dotted names of the folded BatchNorms.
//
// recompute_batchnorm_stats(model, next_batch, num_batches)
//   The BatchNorm paper's inference procedure (Ioffe & Szegedy 2015, Alg. 2), "precise BN": with the weights
//   fixed, run num_batches batches through the model and set every BatchNorm's running statistics to
//       running_mean = E_B[μ_B]             (the mean of the batch means)
//       running_var  = E_B[σ²_B · m/(m − 1)]  (the mean of the unbiased batch variances, m = N·spatial;
//                                              = m/(m−1)·E_B[σ²_B] when every batch has the same size)
//   replacing the exponential moving average. During the pass every BatchNorm runs in training mode (batch
//   statistics, as the training network the statistics describe) and every other module in eval mode (no
//   dropout); no graph is recorded. Afterwards each module's mode, momentum, freeze flag and
//   num_batches_tracked are as before. next_batch returns the next input batch; an undefined Tensor ends
//   the pass early. Returns the number of batches used (an error if none). GhostBatchNorm layers average
//   their virtual batches' statistics.
//
// Per-layer switches: Module::train(false) on one child puts that layer alone in eval mode;
// BatchNorm::freeze_running_stats(true) keeps a layer training with batch statistics but stops its buffers
// from changing. set_batchnorm_running_stats_frozen applies the latter to every BatchNorm of a model.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "module.h"
#include "normalization.h"

namespace nl {

std::vector<std::string> fold_batchnorm(Module& model);

int64_t recompute_batchnorm_stats(Module& model, const std::function<Tensor()>& next_batch,
                                  int64_t num_batches);
// The same over a list of input batches (all of them).
int64_t recompute_batchnorm_stats(Module& model, const std::vector<Tensor>& batches);

// Every BatchNorm-family layer of the model (BatchNorm1d/2d, GhostBatchNorm, NoisyBatchNorm), depth first.
std::vector<BatchNorm*> batch_norm_layers(Module& model);

// Calls freeze_running_stats(frozen) on every BatchNorm-family layer of the model; returns how many.
int64_t set_batchnorm_running_stats_frozen(Module& model, bool frozen = true);

}  // namespace nl
