// The lab's studies, one file each (study_<name>.cpp): a short program that trains what the protocol says,
// measures the claim, and returns a StudyResult. Copy one to start a study of your own; normlab_lab.cpp
// lists them.
#pragma once

#include "lab.h"

namespace lab {

StudyResult run_train_eval(const LabOptions& options);
StudyResult run_bias_omission(const LabOptions& options);
StudyResult run_scale_invariance(const LabOptions& options);
StudyResult run_small_batch(const LabOptions& options);
StudyResult run_bn_vs_none(const LabOptions& options);
}  // namespace lab
