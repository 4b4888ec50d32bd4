// safetensors reading and writing (format in core/safetensors.h), with the small JSON reader and writer the
// header needs: objects, arrays, strings with escapes, integers, true/false/null. Nothing else is needed
// and nothing else is accepted silently: a fractional number where an integer belongs is an error.
#include "core/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

#include "autograd/engine.h"
#include "core/file_util.h"

namespace nl {
namespace {

static_assert(std::endian::native == std::endian::little,
              "safetensors stores little-endian data; normlab writes host memory as it is");

// Headers larger than this are rejected (the reference implementation uses the same limit).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr int kMaxJsonDepth = 64;

// ---- JSON -------------------------------------------------------------------------------------------------

struct Json {
  enum class Kind { Null, Bool, Integer, Fraction, String, Array, Object } kind = Kind::Null;
  bool boolean = false;
  int64_t integer = 0;
  std::string string;
  std::vector<Json> array;
  std::vector<std::pair<std::string, Json>> object;  // in file order
};

const char* kind_name(Json::Kind k) {
  switch (k) {
    case Json::Kind::Null:
      return "null";
    case Json::Kind::Bool:
      return "a boolean";
    case Json::Kind::Integer:
      return "an integer";
    case Json::Kind::Fraction:
      return "a fractional number";
    case Json::Kind::String:
      return "a string";
    case Json::Kind::Array:
      return "an array";
    case Json::Kind::Object:
      return "an object";
  }
  return "a value";
}

class JsonParser {
 public:
  JsonParser(const char* data, size_t size, const std::string& source)
      : p_(data), n_(size), source_(source) {}

  Json parse_document() {
    Json v = value(0);
    skip_space();
    if (i_ != n_) fail("unexpected characters after the JSON object");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(cat_str("load_safetensors: ", source_, ": corrupt header: ", what, " at byte ", i_,
                        " of the JSON header"));
  }

  void skip_space() {
    while (i_ < n_ && (p_[i_] == ' ' || p_[i_] == '\t' || p_[i_] == '\n' || p_[i_] == '\r')) ++i_;
  }

  char peek() {
    skip_space();
    if (i_ >= n_) fail("unexpected end of the header");
    return p_[i_];
  }

  void expect(char c) {
    if (peek() != c) fail(cat_str("expected '", c, "'"));
    ++i_;
  }

  bool literal(const char* word) {
    const size_t len = std::strlen(word);
    if (i_ + len > n_ || std::memcmp(p_ + i_, word, len) != 0) return false;
    i_ += len;
    return true;
  }

  Json value(int depth) {
    if (depth > kMaxJsonDepth) fail("nesting too deep");
    Json v;
    const char c = peek();
    if (c == '{') {
      v.kind = Json::Kind::Object;
      ++i_;
      if (peek() == '}') return ++i_, v;
      while (true) {
        if (peek() != '"') fail("expected a string key");
        std::string key = string();
        for (const auto& [k, ignored] : v.object)
          if (k == key) fail(cat_str("duplicate key \"", key, "\""));
        expect(':');
        v.object.emplace_back(std::move(key), value(depth + 1));
        if (peek() == ',') {
          ++i_;
          continue;
        }
        expect('}');
        return v;
      }
    }
    if (c == '[') {
      v.kind = Json::Kind::Array;
      ++i_;
      if (peek() == ']') return ++i_, v;
      while (true) {
        v.array.push_back(value(depth + 1));
        if (peek() == ',') {
          ++i_;
          continue;
        }
        expect(']');
        return v;
      }
    }
    if (c == '"') {
      v.kind = Json::Kind::String;
      v.string = string();
      return v;
    }
    if (c == '-' || (c >= '0' && c <= '9')) return number();
    if (literal("true")) return v.kind = Json::Kind::Bool, v.boolean = true, v;
    if (literal("false")) return v.kind = Json::Kind::Bool, v;
    if (literal("null")) return v;
    fail(cat_str("unexpected character '", c, "'"));
  }

