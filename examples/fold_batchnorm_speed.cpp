// How much inference time fold_batchnorm saves, and that it changes nothing: a small VGG-style CNN, an MLP
// and the trainer's Fashion-MNIST CNN at batch 1000, each timed in eval mode before and after folding its
// BatchNorms into the preceding Conv2d/Linear.
//
//   normlab-fold-batchnorm-speed [repeats]
//
// Prints the median time per forward pass, the speedup, and the relative difference of the outputs.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <normlab/normlab.h>

#include "layers/activation.h"
#include "layers/conv.h"
#include "layers/linear.h"

namespace {

double median_ms(nl::Module& model, const nl::Tensor& x, int repeats) {
  nl::NoGradGuard no_record;
  model(x);  // warm-up: caches, thread pool
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    model(x);
    times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

double relative_difference(const nl::Tensor& a, const nl::Tensor& b) {
  const auto va = a.to_vector<double>(), vb = b.to_vector<double>();
  double num = 0, den = 0;
  for (size_t i = 0; i < va.size(); ++i) num += (va[i] - vb[i]) * (va[i] - vb[i]), den += vb[i] * vb[i];
  return std::sqrt(num / den);
}

// Trains the running statistics a little so folding has real numbers to fold, then switches to eval.
void warm_statistics(nl::Module& model, const nl::Shape& shape, nl::Generator& gen) {
  nl::NoGradGuard no_record;
  model.train();
  for (int i = 0; i < 3; ++i) model(nl::randn(shape, nl::kFloat32, &gen, 0.5, 1.5));
  model.eval();
}

void run(const char* name, nl::Sequential& model, const nl::Shape& shape, int repeats, nl::Generator& gen) {
  warm_statistics(model, shape, gen);
  const nl::Tensor x = nl::randn(shape, nl::kFloat32, &gen);
  nl::Tensor before;
  {
    nl::NoGradGuard no_record;
    before = model(x);
  }
  const double t_before = median_ms(model, x, repeats);
  const auto folded = nl::fold_batchnorm(model);
  nl::Tensor after;
  {
    nl::NoGradGuard no_record;
    after = model(x);
  }
  const double t_after = median_ms(model, x, repeats);
  std::printf(
      "%-28s input %-18s folded %2zu BatchNorms: %8.3f ms -> %8.3f ms  (%.2fx), relative output "
      "difference %.2e\n",
      name, nl::shape_str(shape).c_str(), folded.size(), t_before, t_after, t_before / t_after,
      relative_difference(after, before));
}

}  // namespace

int main(int argc, char** argv) {
  nl::use_fastest_blas_kernel(argv);
  const int repeats = argc > 1 ? std::max(1, std::atoi(argv[1])) : 30;
  std::printf("%s\n", nl::runtime_summary().c_str());
  nl::Generator gen(2024);

  nl::Sequential cnn;
  int64_t in = 3;
  for (int64_t out : {32, 32, 64, 64}) {
    cnn.add(std::make_shared<nl::Conv2d>(in, out, 3,
                                         nl::Conv2dOptions{.padding = 1, .bias = false, .generator = &gen}));
    cnn.add(std::make_shared<nl::BatchNorm2d>(out));
    cnn.add(std::make_shared<nl::ReLU>());
    in = out;
  }
  run("CNN (4x conv3x3 + BN + ReLU)", cnn, {32, 3, 32, 32}, repeats, gen);

  nl::Sequential mlp;
  in = 784;
  for (int64_t out : {1024, 1024, 1024}) {
    mlp.add(std::make_shared<nl::Linear>(in, out, false, nl::kFloat32, &gen));
    mlp.add(std::make_shared<nl::BatchNorm1d>(out));
    mlp.add(std::make_shared<nl::ReLU>());
    in = out;
  }
  run("MLP (3x Linear + BN + ReLU)", mlp, {256, 784}, repeats, gen);

  // The trainer's CNN (models/models.h) at the benchmark's eval batch: its activations are large enough
  // that BatchNorm's own pass over them shows.
  nl::ModelConfig config;
  config.model = "cnn";
  config.norm = "batch";
  auto trainer_cnn = nl::build_model(config);
  run("trainer CNN (Fashion-MNIST)", *trainer_cnn, {1000, 1, 28, 28}, std::max(3, repeats / 3), gen);
  return 0;
}
