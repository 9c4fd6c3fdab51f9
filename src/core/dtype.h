// Element types and devices of hyscale tensors.
// f32 is the compute type on the CPU, f64 exists for gradient checks, bf16 is a
// storage type (converted to/from f32), i32/i64 hold token ids and indices.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

#include "core/error.h"

namespace hyscale {

enum class DType : uint8_t { f32, f64, bf16, i32, i64 };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f64: return 8;
    case DType::bf16: return 2;
    case DType::i32: return 4;
    case DType::i64: return 8;
  }
  return 0;
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::bf16: return "bf16";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
  }
  return "?";
}

inline DType parse_dtype(const std::string& s) {
  if (s == "f32" || s == "fp32" || s == "float32") return DType::f32;
  if (s == "f64" || s == "fp64" || s == "float64") return DType::f64;
  if (s == "bf16" || s == "bfloat16") return DType::bf16;
  if (s == "i32" || s == "int32") return DType::i32;
  if (s == "i64" || s == "int64") return DType::i64;
  HS_FAIL("unknown dtype '", s, "' (allowed: f32, f64, bf16, i32, i64)");
}

inline bool is_floating(DType t) { return t == DType::f32 || t == DType::f64 || t == DType::bf16; }

// bfloat16 as a storage type: upper 16 bits of an IEEE float, round-to-nearest-even.
struct bf16 {
  uint16_t bits = 0;
  static bf16 from_float(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    bf16 r;
    if ((u & 0x7fffffffu) > 0x7f800000u) {  // NaN: keep it a (quiet) NaN
      r.bits = static_cast<uint16_t>((u >> 16) | 0x40u);
      return r;
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    r.bits = static_cast<uint16_t>(u >> 16);
    return r;
  }
  float to_float() const {
    uint32_t u = static_cast<uint32_t>(bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
};

template <class T> struct dtype_of_t;
template <> struct dtype_of_t<float> { static constexpr DType value = DType::f32; };
template <> struct dtype_of_t<double> { static constexpr DType value = DType::f64; };
template <> struct dtype_of_t<bf16> { static constexpr DType value = DType::bf16; };
template <> struct dtype_of_t<int32_t> { static constexpr DType value = DType::i32; };
template <> struct dtype_of_t<int64_t> { static constexpr DType value = DType::i64; };
template <class T> inline constexpr DType dtype_of = dtype_of_t<T>::value;

}  // namespace hyscale
