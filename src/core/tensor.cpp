#include "core/tensor.h"

#ifdef HYSCALE_WITH_CUDA
#include "kernels/cuda.h"
#endif

#include <omp.h>

#include <cmath>
#include <sstream>

#include "core/autograd.h"

namespace hyscale {

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Shape contiguous_strides(const Shape& shape) {
  Shape st(shape.size());
  int64_t acc = 1;
  for (int64_t i = static_cast<int64_t>(shape.size()) - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= shape[i];
  }
  return st;
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device dev) {
  for (int64_t d : shape) HS_CHECK(d >= 0, "Tensor::empty: negative dimension in shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype), dev);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(impl);
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device dev) {
  Tensor t = empty(shape, dtype, dev);
  zero_bytes(t.raw_data(), dev, t.nbytes());
  return t;
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype) {
  Tensor t = empty(shape, dtype);
  t.fill(value);
  return t;
}

int64_t Tensor::size(int64_t d) const {
  int64_t n = dim();
  if (d < 0) d += n;
  HS_CHECK(d >= 0 && d < n, "Tensor::size: dimension ", d, " out of range for shape ", shape_str(shape()));
  return shape()[d];
}

bool Tensor::is_contiguous() const {
  const auto& sh = shape();
  const auto& st = strides();
  int64_t acc = 1;
  for (int64_t i = static_cast<int64_t>(sh.size()) - 1; i >= 0; --i) {
    if (sh[i] != 1 && st[i] != acc) return false;
    acc *= sh[i];
  }
  return true;
}

std::string Tensor::desc() const {
  if (!defined()) return "undefined";
  return std::string(dtype_name(dtype())) + shape_str(shape()) + " " + device().str();
}

void* Tensor::raw_data() const {
  auto& im = impl();
  return static_cast<char*>(im.storage->data()) + im.offset * static_cast<int64_t>(dtype_size(im.dtype));
}

// ---------------------------------------------------------------- element conversion
namespace {

double load_as_double(const void* base, DType t, int64_t i) {
  switch (t) {
    case DType::f32: return static_cast<const float*>(base)[i];
    case DType::f64: return static_cast<const double*>(base)[i];
    case DType::bf16: return static_cast<const bf16*>(base)[i].to_float();
    case DType::i32: return static_cast<const int32_t*>(base)[i];
    case DType::i64: return static_cast<double>(static_cast<const int64_t*>(base)[i]);
  }
  return 0;
}

void store_from_double(void* base, DType t, int64_t i, double v) {
  switch (t) {
    case DType::f32: static_cast<float*>(base)[i] = static_cast<float>(v); break;
    case DType::f64: static_cast<double*>(base)[i] = v; break;
    case DType::bf16: static_cast<bf16*>(base)[i] = bf16::from_float(static_cast<float>(v)); break;
    case DType::i32: static_cast<int32_t*>(base)[i] = static_cast<int32_t>(v); break;
    case DType::i64: static_cast<int64_t*>(base)[i] = static_cast<int64_t>(v); break;
  }
}

// Copies src into dst (same shape, any strides, CPU), converting dtypes.
// Rows along the last dimension are the unit of work.
void strided_copy_cpu(const Tensor& dst, const Tensor& src) {
  const Shape& sh = dst.shape();
  const int64_t nd = static_cast<int64_t>(sh.size());
  const int64_t n = dst.numel();
  if (n == 0) return;
  if (dst.dtype() == src.dtype() && dst.is_contiguous() && src.is_contiguous()) {
    std::memcpy(dst.raw_data(), src.raw_data(), dst.nbytes());
    return;
  }
  const int64_t inner = nd ? sh[nd - 1] : 1;
  const int64_t rows = n / inner;
  const int64_t ds_in = nd ? dst.strides()[nd - 1] : 1, ss_in = nd ? src.strides()[nd - 1] : 1;
  char* dbase = static_cast<char*>(dst.raw_data());
  const char* sbase = static_cast<const char*>(src.raw_data());
  const size_t esz = dtype_size(dst.dtype());
  const bool same = dst.dtype() == src.dtype();
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t r = 0; r < rows; ++r) {
    int64_t rem = r, doff = 0, soff = 0;
    for (int64_t d = nd - 2; d >= 0; --d) {
      int64_t idx = rem % sh[d];
      rem /= sh[d];
      doff += idx * dst.strides()[d];
      soff += idx * src.strides()[d];
    }
    if (same && ds_in == 1 && ss_in == 1) {
      std::memcpy(dbase + doff * esz, sbase + soff * dtype_size(src.dtype()), inner * esz);
    } else {
      for (int64_t i = 0; i < inner; ++i)
        store_from_double(dbase, dst.dtype(), doff + i * ds_in, load_as_double(sbase, src.dtype(), soff + i * ss_in));
    }
  }
}

// Copies src into dst, both on one CUDA device (any strides; f32 <-> bf16 and other casts).
void strided_copy_device(const Tensor& dst, const Tensor& src) {
#ifdef HYSCALE_WITH_CUDA
  if (dst.numel() == 0) return;
  Shape sh = dst.shape(), ds = dst.strides(), ss = src.strides();
  if (sh.empty()) sh = ds = ss = {1};
  HS_CHECK(sh.size() <= 8, "copy on ", dst.device().str(), ": at most 8 dimensions, got ", shape_str(sh));
  kernels::cuda::strided_copy(dst.raw_data(), static_cast<int>(dst.dtype()), ds.data(), src.raw_data(),
                              static_cast<int>(src.dtype()), ss.data(), sh.data(), static_cast<int>(sh.size()));
#else
  HS_FAIL("copy between CUDA tensors ", src.desc(), " -> ", dst.desc(), " in a build without CUDA");
#endif
}

// ---------------------------------------------------------------- view nodes
struct ReshapeNode : Node {
  Shape in_shape;
  std::vector<Tensor> backward(const Tensor& g) override { return {g.contiguous().reshape(in_shape)}; }
  const char* name() const override { return "reshape"; }
};

struct SliceNode : Node {
  Shape in_shape;
  DType dtype;
  int64_t dim, start, end;
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor gi = Tensor::zeros(in_shape, dtype, g.device());
    gi.slice(dim, start, end).copy_from(g);
    return {gi};
  }
  bool as_slice(int64_t& d, int64_t& s, int64_t& e) const override {
    d = dim;
    s = start;
    e = end;
    return true;
  }
  const char* name() const override { return "slice"; }
};

struct CopyNode : Node {  // contiguous() / clone(): identity gradient
  DType in_dtype;
  std::vector<Tensor> backward(const Tensor& g) override { return {g.dtype() == in_dtype ? g : g.to(in_dtype)}; }
  const char* name() const override { return "copy"; }
};

}  // namespace

