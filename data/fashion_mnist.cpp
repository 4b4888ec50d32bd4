// Fashion-MNIST loader (data/fashion_mnist.h): find the folder, find the files, read them as IDX.
#include "data/fashion_mnist.h"

#include <cstdlib>
#include <filesystem>

#include "data/idx.h"

namespace nl {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kImageSize = 28;
constexpr int64_t kNumClasses = 10;

const char* env_dir() {
  const char* value = std::getenv("NORMLAB_FASHION_MNIST");
  return value && *value ? value : nullptr;
}

std::string dir_origin(const std::string& dir) {
  if (!dir.empty()) return "given as the dir argument";
  if (env_dir()) return "from the environment variable NORMLAB_FASHION_MNIST";
  return "the default location";
}

// "<dir>/<stem>.gz" if it exists, else "<dir>/<stem>" if it exists, else "".
std::string find_file(const std::string& dir, const std::string& stem) {
  std::error_code ec;
  for (const std::string& name : {stem + ".gz", stem}) {
    const fs::path path = fs::path(dir) / name;
    if (fs::is_regular_file(path, ec)) return path.string();
  }
  return "";
}

std::string file_prefix(const std::string& split) {
  check(split == "train" || split == "test",
        "load_fashion_mnist: split must be \"train\" or \"test\", got \"", split, "\"");
  return split == "train" ? "train" : "t10k";
}

}  // namespace

std::string fashion_mnist_dir(const std::string& dir) {
  if (!dir.empty()) return dir;
  if (const char* from_env = env_dir()) return from_env;
  return kFashionMnistDefaultDir;
}

bool fashion_mnist_available(const std::string& dir) {
  const std::string folder = fashion_mnist_dir(dir);
  for (const char* prefix : {"train", "t10k"})
    for (const char* kind : {"-images-idx3-ubyte", "-labels-idx1-ubyte"})
      if (find_file(folder, std::string(prefix) + kind).empty()) return false;
  return true;
}

TensorDataset load_fashion_mnist(const std::string& split, const std::string& dir) {
  const std::string prefix = file_prefix(split);
  const std::string folder = fashion_mnist_dir(dir);
  std::string paths[2];
  const std::string stems[2] = {prefix + "-images-idx3-ubyte", prefix + "-labels-idx1-ubyte"};
  for (int i = 0; i < 2; ++i) {
    paths[i] = find_file(folder, stems[i]);
    check(!paths[i].empty(), "load_fashion_mnist: the Fashion-MNIST ", split, " set is missing: no ",
          stems[i], ".gz or ", stems[i], " in ", folder, " (", dir_origin(dir),
          "). Install Debian's dataset-fashion-mnist ",
          "package (apt-get install dataset-fashion-mnist), or set NORMLAB_FASHION_MNIST to a folder holding "
          "the ",
          "four IDX files");
  }
  TensorDataset dataset = load_idx_dataset(paths[0], paths[1]);
  const Shape& shape = dataset.inputs().shape();
  check(shape[2] == kImageSize && shape[3] == kImageSize, "load_fashion_mnist: ", paths[0], " holds ",
        shape[2], "x", shape[3], " images; Fashion-MNIST images are ", kImageSize, "x", kImageSize);
  check(dataset.num_classes() <= kNumClasses, "load_fashion_mnist: ", paths[1], " has label ",
        dataset.num_classes() - 1, "; Fashion-MNIST labels are 0..", kNumClasses - 1);
  return dataset;
}

const std::vector<std::string>& fashion_mnist_classes() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

}  // namespace nl
