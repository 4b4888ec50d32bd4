// Readable reference implementations, straight from the definitions, computed in double. They are the
// oracles the optimized paths are tested against (matmul through OpenBLAS, conv2d through im2col + GEMM,
// the pooling kernels). Results are float64 tensors.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "core/tensor.h"

namespace nl::reference {

// C[i, j] = Σ_p A[i, p] · B[p, j] for 2-D A (n, k) and B (k, m).
inline Tensor naive_matmul(const Tensor& a, const Tensor& b) {
  const int64_t n = a.size(0), k = a.size(1), m = b.size(1);
  const std::vector<double> va = a.to_vector<double>(), vb = b.to_vector<double>();
  std::vector<double> c(static_cast<size_t>(n * m), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j)
      for (int64_t p = 0; p < k; ++p) c[i * m + j] += va[i * k + p] * vb[p * m + j];
  return from_vector(c, {n, m});
}

// Direct convolution: y[n, o, oh, ow] = b[o] + Σ_{c, i, j} w[o, c, i, j] · x[n, g·Cg + c, ih, iw] with
// ih = oh·stride − padding + i·dilation (zero outside x), g = o's group.
inline Tensor naive_conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, int64_t stride,
                           int64_t padding, int64_t dilation, int64_t groups) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t OC = w.size(0), Cg = w.size(1), KH = w.size(2), KW = w.size(3), OCg = OC / groups;
  const int64_t OH = (H + 2 * padding - dilation * (KH - 1) - 1) / stride + 1;
  const int64_t OW = (W + 2 * padding - dilation * (KW - 1) - 1) / stride + 1;
  const std::vector<double> vx = x.to_vector<double>(), vw = w.to_vector<double>();
  const std::vector<double> vb = bias.defined() ? bias.to_vector<double>() : std::vector<double>(OC, 0.0);
  std::vector<double> y(static_cast<size_t>(N * OC * OH * OW));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < OC; ++o)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double acc = vb[o];
          const int64_t g = o / OCg;
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t i = 0; i < KH; ++i)
              for (int64_t j = 0; j < KW; ++j) {
                const int64_t ih = oh * stride - padding + i * dilation,
                              iw = ow * stride - padding + j * dilation;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                acc += vw[((o * Cg + c) * KH + i) * KW + j] * vx[((n * C + g * Cg + c) * H + ih) * W + iw];
              }
          y[((n * OC + o) * OH + oh) * OW + ow] = acc;
        }
  return from_vector(y, {N, OC, OH, OW});
}

// The gradients of naive_conv2d (without the bias) for an upstream gradient dy, from the same loops: every
// product w[o, c, i, j] · x[n, g·Cg + c, ih, iw] that made y[n, o, oh, ow] sends dy[n, o, oh, ow] back to
// both factors. Returns {dx, dw}.
inline std::vector<Tensor> naive_conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& dy,
                                                 int64_t stride, int64_t padding, int64_t dilation,
                                                 int64_t groups) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t OC = w.size(0), Cg = w.size(1), KH = w.size(2), KW = w.size(3), OCg = OC / groups;
  const int64_t OH = dy.size(2), OW = dy.size(3);
  const std::vector<double> vx = x.to_vector<double>(), vw = w.to_vector<double>(),
                            vdy = dy.to_vector<double>();
  std::vector<double> dx(vx.size(), 0.0), dw(vw.size(), 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < OC; ++o)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          const double g_out = vdy[((n * OC + o) * OH + oh) * OW + ow];
          const int64_t g = o / OCg;
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t i = 0; i < KH; ++i)
              for (int64_t j = 0; j < KW; ++j) {
                const int64_t ih = oh * stride - padding + i * dilation,
                              iw = ow * stride - padding + j * dilation;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                const int64_t xi = ((n * C + g * Cg + c) * H + ih) * W + iw,
                              wi = ((o * Cg + c) * KH + i) * KW + j;
                dx[xi] += vw[wi] * g_out;
                dw[wi] += vx[xi] * g_out;
              }
        }
  return {from_vector(dx, x.shape()), from_vector(dw, w.shape())};
}

// Max or average over k×k windows (floor mode); padding is −∞ for max; for average the divisor is k·k
// clipped to the padded input (count_include_pad) or the count of real cells.
inline Tensor naive_pool2d(const Tensor& x, bool is_max, int64_t k, int64_t stride, int64_t padding,
                           bool count_include_pad = true) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t OH = (H + 2 * padding - k) / stride + 1, OW = (W + 2 * padding - k) / stride + 1;
  const std::vector<double> vx = x.to_vector<double>();
  std::vector<double> y;
  for (int64_t p = 0; p < N * C; ++p)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        double best = -std::numeric_limits<double>::infinity(), s = 0;
        int64_t real = 0, padded = 0;
        for (int64_t i = 0; i < k; ++i)
          for (int64_t j = 0; j < k; ++j) {
            const int64_t ih = oh * stride - padding + i, iw = ow * stride - padding + j;
            if (ih < H + padding && iw < W + padding) ++padded;
            if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
            const double v = vx[(p * H + ih) * W + iw];
            best = std::max(best, v);
            s += v;
            ++real;
          }
        y.push_back(is_max ? best : s / static_cast<double>(count_include_pad ? padded : real));
      }
  return from_vector(y, {N, C, OH, OW});
}

}  // namespace nl::reference
