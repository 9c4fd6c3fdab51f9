// CUDA runtime entry points behind hyscale::Storage (device memory and copies).
// Every CUDA call is checked; an error names the call, the device and the size.
#include <cuda_runtime.h>

#include <string>

#include "core/error.h"
#include "core/storage.h"

namespace hyscale::cudart {

#define HS_CUDA_CHECK(call, ...)                                                          \
  do {                                                                                    \
    cudaError_t err_ = (call);                                                            \
    if (err_ != cudaSuccess)                                                              \
      HS_FAIL(#call, " failed: ", cudaGetErrorString(err_), " ", ##__VA_ARGS__);          \
  } while (0)

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // no driver / no device: not an error for a query
    return 0;
  }
  return n;
}

std::string device_name(int device) {
  cudaDeviceProp prop{};
  HS_CUDA_CHECK(cudaGetDeviceProperties(&prop, device), "(device ", device, ")");
  return prop.name;
}

void* device_malloc(size_t nbytes, int device) {
  HS_CUDA_CHECK(cudaSetDevice(device), "(device ", device, ")");
  void* p = nullptr;
  HS_CUDA_CHECK(cudaMalloc(&p, nbytes), "(", nbytes, " bytes on cuda:", device, ")");
  return p;
}

void device_free(void* p, int device) {
  HS_CUDA_CHECK(cudaSetDevice(device), "(device ", device, ")");
  HS_CUDA_CHECK(cudaFree(p), "(cuda:", device, ")");
}

void copy(void* dst, const void* src, size_t n, bool dst_is_device, bool src_is_device, int device) {
  HS_CUDA_CHECK(cudaSetDevice(device), "(device ", device, ")");
  cudaMemcpyKind kind = dst_is_device ? (src_is_device ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                                      : cudaMemcpyDeviceToHost;
  HS_CUDA_CHECK(cudaMemcpy(dst, src, n, kind), "(", n, " bytes, cuda:", device, ")");
}

void memset_zero(void* dst, size_t n, int device) {
  HS_CUDA_CHECK(cudaSetDevice(device), "(device ", device, ")");
  HS_CUDA_CHECK(cudaMemset(dst, 0, n), "(", n, " bytes, cuda:", device, ")");
}

}  // namespace hyscale::cudart
