// normlab-bench: fixed workloads, timed on 2 threads, for comparison with bench/torch_reference.py.
//
//   a. MLP 784-512-512-10 with BatchNorm1d (bias off), ReLU, cross-entropy, SGD (momentum 0.9, wd 5e-4):
//      a training step at batch 128, and the eval forward at batch 1000; and the eight GEMMs alone that the
//      step makes (same shapes, same calls as layers/linear.cpp): the step's floor.
//   b. The trainer's CNN (conv3x3 1→32, BN, ReLU, pool; conv3x3 32→64, BN, ReLU, pool; fc 3136→128, BN,
//      ReLU; fc 128→10): a training step at batch 64, and the eval forward at batch 1000.
//   c. BatchNorm2d forward (train) and forward+backward on [64,64,28,28] and [256,32,16,16]; LayerNorm and
//      GroupNorm(32) forward+backward on [64,64,28,28]. Each also reports its achieved bandwidth: the bytes
//      a minimal implementation must move (forward: read x, write y; backward: read x, dy, write dx) over
//      the time, as a fraction of the measured triad bandwidth.
//   d. Conv2d 32→64 3×3, pad 1, on [64,32,14,14]: forward, and forward+backward; and the GEMMs alone that
//      its forward+backward makes (same shapes, same per-sample split over threads, no im2col/col2im): the
//      rate the conv's own GEMM shapes allow.
//   e. sgemm 1024³ through nl::matmul, and copy/triad probes of memory bandwidth (16 MB arrays: L3-sized).
//
// Each result is the median (min, max) of --iters runs after --warmup. Prints one line per workload and
// writes JSON lines to --json.
#include <omp.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include <normlab/normlab.h>

#include "bench_util.h"
#include "core/kernels.h"
#include "models.h"

using namespace nl;
using bench::Result;
using bench::time_it;

namespace {

struct Args {
  int iters = 20, warmup = 3, threads = 2;
  std::string json, only;
  bool list = false;  // print the workload names and exit
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw Error(cat_str("normlab-bench: ", k, " needs a value"));
      return argv[++i];
    };
    if (k == "--iters")
      a.iters = std::stoi(value());
    else if (k == "--warmup")
      a.warmup = std::stoi(value());
    else if (k == "--threads")
      a.threads = std::stoi(value());
    else if (k == "--json")
      a.json = value();
    else if (k == "--only")
      a.only = value();
    else if (k == "--list")
      a.list = true;
    else if (k == "--help" || k == "-h") {
      std::printf(
          "usage: normlab-bench [--iters N] [--warmup N] [--threads N] [--only a,b,...] [--json FILE] "
          "[--list]\n");
      std::exit(0);
    } else {
      throw Error(cat_str("normlab-bench: unknown option ", k));
    }
  }
  return a;
}

// ---- e. the roofline
// ---------------------------------------------------------------------------------------

constexpr int64_t kProbeFloats = 4 * 1024 * 1024;  // 16 MB per array

std::function<void()> triad_probe(Tensor& a, const Tensor& b, const Tensor& c) {
  return [&a, &b, &c] {
    float* pa = a.data<float>();
    const float *pb = b.data<float>(), *pc = c.data<float>();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < kProbeFloats; ++i) pa[i] = pb[i] + 3.0f * pc[i];
  };
}

std::function<void()> copy_probe(Tensor& a, const Tensor& b) {
  return [&a, &b] {
    float* pa = a.data<float>();
    const float* pb = b.data<float>();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < kProbeFloats; ++i) pa[i] = pb[i];
  };
}

// ---- c. normalization kernels
// ------------------------------------------------------------------------------

double tensor_bytes(const Shape& s) { return static_cast<double>(numel_of(s)) * sizeof(float); }

std::function<void()> layer_forward(const ModulePtr& layer, const Shape& shape) {
  auto x = std::make_shared<Tensor>(randn(shape));
  return [layer, x] {
    NoGradGuard no_record;
    layer->forward(*x);
  };
}

