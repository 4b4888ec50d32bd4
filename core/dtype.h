// Element types and devices.
//
// float32 is what models train in; float64 exists for gradient checks and reference computations (kernels are
// templates written once for both); int64 holds labels and indices.
// A Device says where a tensor's storage lives. Only the CPU is implemented; every op picks its kernel by
// device in one place (core/dispatch.cpp), so a GPU backend adds kernels without touching call sites.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace nl {

enum class DType { Float32, Float64, Int64 };
enum class Device { CPU, CUDA };

inline constexpr DType kFloat32 = DType::Float32;
inline constexpr DType kFloat64 = DType::Float64;
inline constexpr DType kInt64 = DType::Int64;

size_t dtype_size(DType t);
const char* dtype_name(DType t);  // "float32", "float64", "int64"
const char* device_name(Device d);
inline bool is_floating(DType t) { return t != DType::Int64; }

template <class T>
struct dtype_of;
template <>
struct dtype_of<float> {
  static constexpr DType value = DType::Float32;
};
template <>
struct dtype_of<double> {
  static constexpr DType value = DType::Float64;
};
template <>
struct dtype_of<int64_t> {
  static constexpr DType value = DType::Int64;
};

template <class T>
struct type_tag {
  using type = T;
};

// Calls f(type_tag<T>{}) with T the C++ type of a floating dtype; int64 is an error naming `op`.
template <class F>
decltype(auto) visit_floating(DType t, const char* op, F&& f);

// Calls f(type_tag<T>{}) for any dtype.
template <class F>
decltype(auto) visit_dtype(DType t, F&& f) {
  switch (t) {
    case DType::Float32:
      return f(type_tag<float>{});
    case DType::Float64:
      return f(type_tag<double>{});
    default:
      return f(type_tag<int64_t>{});
  }
}

}  // namespace nl

#include "error.h"

template <class F>
decltype(auto) nl::visit_floating(DType t, const char* op, F&& f) {
  if (t == DType::Float32) return f(type_tag<float>{});
  if (t == DType::Float64) return f(type_tag<double>{});
  throw Error(cat_str(op, ": expected a float32 or float64 tensor, got ", dtype_name(t)));
}
