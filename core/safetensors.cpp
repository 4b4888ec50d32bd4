// safetensors reading and writing (format in core/safetensors.h). nlohmann-json reads and writes the JSON
// header; this file decides what a header may be. It bounds the header's size and nesting depth, rejects
// duplicate keys (JSON leaves them to the parser, and parsers differ), and reports every problem with the
// file, the tensor and the byte of the header where it is.
#include "core/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "autograd/engine.h"
#include "core/file_util.h"

namespace nl {
namespace {

static_assert(std::endian::native == std::endian::little,
              "safetensors stores little-endian data; normlab writes host memory as it is");

// Headers larger than this are rejected (the reference implementation uses the same limit).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// Containers nested more than this many levels below the top-level object are rejected.
constexpr size_t kMaxJsonDepth = 64;

using Json = nlohmann::json;

// ---- reading the JSON header --------------------------------------------------------------------------

const char* kind_name(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::boolean:
      return "a boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return "an integer";
    case Json::value_t::number_float:
      return "a fractional number";
    case Json::value_t::string:
      return "a string";
    case Json::value_t::array:
      return "an array";
    case Json::value_t::object:
      return "an object";
    default:
      return "a value";
  }
}

// A char iterator over the header that counts how far nlohmann's lexer has read, so that the problems found
// between its events (a duplicate key, too deep nesting) name their byte as its syntax errors do.
class CountingIterator {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;

  CountingIterator(const char* p, size_t* read) : p_(p), read_(read) {}
  reference operator*() const { return *p_; }
  CountingIterator& operator++() {
    ++p_;
    ++*read_;
    return *this;
  }
  CountingIterator operator++(int) {
    CountingIterator before = *this;
    ++*this;
    return before;
  }
  bool operator==(const CountingIterator& other) const { return p_ == other.p_; }

 private:
  const char* p_;
  size_t* read_;
};

// Builds the header's document from nlohmann's parse events, with the checks a parser leaves to its caller.
// (nlohmann's own document builder with a callback would do, but it rescans the parent container at the
// end of every object, which makes a header of many small objects quadratic.)
class HeaderBuilder : public nlohmann::json_sax<Json> {
 public:
  HeaderBuilder(const std::string& source, const size_t& read) : source_(source), read_(read) {}

  Json document;
  std::vector<std::string> top_level_keys;  // in file order (Json objects are sorted by key)

  bool null() override { return add(nullptr), true; }
  bool boolean(bool v) override { return add(v), true; }
  bool number_integer(number_integer_t v) override { return add(v), true; }
  bool number_unsigned(number_unsigned_t v) override { return add(v), true; }
  bool number_float(number_float_t v, const string_t&) override { return add(v), true; }
  bool string(string_t& v) override { return add(std::move(v)), true; }
  bool binary(binary_t&) override { fail("binary value", read_); }  // JSON text has none

  bool start_object(size_t) override {
    check_depth();
    open_.push_back(add(Json::object()));
    keys_.emplace_back();
    return true;
  }
  bool key(string_t& k) override {
    if (!keys_.back().insert(k).second) fail(cat_str("duplicate key \"", k, "\""), read_);
    if (open_.size() == 1) top_level_keys.push_back(k);
    key_ = std::move(k);
    return true;
  }
  bool end_object() override {
    open_.pop_back();
    keys_.pop_back();
    return true;
  }
  bool start_array(size_t) override {
    check_depth();
    open_.push_back(add(Json::array()));
    return true;
  }
  bool end_array() override {
    open_.pop_back();
    return true;
  }
  bool parse_error(size_t position, const std::string&, const Json::exception& e) override {
    // "[json.exception.parse_error.101] parse error at line 1, column 7: syntax error ..." without the id
    const std::string what = e.what();
    const size_t id_end = what.find("] ");
    fail(id_end == std::string::npos ? what : what.substr(id_end + 2), position);
  }

 private:
  [[noreturn]] void fail(const std::string& what, size_t at) const {
    throw Error(cat_str("load_safetensors: ", source_, ": corrupt header: ", what, " at byte ", at,
                        " of the JSON header"));
  }

  void check_depth() const {
    if (open_.size() > kMaxJsonDepth)  // the bracket just read is byte read_ - 1
      fail(cat_str("nesting too deep (more than ", kMaxJsonDepth, " levels below the top-level object)"),
           read_ - 1);
  }

  // Places a value in the innermost open container (or makes it the document) and returns where it is. The
  // pointers in open_ stay valid: only the innermost container grows.
  Json* add(Json v) {
    if (open_.empty()) return &(document = std::move(v));
    Json& parent = *open_.back();
    if (parent.is_array()) {
      parent.push_back(std::move(v));
      return &parent.back();
    }
    return &(parent[key_] = std::move(v));
  }

