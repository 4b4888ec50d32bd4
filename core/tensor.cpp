// Tensor construction, metadata, views (with their backward), copies and in-place updates.
#include "core/tensor.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "autograd/engine.h"
#include "core/kernels.h"
#include "core/ops.h"

namespace nl {

// ---- shape helpers -------------------------------------------------------------------------------------

int64_t checked_mul(int64_t a, int64_t b, const Shape& shape, std::string_view op) {
  int64_t product = 0;
  if (__builtin_mul_overflow(a, b, &product))
    throw Error(cat_str(op, ": shape ", shape, " is too large: ", a, " * ", b, " does not fit in 64 bits"));
  return product;
}

int64_t numel_of(const Shape& shape, std::string_view op) {
  int64_t numel = 1, extent = 1;  // extent: the product with each 0 counted as 1, which bounds numel
  for (const int64_t d : shape) {
    check(d >= 0, op, ": negative dimension in shape ", shape);
    extent = checked_mul(extent, std::max<int64_t>(d, 1), shape, op);
    numel *= d;
  }
  return numel;
}

int64_t nbytes_of(const Shape& shape, DType dtype, std::string_view op) {
  return checked_mul(numel_of(shape, op), static_cast<int64_t>(dtype_size(dtype)), shape, op);
}

Shape contiguous_strides(const Shape& shape, std::string_view op) {
  Shape strides(shape.size());
  int64_t s = 1;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    strides[d] = s;
    s = checked_mul(s, std::max<int64_t>(shape[d], 1), shape, op);
  }
  return strides;
}

int64_t normalize_dim(int64_t dim, int64_t rank, const char* op) {
  const int64_t r = std::max<int64_t>(rank, 1);
  check(dim >= -r && dim < r, op, ": dim ", dim, " is out of range for a tensor of rank ", rank,
        " (expected -", r, " <= dim < ", r, ")");
  return dim < 0 ? dim + r : dim;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    check(da == db || da == 1 || db == 1, op, ": shapes ", a, " and ", b, " cannot be broadcast: dimension ",
          i, " is ", da, " vs ", db);
    out[i] = da == 1 ? db : da;
  }
  numel_of(out, op);
  return out;
}

void check_defined(const Tensor& t, const char* op, const char* name) {
  if (!t.defined()) throw Error(cat_str(op, ": ", name, " is undefined"));
}

namespace {

// The methods below name themselves when called on an undefined tensor.
void check_self(const Tensor& t, const char* op) {
  if (!t.defined())
    throw Error(cat_str(op, ": the tensor is undefined (default-constructed, or a missing gradient)"));
}

}  // namespace

// ---- metadata -------------------------------------------------------------------------------------------

TensorImpl& Tensor::checked() const {
  if (!impl_) throw Error("tensor: use of an undefined tensor (default-constructed, or a missing gradient)");
  return *impl_;
}

int64_t Tensor::size(int64_t d) const { return shape()[normalize_dim(d, dim(), "size")]; }
int64_t Tensor::numel() const { return numel_of(shape(), "numel"); }

bool Tensor::is_contiguous() const {
  const TensorImpl& im = checked();
  if (numel() == 0) return true;  // no element to misplace (and contiguous_strides treats size 0 as 1)
  int64_t expected = 1;
  for (int64_t d = static_cast<int64_t>(im.shape.size()) - 1; d >= 0; --d) {
    if (im.shape[d] == 1) continue;
    if (im.strides[d] != expected) return false;
    expected *= im.shape[d];
  }
  return true;
}

void* Tensor::raw_data() const {
  const TensorImpl& im = checked();
  return static_cast<char*>(im.storage->data) + im.offset * static_cast<int64_t>(dtype_size(im.dtype));
}

double Tensor::item() const {
  check_self(*this, "item");
  check(numel() == 1, "item: expected a tensor with one element, got shape ", shape());
  return visit_dtype(dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    return static_cast<double>(*data<T>());
  });
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  check_self(*this, "to_vector");
  Tensor c = contiguous();
  std::vector<T> out(static_cast<size_t>(c.numel()));
  visit_dtype(c.dtype(), [&](auto tag) {
    using S = typename decltype(tag)::type;
    const S* p = c.data<S>();
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<T>(p[i]);
  });
  return out;
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;

