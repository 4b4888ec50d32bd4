// Pooling over 2-D windows, functional forms and modules. Kernels in core/cpu/pooling.cpp.
//
//   x: (N, C, H, W) → y: (N, C, OH, OW),  OH = ⌊(H + 2·padding − kernel)/stride⌋ + 1 (floor mode)
//   max_pool2d:  y = max over the window (padding is −∞).
//                Saves the position of each maximum; dx[argmax] += dy (the first maximum in the window wins).
//   avg_pool2d:  y = Σ window / divisor; divisor = kh·kw clipped to the padded input (count_include_pad,
//                PyTorch's default) or the number of real input cells in the window.
//                dx[cell] += dy / divisor for every window containing the cell.
//   adaptive_avg_pool2d(out_h, out_w): cell (i, j) averages rows [⌊i·H/OH⌋, ⌈(i+1)·H/OH⌉) and the columns
//                likewise, so any input size maps to the requested output size.
//   global_avg_pool2d: adaptive_avg_pool2d to 1×1, flattened to (N, C).
// padding must be at most half the kernel (as in PyTorch), so every window holds a real cell.
#pragma once

#include <cstdint>

#include "module.h"

namespace nl {

// stride 0 means stride = kernel_size (PyTorch's default).
Tensor max_pool2d(const Tensor& x, int64_t kernel_size, int64_t stride = 0, int64_t padding = 0);
Tensor avg_pool2d(const Tensor& x, int64_t kernel_size, int64_t stride = 0, int64_t padding = 0,
                  bool count_include_pad = true);
Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w);
Tensor global_avg_pool2d(const Tensor& x);

struct MaxPool2dOptions {
  int64_t stride = 0;  // 0 = kernel_size
  int64_t padding = 0;
};

class MaxPool2d : public Module {
 public:
  // MaxPool2d(3, {.stride = 2, .padding = 1}), or the short form MaxPool2d(3, 2, 1).
  MaxPool2d(int64_t kernel_size, const MaxPool2dOptions& options)
      : MaxPool2d(kernel_size, options.stride, options.padding) {}
  explicit MaxPool2d(int64_t kernel_size, int64_t stride = 0, int64_t padding = 0);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "MaxPool2d"; }
  std::string describe() const override;
  int64_t kernel_size, stride, padding;

 protected:
  std::shared_ptr<Module> clone_impl() const override { return copy_of(*this); }
};

struct AvgPool2dOptions {
  int64_t stride = 0;  // 0 = kernel_size
  int64_t padding = 0;
  bool count_include_pad = true;
};

class AvgPool2d : public Module {
 public:
  // AvgPool2d(3, {.stride = 1, .padding = 1, .count_include_pad = false}), or the short form.
  AvgPool2d(int64_t kernel_size, const AvgPool2dOptions& options)
      : AvgPool2d(kernel_size, options.stride, options.padding, options.count_include_pad) {}
  explicit AvgPool2d(int64_t kernel_size, int64_t stride = 0, int64_t padding = 0,
                     bool count_include_pad = true);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "AvgPool2d"; }
  std::string describe() const override;
  int64_t kernel_size, stride, padding;
  bool count_include_pad;

 protected:
  std::shared_ptr<Module> clone_impl() const override { return copy_of(*this); }
};

class AdaptiveAvgPool2d : public Module {
 public:
  AdaptiveAvgPool2d(int64_t out_h, int64_t out_w);
  explicit AdaptiveAvgPool2d(int64_t out_size) : AdaptiveAvgPool2d(out_size, out_size) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "AdaptiveAvgPool2d"; }
  std::string describe() const override;
  int64_t out_h, out_w;

 protected:
  std::shared_ptr<Module> clone_impl() const override { return copy_of(*this); }
};

// (N, C, H, W) → (N, C): the mean of each channel plane.
class GlobalAvgPool2d : public Module {
 public:
  Tensor forward(const Tensor& x) override { return global_avg_pool2d(x); }
  std::string type_name() const override { return "GlobalAvgPool2d"; }

 protected:
  std::shared_ptr<Module> clone_impl() const override { return copy_of(*this); }
};

// Flattens dims start_dim..end_dim into one (default: everything but the batch dim).
class Flatten : public Module {
 public:
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1) : start_dim(start_dim), end_dim(end_dim) {}
  Tensor forward(const Tensor& x) override { return x.flatten(start_dim, end_dim); }
  std::string type_name() const override { return "Flatten"; }
  std::string describe() const override;
  int64_t start_dim, end_dim;

 protected:
  std::shared_ptr<Module> clone_impl() const override { return copy_of(*this); }
};

}  // namespace nl
