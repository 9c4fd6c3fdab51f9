#include "core/caching_allocator.h"

#include <algorithm>
#include <cstdio>

#include "core/error.h"

namespace hyscale {

namespace {
constexpr size_t kSmall = size_t{1} << 20;  // below: 512 B classes
constexpr size_t kSmallRound = 512;
constexpr size_t kLargeRound = size_t{2} << 20;
}  // namespace

std::string AllocatorStats::str() const {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "allocated %.1f MiB (peak %.1f), reserved %.1f MiB (peak %.1f), %lld backend allocations, "
                "%lld of %lld requests served from the cache",
                allocated / 1048576.0, peak_allocated / 1048576.0, reserved / 1048576.0, peak_reserved / 1048576.0,
                (long long)backend_mallocs, (long long)cache_hits, (long long)allocations);
  return buf;
}

CachingAllocator::CachingAllocator(AllocatorBackend backend) : be_(backend) {
  HS_CHECK(be_.raw_malloc && be_.raw_free, "caching allocator: backend without malloc/free");
}

CachingAllocator::~CachingAllocator() {
  std::lock_guard<std::mutex> lk(mu_);
  try {
    free_idle_locked(true);
    for (auto& [dev, pool] : event_pool_)
      for (void* e : pool)
        if (be_.event_destroy) be_.event_destroy(e, be_.ctx);
  } catch (...) {
    // Teardown (e.g. the CUDA context is already gone): nothing more can be done.
  }
}

size_t CachingAllocator::round_size(size_t n) {
  if (n < kSmall) return std::max<size_t>(kSmallRound, (n + kSmallRound - 1) / kSmallRound * kSmallRound);
  return (n + kLargeRound - 1) / kLargeRound * kLargeRound;
}

bool CachingAllocator::usable_on(Block& b, void* stream) {
  if (b.stream == stream || b.event == nullptr) return true;
  return be_.event_query != nullptr && be_.event_query(b.event, be_.ctx);
}

void* CachingAllocator::allocate(size_t nbytes, int device, void* stream) {
  HS_CHECK(nbytes > 0, "caching allocator: zero-byte allocation");
  std::lock_guard<std::mutex> lk(mu_);
  ++st_.allocations;
  const size_t size = round_size(nbytes);
  const size_t max_ok = size < kSmall ? 2 * size : size + kLargeRound;
  auto take = [&](Block b, bool hit) {
    recycle_event(b);
    b.stream = stream;
    b.asked = nbytes;
    live_[b.ptr] = b;
    st_.allocated += static_cast<int64_t>(b.size);
    st_.peak_allocated = std::max(st_.peak_allocated, st_.allocated);
    if (hit) ++st_.cache_hits;
    return b.ptr;
  };
  auto& fl = free_[device];
  for (auto it = fl.lower_bound(size); it != fl.end() && it->first <= max_ok; ++it) {
    if (!usable_on(it->second, stream)) continue;
    Block b = it->second;
    fl.erase(it);
    return take(b, true);
  }
  void* p = be_.raw_malloc(size, device, be_.ctx);
  if (p == nullptr) {  // out of memory: give every cached block back and try once more
    free_idle_locked(true);
    p = be_.raw_malloc(size, device, be_.ctx);
  }
  HS_CHECK(p != nullptr, "out of device memory allocating ", nbytes, " bytes (", size, " rounded) on cuda:", device,
           " after emptying the cache; ", st_.str());
  ++st_.backend_mallocs;
  st_.reserved += static_cast<int64_t>(size);
  st_.peak_reserved = std::max(st_.peak_reserved, st_.reserved);
  Block b;
  b.ptr = p;
  b.size = size;
  b.device = device;
  return take(b, false);
}

void CachingAllocator::recycle_event(Block& b) {
  if (b.event) event_pool_[b.device].push_back(b.event);
  b.event = nullptr;
}

void CachingAllocator::release(void* p) {
  if (p == nullptr) return;
  std::lock_guard<std::mutex> lk(mu_);
  auto it = live_.find(p);
  HS_CHECK(it != live_.end(), "caching allocator: release of a pointer it did not hand out (double free?)");
  Block b = it->second;
  live_.erase(it);
  st_.allocated -= static_cast<int64_t>(b.size);
  // Work queued on b.stream may still use the block: other streams wait for this event.
  if (be_.event_create && be_.event_record) {
    auto& pool = event_pool_[b.device];
    if (pool.empty()) {
      b.event = be_.event_create(b.device, be_.ctx);
    } else {
      b.event = pool.back();
      pool.pop_back();
    }
    be_.event_record(b.event, b.stream, b.device, be_.ctx);
  }
  free_[b.device].emplace(b.size, b);
}

void CachingAllocator::free_idle_locked(bool wait_for_events) {
  for (auto& [dev, fl] : free_) {
    for (auto it = fl.begin(); it != fl.end();) {
      Block& b = it->second;
      const bool done = b.event == nullptr || (be_.event_query && be_.event_query(b.event, be_.ctx));
      if (!done && !wait_for_events) {
        ++it;
        continue;
      }
      // (CUDA's raw free synchronises the device, so a pending block is safe to return.)
      recycle_event(b);
      be_.raw_free(b.ptr, b.device, be_.ctx);
      ++st_.backend_frees;
      st_.reserved -= static_cast<int64_t>(b.size);
      it = fl.erase(it);
    }
  }
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lk(mu_);
  free_idle_locked(false);
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  return st_;
}

void CachingAllocator::reset_peaks() {
  std::lock_guard<std::mutex> lk(mu_);
  st_.peak_allocated = st_.allocated;
  st_.peak_reserved = st_.reserved;
}

}  // namespace hyscale