  Json number() {
    Json v;
    v.kind = Json::Kind::Integer;
    const bool negative = p_[i_] == '-';
    if (negative) ++i_;
    if (i_ >= n_ || p_[i_] < '0' || p_[i_] > '9') fail("malformed number");
    uint64_t magnitude = 0;
    bool overflow = false;
    while (i_ < n_ && p_[i_] >= '0' && p_[i_] <= '9') {
      const uint64_t digit = static_cast<uint64_t>(p_[i_++] - '0');
      if (magnitude > (static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) - digit) / 10)
        overflow = true;
      magnitude = magnitude * 10 + digit;
    }
    if (i_ < n_ && (p_[i_] == '.' || p_[i_] == 'e' || p_[i_] == 'E')) {
      v.kind = Json::Kind::Fraction;
      if (p_[i_] == '.') {
        ++i_;
        if (i_ >= n_ || p_[i_] < '0' || p_[i_] > '9') fail("malformed number");
        while (i_ < n_ && p_[i_] >= '0' && p_[i_] <= '9') ++i_;
      }
      if (i_ < n_ && (p_[i_] == 'e' || p_[i_] == 'E')) {
        ++i_;
        if (i_ < n_ && (p_[i_] == '+' || p_[i_] == '-')) ++i_;
        if (i_ >= n_ || p_[i_] < '0' || p_[i_] > '9') fail("malformed number");
        while (i_ < n_ && p_[i_] >= '0' && p_[i_] <= '9') ++i_;
      }
      return v;
    }
    if (overflow) fail("integer out of the 64-bit range");
    v.integer = negative ? -static_cast<int64_t>(magnitude) : static_cast<int64_t>(magnitude);
    return v;
  }

  unsigned hex4() {
    if (i_ + 4 > n_) fail("truncated \\u escape");
    unsigned code = 0;
    for (int k = 0; k < 4; ++k) {
      const char h = p_[i_++];
      code <<= 4;
      if (h >= '0' && h <= '9')
        code |= static_cast<unsigned>(h - '0');
      else if (h >= 'a' && h <= 'f')
        code |= static_cast<unsigned>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F')
        code |= static_cast<unsigned>(h - 'A' + 10);
      else
        fail("bad hex digit in a \\u escape");
    }
    return code;
  }

  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  std::string string() {
    expect('"');
    std::string out;
    while (true) {
      if (i_ >= n_) fail("unterminated string");
      const char c = p_[i_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character inside a string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= n_) fail("unterminated escape");
      const char e = p_[i_++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00) {  // a surrogate pair encodes one code point above U+FFFF
            if (i_ + 2 > n_ || p_[i_] != '\\' || p_[i_ + 1] != 'u')
              fail("unpaired surrogate in a \\u escape");
            i_ += 2;
            const unsigned low = hex4();
            if (low < 0xDC00 || low >= 0xE000) fail("unpaired surrogate in a \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          } else if (cp >= 0xDC00 && cp < 0xE000) {
            fail("unpaired surrogate in a \\u escape");
          }
          append_utf8(out, cp);
          break;
        }
        default:
          fail(cat_str("unknown escape '\\", e, "'"));
      }
    }
  }

  const char* p_;
  size_t n_;
  size_t i_ = 0;
  const std::string& source_;
};

void write_json_string(std::string& out, const std::string& s) {
  static const char* hex = "0123456789abcdef";
  out += '"';
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"')
      out += "\\\"";
    else if (c == '\\')
      out += "\\\\";
    else if (u < 0x20)
      out += cat_str("\\u00", hex[u >> 4], hex[u & 0xF]);
    else
      out += c;  // UTF-8 passes through unchanged
  }
  out += '"';
}

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

