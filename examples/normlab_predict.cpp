// normlab-predict: classifies image files with a checkpoint saved by normlab-train.
//
//   normlab-predict --checkpoint run.safetensors shirt.png boot.png
//
// Each image is decoded (PNG, JPEG or BMP), converted to gray 28×28, scaled to [0, 1] and normalized with the
// Fashion-MNIST statistics, exactly as in training; the model runs in eval mode (examples/models.h,
// classify_images). Prints one line per image: the file, the predicted class and its probability.
// Fashion-MNIST images are light clothes on a black background; photos need the same look to be recognized.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "models.h"

using namespace nl;
using namespace nl::examples;

int main(int argc, char** argv) {
  use_fastest_blas_kernel(argv);
  std::string checkpoint;
  std::vector<std::string> images;
  CLI::App app{"normlab-predict: classify images with a normlab-train checkpoint"};
  app.add_option("--checkpoint", checkpoint, "a checkpoint written by normlab-train --save")->required();
  app.add_option("images", images, "PNG, JPEG or BMP files")->required();
  CLI11_PARSE(app, argc, argv);
  try {
    for (const Prediction& p : classify_images(checkpoint, images))
      std::printf("%s\t%s\t%.3f\n", p.path.c_str(), p.class_name.c_str(), p.probability);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "normlab-predict: %s\n", e.what());
    return 1;
  }
}
