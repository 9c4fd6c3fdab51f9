// Elementwise kernels (CPU bodies in cpu/elementwise.cpp). All buffers are
// contiguous; T is float or double. Backward kernels sit beside their forward.
#pragma once
#include <cstdint>

namespace hyscale::kernels::cpu {

template <class T> void add_inplace(T* acc, const T* x, int64_t n);              // acc += x
template <class T> void add(const T* a, const T* b, T* out, int64_t n);          // out = a + b
template <class T> void mul(const T* a, const T* b, T* out, int64_t n);          // out = a * b
template <class T> void scale(const T* a, T s, T* out, int64_t n);               // out = s * a

// SiLU: y = x * sigmoid(x);  dx = dy * sigmoid(x) * (1 + x * (1 - sigmoid(x)))
template <class T> void silu_fwd(const T* x, T* y, int64_t n);
template <class T> void silu_bwd(const T* x, const T* dy, T* dx, int64_t n);

// SwiGLU (SPEC §1.1): x is [rows, 2I] = [gate | value], y is [rows, I],
// y = silu(gate) * value.
template <class T> void swiglu_fwd(const T* x, T* y, int64_t rows, int64_t I);
template <class T> void swiglu_bwd(const T* x, const T* dy, T* dx, int64_t rows, int64_t I);

// Sum of squares in double (global gradient norm); deterministic for a fixed thread count.
template <class T> double sum_squares(const T* x, int64_t n);

}  // namespace hyscale::kernels::cpu
