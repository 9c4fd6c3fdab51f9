// The device caching allocator's bookkeeping, on a fake backend (host malloc, events the test
// completes by hand), so it is checked without a GPU: size classes, steady-state reuse, bounded
// best fit, stream-ordered reuse, out-of-memory recovery, statistics.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <map>
#include <set>

#include "core/caching_allocator.h"
#include "core/error.h"

using namespace hyscale;

namespace {
struct Fake {
  size_t capacity = size_t{1} << 40, used = 0;
  int64_t mallocs = 0, frees = 0;
  std::set<int*> done;  // completed events
  std::set<int*> alive;
  std::map<void*, size_t> sizes;
};
AllocatorBackend fake_backend(Fake& f) {
  AllocatorBackend b;
  b.ctx = &f;
  b.raw_malloc = [](size_t n, int, void* c) -> void* {
    auto& f = *static_cast<Fake*>(c);
    if (f.used + n > f.capacity) return nullptr;
    f.used += n;
    ++f.mallocs;
    void* p = std::malloc(n);
    f.sizes[p] = n;
    return p;
  };
  b.raw_free = [](void* p, int, void* c) {
    auto& f = *static_cast<Fake*>(c);
    ++f.frees;
    f.used -= f.sizes.at(p);
    f.sizes.erase(p);
    std::free(p);
  };
  b.event_create = [](int, void* c) -> void* {
    auto* e = new int(0);
    static_cast<Fake*>(c)->alive.insert(e);
    return e;
  };
  b.event_record = [](void* e, void*, int, void* c) {  // re-recording: pending again
    static_cast<Fake*>(c)->done.erase(static_cast<int*>(e));
  };
  b.event_query = [](void* e, void* c) { return static_cast<Fake*>(c)->done.count(static_cast<int*>(e)) > 0; };
  b.event_destroy = [](void* e, void* c) {
    static_cast<Fake*>(c)->alive.erase(static_cast<int*>(e));
    delete static_cast<int*>(e);
  };
  return b;
}
}  // namespace

TEST_CASE("caching allocator: size classes", "[core][allocator]") {
  REQUIRE(CachingAllocator::round_size(1) == 512);
  REQUIRE(CachingAllocator::round_size(512) == 512);
  REQUIRE(CachingAllocator::round_size(513) == 1024);
  REQUIRE(CachingAllocator::round_size((1 << 20) - 1) == (1 << 20));
  REQUIRE(CachingAllocator::round_size(1 << 20) == (2 << 20));
  REQUIRE(CachingAllocator::round_size(3 << 20) == (4 << 20));
}

TEST_CASE("caching allocator: a repeated step allocates from the backend only once", "[core][allocator]") {
  Fake f;
  {
    CachingAllocator a(fake_backend(f));
    for (int step = 0; step < 10; ++step) {
      void* x = a.allocate(1000, 0);
      void* y = a.allocate(5000, 0);
      void* z = a.allocate(3 << 20, 0);
      a.release(y);
      void* w = a.allocate(4000, 0);  // fits y's 5120-byte block (within 2x of 4096)
      a.release(x);
      a.release(z);
      a.release(w);
    }
    auto s = a.stats();
    REQUIRE(s.backend_mallocs == 3);
    REQUIRE(s.allocations == 40);
    REQUIRE(s.cache_hits == 37);
    REQUIRE(s.allocated == 0);
    REQUIRE(s.reserved == 1024 + 5120 + (4 << 20));
    REQUIRE(s.peak_allocated == 1024 + 5120 + (4 << 20));
    REQUIRE_THAT(s.str(), Catch::Contains("reserved"));
  }
  REQUIRE(f.frees == 3);  // the destructor returns every cached block
  REQUIRE(f.alive.empty());
}

TEST_CASE("caching allocator: best fit is bounded, big blocks are not spent on small requests", "[core][allocator]") {
  Fake f;
  CachingAllocator a(fake_backend(f));
  void* big = a.allocate(10 << 20, 0);
  a.release(big);
  void* small = a.allocate(1024, 0);
  REQUIRE(small != big);                  // a 10 MiB block for 1 KiB would waste it
  REQUIRE(a.allocate(9 << 20, 0) == big);  // 10 MiB serves 9 MiB (within +2 MiB)
  void* other = a.allocate(1024, 1);       // per-device lists
  REQUIRE(f.mallocs == 3);
  a.release(small);
  REQUIRE(a.allocate(600, 1) != small);  // device 1 does not take device 0's block
  (void)other;
}

TEST_CASE("caching allocator: stream-ordered reuse waits for the free's event", "[core][allocator]") {
  Fake f;
  CachingAllocator a(fake_backend(f));
  int sa = 0, sb = 0;  // two "streams"
  void* p = a.allocate(4096, 0, &sa);
  a.release(p);
  REQUIRE(a.allocate(4096, 0, &sa) == p);  // same stream: in order, reuse at once
  a.release(p);
  void* q = a.allocate(4096, 0, &sb);      // other stream: the event has not completed
  REQUIRE(q != p);
  a.release(q);
  for (int* e : f.alive) f.done.insert(e);  // the streams pass their events
  void* r = a.allocate(4096, 0, &sb);
  REQUIRE((r == p || r == q));
  REQUIRE(f.mallocs == 2);
  a.release(r);
  a.empty_cache();  // idle blocks whose events completed go back
  REQUIRE(a.stats().reserved <= 4096);
}

TEST_CASE("caching allocator: out of memory empties the cache and retries, then fails clearly", "[core][allocator]") {
  Fake f;
  f.capacity = 8 << 20;
  CachingAllocator a(fake_backend(f));
  void* x = a.allocate(3 << 20, 0);  // 4 MiB
  a.release(x);                      // cached, still held
  void* y = a.allocate(5 << 20, 0);  // 6 MiB: does not fit beside the cached 4 MiB -> cache emptied, retried
  REQUIRE(y != nullptr);
  REQUIRE(f.frees == 1);
  REQUIRE_THROWS_WITH(a.allocate(7 << 20, 0), Catch::Contains("out of device memory") && Catch::Contains("reserved"));
  REQUIRE_THROWS_WITH(a.release(reinterpret_cast<void*>(0x1234)), Catch::Contains("did not hand out"));
  a.release(y);
}
