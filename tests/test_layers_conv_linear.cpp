// Linear and Conv2d: the GEMM paths against the readable references (tests/reference_ops.h), gradchecks of
// every configuration, weight standardization, and bad input.
#include <catch2/catch.hpp>

#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "core/cpu/cpu_conv.h"
#include "core/kernels_conv.h"
#include "core/threads.h"
#include "core/ops.h"
#include "core/random.h"
#include "layers/conv.h"
#include "layers/linear.h"
#include "reference_ops.h"
#include "test_util.h"

using namespace nl;
using nl::test::allclose;

namespace {

Tensor rnd(const Shape& shape, uint64_t seed, DType dtype = kFloat64) {
  Generator g(seed);
  return rand(shape, dtype, &g, -1, 1);
}
Tensor leaf(const Shape& shape, uint64_t seed) { return rnd(shape, seed).requires_grad_(); }

struct ConvCase {
  const char* name;
  Shape x, w;
  int64_t stride, padding, dilation, groups;
  bool bias;
};

const std::vector<ConvCase> kConvCases = {
    {"3x3, stride 1, no padding", {2, 3, 7, 6}, {4, 3, 3, 3}, 1, 0, 1, 1, true},
    {"3x3, stride 2, padding 1", {2, 3, 8, 7}, {5, 3, 3, 3}, 2, 1, 1, 1, true},
    {"dilation 2, padding 2", {1, 2, 9, 9}, {3, 2, 3, 3}, 1, 2, 2, 1, true},
    {"groups 2", {2, 4, 6, 6}, {6, 2, 3, 3}, 1, 1, 1, 2, true},
    {"depthwise (groups = channels)", {2, 3, 5, 5}, {3, 1, 3, 3}, 1, 1, 1, 3, true},
    {"bias-free", {2, 3, 6, 5}, {4, 3, 3, 3}, 1, 1, 1, 1, false},
    {"1x1, stride 2", {2, 4, 5, 5}, {3, 4, 1, 1}, 2, 0, 1, 1, true},
    {"rectangular 2x3 kernel, stride 3, padding 1", {1, 2, 7, 8}, {2, 2, 2, 3}, 3, 1, 1, 1, false},
};

// kConvCases plus the shapes the fast paths single out: one input channel, padding wider than the kernel's
// reach, a one-pixel-wide input (every shifted column wraps), 5x5 same padding, odd sizes, a batch of 5
// (odd, so not a multiple of the thread count).
std::vector<ConvCase> kernel_cases() {
  std::vector<ConvCase> cases = kConvCases;
  cases.push_back({"1 input channel, 3x3 same padding, 7x5", {5, 1, 7, 5}, {4, 1, 3, 3}, 1, 1, 1, 1, false});
  cases.push_back(
      {"3x3 stride 1 padding 2 (output larger than input)", {3, 2, 5, 6}, {3, 2, 3, 3}, 1, 2, 1, 1, true});
  cases.push_back({"one-pixel-wide input", {3, 2, 4, 1}, {2, 2, 3, 3}, 1, 1, 1, 1, true});
  cases.push_back({"5x5 same padding, batch 5", {5, 3, 6, 7}, {2, 3, 5, 5}, 1, 2, 1, 1, true});
  cases.push_back({"3x3 stride 2 padding 0, odd 9x7", {3, 2, 9, 7}, {3, 2, 3, 3}, 2, 0, 1, 1, false});
  return cases;
}

kernels::Conv2dGeometry geometry_of(const ConvCase& c) {
  kernels::Conv2dGeometry g;
  g.batch = c.x[0], g.channels = c.x[1], g.height = c.x[2], g.width = c.x[3];
  g.kernel_h = c.w[2], g.kernel_w = c.w[3];
  g.stride_h = g.stride_w = c.stride;
  g.pad_h = g.pad_w = c.padding;
  g.dilation_h = g.dilation_w = c.dilation;
  g.out_h = kernels::sliding_output_size(g.height, g.kernel_h, c.stride, c.padding, c.dilation);
  g.out_w = kernels::sliding_output_size(g.width, g.kernel_w, c.stride, c.padding, c.dilation);
  return g;
}

// The same case with a batch of `n`.
ConvCase with_batch(ConvCase c, int64_t n) {
  c.x[0] = n;
  return c;
}

}  // namespace

