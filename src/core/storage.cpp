#include "core/storage.h"

#include <malloc.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "core/error.h"

namespace hyscale {

namespace {
// Activations of every step are allocated and freed again; by default glibc serves
// large blocks with fresh mmap()s, so each step pays page faults to zero new pages.
// Keeping large blocks in the heap makes steady-state steps reuse memory (a simple
// caching allocator for host memory; the CUDA backend brings its own).
struct HostAllocatorTuning {
  HostAllocatorTuning() {
    mallopt(M_MMAP_THRESHOLD, 256 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
  }
} g_host_allocator_tuning;
}  // namespace

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  if (device.is_cpu()) {
    size_t rounded = (nbytes + 63) / 64 * 64;
    data_ = rounded ? std::aligned_alloc(64, rounded) : nullptr;
    HS_CHECK(data_ || rounded == 0, "out of host memory allocating ", nbytes, " bytes");
  } else {
    data_ = nbytes ? cudart::device_malloc(nbytes, device.index) : nullptr;
  }
}

Storage::~Storage() {
  if (!data_) return;
  if (device_.is_cpu()) {
    std::free(data_);
  } else {
    try {
      cudart::device_free(data_, device_.index);
    } catch (...) {
      // A destructor must not throw; a failing cudaFree at teardown is not recoverable here.
    }
  }
}

void copy_bytes(void* dst, const Device& dst_dev, const void* src, const Device& src_dev, size_t n) {
  if (n == 0) return;
  if (dst_dev.is_cpu() && src_dev.is_cpu()) {
    std::memcpy(dst, src, n);
    return;
  }
  int dev = dst_dev.is_cuda() ? dst_dev.index : src_dev.index;
  cudart::copy(dst, src, n, dst_dev.is_cuda(), src_dev.is_cuda(), dev);
}

void zero_bytes(void* dst, const Device& dev, size_t n) {
  if (n == 0) return;
  if (dev.is_cpu())
    std::memset(dst, 0, n);
  else
    cudart::memset_zero(dst, n, dev.index);
}

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "cuda") return cuda(0);
  if (s.rfind("cuda:", 0) == 0) {
    std::string num = s.substr(5);
    bool ok = !num.empty() && num.find_first_not_of("0123456789") == std::string::npos && num.size() < 6;
    HS_CHECK(ok, "bad device '", s, "' (expected cpu, cuda or cuda:N)");
    return cuda(std::stoi(num));
  }
  HS_FAIL("bad device '", s, "' (expected cpu, cuda or cuda:N)");
}

int cuda_device_count() {
#ifdef HYSCALE_WITH_CUDA
  return cudart::device_count();
#else
  return 0;
#endif
}
bool cuda_available() { return cuda_device_count() > 0; }
std::string cuda_device_name(int index) { return cudart::device_name(index); }

#ifndef HYSCALE_WITH_CUDA
// This build has no CUDA backend: every entry point says so and how to get one.
namespace cudart {
[[noreturn]] static void no_cuda() {
  HS_FAIL("this hyscale build has no CUDA support: reconfigure with -DHYSCALE_CUDA=ON on a machine with nvcc");
}
void* device_malloc(size_t, int) { no_cuda(); }
void device_free(void*, int) { no_cuda(); }
void copy(void*, const void*, size_t, bool, bool, int) { no_cuda(); }
void memset_zero(void*, size_t, int) { no_cuda(); }
int device_count() { return 0; }
std::string device_name(int) { no_cuda(); }
std::string memory_stats() { return "no CUDA in this build"; }
void empty_cache() {}
void set_device(int) { no_cuda(); }
void synchronize() {}
void* timing_event_create() { no_cuda(); }
void timing_event_record(void*) { no_cuda(); }
float timing_elapsed_ms(void*, void*) { no_cuda(); }
void timing_event_destroy(void*) {}
struct Graph {};
std::shared_ptr<Graph> capture_graph(int, const std::function<void()>&) { no_cuda(); }
void launch_graph(Graph&) { no_cuda(); }
}  // namespace cudart
#endif

}  // namespace hyscale
