// collapse_copy_layout (kernels/strided_layout.h), the host side of the device strided copy:
// merged dimensions must visit exactly the element offsets of the original view, in order.
#include <catch2/catch.hpp>
#include <vector>

#include "kernels/strided_layout.h"

using hyscale::kernels::collapse_copy_layout;

namespace {
// (dst, src) offsets of every element in row-major order of a layout.
std::vector<std::pair<int64_t, int64_t>> walk(const int64_t* shape, const int64_t* ds, const int64_t* ss, int nd) {
  int64_t n = 1;
  for (int d = 0; d < nd; ++d) n *= shape[d];
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int64_t i = 0; i < n; ++i) {
    int64_t r = i, a = 0, b = 0;
    for (int d = nd - 1; d >= 0; --d) {
      a += (r % shape[d]) * ds[d];
      b += (r % shape[d]) * ss[d];
      r /= shape[d];
    }
    out.emplace_back(a, b);
  }
  return out;
}
}  // namespace

TEST_CASE("collapsed copy layouts visit the same offsets, with fewer dimensions", "[kernels]") {
  struct Case {
    std::vector<int64_t> shape, ds, ss;
    int want_ndim;
  };
  const std::vector<Case> cases = {
      {{3, 4, 5}, {20, 5, 1}, {20, 5, 1}, 1},           // both contiguous
      {{2, 3, 4}, {12, 4, 1}, {36, 12, 1}, 2},          // a slice: 3 x 4 blocks contiguous inside
      {{2, 3, 4}, {12, 4, 1}, {60, 20, 2}, 2},          // strided innermost source (outer pair merges)
      {{1, 5, 1, 7}, {35, 7, 7, 1}, {70, 14, 14, 1}, 2},  // size-1 dimensions dropped
      {{4, 6}, {6, 1}, {0, 1}, 2},                      // broadcast rows: not merged
      {{4, 6}, {1, 4}, {6, 1}, 2},                      // transpose
      {{1, 1}, {1, 1}, {5, 9}, 1},                      // one element
      {{3, 0, 2}, {0, 2, 1}, {0, 2, 1}, -1},            // empty
  };
  for (const Case& c : cases) {
    const int nd = static_cast<int>(c.shape.size());
    const auto L = collapse_copy_layout<8>(c.shape.data(), c.ds.data(), c.ss.data(), nd);
    if (c.want_ndim < 0) {
      REQUIRE(L.numel == 0);
      continue;
    }
    INFO("case of " << nd << " dims");
    REQUIRE(L.ndim == c.want_ndim);
    REQUIRE(walk(L.shape, L.dst_stride, L.src_stride, L.ndim) == walk(c.shape.data(), c.ds.data(), c.ss.data(), nd));
  }
}
