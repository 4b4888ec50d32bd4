// The normalize-over-axes kernels: the optimized OpenMP versions against the plain reference loops, for
// every layout the layers use; the += contract of the backward; numerics of the variance.
#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "core/cpu/cpu_normalization.h"
#include "core/kernels_normalization.h"
#include "core/ops.h"
#include "core/random.h"
#include "core/threads.h"
#include "test_util.h"

using namespace nl;
using kernels::NormLayout;
using kernels::NormStats;
using test::allclose;

namespace {

struct Case {
  std::string name;
  NormLayout layout;
};

// Every layer's layout, small and large (the large ones cross the OpenMP threshold), and the column path.
std::vector<Case> layouts() {
  return {
      {"batch_norm 4-D", {1, 8, 3, 1, 25, true}},
      {"batch_norm 4-D large", {1, 16, 8, 1, 1024, true}},
      {"batch_norm 1-D (N, C) column path", {1, 37, 70, 1, 1, true}},
      {"batch_norm 1-D (N, C) column path large", {1, 300, 200, 1, 1, true}},
      {"batch_norm (N, C, L)", {1, 5, 4, 1, 7, true}},
      {"ghost batch_norm", {3, 4, 5, 1, 6, true}},
      {"ghost batch_norm column path", {4, 8, 70, 1, 1, true}},
      {"instance_norm", {6, 1, 4, 1, 20, true}},
      {"group_norm", {4, 1, 3, 4, 10, true}},
      {"group_norm large", {8, 1, 4, 8, 256, true}},
      {"layer_norm", {7, 1, 1, 12, 1, true}},
      {"rms_norm", {7, 1, 1, 12, 1, false}},
      {"rms_norm large", {64, 1, 1, 1000, 1, false}},
      // Few large statistic groups: the optimized kernels split each group into chunks (see make_plan in
      // core/cpu/normalization.cpp), here with chunk boundaries inside runs and across them.
      {"batch_norm few channels, chunked", {1, 64, 2, 1, 1024, true}},
      {"batch_norm one long channel, chunks across runs", {1, 3, 1, 1, 50000, true}},
      {"batch_norm 1-D (N, C) column path, chunked rows", {1, 5000, 10, 1, 1, true}},
      {"batch_norm 1-D (N, C) column path, odd blocks", {3, 77, 70, 1, 1, true}},
      {"group_norm chunked", {2, 1, 3, 4, 5000, true}},
      {"layer_norm long rows, chunked", {2, 1, 1, 40000, 1, true}},
      {"rms_norm long rows, chunked", {2, 1, 1, 70000, 1, false}},
      {"layer_norm one element per row", {5, 1, 1, 1, 1, true}},
      // Short channel runs: the optimized kernels sweep blocks of adjacent channels run by run (run_block_of
      // in core/cpu/normalization.cpp), here 8 channels per block and a last block of 4.
      {"batch_norm short runs, blocks of channels", {2, 24, 44, 1, 36, true}},
  };
}

Tensor random(const Shape& shape, DType dt, Generator& gen, double mean = 0, double stddev = 1) {
  return randn(shape, dt, &gen, mean, stddev);
}

NormStats stats_for(const Tensor& x, const NormLayout& l, double eps, bool with_renorm, Generator& gen) {
  NormStats st{empty({l.num_stat_groups()}, kFloat64), empty({l.num_stat_groups()}, kFloat64), {}, {}};
  Tensor var = empty({l.num_stat_groups()}, kFloat64);
  cpu::normalize_reference_moments(x, l, st.mean, var);
  for (int64_t i = 0; i < var.numel(); ++i)
    st.inv_std.data<double>()[i] = 1.0 / std::sqrt(var.data<double>()[i] + eps);
  if (with_renorm) {
    st.r = rand({l.num_stat_groups()}, kFloat64, &gen, 0.5, 2.0);
    st.d = rand({l.num_stat_groups()}, kFloat64, &gen, -1.0, 1.0);
  }
  return st;
}

}  // namespace

