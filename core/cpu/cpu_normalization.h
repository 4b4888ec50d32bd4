// CPU kernels of the normalize-over-axes core (core/kernels_normalization.h has the math and the layout):
// the same names and signatures as nl::kernels, plus the plain-loop reference versions that the optimized
// ones are tested against (tests/test_norm_kernels.cpp). The reference versions are the ones to read first.
#pragma once

#include "../kernels_normalization.h"

namespace nl::cpu {

using kernels::GradWrite;
using kernels::MaxPoolAfter;
using kernels::NormActivation;
using kernels::NormLayout;
using kernels::NormStats;

// Optimized: OpenMP over statistic groups (split into chunks when they are few and large), one pass over
// memory per stage with the second pass of a group served from cache, double accumulators.
void normalize_moments(const Tensor& x, const NormLayout& layout, Tensor& mean, Tensor& var);
void normalize_moments_forward(const Tensor& x, const NormLayout& layout, double eps, const Tensor& weight,
                               const Tensor& bias, Tensor& mean, Tensor& var, Tensor& inv_std, Tensor& y,
                               NormActivation activation = NormActivation::none,
                               const MaxPoolAfter* pool = nullptr);
void normalize_forward(const Tensor& x, const NormLayout& layout, const NormStats& stats,
                       const Tensor& weight, const Tensor& bias, Tensor& y,
                       NormActivation activation = NormActivation::none, const MaxPoolAfter* pool = nullptr);
void normalize_backward(const Tensor& x, const Tensor& dy, const NormLayout& layout, const NormStats& stats,
                        const Tensor& weight, bool batch_stats, Tensor& dx, Tensor& dweight, Tensor& dbias,
                        GradWrite dx_write = GradWrite::add, NormActivation activation = NormActivation::none,
                        const Tensor& bias = Tensor(), const MaxPoolAfter* pool = nullptr);

// Reference: one thread, nested loops over (o, p, g, k, s) written exactly as the formulas read.
void normalize_reference_moments(const Tensor& x, const NormLayout& layout, Tensor& mean, Tensor& var);
void normalize_reference_forward(const Tensor& x, const NormLayout& layout, const NormStats& stats,
                                 const Tensor& weight, const Tensor& bias, Tensor& y,
                                 NormActivation activation = NormActivation::none,
                                 const MaxPoolAfter* pool = nullptr);
void normalize_reference_backward(const Tensor& x, const Tensor& dy, const NormLayout& layout,
                                  const NormStats& stats, const Tensor& weight, bool batch_stats, Tensor& dx,
                                  Tensor& dweight, Tensor& dbias,
                                  NormActivation activation = NormActivation::none,
                                  const Tensor& bias = Tensor(), const MaxPoolAfter* pool = nullptr);

}  // namespace nl::cpu