// ---- construction ---------------------------------------------------------------------------------------

Tensor empty(const Shape& shape, DType dtype, Device device) {
  const int64_t nbytes = nbytes_of(shape, dtype, "empty");
  auto im = std::make_shared<TensorImpl>();
  im->storage = std::make_shared<Storage>(static_cast<size_t>(nbytes), device);
  im->shape = shape;
  im->strides = contiguous_strides(shape, "empty");
  im->dtype = dtype;
  return Tensor(std::move(im));
}

Tensor full(const Shape& shape, double value, DType dtype) {
  Tensor t = empty(shape, dtype);
  kernels::fill(t, value);
  return t;
}
Tensor zeros(const Shape& shape, DType dtype) { return full(shape, 0.0, dtype); }
Tensor ones(const Shape& shape, DType dtype) { return full(shape, 1.0, dtype); }
Tensor scalar_tensor(double value, DType dtype) { return full({}, value, dtype); }
Tensor empty_like(const Tensor& t) { return empty(t.shape(), t.dtype(), t.device()); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.dtype()); }

Tensor arange(double start, double end, double step, DType dtype) {
  check(step != 0, "arange: step must be nonzero");
  const double count = std::max(0.0, std::ceil((end - start) / step));
  check(count < 0x1p63, "arange: [", start, ", ", end, ") in steps of ", step, " has ", count,
        " elements, more than a shape can hold");
  const auto n = static_cast<int64_t>(count);
  Tensor t = empty({n}, dtype);
  visit_dtype(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = t.data<T>();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(start + static_cast<double>(i) * step);
  });
  return t;
}
Tensor arange(int64_t end, DType dtype) { return arange(0.0, static_cast<double>(end), 1.0, dtype); }

Tensor linspace(double start, double end, int64_t steps, DType dtype) {
  check(steps >= 0, "linspace: steps must be >= 0, got ", steps);
  Tensor t = empty({steps}, dtype);
  visit_dtype(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = t.data<T>();
    const double h = steps > 1 ? (end - start) / static_cast<double>(steps - 1) : 0.0;
    for (int64_t i = 0; i < steps; ++i) p[i] = static_cast<T>(i == steps - 1 ? end : start + h * i);
  });
  return t;
}

Tensor eye(int64_t n, DType dtype) {
  Tensor t = zeros({n, n}, dtype);
  visit_dtype(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    for (int64_t i = 0; i < n; ++i) t.data<T>()[i * n + i] = T(1);
  });
  return t;
}

template <class T>
Tensor from_vector(const std::vector<T>& values) {
  return from_vector(values, {static_cast<int64_t>(values.size())});
}

template <class T>
Tensor from_vector(const std::vector<T>& values, Shape shape) {
  check(numel_of(shape) == static_cast<int64_t>(values.size()), "from_vector: ", values.size(),
        " values do not fill shape ", shape, " (", numel_of(shape), " elements)");
  Tensor t = empty(shape, dtype_of<T>::value);
  std::copy(values.begin(), values.end(), t.data<T>());
  return t;
}
template Tensor from_vector<float>(const std::vector<float>&);
template Tensor from_vector<double>(const std::vector<double>&);
template Tensor from_vector<int64_t>(const std::vector<int64_t>&);
template Tensor from_vector<float>(const std::vector<float>&, Shape);
template Tensor from_vector<double>(const std::vector<double>&, Shape);
template Tensor from_vector<int64_t>(const std::vector<int64_t>&, Shape);

Tensor tensor(std::initializer_list<double> values, DType dtype) {
  return from_vector(std::vector<double>(values), {static_cast<int64_t>(values.size())}).to(dtype);
}

Tensor tensor(std::initializer_list<std::initializer_list<double>> rows, DType dtype) {
  std::vector<double> flat;
  const size_t cols = rows.size() ? rows.begin()->size() : 0;
  for (const auto& r : rows) {
    check(r.size() == cols, "tensor: ragged rows: expected ", cols, " values per row, got ", r.size());
    flat.insert(flat.end(), r.begin(), r.end());
  }
  return from_vector(flat, {static_cast<int64_t>(rows.size()), static_cast<int64_t>(cols)}).to(dtype);
}

