// IDX files: the format of MNIST, Fashion-MNIST, KMNIST and EMNIST, read plain or gzip-compressed.
//
// Layout (all integers big-endian):
//   bytes 0-1   0x00 0x00
//   byte  2     element type: 0x08 = unsigned byte (the only type these data sets use, and the only one read)
//   byte  3     number of dimensions r
//   then        r int32 dimension sizes
//   then        the elements, row-major: exactly the product of the dimensions, one byte each
// So images (N, H, W) have magic number 0x00000803 and labels (N) have 0x00000801.
//
// Files are read through zlib (gzopen/gzread), which decompresses .gz files and passes other files through
// unchanged, so "x-idx3-ubyte" and "x-idx3-ubyte.gz" are read by the same code. Every problem throws
// nl::Error naming the file and what is wrong: cannot open, too short for a header, wrong magic number,
// unsupported element type, a header that is cut off, a negative dimension, a body shorter (truncated) or
// longer than the dimensions say, corrupt compressed data.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../core/tensor.h"
#include "dataset.h"

namespace nl {

struct IdxArray {
  Shape dims;                  // e.g. [60000, 28, 28]
  std::vector<uint8_t> bytes;  // numel_of(dims) elements, row-major
};

// Reads an unsigned-byte IDX file. expected_rank > 0 also requires that number of dimensions (3 for images,
// 1 for labels); 0 accepts any.
IdxArray read_idx(const std::string& path, int expected_rank = 0);

// An image file (magic 0x00000803, (N, H, W)) as float32 (N, 1, H, W) with each byte b mapped to b / 255, so
// pixels lie in [0, 1].
Tensor read_idx_images(const std::string& path);
// A label file (magic 0x00000801, (N)) as int64 (N).
Tensor read_idx_labels(const std::string& path);

// An image file and its label file as one dataset; their counts must agree.
TensorDataset load_idx_dataset(const std::string& images_path, const std::string& labels_path);

}  // namespace nl