  const std::string& source_;
  const size_t& read_;  // bytes of the header the lexer has read
  std::vector<Json*> open_;
  std::vector<std::unordered_set<std::string>> keys_;  // of each open object
  std::string key_;                                    // the key of the next value in the innermost object
};

// ---- dtypes -----------------------------------------------------------------------------------------------

const char* safetensors_dtype(DType t) {
  switch (t) {
    case DType::Float32:
      return "F32";
    case DType::Float64:
      return "F64";
    case DType::Int64:
      return "I64";
  }
  return "?";
}

bool parse_dtype(const std::string& s, DType& out) {
  if (s == "F32") return out = DType::Float32, true;
  if (s == "F64") return out = DType::Float64, true;
  if (s == "I64") return out = DType::Int64, true;
  return false;
}

// ---- decoding ---------------------------------------------------------------------------------------------

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;
};

// Stores v in `out` when it is an integer in [0, 2^63).
bool non_negative_integer(const Json& v, int64_t& out) {
  if (v.is_number_unsigned() && v.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX))
    return out = static_cast<int64_t>(v.get<uint64_t>()), true;
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return out = v.get<int64_t>(), true;
  return false;
}

Entry parse_entry(const std::string& name, const Json& v, uint64_t buffer_size, const std::string& source) {
  const std::string where = cat_str("load_safetensors: ", source, ": corrupt header: tensor '", name, "'");
  auto bad = [&](const std::string& what) { return Error(cat_str(where, " ", what)); };
  if (!v.is_object()) throw bad(cat_str("is ", kind_name(v), ", expected an object"));
  for (const auto& field : v.items())
    if (field.key() != "dtype" && field.key() != "shape" && field.key() != "data_offsets")
      throw bad(cat_str("has an unknown field \"", field.key(), "\""));
  if (!v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
    throw bad("lacks one of \"dtype\", \"shape\", \"data_offsets\"");
  const Json &dtype = v.at("dtype"), &shape = v.at("shape"), &offsets = v.at("data_offsets");
  Entry e{name, DType::Float32, {}, 0, 0};
  if (!dtype.is_string()) throw bad("has a dtype that is not a string");
  const auto& dtype_text = dtype.get_ref<const std::string&>();
  if (!parse_dtype(dtype_text, e.dtype))
    throw bad(cat_str("has dtype \"", dtype_text, "\", which normlab does not read (F32, F64, I64)"));
  if (!shape.is_array()) throw bad("has a shape that is not an array");
  for (const Json& d : shape) {
    int64_t size = 0;
    if (!non_negative_integer(d, size))
      throw bad(cat_str("has a shape entry that is not an integer >= 0: ", d.dump()));
    e.shape.push_back(size);
  }
  // Checked: the element and byte counts of a hostile shape must not wrap around to match the offsets.
  const auto expected = static_cast<uint64_t>(nbytes_of(e.shape, e.dtype, where));
  int64_t begin = 0, end = 0;
  if (!offsets.is_array() || offsets.size() != 2 || !non_negative_integer(offsets[0], begin) ||
      !non_negative_integer(offsets[1], end) || end < begin)
    throw bad("has data_offsets that are not [begin, end] with 0 <= begin <= end");
  e.begin = static_cast<uint64_t>(begin);
  e.end = static_cast<uint64_t>(end);
  if (e.end > buffer_size)
    throw Error(cat_str("load_safetensors: ", source, ": truncated: tensor '", name, "' needs bytes [",
                        e.begin, ", ", e.end, ") of the data buffer, which has only ", buffer_size,
                        " bytes"));
  if (e.end - e.begin != expected)
    throw bad(cat_str("has shape ", e.shape, " and dtype ", dtype_text, " (", expected,
                      " bytes) but its data_offsets span ", e.end - e.begin, " bytes"));
  return e;
}

// ---- encoding ---------------------------------------------------------------------------------------------

// nlohmann-json writes valid UTF-8 only (and Python's safetensors reads nothing else).
void check_utf8(const std::string& text, const std::string& what) {
  try {
    (void)Json(text).dump();
  } catch (const Json::type_error& e) {
    const std::string reason =
        e.what();  // "[json.exception.type_error.316] invalid UTF-8 byte at index 2: 0xFF"
    const size_t id_end = reason.find("] ");
    throw Error(cat_str("save_safetensors: ", what, " is not valid UTF-8 (",
                        id_end == std::string::npos ? reason : reason.substr(id_end + 2), ")"));
  }
}

}  // namespace