// ---- views ----------------------------------------------------------------------------------------------

namespace {

Tensor make_view(const Tensor& base, Shape shape, Shape strides, int64_t offset) {
  auto im = std::make_shared<TensorImpl>();
  im->storage = base.impl()->storage;
  im->shape = std::move(shape);
  im->strides = std::move(strides);
  im->offset = offset;
  im->dtype = base.dtype();
  return Tensor(std::move(im));
}

Shape infer_shape(Shape shape, int64_t numel, const Shape& from, const char* op) {
  int64_t known = 1, infer_at = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      check(infer_at < 0, op, ": only one dimension may be -1, got ", shape);
      infer_at = static_cast<int64_t>(i);
    } else {
      check(shape[i] >= 0, op, ": invalid dimension ", shape[i], " in ", shape);
      known = checked_mul(known, shape[i], shape, op);
    }
  }
  if (infer_at >= 0) {
    check(known != 0 && numel % known == 0, op, ": cannot reshape ", from, " (", numel, " elements) into ",
          shape);
    shape[infer_at] = numel / known;
  }
  const int64_t new_numel = numel_of(shape, op);
  check(new_numel == numel, op, ": cannot reshape ", from, " (", numel, " elements) into ", shape, " (",
        new_numel, " elements)");
  return shape;
}

// x.view(new_shape), with `op` (view, or reshape, which views when it can) in its errors.
Tensor view_as(const Tensor& x, Shape new_shape, const char* op) {
  check_self(x, op);
  new_shape = infer_shape(std::move(new_shape), x.numel(), x.shape(), op);
  check(x.is_contiguous(), op, ": tensor of shape ", x.shape(),
        " is not contiguous; call reshape() (which copies) or contiguous() first");
  Tensor out = make_view(x, new_shape, contiguous_strides(new_shape, op), x.offset());
  return record(out, "view", {x},
                [in_shape = x.shape()](const Tensor& g) { return std::vector<Tensor>{g.reshape(in_shape)}; });
}

}  // namespace

Tensor Tensor::view(Shape new_shape) const { return view_as(*this, std::move(new_shape), "view"); }

Tensor Tensor::reshape(Shape new_shape) const {
  check_self(*this, "reshape");
  if (is_contiguous()) return view_as(*this, std::move(new_shape), "reshape");
  new_shape = infer_shape(std::move(new_shape), numel(), shape(), "reshape");  // before copying
  return view_as(contiguous(), std::move(new_shape), "reshape");
}

Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  check_self(*this, "flatten");
  if (dim() == 0) return reshape({1});
  start_dim = normalize_dim(start_dim, dim(), "flatten");
  end_dim = normalize_dim(end_dim, dim(), "flatten");
  check(start_dim <= end_dim, "flatten: start_dim ", start_dim, " is after end_dim ", end_dim);
  Shape s(shape().begin(), shape().begin() + start_dim);
  int64_t n = 1;
  for (int64_t d = start_dim; d <= end_dim; ++d) n *= shape()[d];
  s.push_back(n);
  s.insert(s.end(), shape().begin() + end_dim + 1, shape().end());
  return reshape(s);
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  check_self(*this, "permute");
  check(static_cast<int64_t>(dims.size()) == dim(), "permute: got ", dims.size(),
        " dims for a tensor of shape ", shape());
  Shape s(dims.size()), st(dims.size());
  std::vector<int64_t> inverse(dims.size(), -1);
  for (size_t i = 0; i < dims.size(); ++i) {
    const int64_t d = normalize_dim(dims[i], dim(), "permute");
    check(inverse[d] < 0, "permute: dim ", d, " appears twice in ", Shape(dims));
    inverse[d] = static_cast<int64_t>(i);
    s[i] = shape()[d];
    st[i] = strides()[d];
  }
  Tensor out = make_view(*this, s, st, offset());
  return record(out, "permute", {*this},
                [inverse](const Tensor& g) { return std::vector<Tensor>{g.permute(inverse)}; });
}