double Tensor::item() const {
  HS_CHECK(numel() == 1, "Tensor::item() on a tensor with ", numel(), " elements ", shape_str(shape()));
  Tensor c = to(Device::cpu());
  return load_as_double(c.raw_data(), c.dtype(), 0);
}

Tensor Tensor::detach() const {
  auto im = std::make_shared<TensorImpl>();
  im->storage = impl().storage;
  im->offset = impl().offset;
  im->shape = impl().shape;
  im->strides = impl().strides;
  im->dtype = impl().dtype;
  return Tensor(im);
}

Tensor Tensor::reshape(const Shape& new_shape_in) const {
  Shape ns = new_shape_in;
  int64_t infer = -1, known = 1;
  for (size_t i = 0; i < ns.size(); ++i) {
    if (ns[i] == -1) {
      HS_CHECK(infer < 0, "reshape: more than one -1 in ", shape_str(new_shape_in));
      infer = static_cast<int64_t>(i);
    } else {
      HS_CHECK(ns[i] >= 0, "reshape: negative size in ", shape_str(new_shape_in));
      known *= ns[i];
    }
  }
  if (infer >= 0) {
    HS_CHECK(known > 0 && numel() % known == 0, "reshape: cannot reshape ", shape_str(shape()), " to ",
             shape_str(new_shape_in));
    ns[infer] = numel() / known;
  }
  HS_CHECK(shape_numel(ns) == numel(), "reshape: cannot reshape ", shape_str(shape()), " (", numel(),
           " elements) to ", shape_str(new_shape_in));
  Tensor base = is_contiguous() ? *this : contiguous();
  Tensor out = base.detach();
  out.impl().shape = ns;
  out.impl().strides = contiguous_strides(ns);
  if (any_requires_grad({&base})) {
    auto node = std::make_shared<ReshapeNode>();
    node->in_shape = base.shape();
    record(out, node, {&base});
  }
  return out;
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end) const {
  int64_t nd = dim();
  if (d < 0) d += nd;
  HS_CHECK(d >= 0 && d < nd, "slice: dimension ", d, " out of range for shape ", shape_str(shape()));
  HS_CHECK(0 <= start && start <= end && end <= shape()[d], "slice: range [", start, ", ", end,
           ") out of bounds for dimension ", d, " of shape ", shape_str(shape()));
  Tensor out = detach();
  out.impl().offset += start * strides()[d];
  out.impl().shape[d] = end - start;
  if (any_requires_grad({this})) {
    auto node = std::make_shared<SliceNode>();
    node->in_shape = shape();
    node->dtype = dtype();
    node->dim = d;
    node->start = start;
    node->end = end;
    record(out, node, {this});
  }
  return out;
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype(), device());
  {
    NoGrad ng;
    out.copy_from(*this);
  }
  if (any_requires_grad({this})) {
    auto node = std::make_shared<CopyNode>();
    node->in_dtype = dtype();
    record(out, node, {this});
  }
  return out;
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::to(DType t) const {
  if (t == dtype()) return *this;
  Tensor out = empty(shape(), t, device());
  out.copy_from(*this);
  return out;  // casts are not differentiable (used for storage and checks)
}

