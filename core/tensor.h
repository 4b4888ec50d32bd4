// Tensor: a typed, shaped view into reference-counted storage, plus the autograd fields.
//
// Layout. Storage is one flat buffer. A tensor reads it through `offset` and `strides` (in elements,
// row-major by default), so reshape of a contiguous tensor, permute, transpose, narrow, slice and expand are
// views: they share the storage and copy nothing. contiguous() copies only when the layout needs it.
// Kernels read contiguous inputs; a kernel that gets a strided view asks for contiguous() first.
//
// Handles. Tensor is a cheap handle (a shared_ptr to TensorImpl); copying a Tensor aliases it, clone() copies
// the data. Two handles to the same impl see the same data, grad and requires_grad flag.
//
// Autograd. A tensor made by a differentiable op while grad mode is on, from inputs that require grad, holds
// `grad_fn`: the Node that knows how to send its gradient back to the inputs (autograd/engine.h).
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "dtype.h"
#include "error.h"

namespace nl {

using Shape = std::vector<int64_t>;

struct Node;
class Tensor;
using GradHook = std::function<Tensor(const Tensor&)>;

// A flat buffer of bytes on one device, 64-byte aligned. Freed blocks go back to a per-size cache
// (core/storage.cpp) so steady-state training steps do not call the system allocator.
struct Storage {
  void* data = nullptr;
  size_t nbytes = 0;
  Device device = Device::CPU;
  explicit Storage(size_t nbytes, Device device = Device::CPU);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape shape;
  Shape strides;  // in elements
  DType dtype = DType::Float32;

  bool requires_grad = false;
  bool retains_grad = false;
  std::shared_ptr<TensorImpl> grad;  // accumulated gradient (leaves, and non-leaves with retain_grad)
  std::shared_ptr<Node> grad_fn;     // set on outputs of recorded ops
  std::vector<GradHook> hooks;
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& other) const { return impl_ == other.impl_; }

  // ---- metadata
  const Shape& shape() const { return checked().shape; }
  const Shape& strides() const { return checked().strides; }
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const;
  DType dtype() const { return checked().dtype; }
  Device device() const { return checked().storage->device; }
  bool is_contiguous() const;
  int64_t offset() const { return checked().offset; }

  // Pointer to element 0 (storage + offset). Checks that T matches the dtype.
  template <class T>
  T* data() const;
  void* raw_data() const;

  // The value of a one-element tensor, as double (or as T).
  double item() const;
  template <class T>
  T item() const;
  // Copies the elements out, in logical row-major order, converted to T.
  template <class T>
  std::vector<T> to_vector() const;

  // ---- views and copies (recorded by autograd)
  Tensor reshape(Shape shape) const;  // a view when the layout allows, else a copy; one dim may be -1
  Tensor view(Shape shape) const;     // like reshape, but an error instead of a copy
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor transpose(int64_t dim0, int64_t dim1) const;
  Tensor t() const;  // transpose of a 2-D tensor
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;  // removes `dim`
  Tensor unsqueeze(int64_t dim) const;
  Tensor squeeze(int64_t dim) const;
  Tensor expand(const Shape& shape) const;  // broadcast view (stride 0), like NumPy's broadcast_to
  Tensor contiguous() const;
  Tensor clone() const;
  Tensor to(DType dtype) const;
  // The tensor on `device`: itself when it is already there; an error naming both devices when this build
  // cannot reach the device (the CPU-only build has no CUDA backend).
  Tensor to(Device device) const;
  // Shares the storage, drops the graph: the result does not require grad.
  Tensor detach() const;

  // ---- autograd (autograd/engine.cpp)
  bool requires_grad() const { return checked().requires_grad; }
  Tensor& requires_grad_(bool on = true);
  bool is_leaf() const { return checked().grad_fn == nullptr; }
  const std::shared_ptr<Node>& grad_fn() const { return checked().grad_fn; }
  Tensor grad() const;  // undefined until a backward pass reaches this tensor
  void set_grad(const Tensor& g);
  void zero_grad();       // drops .grad (the next backward starts from zero)
  void backward() const;  // from a one-element tensor: seeds with 1
  void backward(const Tensor& grad_output) const;
  void retain_grad();
  // hook(grad) runs when the gradient of this tensor has been summed, before it flows further; a hook that
  // returns a defined tensor replaces the gradient, one that returns nothing (or an undefined Tensor) only
  // observes it.
  void register_hook(GradHook hook) const;
  template <class F>
  requires std::is_void_v<std::invoke_result_t<F&, const Tensor&>>
  void register_hook(F observe) const {
    register_hook(GradHook([observe = std::move(observe)](const Tensor& g) mutable {
      observe(g);
      return Tensor();
    }));
  }