Entry parse_entry(const std::string& name, const Json& v, uint64_t buffer_size, const std::string& source) {
  auto bad = [&](const std::string& what) -> Error {
    return Error(cat_str("load_safetensors: ", source, ": corrupt header: tensor '", name, "' ", what));
  };
  if (v.kind != Json::Kind::Object) throw bad(cat_str("is ", kind_name(v.kind), ", expected an object"));
  const Json *dtype = nullptr, *shape = nullptr, *offsets = nullptr;
  for (const auto& [key, field] : v.object) {
    if (key == "dtype")
      dtype = &field;
    else if (key == "shape")
      shape = &field;
    else if (key == "data_offsets")
      offsets = &field;
    else
      throw bad(cat_str("has an unknown field \"", key, "\""));
  }
  if (!dtype || !shape || !offsets) throw bad("lacks one of \"dtype\", \"shape\", \"data_offsets\"");
  Entry e{name, DType::Float32, {}, 0, 0};
  if (dtype->kind != Json::Kind::String) throw bad("has a dtype that is not a string");
  if (!parse_dtype(dtype->string, e.dtype))
    throw bad(cat_str("has dtype \"", dtype->string, "\", which normlab does not read (F32, F64, I64)"));
  if (shape->kind != Json::Kind::Array) throw bad("has a shape that is not an array");
  for (const Json& d : shape->array) {
    if (d.kind != Json::Kind::Integer || d.integer < 0)
      throw bad("has a shape entry that is not an integer >= 0");
    e.shape.push_back(d.integer);
  }
  // Checked: the element and byte counts of a hostile shape must not wrap around to match the offsets.
  const auto expected = static_cast<uint64_t>(nbytes_of(
      e.shape, e.dtype, cat_str("load_safetensors: ", source, ": corrupt header: tensor '", name, "'")));
  if (offsets->kind != Json::Kind::Array || offsets->array.size() != 2 ||
      offsets->array[0].kind != Json::Kind::Integer || offsets->array[1].kind != Json::Kind::Integer ||
      offsets->array[0].integer < 0 || offsets->array[1].integer < offsets->array[0].integer)
    throw bad("has data_offsets that are not [begin, end] with 0 <= begin <= end");
  e.begin = static_cast<uint64_t>(offsets->array[0].integer);
  e.end = static_cast<uint64_t>(offsets->array[1].integer);
  if (e.end > buffer_size)
    throw Error(cat_str("load_safetensors: ", source, ": truncated: tensor '", name, "' needs bytes [",
                        e.begin, ", ", e.end, ") of the data buffer, which has only ", buffer_size,
                        " bytes"));
  if (e.end - e.begin != expected)
    throw bad(cat_str("has shape ", e.shape, " and dtype ", dtype->string, " (", expected,
                      " bytes) but its data_offsets span ", e.end - e.begin, " bytes"));
  return e;
}

}  // namespace

std::string encode_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                               const std::map<std::string, std::string>& metadata) {
  std::string header = "{";
  bool first = true;
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    for (const auto& [k, v] : metadata) {
      if (!first) header += ',';
      first = false;
      write_json_string(header, k);
      header += ':';
      write_json_string(header, v);
    }
    header += '}';
  }
  uint64_t offset = 0;
  std::vector<Tensor> dense;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, t] = tensors[i];
    check(t.defined(), "save_safetensors: tensor '", name, "' is undefined");
    check(name != "__metadata__", "save_safetensors: '__metadata__' is reserved and cannot name a tensor");
    for (size_t j = 0; j < i; ++j)
      check(tensors[j].first != name, "save_safetensors: the name '", name, "' appears twice");
    {
      NoGradGuard no_record;
      dense.push_back(t.contiguous());
    }
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype());
    if (!first) header += ',';
    first = false;
    write_json_string(header, name);
    header += cat_str(":{\"dtype\":\"", safetensors_dtype(t.dtype()), "\",\"shape\":[");
    for (int64_t d = 0; d < t.dim(); ++d) header += cat_str(d ? "," : "", t.size(d));
    header += cat_str("],\"data_offsets\":[", offset, ",", offset + bytes, "]}");
    offset += bytes;
  }
  header += '}';
  header.append((8 - header.size() % 8) % 8, ' ');  // the data buffer starts 8-byte aligned

  std::string out;
  out.reserve(8 + header.size() + offset);
  const uint64_t n = header.size();
  for (int k = 0; k < 8; ++k) out += static_cast<char>((n >> (8 * k)) & 0xFF);
  out += header;
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

  const Json doc = JsonParser(bytes.data() + 8, header_len, source).parse_document();
  check(doc.kind == Json::Kind::Object, where, "corrupt header: the JSON header is ", kind_name(doc.kind),
        ", expected an object");
  const uint64_t data_start = 8 + header_len, buffer_size = bytes.size() - data_start;

  SafetensorsContents out;
  std::vector<Entry> entries;
  for (const auto& [name, v] : doc.object) {
    if (name == "__metadata__") {
      check(v.kind == Json::Kind::Object, where, "corrupt header: __metadata__ is ", kind_name(v.kind),
            ", expected an object of strings");
      for (const auto& [k, s] : v.object) {
        check(s.kind == Json::Kind::String, where, "corrupt header: __metadata__ entry \"", k, "\" is ",
              kind_name(s.kind), ", expected a string");
        out.metadata[k] = s.string;
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
