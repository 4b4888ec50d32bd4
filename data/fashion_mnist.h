// Fashion-MNIST (Zalando, 2017): 28×28 grayscale pictures of clothing in 10 classes, 60000 for training and
// 10000 for testing, stored as four IDX files (data/idx.h), gzip-compressed or plain:
//   train-images-idx3-ubyte[.gz]  train-labels-idx1-ubyte[.gz]
//   t10k-images-idx3-ubyte[.gz]   t10k-labels-idx1-ubyte[.gz]
// (.gz is tried first). The counts are not enforced, so a smaller set in the same format loads too.
//
// Where the files are looked up, first match wins:
//   1. the `dir` argument, if not empty
//   2. the environment variable NORMLAB_FASHION_MNIST, if set and not empty
//   3. /usr/share/datasets/fashion-mnist, where Debian's dataset-fashion-mnist package installs them
//
// Images come out as float32 (N, 1, 28, 28) with each byte b mapped to b / 255 (pixels in [0, 1]); labels as
// int64 (N) in 0..9. Normalize afterwards if the model wants zero-mean inputs (data/transforms.h).
#pragma once

#include <string>
#include <vector>

#include "dataset.h"

namespace nl {

inline constexpr const char* kFashionMnistDefaultDir = "/usr/share/datasets/fashion-mnist";

// The pixel mean and standard deviation over the 60000 training images (pixels scaled to [0, 1]): the
// trainers normalize every input with them, x ← (x − mean)/std (data/transforms.h).
inline constexpr double kFashionMnistMean = 0.2860, kFashionMnistStd = 0.3530;

// The folder the files are looked up in (the rules above).
std::string fashion_mnist_dir(const std::string& dir = "");
// True when all four files are present (each as .gz or plain) in fashion_mnist_dir(dir).
bool fashion_mnist_available(const std::string& dir = "");
// split: "train" (60000 examples) or "test" (10000). A missing file is an nl::Error that names it, the
// folder, and the Debian package that provides it (dataset-fashion-mnist).
TensorDataset load_fashion_mnist(const std::string& split, const std::string& dir = "");
// Class names by label: "T-shirt/top", "Trouser", ..., "Ankle boot".
const std::vector<std::string>& fashion_mnist_classes();

}  // namespace nl
