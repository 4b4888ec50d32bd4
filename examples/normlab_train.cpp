// normlab-train: trains the MLP, the small CNN or a small ResNet on Fashion-MNIST with a chosen
// normalization, and reports train/test loss and accuracy after every epoch. See examples/trainer.h.
//
//   normlab-train --model cnn --norm batch --epochs 3
//   normlab-train --model cnn --norm none --lr 0.05               # same lr, no normalization
//   normlab-train --model mlp --norm batch --bn-mode-at-test train # the "forgot model.eval()" pitfall
//   normlab-train --save run.safetensors ... ; normlab-train --resume run.safetensors
//   normlab-train --model mlp --bn-momentum cumulative --bn-eps 1e-3 --bn-affine off
//   normlab-train --model cnn --recompute-bn-stats 100           # precise BN statistics before each test
#include <CLI/CLI.hpp>

#include <cstdio>

#include "trainer.h"

using namespace nl;
using namespace nl::examples;

int main(int argc, char** argv) {
  use_fastest_blas_kernel(argv);
  TrainOptions o;
  CLI::App app{"normlab-train: train an MLP, CNN or ResNet on Fashion-MNIST to study normalization"};
  add_command_line_options(app, o);
  CLI11_PARSE(app, argc, argv);
  try {
    train(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "normlab-train: %s\n", e.what());
    return 1;
  }
  return 0;
}