Tensor Tensor::transpose(int64_t dim0, int64_t dim1) const {
  check_self(*this, "transpose");
  std::vector<int64_t> dims(static_cast<size_t>(dim()));
  std::iota(dims.begin(), dims.end(), 0);
  std::swap(dims[normalize_dim(dim0, dim(), "transpose")], dims[normalize_dim(dim1, dim(), "transpose")]);
  return permute(dims);
}

Tensor Tensor::t() const {
  check_self(*this, "t");
  check(dim() == 2, "t: expected a 2-D tensor, got shape ", shape());
  return transpose(0, 1);
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  check_self(*this, "slice");
  d = normalize_dim(d, dim(), "slice");
  const int64_t n = shape()[d];
  check(step > 0, "slice: step must be positive, got ", step);
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape s = shape(), st = strides();
  s[d] = end > start ? (end - start - 1) / step + 1 : 0;
  if (s[d] > 1) st[d] = checked_mul(st[d], step, shape(), "slice");  // one element needs no stride
  Tensor out = make_view(*this, s, st, offset() + start * strides()[d]);
  const Shape in_shape = shape();
  return record(out, "slice", {*this}, [=](const Tensor& g) {
    Tensor dx = zeros(in_shape, g.dtype());
    dx.slice(d, start, end, step).copy_(g);
    return std::vector<Tensor>{dx};
  });
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  check_self(*this, "narrow");
  d = normalize_dim(d, dim(), "narrow");
  check(start >= 0 && length >= 0 && start + length <= shape()[d], "narrow: range [", start, ", ",
        start + length, ") is outside dim ", d, " of size ", shape()[d], " (shape ", shape(), ")");
  return slice(d, start, start + length);
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  check_self(*this, "select");
  d = normalize_dim(d, dim(), "select");
  check(index >= -shape()[d] && index < shape()[d], "select: index ", index, " is out of range for dim ", d,
        " of size ", shape()[d]);
  if (index < 0) index += shape()[d];
  return narrow(d, index, 1).squeeze(d);
}

Tensor Tensor::unsqueeze(int64_t d) const {
  check_self(*this, "unsqueeze");
  d = normalize_dim(d, dim() + 1, "unsqueeze");
  Shape s = shape();
  s.insert(s.begin() + d, 1);
  return is_contiguous() ? view(s) : reshape(s);
}

Tensor Tensor::squeeze(int64_t d) const {
  check_self(*this, "squeeze");
  d = normalize_dim(d, dim(), "squeeze");
  if (shape()[d] != 1) return *this;
  Shape s = shape(), st = strides();
  s.erase(s.begin() + d);
  st.erase(st.begin() + d);
  Tensor out = make_view(*this, s, st, offset());
  const Shape in_shape = shape();
  return record(out, "squeeze", {*this},
                [in_shape](const Tensor& g) { return std::vector<Tensor>{g.reshape(in_shape)}; });
}

Tensor Tensor::expand(const Shape& target) const {
  check_self(*this, "expand");
  if (target == shape()) return *this;
  check(target.size() >= shape().size(), "expand: cannot expand shape ", shape(), " to ", target);
  numel_of(target, "expand");
  const size_t lead = target.size() - shape().size();
  Shape st(target.size(), 0);
  for (size_t i = 0; i < shape().size(); ++i) {
    const int64_t have = shape()[i], want = target[lead + i];
    check(have == want || have == 1, "expand: cannot expand shape ", shape(), " to ", target, ": dimension ",
          lead + i, " is ", have);
    st[lead + i] = have == want ? strides()[i] : 0;
  }
  Tensor out = make_view(*this, target, st, offset());
  const Shape in_shape = shape();
  return record(out, "expand", {*this},
                [in_shape](const Tensor& g) { return std::vector<Tensor>{sum_to(g, in_shape)}; });
}

