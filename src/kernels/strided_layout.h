// The dimensions of a strided copy after collapsing (kernels/cuda/tensor_kernels.cu): size-1
// dimensions dropped, and a dimension merged into the one outside it wherever both the
// destination and the source are contiguous across the pair. Most copies (casts, contiguous(),
// the rows of a slice) end up with one or two dimensions and unit inner strides.
#pragma once
#include <cstdint>

namespace hyscale::kernels {

template <int kMaxDims>
struct CopyLayout {
  int64_t shape[kMaxDims];
  int64_t dst_stride[kMaxDims];
  int64_t src_stride[kMaxDims];
  int ndim = 0;
  int64_t numel = 1;
};

// ndim <= kMaxDims (the caller checks). A view of no elements gives numel 0; one of a single
// element gives one dimension of size 1 with unit strides.
template <int kMaxDims>
CopyLayout<kMaxDims> collapse_copy_layout(const int64_t* shape, const int64_t* dst_strides,
                                          const int64_t* src_strides, int ndim) {
  CopyLayout<kMaxDims> L{};
  for (int d = 0; d < ndim; ++d) {
    L.numel *= shape[d];
    if (shape[d] == 1) continue;
    const int k = L.ndim;
    if (k > 0 && L.dst_stride[k - 1] == dst_strides[d] * shape[d] && L.src_stride[k - 1] == src_strides[d] * shape[d]) {
      L.shape[k - 1] *= shape[d];
      L.dst_stride[k - 1] = dst_strides[d];
      L.src_stride[k - 1] = src_strides[d];
      continue;
    }
    L.shape[k] = shape[d];
    L.dst_stride[k] = dst_strides[d];
    L.src_stride[k] = src_strides[d];
    L.ndim = k + 1;
  }
  if (L.ndim == 0) {
    L.ndim = 1;
    L.shape[0] = 1;
    L.dst_stride[0] = L.src_stride[0] = 1;
  }
  return L;
}

}  // namespace hyscale::kernels