Tensor Tensor::to(Device dev) const {
  if (dev == device()) return *this;
  Tensor src = contiguous();
  Tensor out = empty(shape(), dtype(), dev);
  copy_bytes(out.raw_data(), dev, src.raw_data(), src.device(), src.nbytes());
  return out;
}

void Tensor::copy_from(const Tensor& src) {
  HS_CHECK(shape() == src.shape(), "copy_from: shape mismatch: destination ", shape_str(shape()), " vs source ",
           shape_str(src.shape()));
  if (device().is_cpu() && src.device().is_cpu()) {
    if (impl().storage == src.impl().storage && numel() > 0) {
      // Views of one buffer may overlap: go through a private copy.
      Tensor tmp = empty(src.shape(), src.dtype());
      strided_copy_cpu(tmp, src);
      strided_copy_cpu(*this, tmp);
      return;
    }
    strided_copy_cpu(*this, src);
    return;
  }
  if (device().is_cuda() && src.device().is_cuda()) {
    HS_CHECK(device() == src.device(), "copy_from: ", src.desc(), " to ", desc(),
             ": copies between two GPUs go through .to(cpu)");
    if (impl().storage == src.impl().storage && numel() > 0) {
      Tensor tmp = empty(src.shape(), src.dtype(), src.device());
      strided_copy_device(tmp, src);
      strided_copy_device(*this, tmp);
      return;
    }
    strided_copy_device(*this, src);
    return;
  }
  // Cross-device: stage through a contiguous copy of matching dtype.
  Tensor s = src.device().is_cpu() ? src : src.to(Device::cpu());
  if (device().is_cpu()) {
    strided_copy_cpu(*this, s);
    return;
  }
  Tensor staged = s.dtype() == dtype() ? s.contiguous() : s.to(dtype()).contiguous();
  if (!is_contiguous()) {  // into a device view: upload, then a strided device copy
    Tensor up = staged.to(device());
    strided_copy_device(*this, up);
    return;
  }
  copy_bytes(raw_data(), device(), staged.raw_data(), Device::cpu(), nbytes());
}

void Tensor::fill(double value) {
  if (device().is_cuda()) {
#ifdef HYSCALE_WITH_CUDA
    if (is_contiguous()) {
      kernels::cuda::fill(raw_data(), static_cast<int>(dtype()), numel(), value);
    } else {
      Tensor tmp = empty(shape(), dtype(), device());
      tmp.fill(value);
      copy_from(tmp);
    }
    return;
#endif
  }
  void* base = raw_data();
  if (is_contiguous()) {
    const int64_t n = numel();
    if (dtype() == DType::f32) {
      float v = static_cast<float>(value);
      float* p = static_cast<float*>(base);
      for (int64_t i = 0; i < n; ++i) p[i] = v;
    } else {
      for (int64_t i = 0; i < n; ++i) store_from_double(base, dtype(), i, value);
    }
    return;
  }
  Tensor tmp = full(shape(), value, dtype());
  copy_from(tmp);
}

void Tensor::zero() {
  if (is_contiguous())
    zero_bytes(raw_data(), device(), nbytes());
  else
    fill(0.0);
}

Tensor& Tensor::requires_grad_(bool on) {
  HS_CHECK(!on || is_floating(dtype()), "requires_grad on a non-floating tensor ", desc());
  HS_CHECK(is_leaf() || on, "requires_grad_(false) on a non-leaf tensor");
  impl().requires_grad = on;
  return *this;
}

void Tensor::set_grad(const Tensor& g) {
  if (!g.defined()) {
    impl().grad.reset();
    return;
  }
  HS_CHECK(g.shape() == shape(), "set_grad: gradient shape ", shape_str(g.shape()), " does not match tensor ",
           shape_str(shape()), " ", name());
  HS_CHECK(g.dtype() == dtype(), "set_grad: gradient dtype ", dtype_name(g.dtype()), " does not match tensor ",
           dtype_name(dtype()), " ", name());
  impl().grad = g.contiguous().impl_ptr();  // accumulation treats it as one flat buffer
}

void Tensor::backward(const Tensor& seed) const { run_backward(*this, seed); }

}  // namespace hyscale