TEST_CASE("normalize kernels: optimized moments, forward and backward match the reference loops",
          "[norm][kernels]") {
  Generator gen(7);
  for (DType dt : {kFloat64, kFloat32}) {
    const double tol = dt == kFloat64 ? 1e-12 : 2e-5;
    for (const Case& c : layouts()) {
      for (bool renorm : {false, true}) {
        INFO(c.name << " " << dtype_name(dt) << (renorm ? " with r, d" : ""));
        const NormLayout& l = c.layout;
        const Tensor x = random({l.numel()}, dt, gen, 0.5, 2.0);
        Tensor m_ref = empty({l.num_stat_groups()}, kFloat64), v_ref = empty_like(m_ref);
        Tensor m_opt = empty_like(m_ref), v_opt = empty_like(m_ref);
        cpu::normalize_reference_moments(x, l, m_ref, v_ref);
        cpu::normalize_moments(x, l, m_opt, v_opt);
        CHECK(allclose(m_opt, m_ref, 1e-12, 1e-12));
        CHECK(allclose(v_opt, v_ref, 1e-12, 1e-12));

        const NormStats st = stats_for(x, l, 1e-5, renorm, gen);
        const Tensor w = random({l.num_channels()}, dt, gen), b = random({l.num_channels()}, dt, gen);
        Tensor y_ref = empty_like(x), y_opt = empty_like(x);
        cpu::normalize_reference_forward(x, l, st, w, b, y_ref);
        cpu::normalize_forward(x, l, st, w, b, y_opt);
        CHECK(allclose(y_opt, y_ref, tol, tol));

        const Tensor dy = random({l.numel()}, dt, gen);
        for (bool batch_stats : {true, false}) {
          INFO("batch_stats " << batch_stats);
          Tensor dx_ref = zeros_like(x), dw_ref = zeros_like(w), db_ref = zeros_like(b);
          Tensor dx_opt = zeros_like(x), dw_opt = zeros_like(w), db_opt = zeros_like(b);
          cpu::normalize_reference_backward(x, dy, l, st, w, batch_stats, dx_ref, dw_ref, db_ref);
          cpu::normalize_backward(x, dy, l, st, w, batch_stats, dx_opt, dw_opt, db_opt);
          CHECK(allclose(dx_opt, dx_ref, tol * 10, tol * 10));
          CHECK(allclose(dw_opt, dw_ref, tol * 10, tol * 10));
          CHECK(allclose(db_opt, db_ref, tol * 10, tol * 10));
        }
      }
    }
  }
}

TEST_CASE(
    "normalize kernels: the fused training forward matches moments, inv_std and forward of the reference",
    "[norm][kernels]") {
  Generator gen(17);
  for (DType dt : {kFloat64, kFloat32}) {
    const double tol = dt == kFloat64 ? 1e-12 : 2e-5;
    for (const Case& c : layouts()) {
      for (bool affine : {true, false}) {
        INFO(c.name << " " << dtype_name(dt) << (affine ? " with weight and bias" : " without affine"));
        const NormLayout& l = c.layout;
        const double eps = 1e-3;
        const Tensor x = random({l.numel()}, dt, gen, -0.5, 1.5);
        const Tensor w = affine ? random({l.num_channels()}, dt, gen) : Tensor();
        const Tensor b = affine ? random({l.num_channels()}, dt, gen) : Tensor();
        const NormStats st_ref = stats_for(x, l, eps, false, gen);
        Tensor m_ref = empty({l.num_stat_groups()}, kFloat64), v_ref = empty_like(m_ref),
               y_ref = empty_like(x);
        cpu::normalize_reference_moments(x, l, m_ref, v_ref);
        cpu::normalize_reference_forward(x, l, st_ref, w, b, y_ref);

        Tensor m = empty({l.num_stat_groups()}, kFloat64), v = empty_like(m), inv_std = empty_like(m);
        Tensor y = full({l.numel()}, std::nan(""), dt);
        cpu::normalize_moments_forward(x, l, eps, w, b, m, v, inv_std, y);
        CHECK(allclose(m, m_ref, 1e-12, 1e-12));
        CHECK(allclose(v, v_ref, 1e-12, 1e-12));
        CHECK(allclose(inv_std, st_ref.inv_std, 1e-12, 1e-12));
        CHECK(allclose(y, y_ref, tol, tol));
      }
    }
  }
}

