// Printing: "tensor(float32, [2, 3])" on the first line, then the values, nested like NumPy. Large tensors
// show the first and last 3 entries of each dimension with "..." between.
#include <cstdio>
#include <ostream>
#include <sstream>

#include "core/tensor.h"

namespace nl {
namespace {

constexpr int64_t kSummarizeAbove = 1000;
constexpr int64_t kEdgeItems = 3;

void print_rec(std::ostream& os, const Tensor& t, const std::vector<double>& v, int64_t dim, int64_t offset,
               bool summarize, int indent) {
  const Shape& shape = t.shape();
  const Shape strides = contiguous_strides(shape);
  if (dim == t.dim()) {
    char buf[64];
    if (t.dtype() == kInt64)
      std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v[offset]));
    else
      std::snprintf(buf, sizeof buf, "%.4g", v[offset]);
    os << buf;
    return;
  }
  os << "[";
  const int64_t n = shape[dim];
  for (int64_t i = 0; i < n; ++i) {
    if (summarize && n > 2 * kEdgeItems && i == kEdgeItems) {
      os << (dim + 1 == t.dim() ? "..., " : "...,\n" + std::string(indent + 1, ' '));
      i = n - kEdgeItems;
    }
    print_rec(os, t, v, dim + 1, offset + i * strides[dim], summarize, indent + 1);
    if (i + 1 < n) os << (dim + 1 == t.dim() ? ", " : ",\n" + std::string(indent + 1, ' '));
  }
  os << "]";
}

}  // namespace

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "tensor(undefined)";
  os << "tensor(" << dtype_name(t.dtype()) << ", " << shape_str(t.shape());
  if (t.requires_grad()) os << ", requires_grad";
  os << ")\n";
  const std::vector<double> values = t.to_vector<double>();
  print_rec(os, t, values, 0, 0, t.numel() > kSummarizeAbove, 0);
  return os;
}

std::string to_string(const Tensor& t) {
  std::ostringstream os;
  os << t;
  return os.str();
}

}  // namespace nl
