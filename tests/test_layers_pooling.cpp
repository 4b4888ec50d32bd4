// Pooling kernels against the readable reference (tests/reference_ops.h), gradchecks, modules and bad input.
#include <catch2/catch.hpp>

#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "core/cpu/cpu_conv.h"
#include "core/kernels_conv.h"
#include "core/ops.h"
#include "core/random.h"
#include "layers/pooling.h"
#include "reference_ops.h"
#include "test_util.h"

using namespace nl;
using nl::test::allclose;

namespace {
Tensor rnd(const Shape& shape, uint64_t seed) {
  Generator g(seed);
  return rand(shape, kFloat64, &g, -1, 1);
}
Tensor leaf(const Shape& shape, uint64_t seed) { return rnd(shape, seed).requires_grad_(); }

struct PoolCase {
  const char* name;
  Shape x;
  int64_t kernel, stride, padding;
};
const std::vector<PoolCase> kPoolCases = {
    {"2x2 stride 2", {2, 3, 6, 6}, 2, 2, 0},
    {"3x3 stride 2 padding 1", {2, 2, 7, 6}, 3, 2, 1},
    {"3x3 stride 1 padding 1 (overlapping windows)", {1, 2, 5, 5}, 3, 1, 1},
    {"ragged end (7 with kernel 2)", {1, 1, 7, 7}, 2, 2, 0},
};
}  // namespace

TEST_CASE("max_pool2d and avg_pool2d match the reference windows", "[layers][pooling]") {
  for (const PoolCase& c : kPoolCases) {
    SECTION(c.name) {
      const Tensor x = rnd(c.x, 1);
      CHECK(allclose(max_pool2d(x, c.kernel, c.stride, c.padding),
                     reference::naive_pool2d(x, true, c.kernel, c.stride, c.padding), 0, 0));
      CHECK(allclose(avg_pool2d(x, c.kernel, c.stride, c.padding, true),
                     reference::naive_pool2d(x, false, c.kernel, c.stride, c.padding, true), 1e-12, 1e-12));
      CHECK(allclose(avg_pool2d(x, c.kernel, c.stride, c.padding, false),
                     reference::naive_pool2d(x, false, c.kernel, c.stride, c.padding, false), 1e-12, 1e-12));
      CHECK(allclose(max_pool2d(x.to(kFloat32), c.kernel, c.stride, c.padding),
                     reference::naive_pool2d(x, true, c.kernel, c.stride, c.padding).to(kFloat32), 0, 0));
    }
  }
}

TEST_CASE("gradcheck: max_pool2d, avg_pool2d (both divisors), adaptive and global average pooling",
          "[layers][pooling][gradcheck]") {
  for (const PoolCase& c : kPoolCases) {
    SECTION(c.name) {
      CHECK(gradcheck(
          [&](const std::vector<Tensor>& in) { return max_pool2d(in[0], c.kernel, c.stride, c.padding); },
          {leaf(c.x, 2)}, {}, "max_pool2d"));
      CHECK(gradcheck(
          [&](const std::vector<Tensor>& in) { return avg_pool2d(in[0], c.kernel, c.stride, c.padding); },
          {leaf(c.x, 3)}, {}, "avg_pool2d"));
      CHECK(gradcheck(
          [&](const std::vector<Tensor>& in) {
            return avg_pool2d(in[0], c.kernel, c.stride, c.padding, false);
          },
          {leaf(c.x, 4)}, {}, "avg_pool2d count_include_pad=false"));
    }
  }
  SECTION("adaptive 7x5 -> 3x2 (overlapping windows)") {
    CHECK(gradcheck([](const std::vector<Tensor>& in) { return adaptive_avg_pool2d(in[0], 3, 2); },
                    {leaf({2, 2, 7, 5}, 5)}, {}, "adaptive_avg_pool2d"));
  }
  SECTION("global average") {
    CHECK(gradcheck([](const std::vector<Tensor>& in) { return global_avg_pool2d(in[0]); },
                    {leaf({2, 3, 4, 5}, 6)}, {}, "global_avg_pool2d"));
  }
}

