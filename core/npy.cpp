#include "core/npy.h"

#include <cstdio>
#include <cstring>

#include "core/file_util.h"

namespace nl {
namespace {

const char* descr_of(DType t) {
  switch (t) {
    case DType::Float32:
      return "<f4";
    case DType::Float64:
      return "<f8";
    default:
      return "<i8";
  }
}

// The value of `key` in the header dict, as written by NumPy: 'key': value,
std::string header_field(const std::string& header, const std::string& key, const std::string& path) {
  const std::string quoted = "'" + key + "'";
  size_t pos = header.find(quoted);
  check(pos != std::string::npos, "load_npy: ", path, ": header has no '", key, "' field");
  pos = header.find(':', pos);
  check(pos != std::string::npos, "load_npy: ", path, ": malformed header");
  ++pos;
  while (pos < header.size() && header[pos] == ' ') ++pos;
  size_t end = pos;
  if (header[pos] == '(') {
    end = header.find(')', pos);
    check(end != std::string::npos, "load_npy: ", path, ": malformed shape in header");
    return header.substr(pos, end - pos + 1);
  }
  if (header[pos] == '\'') {
    end = header.find('\'', pos + 1);
    check(end != std::string::npos, "load_npy: ", path, ": malformed header");
    return header.substr(pos + 1, end - pos - 1);
  }
  while (end < header.size() && header[end] != ',' && header[end] != '}') ++end;
  return header.substr(pos, end - pos);
}

// The shape tuple as NumPy writes it: "()", "(6,)", "(2, 3)" (spaces around the numbers, a trailing comma).
Shape parse_shape(const std::string& text, const std::string& path) {
  auto malformed = [&](const char* what) {
    return Error(cat_str("load_npy: ", path, ": malformed shape '", text, "' in the header: ", what));
  };
  if (text.size() < 2 || text.front() != '(' || text.back() != ')')
    throw malformed("expected a tuple such as (2, 3)");
  const size_t end = text.size() - 1;
  size_t i = 1;
  auto skip_spaces = [&] {
    while (i < end && text[i] == ' ') ++i;
  };
  Shape shape;
  skip_spaces();
  while (i < end) {
    if (text[i] == '-') throw malformed("negative dimension");
    if (text[i] < '0' || text[i] > '9') throw malformed("expected a dimension (an integer >= 0)");
    int64_t d = 0;
    for (; i < end && text[i] >= '0' && text[i] <= '9'; ++i)
      if (__builtin_mul_overflow(d, 10, &d) || __builtin_add_overflow(d, text[i] - '0', &d))
        throw malformed("a dimension does not fit in 64 bits");
    shape.push_back(d);
    skip_spaces();
    if (i == end) break;
    if (text[i] != ',') throw malformed("expected ',' after a dimension");
    ++i;
    skip_spaces();
  }
  return shape;
}

}  // namespace

void save_npy(const std::string& path, const Tensor& t_in) {
  const Tensor t = t_in.contiguous();
  std::string header =
      "{'descr': '" + std::string(descr_of(t.dtype())) + "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < t.shape().size(); ++i) header += std::to_string(t.shape()[i]) + ", ";
  if (t.shape().size() > 1) header.resize(header.size() - 2);
  if (t.shape().size() == 1) header.resize(header.size() - 1);  // "(5,)"
  header += "), }";
  // Pad with spaces so that magic(6) + version(2) + length(2) + header + '\n' is a multiple of 64.
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::string bytes = "\x93NUMPY";
  bytes += '\x01';
  bytes += '\x00';
  bytes += static_cast<char>(header.size() & 0xff);
  bytes += static_cast<char>((header.size() >> 8) & 0xff);
  bytes += header;
  bytes.append(static_cast<const char*>(t.raw_data()),
               static_cast<size_t>(t.numel()) * dtype_size(t.dtype()));
  write_file_atomically(path, bytes, "save_npy");
}

Tensor load_npy(const std::string& path) {
  const std::string bytes = read_file(path, "load_npy");
  check(bytes.size() >= 10 && bytes.compare(0, 6, "\x93NUMPY") == 0, "load_npy: ", path,
        ": not a .npy file (bad magic string)");
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0, header_start = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    check(bytes.size() >= 12, "load_npy: ", path, ": truncated header");
    for (int i = 0; i < 4; ++i)
      header_len |= static_cast<size_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    header_start = 12;
  } else {
    throw Error(cat_str("load_npy: ", path, ": unsupported format version ", major));
  }
  check(bytes.size() >= header_start + header_len, "load_npy: ", path, ": truncated header");
  const std::string header = bytes.substr(header_start, header_len);

  const std::string descr = header_field(header, "descr", path);
  DType dtype;
  if (descr == "<f4")
    dtype = kFloat32;
  else if (descr == "<f8")
    dtype = kFloat64;
  else if (descr == "<i8")
    dtype = kInt64;
  else
    throw Error(
        cat_str("load_npy: ", path, ": unsupported dtype '", descr, "' (expected '<f4', '<f8' or '<i8')"));
  check(header_field(header, "fortran_order", path) == "False", "load_npy: ", path,
        ": Fortran-order arrays are not supported (save with np.ascontiguousarray)");

  const Shape shape = parse_shape(header_field(header, "shape", path), path);
  // The size is checked against the file before anything is allocated.
  const auto data_bytes = static_cast<size_t>(nbytes_of(shape, dtype, cat_str("load_npy: ", path)));
  const size_t data_start = header_start + header_len;
  check(bytes.size() - data_start >= data_bytes, "load_npy: ", path, ": truncated data: shape ", shape,
        " needs ", data_bytes, " bytes, the file has ", bytes.size() - data_start);
  Tensor t = empty(shape, dtype);
  std::memcpy(t.raw_data(), bytes.data() + data_start, data_bytes);
  return t;
}

}  // namespace nl
