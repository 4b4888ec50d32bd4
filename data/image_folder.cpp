// ImageFolder, load_image and resize_bilinear (data/image_folder.h). This file holds stb_image's
// implementation for the whole library (STB_IMAGE_IMPLEMENTATION is defined here and nowhere else).
#include "data/image_folder.h"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <filesystem>
#include <memory>

#include "core/file_util.h"

namespace nl {
namespace {
[[noreturn]] void stb_assertion_failed(const char* condition) {
  throw Error(cat_str("load_image: stb_image hit an internal check (", condition, ") on a malformed image"));
}
}  // namespace
}  // namespace nl

// stb_image's asserts guard its own invariants; a malformed file must not abort the program, so a failed
// check throws instead. Only the formats we document are compiled in, and error strings are the readable
// ones.
#define STBI_ASSERT(x) ((x) ? (void)0 : nl::stb_assertion_failed(#x))
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_NO_STDIO
#define STBI_FAILURE_USERMSG
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb_image.h>
#pragma GCC diagnostic pop

namespace nl {
namespace {

namespace fs = std::filesystem;

bool has_image_extension(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

bool is_hidden(const fs::path& path) { return path.filename().string().starts_with('.'); }

// The entries of a folder; a listing error is an nl::Error (std::filesystem would throw its own type).
std::vector<fs::directory_entry> list_folder(const fs::path& dir) {
  std::vector<fs::directory_entry> entries;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
    entries.push_back(*it);
  check(!ec, "ImageFolder: cannot list ", dir.string(), ": ", ec.message());
  return entries;
}

void check_image_options(int64_t channels, int64_t height, int64_t width, const char* op) {
  check(channels == 1 || channels == 3, op, ": channels must be 1 or 3, got ", channels);
  check(height >= 1 && width >= 1, op, ": height and width must be >= 1, got ", height, "x", width);
}

}  // namespace

Tensor resize_bilinear(const Tensor& image, int64_t height, int64_t width) {
  check(image.dim() == 3, "resize_bilinear: expected an image (C, H, W), got shape ", image.shape());
  check(height >= 1 && width >= 1, "resize_bilinear: height and width must be >= 1, got ", height, "x",
        width);
  const int64_t channels = image.size(0), in_h = image.size(1), in_w = image.size(2);
  check(in_h >= 1 && in_w >= 1, "resize_bilinear: input ", image.shape(), " is empty");
  const Tensor src = image.contiguous();
  Tensor out = empty({channels, height, width}, src.dtype());

  // One source coordinate per output row/column: the two neighbours and the weight of the second.
  struct Tap {
    int64_t i0, i1;
    double w1;
  };
  const auto taps = [](int64_t in, int64_t out_size) {
    std::vector<Tap> result(static_cast<size_t>(out_size));
    const double scale = static_cast<double>(in) / static_cast<double>(out_size);
    for (int64_t o = 0; o < out_size; ++o) {
      const double s = std::max((static_cast<double>(o) + 0.5) * scale - 0.5, 0.0);
      const int64_t i0 = std::min(static_cast<int64_t>(s), in - 1);
      result[o] = {i0, std::min(i0 + 1, in - 1), s - static_cast<double>(i0)};
    }
    return result;
  };
  const std::vector<Tap> rows = taps(in_h, height), cols = taps(in_w, width);

  visit_floating(src.dtype(), "resize_bilinear", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* in = src.data<T>();
    T* dst = out.data<T>();
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t y = 0; y < height; ++y) {
        const T* row0 = in + (c * in_h + rows[y].i0) * in_w;
        const T* row1 = in + (c * in_h + rows[y].i1) * in_w;
        const double wy = rows[y].w1;
        for (int64_t x = 0; x < width; ++x) {
          const Tap& t = cols[x];
          const double top = (1 - t.w1) * row0[t.i0] + t.w1 * row0[t.i1];
          const double bottom = (1 - t.w1) * row1[t.i0] + t.w1 * row1[t.i1];
          dst[(c * height + y) * width + x] = static_cast<T>((1 - wy) * top + wy * bottom);
        }
      }
  });
  return out;
}