TEST_CASE("adaptive_avg_pool2d uses PyTorch's windows [floor(i·H/OH), ceil((i+1)·H/OH))",
          "[layers][pooling]") {
  // H = 5 → OH = 3: row windows [0, 2), [1, 4), [3, 5).
  const Tensor x = arange(0.0, 5.0, 1.0, kFloat64).reshape({1, 1, 5, 1});
  CHECK(test::values(adaptive_avg_pool2d(x, 3, 1)) == std::vector<double>{0.5, 2.0, 3.5});
  // Equal to avg_pool2d when the size divides evenly.
  const Tensor y = rnd({2, 3, 8, 8}, 7);
  CHECK(allclose(adaptive_avg_pool2d(y, 4, 4), avg_pool2d(y, 2), 1e-12, 1e-12));
  CHECK(allclose(global_avg_pool2d(y), mean(y, {2, 3}), 1e-12, 1e-12));
}

TEST_CASE("max_pool2d sends the gradient to the first maximum of the window, and adds into dx",
          "[layers][pooling]") {
  const Tensor x = tensor({1, 3, 3, 2}, kFloat64).reshape({1, 1, 2, 2}).detach().requires_grad_();
  max_pool2d(x, 2).backward(ones({1, 1, 1, 1}, kFloat64));
  CHECK(test::values(x.grad()) == std::vector<double>{0, 1, 0, 0});
  max_pool2d(x, 2).backward(ones({1, 1, 1, 1}, kFloat64));
  CHECK(test::values(x.grad()) == std::vector<double>{0, 2, 0, 0});
}

TEST_CASE("pooling modules and Flatten", "[layers][pooling]") {
  const Tensor x = rnd({2, 3, 8, 8}, 8);
  CHECK(MaxPool2d(2)(x).shape() == Shape{2, 3, 4, 4});
  CHECK(AvgPool2d(3, 1, 1)(x).shape() == Shape{2, 3, 8, 8});
  CHECK(AdaptiveAvgPool2d(1)(x).shape() == Shape{2, 3, 1, 1});
  CHECK(GlobalAvgPool2d()(x).shape() == Shape{2, 3});
  CHECK(Flatten()(x).shape() == Shape{2, 192});
  CHECK(MaxPool2d(3, 2, 1).describe() == "MaxPool2d(kernel_size=3, stride=2, padding=1)");
}

TEST_CASE("pooling rejects bad input with nl::Error naming the op and the shape",
          "[layers][pooling][errors]") {
  CHECK_THROWS_WITH(max_pool2d(zeros({3, 8, 8}), 2),
                    Catch::Contains("max_pool2d") && Catch::Contains("[3, 8, 8]"));
  CHECK_THROWS_WITH(avg_pool2d(zeros({1, 1, 2, 2}), 3), Catch::Contains("smaller than the kernel"));
  CHECK_THROWS_WITH(max_pool2d(zeros({1, 1, 8, 8}), 2, 2, 2), Catch::Contains("padding"));
  CHECK_THROWS_WITH(adaptive_avg_pool2d(zeros({2, 8}), 1, 1), Catch::Contains("[2, 8]"));
  CHECK_THROWS_AS(global_avg_pool2d(zeros({2, 3, 4})), Error);
  CHECK_THROWS_AS(MaxPool2d(0), Error);
  CHECK_THROWS_AS(max_pool2d(zeros({1, 1, 4, 4}, kInt64), 2), Error);
}

TEST_CASE("max_pool2d propagates NaN, and pooling handles an empty batch", "[layers][pooling]") {
  const Tensor x = tensor({1, NAN, 3, 2}).reshape({1, 1, 2, 2});
  CHECK(std::isnan(max_pool2d(x, 2).item()));
  CHECK(max_pool2d(zeros({0, 3, 4, 4}), 2).shape() == Shape{0, 3, 2, 2});
  CHECK(avg_pool2d(zeros({0, 3, 4, 4}), 2).shape() == Shape{0, 3, 2, 2});
  CHECK(global_avg_pool2d(zeros({0, 3, 4, 4})).shape() == Shape{0, 3});
}