TEST_CASE("normalize kernels: a fused ReLU matches the reference, and relu after the plain kernels",
          "[norm][kernels][relu]") {
  using kernels::NormActivation;
  Generator gen(27);
  for (DType dt : {kFloat64, kFloat32}) {
    const double tol = dt == kFloat64 ? 1e-12 : 2e-5;
    for (const Case& c : layouts()) {
      const NormLayout& l = c.layout;
      INFO(c.name << " " << dtype_name(dt));
      const Tensor x = random({l.numel()}, dt, gen, 0.5, 2.0);
      const NormStats st = stats_for(x, l, 1e-5, false, gen);
      // A small bias keeps about half of every channel below zero, so the mask matters.
      const Tensor w = random({l.num_channels()}, dt, gen), b = random({l.num_channels()}, dt, gen, 0, 0.2);
      // Forward (every layout): relu of the plain output, from both the reference and the optimized kernel.
      Tensor y_plain = empty_like(x), y_ref = empty_like(x), y_opt = empty_like(x);
      cpu::normalize_forward(x, l, st, w, b, y_plain);
      cpu::normalize_reference_forward(x, l, st, w, b, y_ref, NormActivation::relu);
      cpu::normalize_forward(x, l, st, w, b, y_opt, NormActivation::relu);
      CHECK(allclose(y_ref, relu(y_plain), tol, tol));
      CHECK(allclose(y_opt, relu(y_plain), 0, 0));
      const double cut = mean(lt(y_plain, zeros_like(y_plain))).item();
      if (l.numel() > 100) CHECK((cut > 0.2 && cut < 0.8));

      Tensor mean_out = empty({l.num_stat_groups()}, kFloat64), var_out = empty_like(mean_out),
             inv_std_out = empty_like(mean_out), y_fused = empty_like(x), y_fused_plain = empty_like(x);
      cpu::normalize_moments_forward(x, l, 1e-5, w, b, mean_out, var_out, inv_std_out, y_fused_plain);
      cpu::normalize_moments_forward(x, l, 1e-5, w, b, mean_out, var_out, inv_std_out, y_fused,
                                     NormActivation::relu);
      CHECK(allclose(y_fused, relu(y_fused_plain), 0, 0));

      const Tensor dout = random({l.numel()}, dt, gen);
      if (l.channels_per_group != 1) {
        Tensor dx = zeros_like(x), none;
        CHECK_THROWS_WITH(cpu::normalize_backward(x, dout, l, st, w, true, dx, none, none,
                                                  kernels::GradWrite::add, NormActivation::relu, b),
                          Catch::Contains("one channel per statistic group"));
        continue;
      }
      // Backward: equal to the plain backward of the masked gradient dout·[y > 0].
      const Tensor dy_masked = mul(dout, gt(y_plain, zeros_like(y_plain)));
      for (bool batch_stats : {true, false}) {
        INFO("batch_stats " << batch_stats);
        Tensor dx_plain = zeros_like(x), dw_plain = zeros_like(w), db_plain = zeros_like(b);
        cpu::normalize_backward(x, dy_masked, l, st, w, batch_stats, dx_plain, dw_plain, db_plain);
        Tensor dx_ref = zeros_like(x), dw_ref = zeros_like(w), db_ref = zeros_like(b);
        cpu::normalize_reference_backward(x, dout, l, st, w, batch_stats, dx_ref, dw_ref, db_ref,
                                          NormActivation::relu, b);
        CHECK(allclose(dx_ref, dx_plain, tol * 10, tol * 10));
        CHECK(allclose(dw_ref, dw_plain, tol * 10, tol * 10));
        CHECK(allclose(db_ref, db_plain, tol * 10, tol * 10));
        // Pre-filled gradients are added to; GradWrite::assign overwrites dx.
        const Tensor dx0 = random(x.shape(), dt, gen), dw0 = random(w.shape(), dt, gen);
        Tensor dx_opt = dx0.clone(), dw_opt = dw0.clone(), db_opt = zeros_like(b);
        cpu::normalize_backward(x, dout, l, st, w, batch_stats, dx_opt, dw_opt, db_opt,
                                kernels::GradWrite::add, NormActivation::relu, b);
        CHECK(allclose(dx_opt, add(dx0, dx_plain), tol * 10, tol * 10));
        CHECK(allclose(dw_opt, add(dw0, dw_plain), tol * 10, tol * 10));
        CHECK(allclose(db_opt, db_plain, tol * 10, tol * 10));
        Tensor dx_assign = full(x.shape(), NAN, dt), none;
        cpu::normalize_backward(x, dout, l, st, w, batch_stats, dx_assign, none, none,
                                kernels::GradWrite::assign, NormActivation::relu, b);
        CHECK(allclose(dx_assign, dx_plain, tol * 10, tol * 10));
      }
    }
  }
}