TEST_CASE("matmul (OpenBLAS) agrees with the naive reference matmul", "[layers][reference]") {
  const Tensor a = rnd({7, 5}, 1), b = rnd({5, 9}, 2);
  CHECK(allclose(matmul(a, b), reference::naive_matmul(a, b), 1e-12, 1e-12));
  const Tensor af = rnd({4, 6}, 3, kFloat32), bt = rnd({3, 6}, 4, kFloat32).t();  // transposed view of b
  CHECK(allclose(matmul(af, bt), reference::naive_matmul(af, bt.contiguous()), 1e-5, 1e-5));
}

TEST_CASE("conv2d matches the direct convolution for every configuration", "[layers][conv]") {
  for (const ConvCase& c : kConvCases) {
    SECTION(c.name) {
      const Tensor x = rnd(c.x, 10), w = rnd(c.w, 11), b = c.bias ? rnd({c.w[0]}, 12) : Tensor();
      const Tensor y = conv2d(x, w, b, c.stride, c.padding, c.dilation, c.groups);
      CHECK(allclose(y, reference::naive_conv2d(x, w, b, c.stride, c.padding, c.dilation, c.groups), 1e-12,
                     1e-12));
      const Tensor xf = x.to(kFloat32), wf = w.to(kFloat32), bf = c.bias ? b.to(kFloat32) : Tensor();
      CHECK(allclose(conv2d(xf, wf, bf, c.stride, c.padding, c.dilation, c.groups), y.to(kFloat32), 1e-4,
                     1e-5));
    }
  }
}

TEST_CASE("conv2d splits a large batch into several im2col chunks and still matches the reference",
          "[layers][conv]") {
  // 16 channels, 3x3, 64x64: one sample's columns hold 144·4096 elements, so the batch of 16 needs two
  // chunks.
  const Tensor x = rnd({16, 16, 64, 64}, 20, kFloat32), w = rnd({4, 16, 3, 3}, 21, kFloat32),
               b = rnd({4}, 22, kFloat32);
  REQUIRE(16 * 144 * 4096 > kConvColumnBudget);
  const Tensor y = conv2d(x, w, b, 1, 1);
  CHECK(allclose(y, reference::naive_conv2d(x, w, b, 1, 1, 1, 1).to(kFloat32), 1e-4, 1e-4));
  // The backward over chunks equals the per-sample backward (each sample alone is a single chunk):
  // dx[n] is sample n's input gradient and dW is the sum of the samples' weight gradients.
  const Tensor u = rnd({16, 4, 64, 64}, 23, kFloat32);
  const Tensor xb = x.clone().requires_grad_(), wb = w.clone().requires_grad_();
  conv2d(xb, wb, Tensor(), 1, 1).backward(u);
  Tensor dw_sum = zeros(w.shape());
  for (int64_t n : {0, 7, 15}) {
    const Tensor xn = x.narrow(0, n, 1).contiguous().requires_grad_(), wn = w.clone().requires_grad_();
    conv2d(xn, wn, Tensor(), 1, 1).backward(u.narrow(0, n, 1).contiguous());
    CHECK(allclose(xb.grad().narrow(0, n, 1), xn.grad(), 1e-4, 1e-5));
  }
  for (int64_t n = 0; n < 16; ++n) {
    const Tensor wn = w.clone().requires_grad_();
    conv2d(x.narrow(0, n, 1).contiguous(), wn, Tensor(), 1, 1).backward(u.narrow(0, n, 1).contiguous());
    dw_sum.add_(wn.grad());
  }
  CHECK(allclose(wb.grad(), dw_sum, 1e-3, 1e-3));
}

TEST_CASE("gradcheck: conv2d with stride, padding, dilation, groups and without bias",
          "[layers][conv][gradcheck]") {
  for (const ConvCase& c : kConvCases) {
    SECTION(c.name) {
      std::vector<Tensor> inputs = {leaf(c.x, 30), leaf(c.w, 31)};
      if (c.bias) inputs.push_back(leaf({c.w[0]}, 32));
      auto f = [&](const std::vector<Tensor>& in) {
        return conv2d(in[0], in[1], in.size() > 2 ? in[2] : Tensor(), c.stride, c.padding, c.dilation,
                      c.groups);
      };
      CHECK(gradcheck(f, inputs, {}, c.name));
    }
  }
}

