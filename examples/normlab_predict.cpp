// normlab-predict: classifies image files with a checkpoint saved by normlab-train.
//
//   normlab-predict --checkpoint run.safetensors shirt.png boot.png
//
// Each image is decoded (PNG, JPEG or BMP), converted to gray 28×28, scaled to [0, 1] and normalized with the
// Fashion-MNIST statistics, exactly as in training; the model runs in eval mode. Prints one line per image:
// the file, the predicted class and its probability. (Fashion-MNIST images are white clothes on black.)
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
    const ModelConfig config = from_metadata(read_checkpoint_metadata(checkpoint));
    std::shared_ptr<Sequential> model = build_model(config);
    load_model(checkpoint, *model);
    model->eval();
    NoGradGuard no_record;
    int failures = 0;
    for (const std::string& path : images) {
      try {
        // The same normalization as examples/trainer.cpp (Fashion-MNIST mean 0.2860, std 0.3530).
        const Tensor x = div(sub(load_image(path, 1, 28, 28), 0.2860), 0.3530).unsqueeze(0);
        const Tensor p = softmax(model->forward(x), 1);
        const int64_t k = argmax(p, 1).to_vector<int64_t>()[0];
        std::printf("%s\t%s\t%.3f\n", path.c_str(), fashion_mnist_classes()[k].c_str(),
                    p.to_vector<double>()[k]);
      } catch (const Error& e) {
        std::fprintf(stderr, "normlab-predict: %s\n", e.what());
        ++failures;
      }
    }
    return failures ? 1 : 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "normlab-predict: %s\n", e.what());
    return 1;
  }
}