TEST_CASE("normalize kernels: the fused ReLU's mask is exact at the boundary, for either slope and NaN",
          "[norm][kernels][relu]") {
  using kernels::NormActivation;
  // Eval statistics m = 0, inv_std = 1 and bias 0.5·sign(w): y = w·x + b crosses 0 at x = 0.5 (w = −1) or
  // x = −0.5 (w = 1), which float32 represents exactly; the neighbours on either side must fall on the
  // right side of the cut, and y = 0 exactly must block the gradient (PyTorch's relu mask is y > 0).
  const float half = 0.5f;
  for (float w_value : {1.0f, -1.0f, 0.0f}) {
    INFO("w = " << w_value);
    const float b_value = w_value == 0.0f ? -1.0f : 0.5f * w_value;  // w = 0: y = −1 everywhere
    const float root = w_value == 0.0f ? 0.0f : -b_value / w_value;
    const std::vector<float> xs{
        std::nextafter(root, -1e9f), root, std::nextafter(root, 1e9f), -half, half, 3.0f, -3.0f, NAN};
    const int64_t n = static_cast<int64_t>(xs.size());
    const NormLayout l{1, n, 1, 1, 1, true};   // (N, C) = (n, 1): the column path
    const NormLayout l4{1, 1, 1, 1, n, true};  // (1, 1, n): the generic path
    const NormStats st{full({1}, 0.0, kFloat64), full({1}, 1.0, kFloat64), {}, {}};
    const Tensor x = from_vector(std::vector<double>(xs.begin(), xs.end()), {n}).to(kFloat32);
    const Tensor w = full({1}, w_value, kFloat32), b = full({1}, b_value, kFloat32);
    const Tensor dout = full({n}, 1.0, kFloat32);
    Tensor y = empty_like(x);
    cpu::normalize_forward(x, l, st, w, b, y);
    for (const NormLayout& layout : {l, l4}) {
      Tensor dx = zeros_like(x), none;
      cpu::normalize_backward(x, dout, layout, st, w, false, dx, none, none, kernels::GradWrite::add,
                              NormActivation::relu, b);
      for (int64_t i = 0; i < n; ++i) {
        const float yi = y.data<float>()[i];
        INFO("x = " << xs[i] << ", y = " << yi);
        CHECK(dx.data<float>()[i] == (yi > 0.0f ? w_value : 0.0f));
      }
      // Without the ReLU, the eval backward is dx = dout·w·inv_std whatever x holds, NaN included.
      Tensor dx_plain = zeros_like(x);
      cpu::normalize_backward(x, dout, layout, st, w, false, dx_plain, none, none);
      CHECK(allclose(dx_plain, full({n}, w_value, kFloat32), 0, 0));
    }
  }
}

