// Stand-in for the one CUB call the kernels make (embed_rope.cu: DeviceRadixSort::SortPairs of
// int32 keys and values over all 32 bits), in the emulator build (tests/emu): a stable sort on
// the host, which is what a radix sort computes.
#pragma once
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "../../cuda_emu.h"

namespace cub {
struct DeviceRadixSort {
  static cudaError_t SortPairs(void* tmp, size_t& bytes, const int32_t* kin, int32_t* kout, const int32_t* vin,
                               int32_t* vout, int n, int begin_bit = 0, int end_bit = 32, cudaStream_t = nullptr) {
    if (tmp == nullptr) {
      bytes = 1024;
      return cudaSuccess;
    }
    if (begin_bit != 0 || end_bit != 32) emu::fatal("cub stand-in: only full 32-bit keys");
    std::vector<int> idx(static_cast<size_t>(n));
    std::iota(idx.begin(), idx.end(), 0);
    // A radix sort of signed keys orders them as signed integers; stable for equal keys.
    std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return kin[a] < kin[b]; });
    for (int i = 0; i < n; ++i) {
      kout[i] = kin[idx[i]];
      vout[i] = vin[idx[i]];
    }
    return cudaSuccess;
  }
};
}  // namespace cub