// Forward and backward with a random upstream gradient (a plain sum would make BatchNorm's dx zero).
std::function<void()> layer_forward_backward(const ModulePtr& layer, const Shape& shape) {
  auto x = std::make_shared<Tensor>(randn(shape).requires_grad_());
  Shape out_shape;
  {
    NoGradGuard no_record;
    out_shape = layer->forward(*x).shape();
  }
  auto g = std::make_shared<Tensor>(randn(out_shape));
  return [layer, x, g] {
    x->zero_grad();
    layer->zero_grad();
    layer->forward(*x).backward(*g);
  };
}

// ---- a, b. whole models
// ------------------------------------------------------------------------------------

std::shared_ptr<Sequential> bench_model(const std::string& kind) {
  ModelConfig c;  // BatchNorm after every hidden layer, no bias before it
  c.model = kind;
  c.norm = "batch";
  return build_model(c);
}

std::function<void()> train_step(const std::string& kind, int64_t batch) {
  auto model = bench_model(kind);
  SGDOptions o;
  o.lr = 0.01;
  o.momentum = 0.9;
  auto opt = std::make_shared<SGD>(split_decay_groups(*model, 5e-4), o);
  auto x = std::make_shared<Tensor>(randn({batch, 1, 28, 28}));
  auto y = std::make_shared<Tensor>(randint(0, 10, {batch}));
  return [model, opt, x, y] {
    const Tensor loss = cross_entropy(model->forward(*x), *y);
    opt->zero_grad();
    loss.backward();
    opt->step();
  };
}

std::function<void()> eval_forward(const std::string& kind, int64_t batch) {
  auto model = bench_model(kind);
  model->eval();
  auto x = std::make_shared<Tensor>(randn({batch, 1, 28, 28}));
  return [model, x] {
    NoGradGuard no_record;
    model->forward(*x);
  };
}

// ---- a. the GEMMs of the MLP step alone
// -------------------------------------------------------------------

// What layers/linear.cpp asks of OpenBLAS in one training step of the MLP 784-512-512-10 at batch B (no bias:
// BatchNorm follows): forward y = x·Wᵀ per layer; backward, per layer, dX = dY·W and dW = dYᵀ·X side by side
// (gemm_pair), with no dX for the first layer (the images need no gradient). Everything else the step does
// (BatchNorm, ReLU, the loss, SGD, autograd) is left out, so the step's time minus this is its overhead.
std::function<void()> mlp_gemms_only(int64_t B) {
  struct Layer {
    int64_t in, out;
    Tensor w, dw, y, dy;  // dy: the gradient of y; y doubles as the next layer's input
  };
  auto layers = std::make_shared<std::vector<Layer>>();
  for (auto [in, out] : {std::pair<int64_t, int64_t>{784, 512}, {512, 512}, {512, 10}})
    layers->push_back({in, out, randn({out, in}), empty({out, in}), empty({B, out}), randn({B, out})});
  auto x = std::make_shared<Tensor>(randn({B, 784}));
  auto dx_buffers = std::make_shared<std::vector<Tensor>>();  // dX of layers 2 and 3: [B, 512]
  for (int i = 0; i < 2; ++i) dx_buffers->push_back(empty({B, 512}));
  return [=] {
    const Tensor* input = x.get();
    for (Layer& l : *layers) {
      kernels::gemm(false, true, B, l.out, l.in, 1.0, *input, 0, l.in, l.w, 0, l.in, 0.0, l.y, 0, l.out);
      input = &l.y;
    }
    for (int64_t i = 2; i >= 0; --i) {
      Layer& l = (*layers)[i];
      const Tensor& layer_input = i == 0 ? *x : (*layers)[i - 1].y;
      kernels::GemmArgs dx_args, dw_args;
      if (i > 0) {
        Tensor& dx = (*dx_buffers)[i - 1];
        dx_args = {false, false, B, l.in, l.out, 1.0, l.dy, 0, l.out, l.w, 0, l.in, 0.0, dx, 0, l.in};
      }
      dw_args = {true, false, l.out, l.in, B, 1.0, l.dy, 0, l.out, layer_input, 0, l.in, 0.0, l.dw, 0, l.in};
      kernels::gemm_pair(dx_args, dw_args);
    }
  };
}

