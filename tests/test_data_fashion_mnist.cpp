// Fashion-MNIST: the real data set when Debian's dataset-fashion-mnist is installed (skipped otherwise), and
// the lookup rules and error messages on small fake copies the test writes.
#include <zlib.h>

#include <algorithm>
#include <cstdlib>

#include <catch2/catch.hpp>

#include "data/fashion_mnist.h"
#include "test_data_temp_dir.h"

using namespace nl;
using Catch::Contains;

namespace {

// An unsigned-byte IDX file: magic 0x000008 <rank>, big-endian int32 dims, then the body.
std::string idx_bytes(const std::vector<int32_t>& dims, const std::vector<uint8_t>& body) {
  std::string bytes = {0, 0, 8, static_cast<char>(dims.size())};
  for (const int32_t d : dims)
    for (int shift = 24; shift >= 0; shift -= 8)
      bytes += static_cast<char>((static_cast<uint32_t>(d) >> shift) & 0xff);
  bytes.append(body.begin(), body.end());
  return bytes;
}

// One split of a fake Fashion-MNIST in `dir`: `n` images of size×size whose pixels all equal the image index,
// and the given labels, written gzip-compressed (gz) or plain; the loader accepts both.
void write_fake_split(const TempDir& dir, const std::string& prefix, int32_t n, int32_t size,
                      const std::vector<uint8_t>& labels, bool gz) {
  std::vector<uint8_t> pixels;
  for (int32_t i = 0; i < n; ++i) pixels.insert(pixels.end(), size_t(size) * size, static_cast<uint8_t>(i));
  const std::string images = idx_bytes({n, size, size}, pixels);
  const std::string label_bytes = idx_bytes({static_cast<int32_t>(labels.size())}, labels);
  const std::string suffix = gz ? ".gz" : "";
  for (const auto& [name, bytes] : {std::pair{prefix + "-images-idx3-ubyte", images},
                                    std::pair{prefix + "-labels-idx1-ubyte", label_bytes}}) {
    if (!gz) {
      write_bytes(dir.file(name), bytes);
      continue;
    }
    gzFile f = gzopen(dir.file(name + suffix).c_str(), "wb");
    REQUIRE(f != nullptr);
    REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
    REQUIRE(gzclose(f) == Z_OK);
  }
}

// Sets (or unsets, with nullptr) NORMLAB_FASHION_MNIST for one scope.
class ScopedEnv {
 public:
  explicit ScopedEnv(const char* value) {
    if (const char* old = std::getenv("NORMLAB_FASHION_MNIST")) old_ = old, had_ = true;
    if (value)
      ::setenv("NORMLAB_FASHION_MNIST", value, 1);
    else
      ::unsetenv("NORMLAB_FASHION_MNIST");
  }
  ~ScopedEnv() {
    if (had_)
      ::setenv("NORMLAB_FASHION_MNIST", old_.c_str(), 1);
    else
      ::unsetenv("NORMLAB_FASHION_MNIST");
  }

 private:
  std::string old_;
  bool had_ = false;
};

}  // namespace

TEST_CASE("Fashion-MNIST real data set from /usr/share/datasets/fashion-mnist (skipped when absent)",
          "[data][fashion]") {
  if (!fashion_mnist_available(kFashionMnistDefaultDir)) {
    WARN("Fashion-MNIST test skipped: no data set in " << kFashionMnistDefaultDir
                                                       << " (apt-get install dataset-fashion-mnist)");
    return;
  }
  for (const auto& [split, count] : {std::pair{"train", 60000}, std::pair{"test", 10000}}) {
    INFO("split " << split);
    const TensorDataset ds = load_fashion_mnist(split, kFashionMnistDefaultDir);
    REQUIRE(ds.size() == count);
    CHECK(ds.inputs().shape() == Shape{count, 1, 28, 28});
    CHECK(ds.inputs().dtype() == kFloat32);
    CHECK(ds.num_classes() == 10);
    // Both splits are balanced: count / 10 examples per class.
    std::vector<int64_t> per_class(10, 0);
    for (const int64_t y : ds.labels().to_vector<int64_t>()) {
      REQUIRE(y >= 0);
      REQUIRE(y < 10);
      ++per_class[y];
    }
    CHECK(per_class == std::vector<int64_t>(10, count / 10));
    const float* x = ds.inputs().data<float>();
    const auto [lo, hi] = std::minmax_element(x, x + ds.inputs().numel());
    CHECK(*lo == 0.0f);
    CHECK(*hi == 1.0f);
  }
  CHECK(fashion_mnist_classes().size() == 10);
  CHECK(fashion_mnist_classes()[9] == "Ankle boot");
}

