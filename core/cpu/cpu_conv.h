// CPU implementations of the convolution and pooling kernels declared in core/kernels_conv.h: same names,
// same signatures, in namespace nl::cpu (im2col/col2im in core/cpu/conv.cpp, pooling in core/cpu/pooling.cpp).
#pragma once

#include "core/kernels_conv.h"

namespace nl::cpu {

using kernels::Conv2dGeometry;
using kernels::Pool2dGeometry;

void im2col(const Tensor& x, const Conv2dGeometry& geo, int64_t n0, int64_t count, Tensor& col);
void col2im(const Tensor& col, const Conv2dGeometry& geo, int64_t n0, int64_t count, Tensor& dx);

void max_pool2d(const Tensor& x, const Pool2dGeometry& geo, Tensor& out, Tensor& argmax);
void max_pool2d_backward(const Tensor& g, const Tensor& argmax, const Pool2dGeometry& geo, Tensor& dx);
void avg_pool2d(const Tensor& x, const Pool2dGeometry& geo, bool count_include_pad, Tensor& out);
void avg_pool2d_backward(const Tensor& g, const Pool2dGeometry& geo, bool count_include_pad, Tensor& dx);
void adaptive_avg_pool2d(const Tensor& x, Tensor& out);
void adaptive_avg_pool2d_backward(const Tensor& g, Tensor& dx);

}  // namespace nl::cpu
