// Helpers for walking strided views: a tensor of rank R is split into rows (all dims but the last) and an
// inner run along the last dim, so inner loops stay simple and vectorizable.
#pragma once

#include <cstdint>

#include "../../autograd/engine.h"
#include "../tensor.h"

namespace nl::cpu {

// Element offset of row `row` (row-major over dims 0..R-2) in a view with these strides.
inline int64_t row_offset(int64_t row, const Shape& shape, const Shape& strides) {
  int64_t off = 0;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 2; d >= 0; --d) {
    const int64_t i = row % shape[d];
    row /= shape[d];
    off += i * strides[d];
  }
  return off;
}

// Base pointer of a view: storage + offset, typed.
template <class T>
T* base_ptr(const Tensor& t) {
  return static_cast<T*>(t.impl()->storage->data) + t.offset();
}

// Kernels never record autograd nodes; these helpers make the views and copies they need with grad mode off.
inline Tensor dense(const Tensor& t) {
  NoGradGuard no_record;
  return t.contiguous();
}
inline Tensor broadcast_view(const Tensor& t, const Shape& shape) {
  NoGradGuard no_record;
  return t.expand(shape);
}

}  // namespace nl::cpu