TEST_CASE("conv2d backward adds into existing gradients", "[layers][conv]") {
  const Tensor x = leaf({1, 2, 4, 4}, 40), w = leaf({3, 2, 3, 3}, 41), b = leaf({3}, 42);
  sum(conv2d(x, w, b, 1, 1)).backward();
  const Tensor gx = x.grad().clone(), gw = w.grad().clone(), gb = b.grad().clone();
  sum(conv2d(x, w, b, 1, 1)).backward();
  CHECK(allclose(x.grad(), mul(gx, 2.0)));
  CHECK(allclose(w.grad(), mul(gw, 2.0)));
  CHECK(allclose(b.grad(), mul(gb, 2.0)));
  CHECK(allclose(gb, full({3}, 16.0, kFloat64)));  // db = Σ over N·OH·OW = 16 positions of g = 1
}

TEST_CASE("Conv2d module: shapes, PyTorch default init range, bias=false", "[layers][conv]") {
  Generator gen(5);
  Conv2d conv(3, 8, 3, {.stride = 2, .padding = 1, .generator = &gen});
  CHECK(conv(zeros({2, 3, 32, 32})).shape() == Shape{2, 8, 16, 16});
  const double bound = 1.0 / std::sqrt(3.0 * 9.0);
  CHECK(max(abs(conv.weight)).item() <= bound);
  CHECK(max(abs(conv.bias)).item() <= bound);
  CHECK(max(abs(conv.weight)).item() > 0.8 * bound);
  CHECK(conv.named_parameters().size() == 2);

  Conv2d no_bias(3, 8, 3, 1, 1, 1, 1, false);
  CHECK_FALSE(no_bias.bias.defined());
  CHECK(no_bias.named_parameters().size() == 1);
  CHECK(no_bias.describe() == "Conv2d(3, 8, kernel_size=3, padding=1, bias=false)");
}

TEST_CASE(
    "Conv2d weight standardization: standardized weight, same output as the explicit formula, gradcheck",
    "[layers][conv][gradcheck]") {
  Conv2d conv(4, 6, 3,
              {.padding = 1, .groups = 2, .weight_standardization = true, .eps = 1e-5, .dtype = kFloat64});
  const Tensor w_hat = standardize_weight(conv.weight, 1e-5);
  const Tensor flat = w_hat.reshape({6, -1});
  CHECK(allclose(mean(flat, {1}), zeros({6}, kFloat64), 0, 1e-12));
  CHECK(allclose(var(flat, {1}, false), ones({6}, kFloat64), 1e-3, 0));  // var/(var + eps) ≈ 1

  // The explicit formula in plain loops.
  const std::vector<double> w = conv.weight.to_vector<double>();
  std::vector<double> expected(w.size());
  const size_t per = w.size() / 6;
  for (size_t o = 0; o < 6; ++o) {
    double m = 0, v = 0;
    for (size_t k = 0; k < per; ++k) m += w[o * per + k];
    m /= per;
    for (size_t k = 0; k < per; ++k) v += (w[o * per + k] - m) * (w[o * per + k] - m);
    v /= per;
    for (size_t k = 0; k < per; ++k) expected[o * per + k] = (w[o * per + k] - m) / std::sqrt(v + 1e-5);
  }
  CHECK(allclose(w_hat, from_vector(expected, conv.weight.shape()), 1e-12, 1e-12));

  const Tensor x = rnd({2, 4, 5, 5}, 50);
  CHECK(allclose(conv(x), conv2d(x, from_vector(expected, conv.weight.shape()), conv.bias, 1, 1, 1, 2), 1e-12,
                 1e-12));

  auto f = [&](const std::vector<Tensor>& in) {
    return conv2d(in[0], standardize_weight(in[1], 1e-5), in[2], 1, 1, 1, 2);
  };
  CHECK(gradcheck(f, {leaf({2, 4, 5, 5}, 51), leaf({6, 2, 3, 3}, 52), leaf({6}, 53)}, {},
                  "weight-standardized conv2d"));
}

