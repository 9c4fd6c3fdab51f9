// Caching allocator for device memory (DESIGN: no cudaMalloc in the steady-state step).
//
// Freed blocks are kept, per device, in size-ordered free lists and handed out again:
//   - sizes are rounded to 512 B below 1 MiB and to 2 MiB above (size classes), so a step that
//     allocates the same shapes every iteration reuses the same blocks;
//   - best fit: the smallest cached block that holds the request, and no more than twice its
//     rounded size (or the rounded size + 2 MiB for large ones), so big blocks are not wasted on
//     small requests;
//   - stream-ordered reuse: a block freed on stream S is reused at once by an allocation on S
//     (work on one stream runs in order); for another stream only once the event recorded at the
//     free has completed;
//   - when the backend is out of memory, every idle cached block is returned and the allocation
//     retried once; if it still fails the error states the request and the statistics.
// The backend (raw malloc/free and events) is a parameter: CUDA in cuda_backend.cu; a fake
// backend in the CPU tests checks the bookkeeping without a GPU.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace hyscale {

struct AllocatorBackend {
  // Raw allocation; returns nullptr when out of memory (other failures throw).
  void* (*raw_malloc)(size_t nbytes, int device, void* ctx) = nullptr;
  void (*raw_free)(void* p, int device, void* ctx) = nullptr;
  // Events (pooled by the allocator: created once, recorded at every free): record on a stream;
  // query = true once the stream has passed it.
  void* (*event_create)(int device, void* ctx) = nullptr;
  void (*event_record)(void* event, void* stream, int device, void* ctx) = nullptr;
  bool (*event_query)(void* event, void* ctx) = nullptr;
  void (*event_destroy)(void* event, void* ctx) = nullptr;
  void* ctx = nullptr;
};

struct AllocatorStats {
  int64_t allocated = 0, reserved = 0;            // bytes in live blocks / held from the backend
  int64_t peak_allocated = 0, peak_reserved = 0;
  int64_t backend_mallocs = 0, backend_frees = 0;  // raw calls
  int64_t cache_hits = 0, allocations = 0;
  std::string str() const;
};

class CachingAllocator {
 public:
  explicit CachingAllocator(AllocatorBackend backend);
  ~CachingAllocator();  // returns every cached block; live blocks are the owners' business
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  void* allocate(size_t nbytes, int device, void* stream = nullptr);
  // Returns a block; work queued on its allocation stream may still read it (the event recorded
  // here covers that stream only: use on other streams is not tracked yet).
  void release(void* p);
  void empty_cache();                              // returns idle blocks whose events completed
  AllocatorStats stats() const;
  void reset_peaks();
  static size_t round_size(size_t nbytes);

 private:
  struct Block {
    void* ptr = nullptr;
    size_t size = 0;   // rounded size held from the backend
    size_t asked = 0;  // bytes requested by the current owner
    int device = 0;
    void* stream = nullptr;  // stream of the last use
    void* event = nullptr;   // recorded at release (null: usable at once on any stream)
  };
  bool usable_on(Block& b, void* stream);
  void free_idle_locked(bool wait_for_events);
  void recycle_event(Block& b);

  AllocatorBackend be_;
  mutable std::mutex mu_;
  std::unordered_map<void*, Block> live_;
  std::map<int, std::multimap<size_t, Block>> free_;  // device -> size -> block
  std::map<int, std::vector<void*>> event_pool_;       // device -> idle events
  AllocatorStats st_;
};

}  // namespace hyscale
