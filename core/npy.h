// NumPy .npy files (format version 1.0/2.0): float32 ('<f4'), float64 ('<f8') and int64 ('<i8'), C order.
// Tensors move to and from Python with numpy.load / numpy.save.
#pragma once

#include <string>

#include "tensor.h"

namespace nl {

// Writes atomically: a temporary file in the same folder, then a rename.
void save_npy(const std::string& path, const Tensor& t);
// Throws nl::Error naming the file and the problem (bad magic, unsupported dtype, Fortran order, a malformed
// or too large shape, truncated data). The data's size is checked against the file before the tensor is
// allocated, so a short file cannot ask for more memory than it holds.
Tensor load_npy(const std::string& path);

}  // namespace nl