TEST_CASE("Linear matches x·Wᵀ + b from the reference matmul, and passes gradcheck",
          "[layers][linear][gradcheck]") {
  Generator gen(6);
  Linear fc(5, 3, true, kFloat64, &gen);
  const Tensor x = rnd({4, 5}, 60);
  const Tensor expected = add(reference::naive_matmul(x, fc.weight.t().contiguous()), fc.bias);
  CHECK(allclose(fc(x), expected, 1e-12, 1e-12));
  CHECK(fc(rnd({2, 4, 5}, 61)).shape() == Shape{2, 4, 3});  // leading dims are batch dims

  auto f = [](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); };
  CHECK(gradcheck(f, {leaf({4, 5}, 62), leaf({3, 5}, 63), leaf({3}, 64)}, {}, "linear"));
  auto f_no_bias = [](const std::vector<Tensor>& in) { return linear(in[0], in[1]); };
  CHECK(gradcheck(f_no_bias, {leaf({4, 5}, 65), leaf({3, 5}, 66)}, {}, "linear without bias"));

  const double bound = 1.0 / std::sqrt(5.0);
  CHECK(max(abs(fc.weight)).item() <= bound);
  CHECK(max(abs(fc.bias)).item() <= bound);
  Linear no_bias(5, 3, false);
  CHECK(no_bias.named_parameters().size() == 1);
  CHECK(no_bias.describe() == "Linear(5, 3, bias=false)");
}

TEST_CASE("Linear and Conv2d reject wrong ranks and feature/channel counts with nl::Error naming the shapes",
          "[layers][errors]") {
  Linear fc(5, 3);
  CHECK_THROWS_WITH(fc(zeros({4, 6})), Catch::Contains("[..., 5]") && Catch::Contains("[4, 6]"));
  CHECK_THROWS_AS(fc(zeros({})), Error);
  Conv2d conv(3, 8, 3);
  CHECK_THROWS_WITH(conv(zeros({8, 4, 32, 32})),
                    Catch::Contains("[8, 4, 32, 32]") && Catch::Contains("Conv2d"));
  CHECK_THROWS_WITH(conv(zeros({3, 32, 32})), Catch::Contains("[3, 32, 32]"));
  CHECK_THROWS_WITH(conv(zeros({1, 3, 2, 2})), Catch::Contains("too small"));
  CHECK_THROWS_WITH(conv2d(zeros({1, 4, 5, 5}), zeros({6, 2, 3, 3}), Tensor(), 1, 0, 1, 3),
                    Catch::Contains("groups=3"));
  CHECK_THROWS_WITH(conv2d(zeros({1, 4, 5, 5}), zeros({6, 4, 3, 3}), zeros({5})), Catch::Contains("bias"));
  CHECK_THROWS_WITH(conv2d(zeros({1, 4, 5, 5}), zeros({6, 4, 3, 3}), Tensor(), 0), Catch::Contains("stride"));
  CHECK_THROWS_AS(Conv2d(3, 8, 3, 1, 0, 1, 2), Error);  // groups must divide channels
}

TEST_CASE("col2im is the adjoint of im2col: <im2col(x), c> = <x, col2im(c)>", "[layers][conv][kernels]") {
  kernels::Conv2dGeometry g;
  g.batch = 3, g.channels = 2, g.height = 6, g.width = 5, g.kernel_h = 3, g.kernel_w = 2;
  g.stride_h = 2, g.stride_w = 1, g.pad_h = 1, g.pad_w = 1, g.dilation_h = 1, g.dilation_w = 2;
  g.out_h = kernels::sliding_output_size(g.height, g.kernel_h, g.stride_h, g.pad_h, g.dilation_h);
  g.out_w = kernels::sliding_output_size(g.width, g.kernel_w, g.stride_w, g.pad_w, g.dilation_w);
  const int64_t rows = g.channels * g.kernel_h * g.kernel_w, cols = 2 * g.out_h * g.out_w;  // samples 1 and 2
  const Tensor x = rnd({3, 2, 6, 5}, 70), c = rnd({rows, cols}, 71);
  Tensor col = empty({rows, cols}, kFloat64), dx = zeros({3, 2, 6, 5}, kFloat64);
  kernels::im2col(x, g, 1, 2, col);
  kernels::col2im(c, g, 1, 2, dx);
  CHECK(sum(mul(col, c)).item() == Approx(sum(mul(x, dx)).item()).epsilon(1e-12));
  CHECK(max(abs(dx.narrow(0, 0, 1))).item() == 0.0);  // sample 0 is outside the chunk
}