Tensor Tensor::contiguous() const {
  check_self(*this, "contiguous");
  if (is_contiguous()) return *this;
  Tensor out = empty(shape(), dtype(), device());
  kernels::copy(*this, out);
  return record(out, "contiguous", {*this}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor Tensor::clone() const {
  check_self(*this, "clone");
  Tensor out = empty(shape(), dtype(), device());
  kernels::copy(*this, out);
  return record(out, "clone", {*this}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor Tensor::to(DType target) const {
  check_self(*this, "to");
  if (target == dtype()) return *this;
  Tensor out = empty(shape(), target, device());
  kernels::copy(*this, out);
  if (!is_floating(target) || !is_floating(dtype())) return out;  // integer results are not differentiable
  const DType source = dtype();
  return record(out, "to", {*this}, [source](const Tensor& g) { return std::vector<Tensor>{g.to(source)}; });
}

Tensor Tensor::to(Device target) const {
  check_self(*this, "to");
  if (target == device()) return *this;
  throw Error(cat_str("to: cannot move a tensor from ", device_name(device()), " to ", device_name(target),
                      ": this build of normlab has no ", device_name(target), " backend"));
}

void Tensor::set_data(const Tensor& src) {
  check(src.defined(), "set_data: the source tensor is undefined");
  TensorImpl& im = checked();
  const TensorImpl& from = src.checked();
  check(!im.requires_grad || is_floating(from.dtype), "set_data: a tensor that requires grad cannot hold ",
        dtype_name(from.dtype), " data");
  im.storage = from.storage;
  im.offset = from.offset;
  im.shape = from.shape;
  im.strides = from.strides;
  im.dtype = from.dtype;
  if (im.grad && (im.grad->shape != im.shape || im.grad->dtype != im.dtype)) im.grad = nullptr;
}

Tensor Tensor::detach() const {
  check_self(*this, "detach");
  const TensorImpl& im = checked();
  auto out = std::make_shared<TensorImpl>();
  out->storage = im.storage;
  out->offset = im.offset;
  out->shape = im.shape;
  out->strides = im.strides;
  out->dtype = im.dtype;
  return Tensor(std::move(out));
}

// ---- in-place -------------------------------------------------------------------------------------------

void Tensor::check_inplace_allowed(const char* op) const {
  check(!(grad_mode_enabled() && requires_grad() && is_leaf()), op,
        ": a leaf tensor that requires grad is being used in an in-place operation (shape ", shape(),
        "); update it under NoGradGuard, or update its detach()");
}

Tensor& Tensor::fill_(double value) {
  check_self(*this, "fill_");
  check_inplace_allowed("fill_");
  if (is_contiguous()) {
    kernels::fill(*this, value);
  } else {
    Tensor src = full({}, value, dtype());
    copy_(src);
  }
  return *this;
}

Tensor& Tensor::copy_(const Tensor& src) {
  check_self(*this, "copy_");
  check_defined(src, "copy_", "src");
  check_inplace_allowed("copy_");
  check(src.numel() == numel() || broadcast_shapes(src.shape(), shape(), "copy_") == shape(),
        "copy_: source ", src.shape(), " does not match destination ", shape());
  Tensor s = src.shape() == shape() ? src : src.reshape(src.numel() == numel() ? shape() : src.shape());
  if (s.shape() != shape()) s = s.expand(shape());
  kernels::copy(s, *this);
  return *this;
}

Tensor& Tensor::add_(const Tensor& other, double alpha) {
  check_self(*this, "add_");
  check_defined(other, "add_", "other");
  check_inplace_allowed("add_");
  check(other.shape() == shape(), "add_: shape ", other.shape(), " does not match ", shape());
  check(other.dtype() == dtype(), "add_: dtype ", dtype_name(other.dtype()), " does not match ",
        dtype_name(dtype()));
  check(is_contiguous(), "add_: destination of shape ", shape(), " must be contiguous");
  kernels::axpy(alpha, other.contiguous(), *this);
  return *this;
}

Tensor& Tensor::mul_(double value) {
  check_self(*this, "mul_");
  check_inplace_allowed("mul_");
  check(is_contiguous(), "mul_: destination of shape ", shape(), " must be contiguous");
  kernels::unary(kernels::UnaryOp::MulScalar, {value, 0}, *this, *this);
  return *this;
}

}  // namespace nl