  // Makes this tensor hold `src`'s data (storage, shape, strides, dtype), as PyTorch's `param.data = src`:
  // the handle, its requires_grad flag and its hooks stay, so modules and optimizers that hold it see the new
  // data. Not recorded. The gradient is kept when its shape and dtype still match, dropped otherwise.
  // Module::to(dtype) converts parameters with it.
  void set_data(const Tensor& src);

  // ---- in-place updates. They are not recorded: use them on data (optimizer steps, initializers, buffers),
  // under no_grad or on tensors that do not require grad. As in PyTorch, updating a leaf that requires grad
  // while grad mode is on is an error (the graph would silently use the new values).
  Tensor& fill_(double value);
  Tensor& zero_() { return fill_(0.0); }
  Tensor& copy_(const Tensor& src);                       // same shape (src may broadcast), converts dtype
  Tensor& add_(const Tensor& other, double alpha = 1.0);  // this += alpha * other
  Tensor& mul_(double value);

 private:
  TensorImpl& checked() const;
  void check_inplace_allowed(const char* op) const;
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);
std::string to_string(const Tensor& t);

// ---- construction
Tensor empty(const Shape& shape, DType dtype = kFloat32, Device device = Device::CPU);
Tensor zeros(const Shape& shape, DType dtype = kFloat32);
Tensor ones(const Shape& shape, DType dtype = kFloat32);
Tensor full(const Shape& shape, double value, DType dtype = kFloat32);
Tensor scalar_tensor(double value, DType dtype = kFloat32);  // shape []
Tensor empty_like(const Tensor& t);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor arange(double start, double end, double step = 1.0, DType dtype = kFloat32);
Tensor arange(int64_t end, DType dtype = kInt64);
Tensor linspace(double start, double end, int64_t steps, DType dtype = kFloat32);
Tensor eye(int64_t n, DType dtype = kFloat32);
// From values in row-major order: a 1-D tensor, or the given shape ({} with one value makes a scalar).
template <class T>
Tensor from_vector(const std::vector<T>& values);
template <class T>
Tensor from_vector(const std::vector<T>& values, Shape shape);
Tensor tensor(std::initializer_list<double> values, DType dtype = kFloat32);
Tensor tensor(std::initializer_list<std::initializer_list<double>> rows, DType dtype = kFloat32);

// ---- shape helpers
// Shape arithmetic is checked: a valid shape has no negative dimension, and the product of its dimensions,
// each 0 counted as 1, fits in int64_t (so its element count, its strides and every partial product fit too;
// [0, 2^32, 2^32] is rejected although it has no element). Errors name `op` and the shape.
//
// a · b, one step of a computation on `shape`; an nl::Error when the product leaves int64_t.
int64_t checked_mul(int64_t a, int64_t b, const Shape& shape, std::string_view op);
// The number of elements of a valid shape; an nl::Error for any other shape.
int64_t numel_of(const Shape& shape, std::string_view op = "numel_of");
// numel_of(shape) · dtype_size(dtype), checked the same way.
int64_t nbytes_of(const Shape& shape, DType dtype, std::string_view op);
Shape contiguous_strides(const Shape& shape, std::string_view op = "contiguous_strides");
int64_t normalize_dim(int64_t dim, int64_t rank, const char* op);  // -1 → rank-1, with a range check
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

// Throws nl::Error("<op>: <name> is undefined") unless `t` is defined. Ops check their tensor arguments with
// it, so that a default-constructed Tensor (or a gradient never computed) is reported where it was passed.
void check_defined(const Tensor& t, const char* op, const char* name);

// ---------------------------------------------------------------------------------------------------------
template <class T>
T* Tensor::data() const {
  const TensorImpl& im = checked();
  check(im.dtype == dtype_of<T>::value, "data<", dtype_name(dtype_of<T>::value), ">: tensor has dtype ",
        dtype_name(im.dtype));
  return static_cast<T*>(im.storage->data) + im.offset;
}

template <class T>
T Tensor::item() const {
  return static_cast<T>(item());
}

}  // namespace nl
