// ImageFolder, load_image and resize_bilinear on images the test writes with stb_image_write.
#define STB_IMAGE_WRITE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

#include <algorithm>

#include <catch2/catch.hpp>

#include "data/dataloader.h"
#include "data/image_folder.h"
#include "test_data_temp_dir.h"

using namespace nl;
using Catch::Contains;

namespace {

// Writes a w×h image with `comp` channels; pixel (x, y), channel c has value f(x, y, c).
template <class F>
std::vector<uint8_t> make_pixels(int w, int h, int comp, F f) {
  std::vector<uint8_t> p(static_cast<size_t>(w * h * comp));
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < comp; ++c) p[(y * w + x) * comp + c] = static_cast<uint8_t>(f(x, y, c));
  return p;
}

void write_png(const std::string& path, int w, int h, int comp, const std::vector<uint8_t>& pixels) {
  REQUIRE(stbi_write_png(path.c_str(), w, h, comp, pixels.data(), w * comp) != 0);
}

float byte(int v) { return static_cast<float>(v) / 255.0f; }

}  // namespace

TEST_CASE("ImageFolder lists classes by sorted folder name and decodes PNG, BMP and JPEG", "[data][images]") {
  TempDir dir;
  const auto gray = [](int x, int y, int) { return 10 * (y * 3 + x); };
  const auto rgb = [](int x, int y, int c) { return c == 0 ? 200 : c == 1 ? 100 + x : 50 + y; };
  // Written out of order on purpose: classes and files are sorted by name.
  write_png(dir.file("zebra/b.png"), 3, 2, 1, make_pixels(3, 2, 1, gray));
  write_png(dir.file("zebra/a.PNG"), 3, 2, 3, make_pixels(3, 2, 3, rgb));
  REQUIRE(stbi_write_bmp(dir.file("apple/one.bmp").c_str(), 3, 2, 3, make_pixels(3, 2, 3, rgb).data()) != 0);
  const auto flat = make_pixels(8, 8, 3, [](int, int, int c) { return 60 + 60 * c; });
  REQUIRE(stbi_write_jpg(dir.file("apple/two.jpeg").c_str(), 8, 8, 3, flat.data(), 95) != 0);
  write_bytes(dir.file("apple/notes.txt"), "not an image");
  write_bytes(dir.file("apple/.hidden.png"), "not an image either");
  write_png(dir.file(".cache/x.png"), 3, 2, 1, make_pixels(3, 2, 1, gray));
  write_png(dir.file("apple/deeper/skipped.png"), 3, 2, 1, make_pixels(3, 2, 1, gray));

  const ImageFolder rgb_folder(dir.path.string(), 3, 2, 3);
  REQUIRE(rgb_folder.classes() == std::vector<std::string>{"apple", "zebra"});
  REQUIRE(rgb_folder.size() == 4);
  CHECK(rgb_folder.path(0).ends_with("apple/one.bmp"));
  CHECK(rgb_folder.path(1).ends_with("apple/two.jpeg"));
  CHECK(rgb_folder.path(2).ends_with("zebra/a.PNG"));
  CHECK(rgb_folder.path(3).ends_with("zebra/b.png"));
  CHECK(rgb_folder.label(1) == 0);
  CHECK(rgb_folder.label(2) == 1);

  // BMP and PNG are lossless: every value is byte / 255, laid out (C, H, W).
  for (const int64_t i : {0, 2}) {
    const Example ex = rgb_folder.get(i);
    REQUIRE(ex.input.shape() == Shape{3, 2, 3});
    CHECK(ex.input.dtype() == kFloat32);
    const std::vector<float> v = ex.input.to_vector<float>();
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 2; ++y)
        for (int x = 0; x < 3; ++x) CHECK(v[(c * 2 + y) * 3 + x] == byte(rgb(x, y, c)));
  }
  // JPEG is lossy, and resized from 8x8 to 2x3: a flat color stays close to itself.
  const std::vector<float> jpeg = rgb_folder.get(1).input.to_vector<float>();
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < 6; ++i) CHECK(jpeg[c * 6 + i] == Approx(byte(60 + 60 * c)).margin(3.0 / 255));
  // A gray image becomes three equal channels.
  const std::vector<float> gray3 = rgb_folder.get(3).input.to_vector<float>();
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < 6; ++i) CHECK(gray3[c * 6 + i] == byte(10 * i));

  // One channel: color becomes stb_image's luma (77 R + 150 G + 29 B) >> 8.
  const ImageFolder gray_folder(dir.path.string(), 1, 2, 3);
  const std::vector<float> luma = gray_folder.get(2).input.to_vector<float>();
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 3; ++x)
      CHECK(luma[y * 3 + x] == byte((77 * 200 + 150 * (100 + x) + 29 * (50 + y)) >> 8));
  CHECK(gray_folder.get(3).input.to_vector<float>() ==
        std::vector<float>{byte(0), byte(10), byte(20), byte(30), byte(40), byte(50)});

  // The folder batches through a DataLoader, resized to one size.
  DataLoader loader(std::make_shared<ImageFolder>(dir.path.string(), 1, 5, 4), {.batch_size = 4, .seed = 1});
  for (const Batch& b : loader.batches(0)) {
    CHECK(b.inputs.shape() == Shape{4, 1, 5, 4});
    std::vector<int64_t> labels = b.labels.to_vector<int64_t>();
    std::sort(labels.begin(), labels.end());
    CHECK(labels == std::vector<int64_t>{0, 0, 1, 1});
  }
}