TEST_CASE("load_fashion_mnist looks in the dir argument, then NORMLAB_FASHION_MNIST, then the default",
          "[data][fashion]") {
  TempDir from_env, from_arg;
  write_fake_split(from_env, "train", 3, 28, {0, 9, 4}, true);
  write_fake_split(from_env, "t10k", 2, 28, {1, 2}, false);
  write_fake_split(from_arg, "train", 1, 28, {5}, false);
  write_fake_split(from_arg, "t10k", 1, 28, {6}, true);
  {
    ScopedEnv env(nullptr);
    CHECK(fashion_mnist_dir() == kFashionMnistDefaultDir);
  }
  ScopedEnv env(from_env.path.c_str());
  CHECK(fashion_mnist_dir() == from_env.path.string());
  CHECK(fashion_mnist_dir(from_arg.path.string()) == from_arg.path.string());
  CHECK(fashion_mnist_available());

  const TensorDataset train = load_fashion_mnist("train");
  REQUIRE(train.size() == 3);
  CHECK(train.inputs().shape() == Shape{3, 1, 28, 28});
  CHECK(train.labels().to_vector<int64_t>() == std::vector<int64_t>{0, 9, 4});
  CHECK(train.get(2).input.to_vector<float>()[100] == 2.0f / 255.0f);
  CHECK(load_fashion_mnist("test").labels().to_vector<int64_t>() == std::vector<int64_t>{1, 2});
  CHECK(load_fashion_mnist("train", from_arg.path.string()).labels().to_vector<int64_t>() ==
        std::vector<int64_t>{5});
}

TEST_CASE("load_fashion_mnist explains what is missing and what is wrong", "[data][fashion]") {
  TempDir dir;
  const std::string folder = dir.path.string();
  SECTION("a missing data set names the file, the folder and the Debian package") {
    CHECK_FALSE(fashion_mnist_available(folder));
    REQUIRE_THROWS_WITH(
        load_fashion_mnist("train", folder),
        Contains("Fashion-MNIST train set is missing") && Contains("train-images-idx3-ubyte.gz") &&
            Contains(folder) && Contains("given as the dir argument") &&
            Contains("apt-get install dataset-fashion-mnist") && Contains("NORMLAB_FASHION_MNIST"));
    ScopedEnv env(folder.c_str());
    REQUIRE_THROWS_WITH(load_fashion_mnist("test"),
                        Contains("t10k-images-idx3-ubyte") &&
                            Contains("from the environment variable NORMLAB_FASHION_MNIST"));
  }
  SECTION("only the labels are missing") {
    write_fake_split(dir, "train", 2, 28, {0, 1}, true);
    std::filesystem::remove(dir.path / "train-labels-idx1-ubyte.gz");
    REQUIRE_THROWS_WITH(load_fashion_mnist("train", folder),
                        Contains("no train-labels-idx1-ubyte.gz or train-labels-idx1-ubyte") &&
                            Contains("dataset-fashion-mnist"));
  }
  SECTION("an unknown split") {
    REQUIRE_THROWS_WITH(load_fashion_mnist("validation", folder),
                        Contains("split must be \"train\" or \"test\", got \"validation\""));
  }
  SECTION("images of the wrong size") {
    write_fake_split(dir, "train", 2, 27, {0, 1}, false);
    REQUIRE_THROWS_WITH(load_fashion_mnist("train", folder),
                        Contains("train-images-idx3-ubyte holds 27x27 images") && Contains("28x28"));
  }
  SECTION("a label out of range") {
    write_fake_split(dir, "train", 2, 28, {0, 12}, false);
    REQUIRE_THROWS_WITH(load_fashion_mnist("train", folder),
                        Contains("train-labels-idx1-ubyte has label 12") && Contains("labels are 0..9"));
  }
  SECTION("image and label counts disagree") {
    write_fake_split(dir, "train", 2, 28, {0, 1, 2}, true);
    REQUIRE_THROWS_WITH(load_fashion_mnist("train", folder),
                        Contains("has 2 images but") && Contains("has 3 labels"));
  }
}
