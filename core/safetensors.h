// The safetensors file format (https://github.com/huggingface/safetensors), so checkpoints open in Python
// with safetensors.numpy.load_file / safetensors.torch.load_file. The JSON header is read and written with
// nlohmann-json.
//
//   bytes 0..7   N, the header length, unsigned 64-bit little-endian
//   bytes 8..8+N a JSON object, padded with spaces to a multiple of 8 bytes:
//                  {"<name>": {"dtype": "F32" | "F64" | "I64", "shape": [d0, d1, ...],
//                              "data_offsets": [begin, end]},
//                   ...,
//                   "__metadata__": {"<key>": "<value>", ...}}          (string values only)
//   the rest     the data buffer: each tensor's elements, row-major, little-endian, at
//                [begin, end) relative to the start of the buffer. The tensors tile the buffer exactly.
//
// Decoding validates the whole file (header length, JSON syntax, dtypes, shapes against byte counts, offsets
// in range, no gaps or overlaps, no trailing bytes) before it creates a single tensor, and names the file and
// the problem on failure. Limits: a header of at most 100,000,000 bytes (the reference implementation's),
// JSON nested at most 64 levels below the top-level object, no duplicate keys, and shapes whose element and
// byte counts fit in 64 bits (nl::nbytes_of). Tensor names and metadata are UTF-8, as JSON requires: encoding
// a name or metadata string that is not is an error.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tensor.h"

namespace nl {

struct SafetensorsContents {
  std::vector<std::pair<std::string, Tensor>> tensors;  // in header order
  std::map<std::string, std::string> metadata;
};

// The file's bytes. Names must be unique and not "__metadata__"; tensors may be strided views.
std::string encode_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                               const std::map<std::string, std::string>& metadata = {});
// `source` names the data in error messages (usually the path).
SafetensorsContents decode_safetensors(const std::string& bytes, const std::string& source);

// Writes atomically (nl::write_file_atomically): a crash leaves the old file or the new one.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});
SafetensorsContents load_safetensors(const std::string& path);

}  // namespace nl
