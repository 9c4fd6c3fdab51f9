// CUDA runtime entry points behind hyscale::Storage (device memory and copies).
// Every CUDA call is checked; an error names the call, the device and the size.
#include <cuda_runtime.h>

#include <cstring>
#include <string>

#include "core/caching_allocator.h"
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

namespace {

// Runs f with `device` current, restoring the previous device (several GPUs per process).
template <class F> auto on_device(int device, F&& f) {
  int prev = 0;
  HS_CUDA_CHECK(cudaGetDevice(&prev), "(current device)");
  if (prev != device) HS_CUDA_CHECK(cudaSetDevice(device), "(device ", device, ")");
  struct Restore {
    int prev, dev;
    ~Restore() {
      if (prev != dev) cudaSetDevice(prev);
    }
  } restore{prev, device};
  return f();
}

void* raw_malloc(size_t nbytes, int device, void*) {
  return on_device(device, [&]() -> void* {
    void* p = nullptr;
    const cudaError_t err = cudaMalloc(&p, nbytes);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // clear it: the caching allocator empties its cache and retries
      return nullptr;
    }
    HS_CUDA_CHECK(err, "(", nbytes, " bytes on cuda:", device, ")");
    return p;
  });
}

void raw_free(void* p, int device, void*) {
  on_device(device, [&] { HS_CUDA_CHECK(cudaFree(p), "(cuda:", device, ")"); });
}

void* event_create(int device, void*) {
  return on_device(device, [&]() -> void* {
    cudaEvent_t e = nullptr;
    HS_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "(cuda:", device, ")");
    return e;
  });
}

void event_record(void* e, void* stream, int device, void*) {
  on_device(device, [&] {
    HS_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(e), static_cast<cudaStream_t>(stream)), "(cuda:", device,
                  ")");
  });
}

bool event_query(void* e, void*) {
  const cudaError_t err = cudaEventQuery(static_cast<cudaEvent_t>(e));
  if (err == cudaErrorNotReady) {
    cudaGetLastError();
    return false;
  }
  HS_CUDA_CHECK(err, "(allocator event)");
  return true;
}

void event_destroy(void* e, void*) { cudaEventDestroy(static_cast<cudaEvent_t>(e)); }

CachingAllocator& allocator() {
  // Never destroyed: blocks may still be released by static tensors after main returns, and the
  // CUDA context's teardown returns the memory anyway.
  static CachingAllocator* a = [] {
    AllocatorBackend b;
    b.raw_malloc = raw_malloc;
    b.raw_free = raw_free;
    b.event_create = event_create;
    b.event_record = event_record;
    b.event_query = event_query;
    b.event_destroy = event_destroy;
    return new CachingAllocator(b);
  }();
  return *a;
}

}  // namespace

// Device memory goes through the caching allocator (no cudaMalloc in a steady-state step);
// blocks are used on the default stream until the compute/communication streams arrive.
void* device_malloc(size_t nbytes, int device) {
  void* p = allocator().allocate(nbytes, device, nullptr);
#ifdef HYSCALE_CUDA_EMU
  // The tests' CPU emulator (tests/emu): every allocation, reused or not, starts as NaN bytes, so
  // an op that reads memory it never wrote fails there.
  if (p != nullptr) std::memset(p, 0xff, nbytes);
#endif
  return p;
}

void device_free(void* p, int /*device*/) { allocator().release(p); }

std::string memory_stats() { return allocator().stats().str(); }

void empty_cache() { allocator().empty_cache(); }

void set_device(int device) {
  HS_CUDA_CHECK(cudaSetDevice(device), "(device ", device, ")");
  // Kernel scratch (backward workspaces) comes from the stream-ordered pool: keep what it has
  // reserved across steps instead of returning it to the driver at every synchronisation.
  cudaMemPool_t pool;
  HS_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device), "(device ", device, ")");
  uint64_t keep = UINT64_MAX;
  HS_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep), "(device ", device, ")");
}

void synchronize() { HS_CUDA_CHECK(cudaDeviceSynchronize(), "(after queued kernels)"); }

void* timing_event_create() {
  cudaEvent_t e = nullptr;
  HS_CUDA_CHECK(cudaEventCreate(&e), "(timing event)");
  return e;
}
void timing_event_record(void* e) {
  HS_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(e), nullptr), "(timing event)");
}
float timing_elapsed_ms(void* start, void* end) {
  HS_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(end)), "(timing event)");
  float ms = 0;
  HS_CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start), static_cast<cudaEvent_t>(end)),
                "(timing event)");
  return ms;
}
void timing_event_destroy(void* e) { cudaEventDestroy(static_cast<cudaEvent_t>(e)); }

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
