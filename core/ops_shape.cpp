// Joining and indexing: cat, stack, index_select, and sum_to (the backward of broadcasting).
#include "autograd/engine.h"
#include "core/kernels.h"
#include "core/ops.h"

namespace nl {

Tensor sum_to(const Tensor& x, const Shape& shape) {
  check_defined(x, "sum_to", "x");
  if (x.shape() == shape) return x;
  check(x.dim() >= static_cast<int64_t>(shape.size()), "sum_to: cannot sum shape ", x.shape(), " to ", shape);
  const int64_t lead = x.dim() - static_cast<int64_t>(shape.size());
  std::vector<int64_t> axes;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d < lead) {
      axes.push_back(d);
      continue;
    }
    const int64_t want = shape[d - lead];
    check(want == x.size(d) || want == 1, "sum_to: cannot sum shape ", x.shape(), " to ", shape);
    if (want == 1 && x.size(d) != 1) axes.push_back(d);
  }
  if (axes.empty()) return x.reshape(shape);
  return sum(x, axes, true).reshape(shape);
}

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  check(!tensors.empty(), "cat: expected at least one tensor");
  for (size_t i = 0; i < tensors.size(); ++i) check(tensors[i].defined(), "cat: tensor ", i, " is undefined");
  const Tensor& first = tensors[0];
  dim = normalize_dim(dim, first.dim(), "cat");
  Shape out_shape = first.shape();
  out_shape[dim] = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    check(t.dim() == first.dim(), "cat: tensor ", i, " has shape ", t.shape(), " but tensor 0 has shape ",
          first.shape(), ": ranks differ");
    check(t.dtype() == first.dtype(), "cat: tensor ", i, " is ", dtype_name(t.dtype()), " but tensor 0 is ",
          dtype_name(first.dtype()));
    for (int64_t d = 0; d < t.dim(); ++d)
      check(d == dim || t.size(d) == first.size(d), "cat: tensor ", i, " has shape ", t.shape(),
            " but tensor 0 has shape ", first.shape(), ": they differ in dim ", d, " (joining along dim ",
            dim, ")");
    check(!__builtin_add_overflow(out_shape[dim], t.size(dim), &out_shape[dim]), "cat: joining ",
          tensors.size(), " tensors along dim ", dim, ": the joined size does not fit in 64 bits");
  }
  numel_of(out_shape, "cat");
  Tensor out = empty(out_shape, first.dtype(), first.device());
  std::vector<int64_t> starts;
  {
    NoGradGuard no_record;
    int64_t start = 0;
    for (const Tensor& t : tensors) {
      starts.push_back(start);
      out.narrow(dim, start, t.size(dim)).copy_(t);
      start += t.size(dim);
    }
  }
  std::vector<int64_t> lengths;
  for (const Tensor& t : tensors) lengths.push_back(t.size(dim));
  return record(out, "cat", tensors, [dim, starts, lengths](const Tensor& g) {
    std::vector<Tensor> grads;
    for (size_t i = 0; i < starts.size(); ++i) grads.push_back(g.narrow(dim, starts[i], lengths[i]));
    return grads;
  });
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  check(!tensors.empty(), "stack: expected at least one tensor");
  for (size_t i = 0; i < tensors.size(); ++i)
    check(tensors[i].defined(), "stack: tensor ", i, " is undefined");
  dim = normalize_dim(dim, tensors[0].dim() + 1, "stack");
  std::vector<Tensor> expanded;
  for (size_t i = 0; i < tensors.size(); ++i) {
    check(tensors[i].shape() == tensors[0].shape(), "stack: tensor ", i, " has shape ", tensors[i].shape(),
          " but tensor 0 has shape ", tensors[0].shape());
    expanded.push_back(tensors[i].unsqueeze(dim));
  }
  return cat(expanded, dim);
}

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  check_defined(x, "index_select", "x");
  check_defined(index, "index_select", "index");
  check(index.dtype() == kInt64, "index_select: index must be int64, got ", dtype_name(index.dtype()));
  check(index.dim() == 1, "index_select: index must be 1-D, got shape ", index.shape());
  dim = normalize_dim(dim, x.dim(), "index_select");
  const Tensor idx = index.contiguous();
  const int64_t size = x.size(dim);
  for (int64_t i : idx.to_vector<int64_t>())
    check(i >= 0 && i < size, "index_select: index ", i, " is out of range for dim ", dim, " of size ", size,
          " (shape ", x.shape(), ")");
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= x.size(d);
  for (int64_t d = dim + 1; d < x.dim(); ++d) inner *= x.size(d);
  Shape out_shape = x.shape();
  out_shape[dim] = idx.numel();
  numel_of(out_shape, "index_select");
  Tensor out = empty(out_shape, x.dtype(), x.device());
  Tensor xc;
  {
    NoGradGuard no_record;
    xc = x.contiguous();
  }
  kernels::index_select(xc, outer, size, inner, idx, out);
  return record(out, "index_select", {x}, [=, shape = x.shape()](const Tensor& g) {
    Tensor dx = zeros(shape, g.dtype());
    kernels::index_add(g.contiguous(), outer, size, inner, idx, dx);
    return std::vector<Tensor>{dx};
  });
}

}  // namespace nl