TEST_CASE("resize_bilinear follows the align_corners=False convention", "[data][images]") {
  // Upsampling 1x2 → 1x4: source columns max((x + 0.5)/2 − 0.5, 0) = 0, 0.25, 0.75, 1.25 (clamped to 1).
  const Tensor row = from_vector<float>({0, 1}, {1, 1, 2});
  CHECK(resize_bilinear(row, 1, 4).to_vector<float>() == std::vector<float>{0, 0.25f, 0.75f, 1});
  // Downsampling 1x4 → 1x2: source columns 0.5 and 2.5.
  const Tensor ramp = from_vector<float>({0, 1, 2, 3}, {1, 1, 4});
  CHECK(resize_bilinear(ramp, 1, 2).to_vector<float>() == std::vector<float>{0.5f, 2.5f});
  // 2x2 → 3x3 in both directions at once: src = (o + 0.5)·2/3 − 0.5 = 0 (clamped), 0.5, 1 (clamped
  // neighbour).
  const Tensor square = from_vector<float>({0, 4, 8, 12}, {1, 2, 2});
  CHECK(resize_bilinear(square, 3, 3).to_vector<float>() == std::vector<float>{0, 2, 4, 4, 6, 8, 8, 10, 12});
  // The same size is the identity.
  const Tensor img = from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 1, 3});
  CHECK(resize_bilinear(img, 1, 3).to_vector<float>() == img.to_vector<float>());
  REQUIRE_THROWS_WITH(resize_bilinear(zeros({2, 2}), 1, 1), Contains("expected an image (C, H, W)"));
  REQUIRE_THROWS_WITH(resize_bilinear(img, 0, 2), Contains("height and width must be >= 1"));
}

TEST_CASE("ImageFolder and load_image report bad input with the file or folder name", "[data][images]") {
  TempDir dir;
  const auto pixels = make_pixels(4, 4, 3, [](int x, int y, int c) { return x * 40 + y * 10 + c; });

  SECTION("a corrupt image names the file, in get() and through a DataLoader") {
    write_png(dir.file("good/ok.png"), 4, 4, 3, pixels);
    const std::string garbage = dir.file("good/garbage.png");
    write_bytes(garbage, "this is not a PNG file at all");
    const std::string cut = dir.file("good/truncated.png");
    write_png(cut, 4, 4, 3, pixels);
    const std::string whole = read_bytes(cut);
    write_bytes(cut, whole.substr(0, whole.size() / 2));
    const std::string empty_file = dir.file("good/zero.bmp");
    write_bytes(empty_file, "");

    const auto folder = std::make_shared<ImageFolder>(dir.path.string(), 3, 4, 4);
    REQUIRE(folder->size() == 4);  // files are only decoded on get()
    REQUIRE_THROWS_WITH(folder->get(0), Contains("cannot decode") && Contains(garbage));
    REQUIRE_THROWS_WITH(folder->get(2), Contains("cannot decode") && Contains(cut));
    REQUIRE_THROWS_WITH(folder->get(3), Contains("cannot decode") && Contains(empty_file));
    CHECK(folder->get(1).input.shape() == Shape{3, 4, 4});

    DataLoader loader(folder, {.batch_size = 2, .shuffle = false});
    loader.start_epoch(0);
    Batch b;
    REQUIRE_THROWS_WITH(loader.next(b), Contains("DataLoader: epoch 0, batch 0") && Contains(garbage));
  }
  SECTION("missing files and folders") {
    REQUIRE_THROWS_WITH(load_image(dir.file("nope.png"), 3, 4, 4),
                        Contains("cannot open") && Contains("nope.png"));
    REQUIRE_THROWS_WITH(ImageFolder(dir.file("absent"), 3, 4, 4), Contains("absent is not a folder"));
    REQUIRE_THROWS_WITH(ImageFolder(dir.path.string(), 3, 4, 4), Contains("has no class sub-folders"));
    std::filesystem::create_directories(dir.path / "empty_class");
    write_bytes(dir.file("empty_class/readme.txt"), "text");
    REQUIRE_THROWS_WITH(ImageFolder(dir.path.string(), 3, 4, 4),
                        Contains("class folder") && Contains("empty_class has no image files"));
  }
  SECTION("bad options") {
    write_png(dir.file("a/x.png"), 4, 4, 3, pixels);
    REQUIRE_THROWS_WITH(ImageFolder(dir.path.string(), 2, 4, 4), Contains("channels must be 1 or 3, got 2"));
    REQUIRE_THROWS_WITH(ImageFolder(dir.path.string(), 3, 0, 4), Contains("height and width must be >= 1"));
    const ImageFolder folder(dir.path.string(), 3, 4, 4);
    REQUIRE_THROWS_WITH(folder.get(1), Contains("index 1 is out of range for a dataset of 1"));
  }
}
