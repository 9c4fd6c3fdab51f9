// Tensor: a strided view of a Storage, with the autograd state needed for
// reverse-mode differentiation (core/autograd.h).
//
// A Tensor is a cheap handle (shared_ptr to TensorImpl). Views (reshape of a
// contiguous tensor, slice, detach) share storage; nothing is copied unless an
// op says so (contiguous(), clone(), to()).
#pragma once
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/storage.h"

namespace hyscale {

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);

class Node;
class Tensor;
using GradHook = std::function<void(Tensor& grad)>;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape shape;
  Shape strides;  // in elements
  DType dtype = DType::f32;

  // autograd
  bool requires_grad = false;
  std::shared_ptr<Node> grad_fn;          // null for leaves
  std::shared_ptr<TensorImpl> grad;       // accumulated gradient (leaves)
  std::vector<GradHook> grad_ready_hooks; // fired once per backward when this leaf's grad is final
  std::string name;                       // parameter name, for messages
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- factories
  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device dev = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device dev = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::f32);
  template <class T>
  static Tensor from_vector(const std::vector<T>& v, const Shape& shape) {
    HS_CHECK(static_cast<int64_t>(v.size()) == shape_numel(shape), "Tensor::from_vector: ", v.size(),
             " values for shape ", shape_str(shape));
    Tensor t = empty(shape, dtype_of<T>);
    if (!v.empty()) std::memcpy(t.raw_data(), v.data(), v.size() * sizeof(T));
    return t;
  }

  // ---- metadata
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Shape& strides() const { return impl().strides; }
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  int64_t size(int64_t d) const;
  int64_t numel() const { return shape_numel(impl().shape); }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  bool is_contiguous() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype()); }
  std::string desc() const;  // "f32[2, 3] cpu"

  // ---- data access (checked)
  void* raw_data() const;
  template <class T>
  T* data() const {
    HS_CHECK(dtype_of<T> == dtype(), "Tensor::data<", dtype_name(dtype_of<T>), ">() on a ", dtype_name(dtype()),
             " tensor ", shape_str(shape()));
    return static_cast<T*>(raw_data());
  }
  template <class T>
  std::vector<T> to_vector() const {
    Tensor c = contiguous().to(Device::cpu());
    const T* p = c.data<T>();
    return std::vector<T>(p, p + numel());
  }
  double item() const;  // single-element tensor as double

  // ---- views and copies
  Tensor reshape(const Shape& shape) const;          // view if contiguous, else copy; differentiable
  Tensor slice(int64_t dim, int64_t start, int64_t end) const;  // view; differentiable
  Tensor contiguous() const;                         // self if contiguous; differentiable
  Tensor clone() const;                              // contiguous copy, differentiable
  Tensor detach() const;                             // shares storage, no autograd history
  Tensor to(DType dtype) const;                      // cast (copy unless same dtype)
  Tensor to(Device dev) const;                       // device copy (self if same device)
  void copy_from(const Tensor& src);                 // same shape; casts and crosses devices
  void fill(double value);
  void zero();

  // ---- autograd
  bool requires_grad() const { return impl().requires_grad; }
  Tensor& requires_grad_(bool on = true);
  const std::shared_ptr<Node>& grad_fn() const { return impl().grad_fn; }
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  Tensor grad() const { return impl().grad ? Tensor(impl().grad) : Tensor(); }
  void set_grad(const Tensor& g);
  void zero_grad() { impl().grad.reset(); }
  void add_grad_ready_hook(GradHook hook) { impl().grad_ready_hooks.push_back(std::move(hook)); }
  // Reverse-mode backward from this tensor. A scalar gets seed 1; otherwise pass `seed`.
  void backward(const Tensor& seed = Tensor()) const;
  const std::string& name() const { return impl().name; }
  void set_name(const std::string& n) { impl().name = n; }

  TensorImpl& impl() const {
    HS_CHECK(impl_ != nullptr, "use of an undefined tensor");
    return *impl_;
  }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& o) const { return impl_ == o.impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

Shape contiguous_strides(const Shape& shape);

}  // namespace hyscale