TEST_CASE("normalize kernels: GradWrite::assign overwrites dx, whatever it held", "[norm][kernels]") {
  Generator gen(23);
  for (DType dt : {kFloat64, kFloat32}) {
    const double tol = dt == kFloat64 ? 1e-12 : 2e-4;
    for (const Case& c : layouts()) {
      for (bool batch_stats : {true, false}) {
        INFO(c.name << " " << dtype_name(dt) << " batch_stats " << batch_stats);
        const NormLayout& l = c.layout;
        const Tensor x = random({l.numel()}, dt, gen), dy = random({l.numel()}, dt, gen);
        const Tensor w = random({l.num_channels()}, dt, gen);
        const NormStats st = stats_for(x, l, 1e-5, true, gen);
        Tensor dx_ref = zeros_like(x), dw_ref = zeros_like(w), db_ref = zeros_like(w);
        cpu::normalize_reference_backward(x, dy, l, st, w, batch_stats, dx_ref, dw_ref, db_ref);

        // dx starts as NaN: any element the kernel read instead of overwriting would stay NaN.
        const Tensor fill_w = random({l.num_channels()}, dt, gen);
        Tensor dx = full({l.numel()}, std::nan(""), dt), dw = fill_w.clone(), db = fill_w.clone();
        cpu::normalize_backward(x, dy, l, st, w, batch_stats, dx, dw, db, kernels::GradWrite::assign);
        CHECK(allclose(dx, dx_ref, tol, tol));
        // The parameter gradients are still added to. They sum up to 150000 terms in another order than the
        // reference, hence the float64 tolerance.
        const double sum_tol = dt == kFloat64 ? 1e-10 : tol;
        CHECK(allclose(dw, fill_w + dw_ref, sum_tol, sum_tol));
        CHECK(allclose(db, fill_w + db_ref, sum_tol, sum_tol));
      }
    }
  }
}

TEST_CASE("normalize kernels: the result does not depend on the number of threads", "[norm][kernels]") {
  Generator gen(3);
  // One group per task, few groups split into chunks (partial sums combined in a fixed order), and blocks
  // of short channel runs (as many channels per block as keeps 4 blocks per thread: 4 on one thread, 2 on
  // two).
  for (const NormLayout& l : {NormLayout{1, 64, 16, 1, 256, true}, NormLayout{1, 64, 2, 1, 1024, true},
                              NormLayout{1, 5000, 10, 1, 1, true}, NormLayout{2, 1, 1, 40000, 1, true}}) {
    INFO("layout numel " << l.numel() << " groups " << l.num_stat_groups());
    const Tensor x = random({l.numel()}, kFloat32, gen), dy = random({l.numel()}, kFloat32, gen);
    const Tensor w = random({l.num_channels()}, kFloat32, gen), b = random({l.num_channels()}, kFloat32, gen);
    const NormStats st = stats_for(x, l, 1e-5, false, gen);
    const int saved_threads = get_num_threads();
    std::vector<Tensor> ys, dxs, means, vars;
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      Tensor y = empty_like(x), dx = zeros_like(x), dw = zeros_like(w), db = zeros_like(b);
      Tensor m = empty({l.num_stat_groups()}, kFloat64), v = empty_like(m), is = empty_like(m);
      Tensor y_fused = empty_like(x);
      cpu::normalize_moments_forward(x, l, 1e-5, w, b, m, v, is, y_fused);
      cpu::normalize_forward(x, l, st, w, b, y);
      cpu::normalize_backward(x, dy, l, st, w, true, dx, dw, db);
      ys.push_back(y);
      ys.push_back(y_fused);
      dxs.push_back(dx);
      means.push_back(m);
      vars.push_back(v);
    }
    set_num_threads(saved_threads);
    CHECK(test::values(ys[0]) == test::values(ys[2]));
    CHECK(test::values(ys[1]) == test::values(ys[3]));
    CHECK(test::values(dxs[0]) == test::values(dxs[1]));
    CHECK(test::values(means[0]) == test::values(means[1]));
    CHECK(test::values(vars[0]) == test::values(vars[1]));
  }
}