// ---- d. the GEMMs of the conv alone
// -----------------------------------------------------------------------

// What core/cpu/conv.cpp's Conv2d(32→64, 3×3, pad 1) on [64,32,14,14] asks of OpenBLAS, per sample n on the
// thread t that owns it: forward Y_n = W·col (64 × 196 × 288); backward dWᵀ_t += col·dY_nᵀ (288 × 64 × 196)
// and dcol = Wᵀ·dY_n (288 × 196 × 64). The column buffer is not filled (im2col and col2im are left out):
// the time is the GEMMs' alone.
std::function<void()> conv_gemms_only() {
  const int64_t N = 64, OC = 64, K = 32 * 9, L = 14 * 14;
  const int threads = get_num_threads();
  auto w = std::make_shared<Tensor>(randn({OC, K})), dy = std::make_shared<Tensor>(randn({N, OC, L}));
  auto col = std::make_shared<Tensor>(randn({threads, K, L})),
       y = std::make_shared<Tensor>(empty({N, OC, L}));
  auto dw_t = std::make_shared<Tensor>(zeros({threads, K, OC}));
  return [=] {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t n = 0; n < N; ++n) {
      const int64_t t = omp_get_thread_num();
      kernels::gemm(false, false, OC, L, K, 1.0, *w, 0, K, *col, t * K * L, L, 0.0, *y, n * OC * L, L);
    }
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t n = 0; n < N; ++n) {
      const int64_t t = omp_get_thread_num();
      kernels::gemm(false, true, K, OC, L, 1.0, *col, t * K * L, L, *dy, n * OC * L, L, 1.0, *dw_t,
                    t * K * OC, OC);
      kernels::gemm(true, false, K, L, OC, 1.0, *w, 0, K, *dy, n * OC * L, L, 0.0, *col, t * K * L, L);
    }
  };
}

}  // namespace

