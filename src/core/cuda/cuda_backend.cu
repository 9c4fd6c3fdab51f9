// CUDA runtime entry points behind hyscale::Storage (device memory and copies).
// Every CUDA call is checked; an error names the call, the device and the size.
#include <cuda_runtime.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/caching_allocator.h"
#include "core/error.h"
#include "core/storage.h"
#include "kernels/cuda.h"

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

namespace {
// While this thread captures a graph: the blocks freed meanwhile, kept for the graph (its nodes use
// them; the allocator must not hand them out again, and releasing one would record an event on the
// legacy stream, which a capture forbids).
thread_local std::vector<void*>* t_graph_kept = nullptr;
}  // namespace

void device_free(void* p, int /*device*/) {
  if (t_graph_kept != nullptr) {
    t_graph_kept->push_back(p);
    return;
  }
  allocator().release(p);
}

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

// Copies and fills go to this thread's current stream (kernels/cuda.h) when it set one (a graph
// capture), else to the legacy default stream; copies to or from the host stay synchronous.
void copy(void* dst, const void* src, size_t n, bool dst_is_device, bool src_is_device, int device) {
  HS_CUDA_CHECK(cudaSetDevice(device), "(device ", device, ")");
  cudaMemcpyKind kind = dst_is_device ? (src_is_device ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                                      : cudaMemcpyDeviceToHost;
  if (void* cs = kernels::cuda::current_stream()) {
    const auto st = static_cast<cudaStream_t>(cs);
    HS_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, kind, st), "(", n, " bytes, cuda:", device, ")");
    if (kind != cudaMemcpyDeviceToDevice) HS_CUDA_CHECK(cudaStreamSynchronize(st), "(", n, " bytes, cuda:", device, ")");
    return;
  }
  HS_CUDA_CHECK(cudaMemcpy(dst, src, n, kind), "(", n, " bytes, cuda:", device, ")");
}

void memset_zero(void* dst, size_t n, int device) {
  HS_CUDA_CHECK(cudaSetDevice(device), "(device ", device, ")");
  if (void* cs = kernels::cuda::current_stream()) {
    HS_CUDA_CHECK(cudaMemsetAsync(dst, 0, n, static_cast<cudaStream_t>(cs)), "(", n, " bytes, cuda:", device, ")");
    return;
  }
  HS_CUDA_CHECK(cudaMemset(dst, 0, n), "(", n, " bytes, cuda:", device, ")");
}

// The capture stream is non-blocking, so that other threads' work on the legacy stream neither
// fails nor disturbs a capture; launch_graph orders each run between the legacy stream's earlier
// and later work with two events. (Work that this thread queued on the legacy stream during a
// capture would run at once instead of being recorded: every queueing path follows the current
// stream, and the emulated device of the tests refuses legacy-stream work while a capture is open.)
struct Graph {
  int device = 0;
  cudaStream_t stream = nullptr;
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  cudaEvent_t before = nullptr, after = nullptr;
  std::vector<void*> kept;  // blocks freed during the capture, used by the graph's nodes
  ~Graph() {
    int prev = 0;
    cudaGetDevice(&prev);
    cudaSetDevice(device);
    if (stream != nullptr) cudaStreamSynchronize(stream);  // no run may still use `kept`
    if (exec != nullptr) cudaGraphExecDestroy(exec);
    if (graph != nullptr) cudaGraphDestroy(graph);
    try {
      for (void* p : kept) allocator().release(p);
    } catch (...) {  // (a destructor: the context may already be gone at exit)
    }
    if (before != nullptr) cudaEventDestroy(before);
    if (after != nullptr) cudaEventDestroy(after);
    if (stream != nullptr) cudaStreamDestroy(stream);
    cudaGetLastError();  // (teardown: nothing to report to)
    cudaSetDevice(prev);
  }
};

std::shared_ptr<Graph> capture_graph(int device, const std::function<void()>& body) {
  HS_CHECK(kernels::cuda::current_stream() == nullptr && t_graph_kept == nullptr,
           "CUDA graph capture: this thread is already capturing or has a current stream");
  return on_device(device, [&] {
    auto g = std::make_shared<Graph>();
    g->device = device;
    HS_CUDA_CHECK(cudaStreamCreateWithFlags(&g->stream, cudaStreamNonBlocking), "(graph stream, cuda:", device, ")");
    HS_CUDA_CHECK(cudaEventCreateWithFlags(&g->before, cudaEventDisableTiming), "(cuda:", device, ")");
    HS_CUDA_CHECK(cudaEventCreateWithFlags(&g->after, cudaEventDisableTiming), "(cuda:", device, ")");
    HS_CUDA_CHECK(cudaStreamBeginCapture(g->stream, cudaStreamCaptureModeRelaxed), "(cuda:", device, ")");
    kernels::cuda::set_current_stream(g->stream);
    t_graph_kept = &g->kept;
    auto end = [&] {  // always: leave the capture, restore the thread's stream and frees
      kernels::cuda::set_current_stream(nullptr);
      t_graph_kept = nullptr;
      cudaGraph_t graph = nullptr;
      const cudaError_t e = cudaStreamEndCapture(g->stream, &graph);
      g->graph = graph;
      return e;
    };
    try {
      body();
    } catch (...) {
      end();
      cudaGetLastError();
      throw;
    }
    const cudaError_t e = end();
    if (e != cudaSuccess || g->graph == nullptr) {
      cudaGetLastError();
      HS_FAIL("CUDA graph capture failed: ", cudaGetErrorString(e), " (cuda:", device, ")");
    }
    HS_CUDA_CHECK(cudaGraphInstantiate(&g->exec, g->graph, 0), "(cuda:", device, ")");
    return g;
  });
}

void launch_graph(Graph& g) {
  on_device(g.device, [&] {
    HS_CUDA_CHECK(cudaEventRecord(g.before, nullptr), "(cuda:", g.device, ")");  // after the legacy stream's work
    HS_CUDA_CHECK(cudaStreamWaitEvent(g.stream, g.before, 0), "(cuda:", g.device, ")");
    HS_CUDA_CHECK(cudaGraphLaunch(g.exec, g.stream), "(cuda:", g.device, ")");
    HS_CUDA_CHECK(cudaEventRecord(g.after, g.stream), "(cuda:", g.device, ")");
    HS_CUDA_CHECK(cudaStreamWaitEvent(nullptr, g.after, 0), "(cuda:", g.device, ")");  // before its later work
  });
}

}  // namespace hyscale::cudart