TEST_CASE("normalize kernels: backward adds into pre-filled dx, dweight and dbias", "[norm][kernels]") {
  Generator gen(11);
  for (const Case& c : layouts()) {
    INFO(c.name);
    const NormLayout& l = c.layout;
    const Tensor x = random({l.numel()}, kFloat64, gen), dy = random({l.numel()}, kFloat64, gen);
    const Tensor w = random({l.num_channels()}, kFloat64, gen);
    const NormStats st = stats_for(x, l, 1e-5, false, gen);
    Tensor dx0 = zeros_like(x), dw0 = zeros_like(w), db0 = zeros_like(w);
    kernels::normalize_backward(x, dy, l, st, w, true, dx0, dw0, db0);

    const Tensor fill_x = random({l.numel()}, kFloat64, gen),
                 fill_w = random({l.num_channels()}, kFloat64, gen);
    Tensor dx = fill_x.clone(), dw = fill_w.clone(), db = fill_w.clone();
    kernels::normalize_backward(x, dy, l, st, w, true, dx, dw, db);
    CHECK(allclose(dx, fill_x + dx0, 1e-12, 1e-12));
    CHECK(allclose(dw, fill_w + dw0, 1e-12, 1e-12));
    CHECK(allclose(db, fill_w + db0, 1e-12, 1e-12));

    // Reference version, same contract.
    Tensor rdx = fill_x.clone(), rdw = fill_w.clone(), rdb = fill_w.clone();
    cpu::normalize_reference_backward(x, dy, l, st, w, true, rdx, rdw, rdb);
    CHECK(allclose(rdx, fill_x + dx0, 1e-12, 1e-12));
    CHECK(allclose(rdw, fill_w + dw0, 1e-12, 1e-12));
  }
}

TEST_CASE("normalize kernels: undefined outputs of the backward are skipped", "[norm][kernels]") {
  Generator gen(5);
  const NormLayout l{1, 6, 3, 1, 4, true};
  const Tensor x = random({l.numel()}, kFloat64, gen), dy = random({l.numel()}, kFloat64, gen);
  const NormStats st = stats_for(x, l, 1e-5, false, gen);
  Tensor dx = zeros_like(x), none_w, none_b, dx_full = zeros_like(x), dw = zeros({3}, kFloat64),
         db = zeros({3}, kFloat64);
  kernels::normalize_backward(x, dy, l, st, Tensor(), true, dx, none_w, none_b);
  kernels::normalize_backward(x, dy, l, st, Tensor(), true, dx_full, dw, db);
  CHECK(allclose(dx, dx_full, 1e-14, 1e-14));
  Tensor no_dx;
  Tensor dw2 = zeros({3}, kFloat64), db2 = zeros({3}, kFloat64);
  kernels::normalize_backward(x, dy, l, st, Tensor(), true, no_dx, dw2, db2);
  CHECK(allclose(dw2, dw, 1e-14, 1e-14));
}

TEST_CASE("normalize kernels: a constant channel gives var 0 and finite outputs",
          "[norm][kernels][numerics]") {
  const NormLayout l{1, 4, 1, 1, 8, true};
  const Tensor x = full({l.numel()}, 3.25f, kFloat32);
  Tensor m = empty({1}, kFloat64), v = empty({1}, kFloat64);
  kernels::normalize_moments(x, l, m, v);
  CHECK(m.item() == 3.25);
  CHECK(v.item() == 0.0);
  const NormStats st{m, full({1}, 1.0 / std::sqrt(1e-5), kFloat64), {}, {}};
  Tensor y = empty_like(x);
  kernels::normalize_forward(x, l, st, tensor({2.0}), tensor({0.5}), y);
  for (double value : test::values(y)) CHECK(value == 0.5);
}

TEST_CASE("normalize kernels: mean 1e7 with spread 1 in float32 keeps its variance exactly",
          "[norm][kernels][numerics]") {
  // E[x²] − E[x]² would lose every digit here (1e14 against 1); two passes in double do not.
  std::vector<float> values;
  for (int i = 0; i < 64; ++i) values.push_back(1e7f + static_cast<float>(i % 2 == 0 ? 1 : -1));
  const NormLayout l{1, 64, 1, 1, 1, true};
  const Tensor x = from_vector(values);
  Tensor m = empty({1}, kFloat64), v = empty({1}, kFloat64);
  kernels::normalize_moments(x, l, m, v);
  CHECK(m.item() == 1e7);
  CHECK(v.item() == 1.0);
  const NormStats st{m, full({1}, 1.0 / std::sqrt(1.0 + 1e-5), kFloat64), {}, {}};
  Tensor y = empty_like(x);
  kernels::normalize_forward(x, l, st, Tensor(), Tensor(), y);
  for (int i = 0; i < 64; ++i)
    CHECK(y.to_vector<double>()[i] == Approx((i % 2 == 0 ? 1 : -1) / std::sqrt(1.0 + 1e-5)));
}