std::string encode_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                               const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();  // in the order given
  if (!metadata.empty()) {
    auto& entries = header["__metadata__"] = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) {
      check_utf8(k, cat_str("metadata key '", k, "'"));
      check_utf8(v, cat_str("the value of metadata key '", k, "'"));
      entries[k] = v;
    }
  }
  uint64_t offset = 0;
  std::vector<Tensor> dense;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, t] = tensors[i];
    check(t.defined(), "save_safetensors: tensor '", name, "' is undefined");
    check(name != "__metadata__", "save_safetensors: '__metadata__' is reserved and cannot name a tensor");
    for (size_t j = 0; j < i; ++j)
      check(tensors[j].first != name, "save_safetensors: the name '", name, "' appears twice");
    check_utf8(name, cat_str("the tensor name '", name, "'"));
    {
      NoGradGuard no_record;
      dense.push_back(t.contiguous());
    }
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype());
    header[name] = {{"dtype", safetensors_dtype(t.dtype())},
                    {"shape", t.shape()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data buffer starts 8-byte aligned

  std::string out;
  out.reserve(8 + text.size() + offset);
  const uint64_t n = text.size();
  for (int k = 0; k < 8; ++k) out += static_cast<char>((n >> (8 * k)) & 0xFF);
  out += text;
  for (const Tensor& t : dense)
    out.append(static_cast<const char*>(t.raw_data()),
               static_cast<size_t>(t.numel()) * dtype_size(t.dtype()));
  return out;
}

SafetensorsContents decode_safetensors(const std::string& bytes, const std::string& source) {
  const std::string where = cat_str("load_safetensors: ", source, ": ");
  check(bytes.size() >= 8, where, "truncated: the file has ", bytes.size(),
        " bytes, fewer than the 8-byte header length");
  uint64_t header_len = 0;
  for (int k = 0; k < 8; ++k)
    header_len |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[k])) << (8 * k);
  check(header_len <= kMaxHeaderBytes, where, "the header length field says ", header_len,
        " bytes (more than the ", kMaxHeaderBytes, " allowed): not a safetensors file, or corrupt");
  check(header_len <= bytes.size() - 8, where, "truncated: the header length field says ", header_len,
        " bytes but only ", bytes.size() - 8, " follow it");
  check(header_len >= 2, where, "corrupt header: ", header_len, " bytes cannot hold a JSON object");

  size_t read = 0;
  HeaderBuilder header(source, read);
  const char* text = bytes.data() + 8;
  Json::sax_parse(CountingIterator(text, &read), CountingIterator(text + header_len, &read), &header);
  const Json& doc = header.document;
  check(doc.is_object(), where, "corrupt header: the JSON header is ", kind_name(doc),
        ", expected an object");
  const uint64_t data_start = 8 + header_len, buffer_size = bytes.size() - data_start;

  SafetensorsContents out;
  std::vector<Entry> entries;
  for (const std::string& name : header.top_level_keys) {
    const Json& v = doc.at(name);
    if (name == "__metadata__") {
      check(v.is_object(), where, "corrupt header: __metadata__ is ", kind_name(v),
            ", expected an object of strings");
      for (const auto& [k, s] : v.items()) {
        check(s.is_string(), where, "corrupt header: __metadata__ entry \"", k, "\" is ", kind_name(s),
              ", expected a string");
        out.metadata[k] = s.get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(name, v, buffer_size, source));
  }

  // The tensors must tile the data buffer: no gap, no overlap, nothing after the last one.
  std::vector<const Entry*> by_offset;
  for (const Entry& e : entries) by_offset.push_back(&e);
  std::stable_sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t covered = 0;
  for (const Entry* e : by_offset) {
    check(e->begin == covered, where, "corrupt header: tensor '", e->name, "' starts at byte ", e->begin,
          " of the data buffer but the previous tensors end at ", covered, " (a gap or an overlap)");
    covered = e->end;
  }
  check(covered == buffer_size, where, "corrupt file: the tensors cover ", covered,
        " bytes but the data buffer has ", buffer_size, " (trailing bytes)");

  // Only now, with everything validated, make the tensors.
  for (const Entry& e : entries) {
    Tensor t = empty(e.shape, e.dtype);
    if (e.end > e.begin) std::memcpy(t.raw_data(), bytes.data() + data_start + e.begin, e.end - e.begin);
    out.tensors.emplace_back(e.name, std::move(t));
  }
  return out;
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  write_file_atomically(path, encode_safetensors(tensors, metadata), "save_safetensors");
}

SafetensorsContents load_safetensors(const std::string& path) {
  return decode_safetensors(read_file(path, "load_safetensors"), path);
}

}  // namespace nl
