// Storage: one reference-counted buffer of bytes on one device. Tensors share
// storage (views, reshapes, slices) through std::shared_ptr<Storage>.
#pragma once
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "core/device.h"

namespace hyscale {

class Storage {
 public:
  // Allocates nbytes on `device` (64-byte aligned on the CPU). Contents are uninitialised.
  Storage(size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  const Device& device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
};

// Byte copies between any two devices (host<->device through the CUDA backend).
void copy_bytes(void* dst, const Device& dst_dev, const void* src, const Device& src_dev, size_t n);
void zero_bytes(void* dst, const Device& dev, size_t n);

// CUDA runtime entry points, implemented in src/core/cuda/cuda_backend.cu when the
// build has CUDA; otherwise they throw a hyscale::Error that says how to enable it.
namespace cudart {
void* device_malloc(size_t nbytes, int device);
void device_free(void* p, int device);
void copy(void* dst, const void* src, size_t n, bool dst_is_device, bool src_is_device, int device);
void memset_zero(void* dst, size_t n, int device);
int device_count();
std::string device_name(int device);
// The device caching allocator (core/caching_allocator.h): its statistics, and returning idle
// cached blocks to the driver.
std::string memory_stats();
void empty_cache();
// Makes `device` current for this thread: kernels launch on the current device.
void set_device(int device);
// Waits for all work on the current device (timing).
void synchronize();
// Timing events on the default stream of the current device (the op profiler, core/profiler.h).
void* timing_event_create();
void timing_event_record(void* e);
float timing_elapsed_ms(void* start, void* end);  // waits for `end`
void timing_event_destroy(void* e);

// CUDA graphs (nn/decode.cpp's graph decoding). capture_graph runs `body` with everything this
// thread queues (kernels, cuBLASLt, device copies and fills) on a fresh stream that is capturing,
// in relaxed mode: recorded, not run. Memory that the body frees stays reserved for the
// graph until it is destroyed (its nodes use it); what the body leaves allocated is the caller's
// to keep alive as long as the graph. Returns the instantiated graph, or throws with the reason
// (no capture is left open and nothing ran). launch_graph runs it on its (non-blocking) stream,
// ordered by events after the legacy default stream's earlier work and before its later work.
struct Graph;
std::shared_ptr<Graph> capture_graph(int device, const std::function<void()>& body);
void launch_graph(Graph& graph);
}  // namespace cudart

}  // namespace hyscale