TEST_CASE("conv2d and Linear handle an empty batch", "[layers][conv][linear]") {
  Conv2d conv(3, 4, 3, {.padding = 1});
  const Tensor x = zeros({0, 3, 8, 8}).requires_grad_();
  const Tensor y = conv(x);
  CHECK(y.shape() == Shape{0, 4, 8, 8});
  sum(y).backward();
  CHECK(x.grad().shape() == Shape{0, 3, 8, 8});
  CHECK(max(abs(conv.weight.grad())).item() == 0.0);
  CHECK(Linear(5, 2)(zeros({0, 5})).shape() == Shape{0, 2});
}

TEST_CASE("im2col and col2im (row-run and shifted-plane paths) equal the plain-loop reference",
          "[layers][conv][kernels]") {
  for (const ConvCase& c : kernel_cases()) {
    for (DType dtype : {kFloat64, kFloat32}) {
      DYNAMIC_SECTION(c.name << ", " << dtype_name(dtype)) {
        const kernels::Conv2dGeometry g = geometry_of(c);
        // A chunk that starts after sample 0 when there is more than one sample.
        const int64_t n0 = g.batch > 1 ? 1 : 0, count = g.batch - n0;
        const int64_t rows = g.channels * g.kernel_h * g.kernel_w, cols = count * g.out_h * g.out_w;
        const Tensor x = rnd(c.x, 80, dtype);
        Tensor col = full({rows, cols}, 7.0, dtype), col_ref = full({rows, cols}, -7.0, dtype);
        kernels::im2col(x, g, n0, count, col);
        cpu::im2col_reference(x, g, n0, count, col_ref);
        CHECK(allclose(col, col_ref, 0, 0));
        // col2im adds into a pre-filled dx, in the same order as the reference: equal to the last bit.
        const Tensor dcol = rnd({rows, cols}, 81, dtype), prefill = rnd(c.x, 82, dtype);
        Tensor dx = prefill.clone(), dx_ref = prefill.clone();
        kernels::col2im(dcol, g, n0, count, dx);
        cpu::col2im_reference(dcol, g, n0, count, dx_ref);
        CHECK(allclose(dx, dx_ref, 0, 0));
        CHECK(allclose(dx.narrow(0, 0, n0), prefill.narrow(0, 0, n0), 0, 0));  // outside the chunk: untouched
      }
    }
  }
}

