// CPU implementations of the convolution and pooling kernels declared in core/kernels_conv.h: same names,
// same signatures, in namespace nl::cpu (im2col/col2im in core/cpu/conv.cpp, pooling in
// core/cpu/pooling.cpp), plus the plain-loop reference versions the fast ones are tested against
// (tests/test_layers_conv_linear.cpp, tests/test_layers_pooling.cpp). The reference versions are the ones to
// read first.
#pragma once

#include "../kernels_conv.h"

namespace nl::cpu {

using kernels::GradWrite;

using kernels::Conv2dGeometry;
using kernels::Pool2dGeometry;

void im2col(const Tensor& x, const Conv2dGeometry& geo, int64_t n0, int64_t count, Tensor& col);
void col2im(const Tensor& col, const Conv2dGeometry& geo, int64_t n0, int64_t count, Tensor& dx);
void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dGeometry& geo,
                    int64_t groups, Tensor& y);
void conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& dy, const Conv2dGeometry& geo,
                     int64_t groups, Tensor& dx, Tensor& dw, Tensor& db, GradWrite write = GradWrite::add);

void max_pool2d(const Tensor& x, const Pool2dGeometry& geo, Tensor& out, Tensor& argmax);
void max_pool2d_backward(const Tensor& g, const Tensor& argmax, const Pool2dGeometry& geo, Tensor& dx,
                         GradWrite dx_write = GradWrite::add);
void avg_pool2d(const Tensor& x, const Pool2dGeometry& geo, bool count_include_pad, Tensor& out);
void avg_pool2d_backward(const Tensor& g, const Pool2dGeometry& geo, bool count_include_pad, Tensor& dx);
void adaptive_avg_pool2d(const Tensor& x, Tensor& out);
void adaptive_avg_pool2d_backward(const Tensor& g, Tensor& dx);

// Reference: cell by cell, straight from the definitions in core/kernels_conv.h.
void im2col_reference(const Tensor& x, const Conv2dGeometry& geo, int64_t n0, int64_t count, Tensor& col);
void col2im_reference(const Tensor& col, const Conv2dGeometry& geo, int64_t n0, int64_t count, Tensor& dx);
// One output row of 2×2 stride-2 max pooling (the fast path of max_pool2d): n windows from the input rows r0
// and r1 (2n cells each) into y[0, n), and into arg the flat index of each winner in its plane, where r0[0]
// is at at0 and a row is W long. The normalization kernels use it to pool rows they have just computed.
void max_pool_2x2_window_row(const float* r0, const float* r1, int64_t n, int64_t W, int64_t at0, float* y,
                             int64_t* arg);
void max_pool_2x2_window_row(const double* r0, const double* r1, int64_t n, int64_t W, int64_t at0, double* y,
                             int64_t* arg);
// The generic window loop (max_pool2d uses it for every window but 2×2 stride 2 without padding).
void max_pool2d_reference(const Tensor& x, const Pool2dGeometry& geo, Tensor& out, Tensor& argmax);

}  // namespace nl::cpu
