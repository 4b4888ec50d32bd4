// Synthetic data sets (data/synthetic.h): plain loops, draws in the documented order.
#include "data/synthetic.h"

#include <algorithm>
#include <cmath>

#include "core/random.h"

namespace nl {
namespace {

void check_counts(int64_t samples_per_class, int64_t classes, const char* op) {
  check(samples_per_class >= 1, op, ": samples_per_class must be >= 1, got ", samples_per_class);
  check(classes >= 1, op, ": the number of classes must be >= 1, got ", classes);
}

Tensor grouped_labels(int64_t samples_per_class, int64_t classes) {
  Tensor labels = empty({samples_per_class * classes}, kInt64);
  int64_t* y = labels.data<int64_t>();
  for (int64_t k = 0; k < classes; ++k) std::fill_n(y + k * samples_per_class, samples_per_class, k);
  return labels;
}

// Distance from point p to the segment from a to b.
double distance_to_segment(double px, double py, double ax, double ay, double bx, double by) {
  const double dx = bx - ax, dy = by - ay;
  const double length2 = dx * dx + dy * dy;
  const double t = length2 > 0 ? std::clamp(((px - ax) * dx + (py - ay) * dy) / length2, 0.0, 1.0) : 0.0;
  const double ex = ax + t * dx - px, ey = ay + t * dy - py;
  return std::sqrt(ex * ex + ey * ey);
}

}  // namespace

TensorDataset make_blobs(const BlobsOptions& o) {
  check_counts(o.samples_per_class, o.classes, "make_blobs");
  check(o.dims >= 1, "make_blobs: dims must be >= 1, got ", o.dims);
  check(o.center_range >= 0 && o.stddev >= 0, "make_blobs: center_range and stddev must be >= 0, got ",
        o.center_range, " and ", o.stddev);
  Generator gen(o.seed);
  std::vector<double> centers(static_cast<size_t>(o.classes * o.dims));
  for (double& c : centers) c = -o.center_range + 2 * o.center_range * gen.next_double();
  Tensor inputs = empty({o.classes * o.samples_per_class, o.dims}, kFloat32);
  float* x = inputs.data<float>();
  for (int64_t k = 0; k < o.classes; ++k)
    for (int64_t i = 0; i < o.samples_per_class; ++i)
      for (int64_t d = 0; d < o.dims; ++d) {
        const int64_t row = k * o.samples_per_class + i;
        x[row * o.dims + d] = static_cast<float>(centers[k * o.dims + d] + o.stddev * gen.next_normal());
      }
  return TensorDataset(inputs, grouped_labels(o.samples_per_class, o.classes));
}

TensorDataset make_spirals(const SpiralsOptions& o) {
  check_counts(o.samples_per_class, o.arms, "make_spirals");
  check(o.noise >= 0, "make_spirals: noise must be >= 0, got ", o.noise);
  Generator gen(o.seed);
  Tensor inputs = empty({o.arms * o.samples_per_class, 2}, kFloat32);
  float* x = inputs.data<float>();
  for (int64_t k = 0; k < o.arms; ++k)
    for (int64_t i = 0; i < o.samples_per_class; ++i) {
      const int64_t row = k * o.samples_per_class + i;
      const double r = static_cast<double>(i) / static_cast<double>(o.samples_per_class);
      const double angle = 4.0 * r + 2.0 * M_PI * static_cast<double>(k) / static_cast<double>(o.arms) +
                           o.noise * gen.next_normal();
      x[row * 2] = static_cast<float>(r * std::cos(angle));
      x[row * 2 + 1] = static_cast<float>(r * std::sin(angle));
    }
  return TensorDataset(inputs, grouped_labels(o.samples_per_class, o.arms));
}

TensorDataset make_bar_images(const BarImagesOptions& o) {
  check_counts(o.samples_per_class, o.classes, "make_bar_images");
  check(o.size >= 8, "make_bar_images: size must be >= 8, got ", o.size);
  check(o.noise >= 0, "make_bar_images: noise must be >= 0, got ", o.noise);
  Generator gen(o.seed);
  const int64_t s = o.size;
  const double size = static_cast<double>(s), middle = (size - 1) / 2, width = size / 16;
  Tensor inputs = empty({o.classes * o.samples_per_class, 1, s, s}, kFloat32);
  float* out = inputs.data<float>();
  for (int64_t k = 0; k < o.classes; ++k)
    for (int64_t i = 0; i < o.samples_per_class; ++i) {
      const double angle =
          M_PI * static_cast<double>(k) / static_cast<double>(o.classes) + 0.05 * gen.next_normal();
      const double cx = middle + size / 9 * (2 * gen.next_double() - 1);
      const double cy = middle + size / 9 * (2 * gen.next_double() - 1);
      const double half_length = size * (0.25 + 0.15 * gen.next_double());
      const double brightness = 0.7 + 0.3 * gen.next_double();
      const double ux = std::cos(angle) * half_length, uy = std::sin(angle) * half_length;
      float* image = out + (k * o.samples_per_class + i) * s * s;
      for (int64_t y = 0; y < s; ++y)
        for (int64_t x = 0; x < s; ++x) {
          const double d = distance_to_segment(static_cast<double>(x), static_cast<double>(y), cx - ux,
                                               cy - uy, cx + ux, cy + uy);
          const double value =
              brightness * std::exp(-d * d / (2 * width * width)) + o.noise * gen.next_normal();
          image[y * s + x] = static_cast<float>(std::clamp(value, 0.0, 1.0));
        }
    }
  return TensorDataset(inputs, grouped_labels(o.samples_per_class, o.classes));
}

}  // namespace nl