TEST_CASE(
    "max_pool2d 2x2 stride 2 fast path: same values and argmax as the generic reference loop, ties and NaN",
    "[layers][pooling][kernels]") {
  // Small integers make ties in most windows (the first maximum in window order must win); a few NaN and
  // -inf cells land in every window position. Odd sizes leave a ragged last row and column.
  // Widths past 32 and 64 cover the 16-window vector steps and their masked remainders.
  for (const Shape& shape : {Shape{2, 3, 6, 6}, Shape{3, 2, 7, 5}, Shape{1, 1, 2, 2}, Shape{2, 2, 9, 8},
                             Shape{1, 2, 5, 70}, Shape{2, 1, 4, 33}, Shape{1, 1, 2, 64}}) {
    for (DType dtype : {kFloat64, kFloat32}) {
      DYNAMIC_SECTION(shape_str(shape) << " " << dtype_name(dtype)) {
        std::vector<double> v = rnd(shape, 9).to_vector<double>();
        for (double& e : v) e = std::floor(2 * e);  // -2, -1, 0 or 1
        for (size_t k = 3; k < v.size(); k += 7) v[k] = NAN;
        for (size_t k = 5; k < v.size(); k += 11) v[k] = -INFINITY;
        const Tensor x = from_vector(v, shape).to(dtype);
        kernels::Pool2dGeometry g;
        g.batch = shape[0], g.channels = shape[1], g.height = shape[2], g.width = shape[3];
        g.kernel_h = g.kernel_w = 2, g.stride_h = g.stride_w = 2;
        g.out_h = shape[2] / 2, g.out_w = shape[3] / 2;
        const Shape out_shape{shape[0], shape[1], g.out_h, g.out_w};
        Tensor y = empty(out_shape, dtype), arg = empty(out_shape, kInt64);
        Tensor y_ref = empty(out_shape, dtype), arg_ref = empty(out_shape, kInt64);
        kernels::max_pool2d(x, g, y, arg);
        cpu::max_pool2d_reference(x, g, y_ref, arg_ref);
        CHECK(test::values(arg) == test::values(arg_ref));
        const std::vector<double> a = test::values(y), b = test::values(y_ref);
        REQUIRE(a.size() == b.size());
        for (size_t k = 0; k < a.size(); ++k) CHECK((a[k] == b[k] || (std::isnan(a[k]) && std::isnan(b[k]))));
      }
    }
  }
}

TEST_CASE("max_pool2d backward in assign mode equals adding into zeros, and ignores dx's old contents",
          "[layers][pooling][kernels]") {
  struct Case {
    Shape shape;
    int64_t kernel, stride, padding;
  };
  for (const Case& c : {Case{{2, 3, 6, 6}, 2, 2, 0}, Case{{1, 2, 7, 9}, 2, 2, 0},
                        Case{{2, 2, 8, 40}, 2, 2, 0}, Case{{1, 2, 7, 7}, 3, 2, 1}}) {
    for (DType dtype : {kFloat32, kFloat64}) {
      DYNAMIC_SECTION(shape_str(c.shape) << " kernel " << c.kernel << " " << dtype_name(dtype)) {
        const Tensor x = rnd(c.shape, 5).to(dtype);
        kernels::Pool2dGeometry g;
        g.batch = c.shape[0], g.channels = c.shape[1], g.height = c.shape[2], g.width = c.shape[3];
        g.kernel_h = g.kernel_w = c.kernel, g.stride_h = g.stride_w = c.stride, g.pad_h = g.pad_w = c.padding;
        g.out_h = kernels::sliding_output_size(g.height, c.kernel, c.stride, c.padding, 1);
        g.out_w = kernels::sliding_output_size(g.width, c.kernel, c.stride, c.padding, 1);
        const Shape out_shape{c.shape[0], c.shape[1], g.out_h, g.out_w};
        Tensor y = empty(out_shape, dtype), arg = empty(out_shape, kInt64);
        kernels::max_pool2d(x, g, y, arg);
        const Tensor gy = rnd(out_shape, 6).to(dtype);
        Tensor added = zeros(c.shape, dtype), assigned = full(c.shape, NAN, dtype);
        kernels::max_pool2d_backward(gy, arg, g, added);
        kernels::max_pool2d_backward(gy, arg, g, assigned, kernels::GradWrite::assign);
        CHECK(test::values(assigned) == test::values(added));
      }
    }
  }
}