TEST_CASE(
    "per-sample GEMM kernels: forward equals the direct convolution, backward adds the direct gradients",
    "[layers][conv][kernels]") {
  for (const ConvCase& base : kernel_cases()) {
    const ConvCase c = with_batch(base, base.x[0] == 1 ? 3 : base.x[0]);
    for (DType dtype : {kFloat64, kFloat32}) {
      DYNAMIC_SECTION(c.name << ", " << dtype_name(dtype)) {
        const double tol = dtype == kFloat64 ? 1e-12 : 1e-4;
        const kernels::Conv2dGeometry g = geometry_of(c);
        const Tensor x = rnd(c.x, 90), w = rnd(c.w, 91), b = c.bias ? rnd({c.w[0]}, 92) : Tensor();
        const Tensor y_ref = reference::naive_conv2d(x, w, b, c.stride, c.padding, c.dilation, c.groups);
        Tensor y = full(y_ref.shape(), 3.0, dtype);
        kernels::conv2d_forward(x.to(dtype), w.to(dtype), c.bias ? b.to(dtype) : Tensor(), g, c.groups, y);
        CHECK(allclose(y, y_ref.to(dtype), tol, tol));

        const Tensor dy = rnd(y_ref.shape(), 93);
        const std::vector<Tensor> ref =
            reference::naive_conv2d_backward(x, w, dy, c.stride, c.padding, c.dilation, c.groups);
        const Tensor db_ref = sum(dy, {0, 2, 3});
        // Pre-filled: the kernel must add. (.to of the same dtype aliases, hence the clones.)
        const Tensor dx0 = rnd(c.x, 94), dw0 = rnd(c.w, 95), db0 = rnd({c.w[0]}, 96);
        Tensor dx = dx0.to(dtype).clone(), dw = dw0.to(dtype).clone(), db = db0.to(dtype).clone(), none;
        kernels::conv2d_backward(x.to(dtype), w.to(dtype), dy.to(dtype), g, c.groups, dx, dw, db);
        CHECK(allclose(dx, add(dx0, ref[0]).to(dtype), tol, tol));
        CHECK(allclose(dw, add(dw0, ref[1]).to(dtype), tol, tol));
        CHECK(allclose(db, add(db0, db_ref).to(dtype), tol, tol));
        // Each gradient alone.
        Tensor dx_only = dx0.to(dtype).clone(), dw_only = dw0.to(dtype).clone(),
               db_only = db0.to(dtype).clone();
        kernels::conv2d_backward(x.to(dtype), w.to(dtype), dy.to(dtype), g, c.groups, dx_only, none, none);
        kernels::conv2d_backward(x.to(dtype), w.to(dtype), dy.to(dtype), g, c.groups, none, dw_only, none);
        kernels::conv2d_backward(x.to(dtype), w.to(dtype), dy.to(dtype), g, c.groups, none, none, db_only);
        CHECK(allclose(dx_only, dx, 0, 0));
        CHECK(allclose(dw_only, dw, 0, 0));
        CHECK(allclose(db_only, db, 0, 0));
        // Assign mode overwrites whatever the buffers held (NaN here).
        Tensor dx_new = full(c.x, NAN, dtype), dw_new = full(c.w, NAN, dtype),
               db_new = full({c.w[0]}, NAN, dtype);
        kernels::conv2d_backward(x.to(dtype), w.to(dtype), dy.to(dtype), g, c.groups, dx_new, dw_new, db_new,
                                 kernels::GradWrite::assign);
        CHECK(allclose(dx_new, ref[0].to(dtype), tol, tol));
        CHECK(allclose(dw_new, ref[1].to(dtype), tol, tol));
        CHECK(allclose(db_new, db_ref.to(dtype), tol, tol));
      }
    }
  }
}

TEST_CASE("conv2d takes both paths (chunked batched GEMMs, per-sample GEMMs) and both match the reference",
          "[layers][conv][gradcheck]") {
  // A batch of 1 always takes the chunked path; 2·threads + 1 samples always take the per-sample one.
  const int64_t large = 2 * get_num_threads() + 1;
  for (const ConvCase& base : kConvCases) {
    for (int64_t n : {int64_t{1}, large}) {
      const ConvCase c = with_batch(base, n);
      DYNAMIC_SECTION(c.name << ", batch " << n) {
        const Tensor x = rnd(c.x, 100), w = rnd(c.w, 101), b = c.bias ? rnd({c.w[0]}, 102) : Tensor();
        CHECK(allclose(conv2d(x, w, b, c.stride, c.padding, c.dilation, c.groups),
                       reference::naive_conv2d(x, w, b, c.stride, c.padding, c.dilation, c.groups), 1e-12,
                       1e-12));
        const Tensor u = rnd(conv2d(x, w, b, c.stride, c.padding, c.dilation, c.groups).shape(), 103);
        const Tensor xg = x.clone().requires_grad_(), wg = w.clone().requires_grad_();
        const Tensor bg = c.bias ? b.clone().requires_grad_() : Tensor();
        conv2d(xg, wg, bg, c.stride, c.padding, c.dilation, c.groups).backward(u);
        const std::vector<Tensor> ref =
            reference::naive_conv2d_backward(x, w, u, c.stride, c.padding, c.dilation, c.groups);
        CHECK(allclose(xg.grad(), ref[0], 1e-12, 1e-12));
        CHECK(allclose(wg.grad(), ref[1], 1e-12, 1e-12));
        if (c.bias) CHECK(allclose(bg.grad(), sum(u, {0, 2, 3}), 1e-12, 1e-12));
      }
    }
  }
  SECTION("gradcheck through the per-sample path") {
    auto f = [](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], in[2], 1, 1); };
    CHECK(gradcheck(f, {leaf({large, 2, 4, 3}, 104), leaf({3, 2, 3, 3}, 105), leaf({3}, 106)}, {},
                    "conv2d per-sample"));
  }
}
