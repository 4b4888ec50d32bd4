// Device-neutral entry points of the convolution and pooling kernels (the dispatch pattern of
// core/kernels.h: core/dispatch.cpp calls cpu::<same name> in core/cpu/conv.cpp and core/cpu/pooling.cpp).
//
// Every tensor here is contiguous NCHW. Kernels never allocate their outputs and never record autograd;
// backward kernels ADD into their gradient argument (dx += ...).
//
// im2col. A convolution is a matrix product once every receptive field is unrolled into a column:
//   col[(c·kh + i)·kw + j, b·L + oh·OW + ow] = x[n0 + b, c, oh·stride_h − pad_h + i·dil_h,
//                                                        ow·stride_w − pad_w + j·dil_w]     (0 outside x)
// for the `count` samples n0 .. n0+count−1, L = OH·OW. col has shape (C·kh·kw, count·L): the samples sit
// side by side, so one GEMM covers the whole chunk of the batch. The rows of group g are the contiguous
// block [g·(C/groups)·kh·kw, (g+1)·(C/groups)·kh·kw), which is what grouped convolution needs.
// col2im is its adjoint: every col entry is added back to the x position it was read from.
//
// conv2d_forward / conv2d_backward are the whole convolution as one GEMM per sample (and group), with the
// sample's columns unrolled into a per-thread buffer; the result lands straight in (N, OC, OH, OW):
//   y[n] = W · col_n (+ b),   dW += Σ_n dY[n] · col_nᵀ,   dx[n] += col2im(Wᵀ · dY[n])
// (W viewed as (OC, C/groups·kh·kw), each group g using its rows of W and of col_n).
//
// Pooling over kh×kw windows with stride and padding (padded cells are −∞ for max; for average they count as
// zeros in the divisor or are left out of it, as PyTorch's count_include_pad):
//   max:  y[n,c,oh,ow] = max over the window of x; argmax saves the flat index ih·W + iw of the maximum
//         (the first one in row-major window order), so the backward routes g there.
//   avg:  y = Σ window / divisor
//   adaptive avg: output cell (oh, ow) averages rows [⌊oh·H/OH⌋, ⌈(oh+1)·H/OH⌉) and the same for columns.
#pragma once

#include <cstdint>

#include "kernels.h"
#include "tensor.h"

namespace nl::kernels {

// The geometry of a 2-D convolution over a batch.
struct Conv2dGeometry {
  int64_t batch = 0, channels = 0, height = 0, width = 0;  // of the input x
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t out_h = 0, out_w = 0;
};

// The geometry of a 2-D pooling window over a batch.
struct Pool2dGeometry {
  int64_t batch = 0, channels = 0, height = 0, width = 0;
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t out_h = 0, out_w = 0;
};

// Output extent of a sliding window: ⌊(in + 2·pad − dil·(k − 1) − 1) / stride⌋ + 1 (may be <= 0 when the
// window does not fit; callers check).
inline int64_t sliding_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad,
                                   int64_t dilation) {
  const int64_t span = in + 2 * pad - dilation * (kernel - 1) - 1;
  return span < 0 ? 0 : span / stride + 1;
}

// x: (N, C, H, W); col: (C·kh·kw, count·OH·OW), fully overwritten.
void im2col(const Tensor& x, const Conv2dGeometry& geo, int64_t n0, int64_t count, Tensor& col);
// dx[n0 .. n0+count) += the adjoint of im2col applied to col.
void col2im(const Tensor& col, const Conv2dGeometry& geo, int64_t n0, int64_t count, Tensor& dx);

// x: (N, C, H, W), w: (OC, C/groups, kh, kw), bias: (OC) or undefined; y: (N, OC, OH, OW), overwritten.
void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dGeometry& geo,
                    int64_t groups, Tensor& y);
// dy: (N, OC, OH, OW). dx += ∂L/∂x, dw += ∂L/∂W and db (OC) += ∂L/∂b = Σ over n, oh, ow of dy; an undefined
// dx, dw or db is not computed. GradWrite::assign overwrites the three instead (no zero-filled buffers).
void conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& dy, const Conv2dGeometry& geo,
                     int64_t groups, Tensor& dx, Tensor& dw, Tensor& db, GradWrite write = GradWrite::add);

// out, argmax: (N, C, OH, OW); argmax is int64.
void max_pool2d(const Tensor& x, const Pool2dGeometry& geo, Tensor& out, Tensor& argmax);
// dx (N, C, H, W) += g routed through argmax.
void max_pool2d_backward(const Tensor& g, const Tensor& argmax, const Pool2dGeometry& geo, Tensor& dx,
                         GradWrite dx_write = GradWrite::add);
void avg_pool2d(const Tensor& x, const Pool2dGeometry& geo, bool count_include_pad, Tensor& out);
void avg_pool2d_backward(const Tensor& g, const Pool2dGeometry& geo, bool count_include_pad, Tensor& dx);
// x: (N, C, H, W), out: (N, C, OH, OW); the window of each cell is derived from the two shapes.
void adaptive_avg_pool2d(const Tensor& x, Tensor& out);
void adaptive_avg_pool2d_backward(const Tensor& g, Tensor& dx);

}  // namespace nl::kernels