int main(int argc, char** argv) {
  use_fastest_blas_kernel(argv);
  try {
    const Args args = parse(argc, argv);
    set_num_threads(args.threads);
    manual_seed(0);
    std::fprintf(stderr, "normlab-bench: %s\n", runtime_summary().c_str());
    std::set<std::string> only;
    {
      std::stringstream ss(args.only);
      std::string item;
      while (std::getline(ss, item, ','))
        if (!item.empty()) only.insert(item);
    }

    std::vector<Result> results;
    auto run = [&](const std::string& name, const std::function<void()>& fn, double bytes = 0,
                   double flops = 0) {
      if (args.list) {
        std::printf("%s\n", name.c_str());
        return;
      }
      if (!only.empty() && !only.count(name)) return;
      Result r = time_it(name, fn, args.iters, args.warmup);
      r.bytes = bytes;
      r.flops = flops;
      results.push_back(r);
    };

    // e. roofline first: the bandwidth fractions below refer to it (measured even when not selected).
    Tensor pa = zeros({kProbeFloats}), pb = randn({kProbeFloats}), pc = randn({kProbeFloats});
    const Result triad = time_it("triad_16MB", triad_probe(pa, pb, pc), args.iters, args.warmup);
    const double triad_gbs = 3 * tensor_bytes({kProbeFloats}) / (triad.median_ms * 1e6);
    run("triad_16MB", triad_probe(pa, pb, pc), 3 * tensor_bytes({kProbeFloats}));
    run("copy_16MB", copy_probe(pa, pb), 2 * tensor_bytes({kProbeFloats}));
    {
      Tensor a = randn({1024, 1024}), b = randn({1024, 1024});
      run(
          "sgemm_1024", [a, b] { matmul(a, b); }, 0, 2.0 * 1024 * 1024 * 1024);
    }

    // a, b. models
    run("mlp_train_step_b128", train_step("mlp", 128));
    run("mlp_eval_b1000", eval_forward("mlp", 1000));
    // 2·B·(784·512 + 512·512 + 512·10) per pass: the forward, the three dW, and dX of layers 2 and 3.
    run("mlp_gemms_only_b128", mlp_gemms_only(128), 0,
        2.0 * 128 * (3.0 * (784 * 512 + 512 * 512 + 512 * 10) - 784 * 512));
    run("cnn_train_step_b64", train_step("cnn", 64));
    run("cnn_eval_b1000", eval_forward("cnn", 1000));
    // The lab's small batches, where the per-step overhead (graph, allocation, threads, tiny GEMMs) shows.
    run("cnn_train_step_b2", train_step("cnn", 2));
    run("cnn_train_step_b8", train_step("cnn", 8));
    run("mlp_train_step_b8", train_step("mlp", 8));

    // c. normalization
    const Shape big{64, 64, 28, 28}, small{256, 32, 16, 16};
    run("bn2d_fwd_64x64x28x28", layer_forward(std::make_shared<BatchNorm2d>(64), big), 2 * tensor_bytes(big));
    run("bn2d_fwd_bwd_64x64x28x28", layer_forward_backward(std::make_shared<BatchNorm2d>(64), big),
        5 * tensor_bytes(big));
    run("bn2d_fwd_256x32x16x16", layer_forward(std::make_shared<BatchNorm2d>(32), small),
        2 * tensor_bytes(small));
    run("bn2d_fwd_bwd_256x32x16x16", layer_forward_backward(std::make_shared<BatchNorm2d>(32), small),
        5 * tensor_bytes(small));
    run("layernorm_fwd_bwd_64x64x28x28",
        layer_forward_backward(std::make_shared<LayerNorm>(Shape{64, 28, 28}), big), 5 * tensor_bytes(big));
    run("groupnorm32_fwd_bwd_64x64x28x28", layer_forward_backward(std::make_shared<GroupNorm>(32, 64), big),
        5 * tensor_bytes(big));

    // d. convolution
    {
      auto conv = std::make_shared<Conv2d>(32, 64, 3, 1, 1);
      const double flops = 2.0 * 64 * 64 * 14 * 14 * 32 * 9;
      run("conv3x3_32to64_fwd_64x32x14x14", layer_forward(conv, {64, 32, 14, 14}), 0, flops);
      run("conv3x3_32to64_fwd_bwd_64x32x14x14", layer_forward_backward(conv, {64, 32, 14, 14}), 0, 3 * flops);
      run("conv3x3_32to64_gemms_only_64x32x14x14", conv_gemms_only(), 0, 3 * flops);
    }

    if (args.list) return 0;
    // Report.
    std::ofstream json;
    if (!args.json.empty()) json.open(args.json);
    for (const Result& r : results) {
      std::printf("%-40s median %9.3f ms  min %9.3f  max %9.3f", r.name.c_str(), r.median_ms, r.min_ms,
                  r.max_ms);
      std::ostringstream extra;
      if (r.bytes > 0) {
        const double gbs = r.bytes / (r.median_ms * 1e6);
        std::printf("  %6.1f GB/s", gbs);
        extra << ", \"gb_per_s\": " << gbs;
        if (triad_gbs > 0 && r.name != "triad_16MB") {
          std::printf(" (%3.0f%% of triad)", 100 * gbs / triad_gbs);
          extra << ", \"fraction_of_triad\": " << gbs / triad_gbs;
        }
      }
      if (r.flops > 0) {
        const double gflops = r.flops / (r.median_ms * 1e6);
        std::printf("  %6.1f GFLOP/s", gflops);
        extra << ", \"gflop_per_s\": " << gflops;
      }
      std::printf("\n");
      if (json)
        json << "{\"name\": \"" << r.name << "\", \"median_ms\": " << r.median_ms
             << ", \"min_ms\": " << r.min_ms << ", \"max_ms\": " << r.max_ms << ", \"iters\": " << r.iters
             << extra.str() << "}\n";
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
