// Checkpoints: a model's state dict (Module::state_dict(): every parameter and buffer by dotted name), and
// optionally the optimizer's state, in one safetensors file (core/safetensors.h), so Python reads them with
// safetensors or NumPy, and PyTorch's load_state_dict takes the model part as it is.
//
//   "<dotted name>"                              every parameter and buffer ("features.0.weight", ...)
//   "optimizer.group<g>.param<i>.momentum_buffer" the SGD momentum buffers that exist
//   __metadata__: "normlab.format": "checkpoint-v1", "optimizer.step_count": "<n>" (the schedule position:
//                 schedules are functions of the step count), "optimizer.schedule": description, plus the
//                 caller's own string pairs.
//
// Writes are atomic (a crash leaves the old file or the new one). Loading validates the whole file and every
// name and shape first (a strict load_state_dict), reports EVERY mismatch in one nl::Error, and copies
// nothing unless all is well: a bad file leaves the model and the optimizer exactly as they were. Floating
// tensors are converted to the model's dtype, as load_state_dict does (a float32 file loads into a model
// moved to float64).
#pragma once

#include <map>
#include <string>

#include "../layers/module.h"
#include "sgd.h"

namespace nl {

using Metadata = std::map<std::string, std::string>;

void save_model(const std::string& path, const Module& model, const Metadata& metadata = {});
// Loads the model tensors of a model file or of a full checkpoint (optimizer entries are ignored).
void load_model(const std::string& path, Module& model);

void save_checkpoint(const std::string& path, const Module& model, const SGD& optimizer,
                     const Metadata& metadata = {});
void load_checkpoint(const std::string& path, Module& model, SGD& optimizer);

// The __metadata__ of a checkpoint or model file (validates the whole file).
Metadata read_checkpoint_metadata(const std::string& path);

}  // namespace nl