Tensor load_image(const std::string& path, int64_t channels, int64_t height, int64_t width) {
  check_image_options(channels, height, width, "load_image");
  const std::string bytes = read_file(path, "load_image");
  check(bytes.size() <= static_cast<size_t>(INT_MAX), "load_image: ", path, " is too large (", bytes.size(),
        " bytes)");
  int w = 0, h = 0, channels_in_file = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(
      stbi_load_from_memory(reinterpret_cast<const stbi_uc*>(bytes.data()), static_cast<int>(bytes.size()),
                            &w, &h, &channels_in_file, static_cast<int>(channels)),
      stbi_image_free);
  if (!pixels) throw Error(cat_str("load_image: cannot decode ", path, ": ", stbi_failure_reason()));

  // stb_image gives interleaved rows (H, W, C); we want planes (C, H, W).
  Tensor image = empty({channels, h, w}, kFloat32);
  float* out = image.data<float>();
  const int64_t plane = int64_t{h} * w;
  const stbi_uc* in = pixels.get();
  for (int64_t p = 0; p < plane; ++p)
    for (int64_t c = 0; c < channels; ++c)
      out[c * plane + p] = static_cast<float>(in[p * channels + c]) / 255.0f;
  if (h == height && w == width) return image;
  return resize_bilinear(image, height, width);
}

ImageFolder::ImageFolder(const std::string& root, int64_t channels, int64_t height, int64_t width)
    : channels_(channels), height_(height), width_(width) {
  check_image_options(channels, height, width, "ImageFolder");
  std::error_code ec;
  check(fs::is_directory(root, ec), "ImageFolder: ", root, " is not a folder",
        ec ? cat_str(" (", ec.message(), ")") : std::string());
  std::vector<fs::path> class_dirs;
  for (const fs::directory_entry& entry : list_folder(root))
    if (entry.is_directory(ec) && !is_hidden(entry.path())) class_dirs.push_back(entry.path());
  check(!class_dirs.empty(), "ImageFolder: ", root,
        " has no class sub-folders (expected root/<class>/<image>)");
  std::sort(class_dirs.begin(), class_dirs.end(), [](const fs::path& a, const fs::path& b) {
    return a.filename().string() < b.filename().string();
  });

  for (const fs::path& dir : class_dirs) {
    const int64_t label = static_cast<int64_t>(classes_.size());
    classes_.push_back(dir.filename().string());
    std::vector<std::string> files;
    for (const fs::directory_entry& entry : list_folder(dir))
      if (entry.is_regular_file(ec) && !is_hidden(entry.path()) && has_image_extension(entry.path()))
        files.push_back(entry.path().string());
    check(!files.empty(), "ImageFolder: class folder ", dir.string(),
          " has no image files (.png, .jpg, .jpeg or .bmp)");
    std::sort(files.begin(), files.end());
    for (std::string& file : files) samples_.push_back({std::move(file), label});
  }
}

const std::string& ImageFolder::path(int64_t index) const {
  check(index >= 0 && index < size(), "ImageFolder::path: index ", index,
        " is out of range for a dataset of ", size(), " examples");
  return samples_[index].path;
}

int64_t ImageFolder::label(int64_t index) const {
  check(index >= 0 && index < size(), "ImageFolder::label: index ", index,
        " is out of range for a dataset of ", size(), " examples");
  return samples_[index].label;
}

Example ImageFolder::get(int64_t index) const {
  check(index >= 0 && index < size(), "ImageFolder::get: index ", index, " is out of range for a dataset of ",
        size(), " examples");
  const Sample& sample = samples_[index];
  return {load_image(sample.path, channels_, height_, width_), sample.label};
}

}  // namespace nl
