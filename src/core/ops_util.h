// Shared argument checks and dtype dispatch of the op implementations (internal header).
#pragma once
#include "core/tensor.h"

namespace hyscale::ops::detail {

// Common checks: defined, a floating compute dtype for its device (cpu: f32/f64; cuda: f32 or
// bf16, the mixed-precision storage type), contiguous copy.
inline Tensor prep(const char* op, const Tensor& t, const char* what) {
  HS_CHECK(t.defined(), op, ": ", what, " is undefined");
  if (t.device().is_cuda()) {
    HS_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::bf16, op, ": ", what, " has dtype ",
             dtype_name(t.dtype()), " on ", t.device().str(), " (expected f32 or bf16)");
  } else {
    HS_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::f64, op, ": ", what, " has dtype ",
             dtype_name(t.dtype()), " (expected f32 or f64 on the cpu)");
  }
  return t.contiguous();
}

// BLAS takes 32-bit sizes.
inline void check_blas_dims(const char* op, std::initializer_list<int64_t> dims) {
  for (int64_t d : dims)
    HS_CHECK(d < (int64_t{1} << 31), op, ": dimension ", d, " exceeds the 32-bit sizes BLAS accepts; split the batch");
}

// Same dtype and same device (ops never move data between devices implicitly).
inline void same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  HS_CHECK(a.device() == b.device(), op, ": device mismatch: ", a.desc(), " vs ", b.desc());
  HS_CHECK(a.dtype() == b.dtype(), op, ": dtype mismatch: ", a.desc(), " vs ", b.desc());
}

inline void check_ids(const char* op, const Tensor& ids, int64_t V) {
  HS_CHECK(ids.dtype() == DType::i32, op, ": indices must be i32, got ", ids.desc());
  Tensor c = ids.contiguous().to(Device::cpu());  // device indices: checked on a host copy
  const int32_t* p = c.data<int32_t>();
  for (int64_t i = 0; i < c.numel(); ++i)
    HS_CHECK(p[i] >= 0 && p[i] < V, op, ": index ", p[i], " at position ", i, " is outside [0, ", V, ")");
}

// Call fn(T{}) with T = float or double according to dtype.
template <class F> void dispatch(DType t, F&& fn) {
  if (t == DType::f32)
    fn(float{});
  else
    fn(double{});
}

}  // namespace hyscale::ops::detail

#define HS_PTR(t) (t).data<T>()