TEST_CASE("normalize kernels: mean 1e7 with spread 1 stays exact in the fused forward and across chunks",
          "[norm][kernels][numerics]") {
  // 64 values per channel (one task per group), and 131072 values in one channel (split into chunks whose
  // partial sums are combined): both shift by the first element, so the variance is exact.
  for (const NormLayout& l : {NormLayout{1, 64, 1, 1, 1, true}, NormLayout{1, 64, 1, 1, 2048, true}}) {
    INFO("count " << l.count());
    std::vector<float> values;
    for (int64_t i = 0; i < l.numel(); ++i) values.push_back(1e7f + static_cast<float>(i % 2 == 0 ? 1 : -1));
    const Tensor x = from_vector(values);
    Tensor m = empty({1}, kFloat64), v = empty({1}, kFloat64), is = empty({1}, kFloat64), y = empty_like(x);
    kernels::normalize_moments_forward(x, l, 0.0, Tensor(), Tensor(), m, v, is, y);
    CHECK(m.item() == 1e7);
    CHECK(v.item() == 1.0);
    CHECK(is.item() == 1.0);
    const std::vector<double> ys = y.to_vector<double>();
    for (int64_t i = 0; i < l.numel(); ++i) CHECK(ys[i] == (i % 2 == 0 ? 1.0 : -1.0));
    Tensor m2 = empty({1}, kFloat64), v2 = empty({1}, kFloat64);
    kernels::normalize_moments(x, l, m2, v2);
    CHECK(m2.item() == 1e7);
    CHECK(v2.item() == 1.0);
  }
}

TEST_CASE("normalize kernels: wrong argument sizes are errors naming the argument",
          "[norm][kernels][errors]") {
  const NormLayout l{1, 4, 3, 1, 2, true};
  const Tensor x = zeros({l.numel()}, kFloat32);
  Tensor m = empty({2}, kFloat64), v = empty({3}, kFloat64);
  CHECK_THROWS_WITH(kernels::normalize_moments(x, l, m, v),
                    Catch::Contains("mean") && Catch::Contains("3 elements"));
  const NormStats st{zeros({3}, kFloat64), ones({3}, kFloat64), {}, {}};
  Tensor y = empty_like(x);
  CHECK_THROWS_WITH(kernels::normalize_forward(x, l, st, ones({4}), Tensor(), y), Catch::Contains("weight"));
  CHECK_THROWS_WITH(kernels::normalize_forward(x, l, st, ones({3}, kFloat64), Tensor(), y),
                    Catch::Contains("weight") && Catch::Contains("float32"));
  Tensor wrong = empty({5}, kFloat32);
  CHECK_THROWS_WITH(kernels::normalize_forward(wrong, l, st, Tensor(), Tensor(), y), Catch::Contains("[5]"));
  Tensor m3 = empty({3}, kFloat64), v3 = empty({3}, kFloat64), is3 = empty({2}, kFloat64);
  CHECK_THROWS_WITH(kernels::normalize_moments_forward(x, l, 1e-5, Tensor(), Tensor(), m3, v3, is3, y),
                    Catch::Contains("normalize_moments_forward") && Catch::Contains("inv_std") &&
                        Catch::Contains("3 elements"));
  is3 = empty({3}, kFloat64);
  CHECK_THROWS_WITH(kernels::normalize_moments_forward(x, l, -1.0, Tensor(), Tensor(), m3, v3, is3, y),
                    Catch::Contains("eps"));
  Tensor y_wrong = empty({7}, kFloat32);
  CHECK_THROWS_WITH(kernels::normalize_moments_forward(x, l, 1e-5, Tensor(), Tensor(), m3, v3, is3, y_wrong),
                    Catch::Contains("y") && Catch::Contains("[7]"));
}
