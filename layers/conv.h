// 2-D convolution (cross-correlation, as every framework), computed as im2col + GEMM.
//
//   x: (N, C, H, W)   W: (OC, C/groups, kh, kw)   b: (OC) or undefined   y: (N, OC, OH, OW)
//   OH = ⌊(H + 2·padding − dilation·(kh − 1) − 1)/stride⌋ + 1, OW likewise
//   y[n, o, :, :] = b[o] + Σ_{c in o's group, i, j} W[o, c, i, j] · x[n, c, oh·s − p + i·d, ow·s − p + j·d]
//
// With col = im2col(x) of shape (C·kh·kw, n·OH·OW) for a chunk of n samples (core/kernels_conv.h) and
// W viewed as (OC, C/groups·kh·kw), group g computes
//   forward:  Y_g  = W_g · col_g                      (OC/groups, n·OH·OW)
//   backward: dW_g += dY_g · col_gᵀ                  dcol_g = W_gᵀ · dY_g,  dx += col2im(dcol)
//             db   += Σ_{n, oh, ow} dY
// Two ways to run the products (layers/conv.cpp picks one):
//  - per sample (batches of at least two samples per thread): each thread unrolls one sample at a time into
//    its own col buffer and runs single-threaded GEMMs straight into that sample's (OC, OH·OW) block of y
//    (kernels::conv2d_forward/backward): no layout copies, and col stays in cache between im2col and GEMM.
//  - chunked (small batches, huge images): one multithreaded OpenBLAS GEMM over a chunk of samples, the chunk
//    holding as many as fit in a bounded col buffer (kConvColumnBudget elements).
// Nothing is saved for the backward but x and W: col is recomputed, as PyTorch does.
//
// Weight standardization (Qiao et al. 2019), per output channel over (C/groups, kh, kw):
//   Ŵ = (W − mean(W)) / √(var(W) + eps),   var biased
// built from differentiable core ops, so autograd carries the gradient back to W.
#pragma once

#include <cstdint>

#include "../core/random.h"
#include "module.h"

namespace nl {

// Upper bound on the elements of one im2col buffer (a chunk of the batch is sized to fit).
inline constexpr int64_t kConvColumnBudget = int64_t{1} << 23;

// The functional form; bias may be an undefined Tensor. Stride, padding and dilation apply to both axes.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), int64_t stride = 1,
              int64_t padding = 0, int64_t dilation = 1, int64_t groups = 1);

// Ŵ = (W − mean) / √(var + eps) per output channel (dim 0) over all other dims, biased variance.
Tensor standardize_weight(const Tensor& weight, double eps = 1e-5);

struct Conv2dOptions {
  int64_t stride = 1, padding = 0, dilation = 1, groups = 1;
  bool bias = true;
  bool weight_standardization = false;
  double eps = 1e-5;  // of the weight standardization
  DType dtype = kFloat32;
  Generator* generator = nullptr;  // for the initial weights; null = the default generator
};

class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride = 1,
         int64_t padding = 0, int64_t dilation = 1, int64_t groups = 1, bool bias = true);
  // With named options, e.g. Conv2d(3, 16, 3, {.padding = 1, .bias = false, .weight_standardization = true}).
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, const Conv2dOptions& options);

  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Conv2d"; }
  std::string describe() const override;

  int64_t in_channels, out_channels, kernel_size;
  Conv2dOptions options;
  Tensor weight;  // (OC, C/groups, k, k)
  Tensor bias;    // (OC); undefined when the layer has no bias (see layers/bias.h)
 protected:
  std::shared_ptr<Module> clone_impl() const override { return copy_of(*this); }
};

}  // namespace nl
