// A CPU emulator of the CUDA execution model, for testing hyscale's hand-written kernels
// (src/kernels/cuda/*.cu) on machines without a GPU (CI). Not a product feature: only the test
// executable test_emu includes it, through the stand-in <cuda_runtime.h> and <cuda_bf16.h> in
// tests/emu/include, after tests/emu/transform.py has rewritten each kernel launch
// `k<<<grid, block, smem, stream>>>(args)` into a call of emu::Launch.
//
// Model (what it checks):
//  - One fiber (a stack of its own; see emu_fiber_switch) per CUDA thread; the blocks of a grid run
//    one after another, the threads of a block cooperatively. The scheduler picks threads in a fresh
//    random order every round and, per block, one of three policies: random per-warp delays; one
//    victim warp that runs only when nothing else can (it lags as far as the barriers allow); one
//    leader warp that runs whenever it can. A missing __syncthreads between a write and another
//    warp's read of shared memory therefore reads stale data or NaN in some schedules.
//  - __syncthreads: a thread waits until every live thread of the block has reached as many
//    barriers (exited threads count as arrived, as on the hardware). Warp collectives (shuffles,
//    mma, ldmatrix) wait until the 32 lanes of the warp have issued the same collective; a
//    collective that some lanes never issue deadlocks, which is reported and aborts.
//  - Blocks run in a random order. Shared memory: dynamic shared memory is one 256 KB buffer
//    filled with NaN at every launch and block; a write past the launch's dynamic size aborts,
//    and so does a launch with more than 48 KB of it without the kernel's opt-in
//    (cudaFuncSetAttribute), as on the hardware. Static __shared__ arrays are
//    re-filled with NaN (all-ones bytes) at the first touch in every block. So a value read
//    before it is written shows up as NaN in the output.
//  - "Device" memory is host memory; cudaMalloc(Async) returns NaN-filled (0xff) bytes.
//  - mma.sync m16n8k16 (bf16 inputs, fp32 accumulation) and ldmatrix.x4 (.trans) follow the
//    fragment layouts of the PTX ISA; the products are summed in fp32 in k order (the hardware's
//    order and internal precision differ: tests allow for it). cp.async copies 16 bytes whose
//    destination reads NaN until this thread's cp.async.wait_group retires the group (a read
//    before the wait, or, by another thread, before a barrier after it, sees NaN).
//  - wgmma (sm_90a warpgroup MMA, bf16, no-swizzle shared-memory layouts) as a warpgroup
//    collective, computed when the issuing thread's wait_group retires it (details at emu::wgmma);
//    its shared operands must have been fenced (fence.proxy.async) after cp.async wrote them.
//  - Floating-point atomics are exact read-modify-writes (fibers switch only at collectives).
// Not modelled: timing, occupancy, registers, bank conflicts, memory ordering beyond barriers,
// the hardware's exp2/rsqrt approximations (libm is used), warp-synchronous code without
// collectives, host code that reads device memory directly (it is host memory here), missing
// stream synchronisation (every call completes before it returns), spin-waits (a fiber yields
// only at barriers and collectives: an infinite loop hangs; ctest's timeout ends it), and
// ldmatrix reads the rows when each lane resumes rather than when the warp converges (a write to
// those rows by the same warp right after the ldmatrix would be misreported; no kernel does that). The GPU tests (tests/gpu, label gpu) remain the authority on real devices.
#pragma once
#include <sys/mman.h>
#include <ucontext.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)

using std::max;
using std::min;

struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) float2 { float x, y; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
struct alignas(8) uint2 { unsigned x, y; };
inline float2 make_float2(float x, float y) { return float2{x, y}; }
inline float4 make_float4(float a, float b, float c, float d) { return float4{a, b, c, d}; }
inline uint2 make_uint2(unsigned a, unsigned b) { return uint2{a, b}; }
inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) { return uint4{a, b, c, d}; }
struct __nv_bfloat16 { uint16_t x; };
struct alignas(4) __nv_bfloat162 { __nv_bfloat16 x, y; };
struct dim3 {
  unsigned x, y, z;
  dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct emu_uint3 { unsigned x, y, z; };
typedef void* cudaStream_t;
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorNotReady = 600,
  cudaErrorStreamCaptureUnsupported = 900,
  cudaErrorStreamCaptureInvalidated = 901,
  cudaErrorStreamCaptureImplicit = 906
};
enum cudaMemcpyKind {
  cudaMemcpyHostToHost,
  cudaMemcpyHostToDevice,
  cudaMemcpyDeviceToHost,
  cudaMemcpyDeviceToDevice,
  cudaMemcpyDefault
};
enum cudaDeviceAttr {
  cudaDevAttrMultiProcessorCount = 16,
  cudaDevAttrComputeCapabilityMajor = 75,
  cudaDevAttrComputeCapabilityMinor = 76,
  cudaDevAttrMaxSharedMemoryPerBlockOptin = 97
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
inline const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing (emulator)";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture (emulator)";
    case cudaErrorStreamCaptureImplicit:
      return "operation would make the legacy stream depend on a capturing blocking stream (emulator)";
    default: return "invalid value (emulator)";
  }
}

namespace emu {

[[noreturn]] inline void fatal(const char* what) {
  std::fprintf(stderr, "CUDA emulator: %s\n", what);
  std::abort();
}

constexpr size_t kSmemBytes = 256 * 1024, kStack = 256 * 1024;
constexpr int kMaxThreads = 1024;

// Emulated device: compute capability major (9 = sm_90: the tensor-core paths), the opt-in
// dynamic shared memory limit per block (an H100's 227 KB).
inline int sm_major = 9;
inline int smem_optin_bytes = 227 * 1024;

// Counters (for reports; tests may assert that a path ran).
struct Stats {
  long blocks = 0, threads = 0, exit_barrier_events = 0, mma = 0, ldmatrix = 0, cp_async = 0, atomics = 0, wgmma = 0;
};
inline Stats stats;

// Fiber switches. On x86-64 a few instructions (emu_fiber_switch, fiber_switch.S: the
// callee-saved registers, MXCSR and the x87 control word on the old stack, then the stack pointer
// swapped); swapcontext, used elsewhere, also saves and restores the signal mask with a system
// call and the whole floating-point environment on every switch, which took ~40 % of the
// emulator's time. HYSCALE_EMU_UCONTEXT=1 at build time selects swapcontext on x86-64 too.
#if defined(__x86_64__) && !defined(HYSCALE_EMU_UCONTEXT)
#define HYSCALE_EMU_FAST_SWITCH 1
extern "C" void emu_fiber_switch(void** save_sp, void* load_sp);
#endif

struct Fiber {
#ifdef HYSCALE_EMU_FAST_SWITCH
  void* sp = nullptr;
#else
  ucontext_t ctx;
#endif
  unsigned tid = 0;
  bool done = false;
  int wait_kind = 0;  // 0 runnable, 1 block barrier, 2 warp collective, 3 warpgroup collective
  long bar = 0, seq = 0, wgseq = 0, target = 0;
};
inline std::vector<Fiber>* fibers = nullptr;
inline Fiber* cur = nullptr;
#ifdef HYSCALE_EMU_FAST_SWITCH
inline void* sched_sp = nullptr;
#else
inline ucontext_t sched;
#endif
inline std::function<void()>* body = nullptr;
inline emu_uint3 block_idx{0, 0, 0}, block_dim{1, 1, 1}, grid_dim{1, 1, 1};
inline size_t dyn_bytes = 0;
inline long block_epoch = 0;
inline std::mt19937 rng(12345);
alignas(16) inline float4 smem[kSmemBytes / 16];

#ifdef HYSCALE_EMU_FAST_SWITCH
inline void yield() { emu_fiber_switch(&cur->sp, sched_sp); }
inline void resume(Fiber& f) { emu_fiber_switch(&sched_sp, f.sp); }
#else
inline void yield() { swapcontext(&cur->ctx, &sched); }
inline void resume(Fiber& f) { swapcontext(&sched, &f.ctx); }
#endif
// What the waits need, computed once per scheduling round (bars and seqs only grow, so values
// from the round's start are lower bounds: a wait released by them is released by the truth;
// a stale view only delays a release to the next round).
struct RoundView {
  long live_min_bar = 0, done_min_bar = 0;  // least barrier count of the live / exited threads
  std::vector<long> warp_min_seq;            // least collective count of each warp's lanes
  std::vector<long> wg_min_seq;              // least warpgroup-collective count of each warpgroup's threads
};
inline RoundView view;
inline void update_view() {
  const auto& fs = *fibers;
  view.live_min_bar = view.done_min_bar = LONG_MAX;
  view.warp_min_seq.assign((fs.size() + 31) / 32, LONG_MAX);
  view.wg_min_seq.assign((fs.size() + 127) / 128, LONG_MAX);
  for (const auto& g : fs) {
    long& m = g.done ? view.done_min_bar : view.live_min_bar;
    m = std::min(m, g.bar);
    long& w = view.warp_min_seq[g.tid >> 5];
    w = std::min(w, g.seq);
    long& x = view.wg_min_seq[g.tid >> 7];
    x = std::min(x, g.wgseq);
  }
}
inline bool ready(const Fiber& f) {
  if (f.wait_kind == 0) return true;
  if (f.wait_kind == 1) {  // barrier: every live thread has reached it
    if (view.live_min_bar < f.bar) return false;
    if (view.done_min_bar < f.bar) ++stats.exit_barrier_events;  // released partly by exited threads
    return true;
  }
  if (f.wait_kind == 3) return view.wg_min_seq[f.tid >> 7] >= f.target;  // warpgroup collective: all 128 posted
  return view.warp_min_seq[f.tid >> 5] >= f.target;  // warp collective: all 32 lanes posted
}
inline void trampoline() {
  (*body)();
  cur->done = true;
  yield();  // never resumed: the scheduler skips finished fibers
  fatal("a finished thread was resumed");
}
// Prepares fiber f to start in trampoline() on the stack [stack, stack + size) at its first resume.
inline void fiber_init(Fiber& f, char* stack, size_t size) {
#ifdef HYSCALE_EMU_FAST_SWITCH
  // What emu_fiber_switch pops, from the new stack pointer up: MXCSR and the x87 control word (one
  // 8-byte slot, this thread's current values), r15, r14, r13, r12, rbx, rbp, then the return
  // address. After that `ret` the stack pointer is 8 below a 16-byte boundary, as at any function
  // entry (the System V ABI).
  uintptr_t top = (reinterpret_cast<uintptr_t>(stack) + size) & ~uintptr_t{15};
  auto* sp = reinterpret_cast<uint64_t*>(top - 72);
  uint32_t mxcsr = 0;
  uint16_t fpucw = 0;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpucw));
  sp[0] = uint64_t{mxcsr} | (uint64_t{fpucw} << 32);
  for (int i = 1; i <= 6; ++i) sp[i] = 0;
  sp[7] = reinterpret_cast<uint64_t>(&trampoline);
  sp[8] = 0;
  f.sp = sp;
#else
  getcontext(&f.ctx);
  f.ctx.uc_stack.ss_sp = stack;
  f.ctx.uc_stack.ss_size = size;
  f.ctx.uc_link = nullptr;
  makecontext(&f.ctx, trampoline, 0);
#endif
}
inline void syncthreads() {
  cur->bar++;
  cur->wait_kind = 1;
  yield();
  cur->wait_kind = 0;
}
// Waits until the warp's 32 lanes have issued collective number `cur->seq` (after incrementing it);
// all of them must have issued the same kind of collective (a shuffle in some lanes and an mma in
// others at the same point is a divergence bug: abort).
enum Collective : int { kShuffle = 1, kMma = 2, kLdmatrix = 3 };
inline int coll_kind[2][kMaxThreads];
inline long warp_collective(int kind) {
  const long s = ++cur->seq;
  coll_kind[s & 1][cur->tid] = kind;
  cur->wait_kind = 2;
  cur->target = s;
  yield();
  cur->wait_kind = 0;
  const unsigned w0 = cur->tid & ~31u;
  for (unsigned l = 0; l < 32; ++l)
    if (coll_kind[s & 1][w0 + l] != kind) fatal("lanes of a warp met at different warp collectives");
  return s;
}

// Warp shuffles: every lane posts its value, then reads the source lane's (two slots, alternating
// with the collective's parity, so a fast lane's next post cannot overwrite a slot still read).
inline uint64_t xch[2][kMaxThreads];
template <class V> V exchange(V v, unsigned src_lane) {
  static_assert(sizeof(V) <= 8, "exchange: 8 bytes at most");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(V));
  const long s = cur->seq + 1;
  xch[s & 1][cur->tid] = bits;
  warp_collective(kShuffle);
  bits = xch[s & 1][(cur->tid & ~31u) | (src_lane & 31u)];
  V r;
  std::memcpy(&r, &bits, sizeof(V));
  return r;
}

inline bool in_dyn_smem(const void* p, size_t n) {
  const char* base = reinterpret_cast<const char*>(smem);
  const char* c = static_cast<const char*>(p);
  return c >= base && c + n <= base + dyn_bytes;
}
inline void check_smem16(const void* p, const char* who) {
  if (!in_dyn_smem(p, 16)) {
    std::fprintf(stderr, "CUDA emulator: %s outside the dynamic shared memory (%zu bytes)\n", who, dyn_bytes);
    std::abort();
  }
  if ((reinterpret_cast<uintptr_t>(p) & 15u) != 0) {
    std::fprintf(stderr, "CUDA emulator: %s not 16-byte aligned\n", who);
    std::abort();
  }
}

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 (PTX ISA fragment layouts; lane = 4 g + t):
// A (16 x 16): a[0] = row g, columns 2t, 2t+1; a[1] = row g+8; a[2], a[3]: the same, columns + 8.
// B (16 x 8): b[0] = rows 2t, 2t+1 of column g; b[1] = rows 2t+8, 2t+9. D: d[0], d[1] = row g,
// columns 2t, 2t+1; d[2], d[3] = row g+8. Two bf16 in one register: the lower index low.
inline uint32_t mma_a[2][kMaxThreads][4], mma_b[2][kMaxThreads][2];
inline float bf_lo(uint32_t h) { return std::bit_cast<float>((h & 0xffffu) << 16); }
struct MmaUnpacked {
  long epoch = -1, seq = -1;  // the block and collective they belong to
  float A[16][16], B[16][8];
};
inline void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  ++stats.mma;
  const long s = cur->seq + 1;
  for (int i = 0; i < 4; ++i) mma_a[s & 1][cur->tid][i] = a[i];
  for (int i = 0; i < 2; ++i) mma_b[s & 1][cur->tid][i] = b[i];
  warp_collective(kMma);
  const unsigned w0 = cur->tid & ~31u;
  // The warp's fragments as matrices, unpacked by the first lane to get here after the collective
  // and reused by the other 31 (fibers switch only at collectives, and no lane can overwrite this
  // parity's fragments before every lane has passed the next collective, i.e. computed this one).
  static MmaUnpacked unpacked[kMaxThreads / 32];
  MmaUnpacked& u = unpacked[w0 / 32];
  float(&A)[16][16] = u.A;
  float(&B)[16][8] = u.B;
  if (u.epoch != block_epoch || u.seq != s) {
    u.epoch = block_epoch;
    u.seq = s;
    for (unsigned L = 0; L < 32; ++L) {
      const unsigned g = L >> 2, t = L & 3;
      const uint32_t* ra = mma_a[s & 1][w0 + L];
      const uint32_t* rb = mma_b[s & 1][w0 + L];
      for (unsigned e = 0; e < 2; ++e) {
        A[g][t * 2 + e] = bf_lo(ra[0] >> (16 * e));
        A[g + 8][t * 2 + e] = bf_lo(ra[1] >> (16 * e));
        A[g][t * 2 + 8 + e] = bf_lo(ra[2] >> (16 * e));
        A[g + 8][t * 2 + 8 + e] = bf_lo(ra[3] >> (16 * e));
        B[t * 2 + e][g] = bf_lo(rb[0] >> (16 * e));
        B[t * 2 + 8 + e][g] = bf_lo(rb[1] >> (16 * e));
      }
    }
  }
  const unsigned lane = cur->tid & 31u, g = lane >> 2, t = lane & 3;
  for (int i = 0; i < 4; ++i) {
    const unsigned row = g + 8 * (i >> 1), col = t * 2 + (i & 1);
    float acc = d[i];
    for (int kk = 0; kk < 16; ++kk) acc += A[row][kk] * B[kk][col];
    d[i] = acc;
  }
}

// ldmatrix.sync.aligned.m8n8.x{1,2,4}[.trans].shared.b16: lane l gives the address of row l % 8 of
// matrix l / 8 (16 bytes, 16-byte aligned, in the dynamic shared memory); register i of lane
// l = 4 g + t receives row g, columns 2t, 2t+1 of matrix i (.trans: column g, rows 2t, 2t+1).
inline const uint16_t* ldsm_ptr[2][kMaxThreads];
inline void ldmatrix(uint32_t* r, int nmat, bool trans, const void* p) {
  ++stats.ldmatrix;
  const long s = cur->seq + 1;
  ldsm_ptr[s & 1][cur->tid] = static_cast<const uint16_t*>(p);
  warp_collective(kLdmatrix);
  const unsigned w0 = cur->tid & ~31u, lane = cur->tid & 31u, g = lane >> 2, t = lane & 3;
  for (int i = 0; i < nmat; ++i) {
    const uint16_t* rows[8];
    for (int k = 0; k < 8; ++k) {
      rows[k] = ldsm_ptr[s & 1][w0 + 8 * i + k];
      check_smem16(rows[k], "ldmatrix row");
    }
    const uint16_t lo = trans ? rows[2 * t][g] : rows[g][2 * t];
    const uint16_t hi = trans ? rows[2 * t + 1][g] : rows[g][2 * t + 1];
    r[i] = uint32_t(lo) | (uint32_t(hi) << 16);
  }
}

// cp.async.cg (16 bytes, src-size 16 or 0) + commit_group + wait_group N. The source is read at
// issue (kernel inputs are read-only while it runs); the destination is poisoned at issue and
// receives the data when this thread's wait retires the copy's group.
struct CpPending {
  unsigned char* dst;
  unsigned char data[16];
  long group;
};
inline std::vector<CpPending> cp_pending[kMaxThreads];
inline long cp_groups[kMaxThreads];
// Proxies: 16-byte chunks of dynamic shared memory written by a retired cp.async (the generic
// proxy) stay "unfenced" until their writer's fence.proxy.async; wgmma (the async proxy) reading
// an unfenced chunk aborts.
inline unsigned char unfenced[kSmemBytes / 16];
inline std::vector<size_t> to_fence[kMaxThreads];
inline void fence_proxy_async() {
  for (size_t c : to_fence[cur->tid]) unfenced[c] = 0;
  to_fence[cur->tid].clear();
}
inline void cp_async16(void* dst, const void* src, bool valid) {
  ++stats.cp_async;
  check_smem16(dst, "cp.async destination");
  if (valid && (reinterpret_cast<uintptr_t>(src) & 15u)) fatal("cp.async source not 16-byte aligned");
  CpPending e;
  e.dst = static_cast<unsigned char*>(dst);
  if (valid) std::memcpy(e.data, src, 16);
  else std::memset(e.data, 0, 16);
  e.group = cp_groups[cur->tid];
  std::memset(dst, 0xff, 16);
  cp_pending[cur->tid].push_back(e);
}
inline void cp_async_commit() { ++cp_groups[cur->tid]; }
inline void cp_async_wait(int n) {
  auto& v = cp_pending[cur->tid];
  const long limit = cp_groups[cur->tid] - n;  // groups below limit must be complete
  std::vector<CpPending> keep;
  for (auto& e : v) {
    if (e.group < limit) {
      std::memcpy(e.dst, e.data, 16);
      const size_t c = size_t(e.dst - reinterpret_cast<unsigned char*>(smem)) / 16;
      unfenced[c] = 1;
      to_fence[cur->tid].push_back(c);
    } else {
      keep.push_back(e);
    }
  }
  v.swap(keep);
}

// wgmma.mma_async.sync.aligned.m64nNk16.f32.bf16.bf16 (sm_90a warpgroup MMA), with
// wgmma.commit_group / wait_group. A warpgroup is 4 consecutive warps (threads 128 w .. 128 w + 127;
// the block must be whole warpgroups). All 128 threads must issue the same operation (shape, the
// shared-memory descriptors, the transpose flag): a warpgroup collective. Layouts (PTX ISA,
// "Register Fragments and Shared Memory Matrix Layouts"), for thread 32 w + 4 g + t of the group:
//   D (64 x N, f32): d[4 j + 2 h + e] = D(16 w + g + 8 h, 8 j + 2 t + e), j < N / 8.
//   A in registers (64 x 16 bf16): a[0] = row 16 w + g, columns 2 t + {0, 1}; a[1] = row + 8;
//     a[2], a[3]: the same rows, columns + 8 (mma.sync's A fragment per warp).
//   Matrices in shared memory (descriptor: bits 0-13 start address >> 4, 16-29 leading-dimension
//   byte offset (LBO) >> 4, 32-45 stride-dimension byte offset (SBO) >> 4, 62-63 swizzle; only
//   "no swizzle" is modelled, anything else aborts): 8 x 8 "core matrices" of 16-byte rows.
//     K-major (A; B with imm-trans-b 0), element (mn, k): start + (mn % 8) 16 + (mn / 8) SBO
//       + (k % 8) 2 + (k / 8) LBO;
//     MN-major (B with imm-trans-b 1), element (mn, k): start + (mn % 8) 2 + (mn / 8) SBO
//       + (k % 8) 16 + (k / 8) LBO
//   (the canonical layouts ((8,m),(T,2k)):((1T,SBO),(1,LBO)) and ((T,1,m),(8,k)):((1,T,SBO),(1T,LBO))
//   with T = 8 bf16 elements).
// Asynchrony: the operation is recorded at issue (A registers and the accumulator's input values
// captured, unless a pending operation on the same registers comes first: then it accumulates onto
// that one's result, as the hardware chains them; the accumulator registers read NaN until the
// wait) and computed when this thread's wgmma_wait (a warpgroup collective) retires its group,
// reading shared memory then: an accumulator read before the wait, or a shared operand
// overwritten before it, shows up in the results; A registers changed before the wait (the
// hardware reads them asynchronously too) abort, and so does an operation whose shared operands
// hold cp.async data not yet fenced for the async proxy at its issue. A block that exits with an
// operation not waited for aborts. Products summed in fp32 in k order (the tensor cores' order
// and rounding differ: tests allow for it). wgmma.fence: see wg_fenced.
// Not modelled: the compiler moving register accesses across the fence (the kernels pin them),
// commit as a warpgroup collective (the wait is one).
struct WgPost {
  uint64_t da, db;
  uint32_t a[4];
  const uint32_t* a_ptr;  // the lane's A registers (re-read at the wait: they must not change before it)
  int n, tnsp_b, a_regs, scale_d;
};
inline WgPost wg_post[2][kMaxThreads];
struct WgOp {
  float* d;
  int n, tnsp_b, scale_d;
  bool a_regs, chained;  // chained: accumulates onto a pending operation's result (same registers)
  uint64_t da, db;
  float A[2][16];      // a_regs: this thread's rows g and g + 8
  const uint32_t* a_src[4];  // a_regs: the 4 lanes' registers A came from
  uint32_t a_seen[4][4];     // ... and their values at issue
  float d_in[128];
  long group;
};
inline std::vector<WgOp> wg_pending[kMaxThreads];
inline long wg_groups[kMaxThreads];
// wgmma.fence: the PTX ISA requires one between ordinary accesses of the accumulator / A registers
// and the wgmma that use them. Modelled conservatively, as CUTLASS and these kernels use it: each
// commit group's first wgmma must come after a fence by this thread since the previous commit.
inline bool wg_fenced[kMaxThreads];
inline void wgmma_fence() { wg_fenced[cur->tid] = true; }
inline long warpgroup_collective() {
  const long s = ++cur->wgseq;
  cur->wait_kind = 3;
  cur->target = s;
  yield();
  cur->wait_kind = 0;
  return s;
}
inline float smem_bf16_at(uint64_t desc, bool mn_major, int mn, int k) {
  if ((desc >> 62) != 0) fatal("wgmma descriptor: only the no-swizzle layout is modelled");
  const size_t start = size_t(desc & 0x3FFF) << 4, lbo = size_t((desc >> 16) & 0x3FFF) << 4,
               sbo = size_t((desc >> 32) & 0x3FFF) << 4;
  const size_t off = mn_major ? start + (mn % 8) * 2 + (mn / 8) * sbo + (k % 8) * 16 + (k / 8) * lbo
                              : start + (mn % 8) * 16 + (mn / 8) * sbo + (k % 8) * 2 + (k / 8) * lbo;
  if (off + 2 > dyn_bytes) fatal("wgmma operand outside the dynamic shared memory");
  if (unfenced[off / 16]) fatal("wgmma reads shared memory written by cp.async without fence.proxy.async");
  uint16_t h;
  std::memcpy(&h, reinterpret_cast<const char*>(smem) + off, 2);
  return std::bit_cast<float>(uint32_t(h) << 16);
}
inline void wgmma(float* d, int n, bool a_regs, const uint32_t* a, uint64_t da, uint64_t db, int tnsp_b, int scale_d) {
  ++stats.wgmma;
  if ((block_dim.x * block_dim.y * block_dim.z) % 128 != 0) fatal("wgmma in a block that is not whole warpgroups");
  if (!wg_fenced[cur->tid]) fatal("wgmma issued without a wgmma.fence since the previous commit_group");
  if (n % 8 != 0 || n < 8 || n > 256) fatal("wgmma: N must be a multiple of 8 in [8, 256]");
  const long s = cur->wgseq + 1;
  WgPost& p = wg_post[s & 1][cur->tid];
  p.da = a_regs ? 0 : da;
  p.db = db;
  p.n = n;
  p.tnsp_b = tnsp_b;
  p.a_regs = a_regs;
  p.scale_d = scale_d;
  p.a_ptr = a_regs ? a : nullptr;
  for (int i = 0; i < 4; ++i) p.a[i] = a_regs ? a[i] : 0;
  warpgroup_collective();
  const unsigned w0 = cur->tid & ~127u;
  for (unsigned l = 0; l < 128; ++l) {
    const WgPost& o = wg_post[s & 1][w0 + l];
    if (o.da != p.da || o.db != p.db || o.n != p.n || o.tnsp_b != p.tnsp_b || o.a_regs != p.a_regs ||
        o.scale_d != p.scale_d)
      fatal("threads of a warpgroup issued different wgmma operations");
  }
  // The hardware may read the shared operands at any time from the issue on: whatever they hold
  // must already be fenced for the async proxy (checked once per operation, by its first thread).
  if ((cur->tid & 127u) == 0)
    for (int k = 0; k < 16; ++k) {
      if (!a_regs)
        for (int r = 0; r < 64; ++r) smem_bf16_at(da, false, r, k);
      for (int c = 0; c < n; ++c) smem_bf16_at(db, tnsp_b != 0, c, k);
    }
  WgOp op;
  op.d = d;
  op.n = n;
  op.tnsp_b = tnsp_b;
  op.scale_d = scale_d;
  op.a_regs = a_regs;
  op.da = da;
  op.db = db;
  op.chained = false;
  for (const WgOp& prev : wg_pending[cur->tid])
    if (prev.d == d) {
      if (prev.n != n) fatal("wgmma: one accumulator used at two shapes while pending");
      op.chained = true;
    }
  if (!op.chained)
    for (int i = 0; i < n / 2; ++i) {
      op.d_in[i] = d[i];
      d[i] = std::nanf("");
    }
  if (a_regs) {  // rows g, g + 8 of this warp's slice from the 4 lanes of group g
    const unsigned wb = cur->tid & ~31u, g = (cur->tid & 31u) >> 2;
    for (unsigned t = 0; t < 4; ++t) {
      const uint32_t* r = wg_post[s & 1][wb + 4 * g + t].a;
      op.a_src[t] = wg_post[s & 1][wb + 4 * g + t].a_ptr;
      for (int i = 0; i < 4; ++i) op.a_seen[t][i] = r[i];
      for (unsigned e = 0; e < 2; ++e) {
        op.A[0][2 * t + e] = bf_lo(r[0] >> (16 * e));
        op.A[1][2 * t + e] = bf_lo(r[1] >> (16 * e));
        op.A[0][2 * t + 8 + e] = bf_lo(r[2] >> (16 * e));
        op.A[1][2 * t + 8 + e] = bf_lo(r[3] >> (16 * e));
      }
    }
  }
  op.group = wg_groups[cur->tid];
  wg_pending[cur->tid].push_back(op);
}
inline void wgmma_compute(const WgOp& op) {
  if (op.a_regs)  // the A registers are read asynchronously too: unchanged until the wait
    for (int t = 0; t < 4; ++t)
      for (int i = 0; i < 4; ++i)
        if (op.a_src[t][i] != op.a_seen[t][i]) fatal("wgmma A registers changed before its wait_group");
  const unsigned wt = cur->tid & 127u, w = wt >> 5, lane = wt & 31u, g = lane >> 2, t = lane & 3;
  float a[2][16];  // this thread's two rows of A, then each of its columns of B, read once
  for (int h = 0; h < 2; ++h)
    for (int k = 0; k < 16; ++k)
      a[h][k] = op.a_regs ? op.A[h][k] : smem_bf16_at(op.da, false, int(16 * w + g + 8 * h), k);
  for (int j = 0; j < op.n / 8; ++j)
    for (int e = 0; e < 2; ++e) {
      const int col = 8 * j + int(2 * t) + e;
      float b[16];
      for (int k = 0; k < 16; ++k) b[k] = smem_bf16_at(op.db, op.tnsp_b != 0, col, k);
      for (int h = 0; h < 2; ++h) {
        const int idx = 4 * j + 2 * h + e;
        float acc = op.scale_d ? (op.chained ? op.d[idx] : op.d_in[idx]) : 0.0f;
        for (int k = 0; k < 16; ++k) acc += a[h][k] * b[k];
        op.d[idx] = acc;
      }
    }
}
inline void wgmma_commit() {
  ++wg_groups[cur->tid];
  wg_fenced[cur->tid] = false;
}
inline void wgmma_wait(int n) {
  warpgroup_collective();  // wgmma.wait_group.sync.aligned: the whole warpgroup
  auto& v = wg_pending[cur->tid];
  const long limit = wg_groups[cur->tid] - n;  // groups below limit must be complete
  std::vector<WgOp> keep;
  for (auto& op : v) {
    if (op.group < limit) wgmma_compute(op);
    else keep.push_back(op);
  }
  v.swap(keep);
}

// Static __shared__ arrays (rewritten by transform.py into function statics): all-ones bytes (NaN)
// at the first touch in every block.
struct SharedRec {
  void* p;
  long epoch;
};
inline std::vector<SharedRec> shared_recs;
inline void shared_init(void* p, size_t n) {
  for (auto& r : shared_recs)
    if (r.p == p) {
      if (r.epoch != block_epoch) {
        std::memset(p, 0xff, n);
        r.epoch = block_epoch;
      }
      return;
    }
  std::memset(p, 0xff, n);
  shared_recs.push_back({p, block_epoch});
}
inline void* dynamic_smem() { return smem; }

inline void run_block(unsigned nthreads, const dim3& bi) {
  block_idx = {bi.x, bi.y, bi.z};
  ++block_epoch;
  std::memset(smem, 0xff, dyn_bytes);
  std::memset(unfenced, 0, (dyn_bytes + 15) / 16);
  // Fiber stacks: kStack usable bytes above an inaccessible guard page (an overflow faults
  // instead of corrupting the heap).
  static std::vector<char*> stacks;
  while (stacks.size() < nthreads) {
    constexpr size_t kGuardPage = 4096;
    void* m = mmap(nullptr, kStack + kGuardPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) fatal("cannot map a fiber stack");
    mprotect(m, kGuardPage, PROT_NONE);
    stacks.push_back(static_cast<char*>(m) + kGuardPage);
  }
  std::vector<Fiber> fs(nthreads);
  fibers = &fs;
  for (unsigned t = 0; t < nthreads; ++t) {
    cp_pending[t].clear();
    cp_groups[t] = 0;
    wg_pending[t].clear();
    wg_groups[t] = 0;
    wg_fenced[t] = false;
    to_fence[t].clear();
    fs[t].tid = t;
    fiber_init(fs[t], stacks[t], kStack);
  }
  const unsigned nwarps = nthreads / 32;
  std::vector<unsigned> order(nthreads), slow(nwarps);
  for (unsigned t = 0; t < nthreads; ++t) order[t] = t;
  for (auto& x : slow) x = rng() % 970;  // per-warp delay probability (per mille), policy 0
  const unsigned policy = rng() % 3, special = rng() % nwarps;
  std::vector<char> skip(nwarps);
  for (;;) {
    bool progress = false, all_done = true, any_skipped = false;
    std::shuffle(order.begin(), order.end(), rng);
    for (unsigned w = 0; w < nwarps; ++w) skip[w] = policy == 0 && (rng() % 1000) < slow[w];
    for (int pass = 0; pass < 2; ++pass) {
      update_view();
      for (unsigned t : order) {
        Fiber& f = fs[t];
        if (f.done) continue;
        all_done = false;
        if (!ready(f)) continue;
        const bool sp = (t >> 5) == special;
        if (policy == 1 && sp != (pass == 1)) continue;  // the victim runs only in the second pass
        if (policy == 2 && sp != (pass == 0)) continue;  // the leader runs first, the rest after
        if (skip[t >> 5]) {
          any_skipped = true;
          continue;
        }
        cur = &f;
        resume(f);
        progress = true;
      }
      if (progress || policy == 0) break;
    }
    if (all_done) break;
    if (!progress && any_skipped) continue;
    if (!progress) {
      std::fprintf(stderr,
                   "CUDA emulator: deadlock in block (%u, %u, %u): a barrier or warp collective not reached by "
                   "every thread\n",
                   bi.x, bi.y, bi.z);
      std::abort();
    }
  }
  for (unsigned t = 0; t < nthreads; ++t) {
    if (!cp_pending[t].empty()) fatal("cp.async copies still pending when a thread exited");
    if (!wg_pending[t].empty()) fatal("a wgmma not waited for when a thread exited");
  }
  fibers = nullptr;
  cur = nullptr;
  ++stats.blocks;
}

// Dynamic shared memory above 48 KB needs the kernel's opt-in (cudaFuncSetAttribute with
// cudaFuncAttributeMaxDynamicSharedMemorySize), or the launch fails on the hardware.
constexpr size_t kSmemDefaultBytes = 48 * 1024;
inline std::vector<std::pair<const void*, int>> smem_optins;  // kernel, opted-in bytes
inline int smem_optin_of(const void* k) {
  for (auto& [f, b] : smem_optins)
    if (f == k) return b;
  return 0;
}

inline void run_grid(dim3 grid, dim3 block, size_t smem_bytes, const void* kernel, const std::function<void()>& fn) {
  if (cur != nullptr) fatal("kernel launch from inside a kernel");
  if (smem_bytes > size_t(smem_optin_bytes)) fatal("dynamic shared memory above the opt-in limit");
  if (kernel != nullptr && smem_bytes > kSmemDefaultBytes && size_t(smem_optin_of(kernel)) < smem_bytes)
    fatal("dynamic shared memory above 48 KB without the kernel's cudaFuncSetAttribute opt-in");
  if (block.y != 1 || block.z != 1 || block.x == 0 || block.x % 32 || block.x > kMaxThreads)
    fatal("block shape: the emulator supports 1-D blocks of whole warps (<= 1024 threads)");
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535) fatal("bad grid shape");
  grid_dim = {grid.x, grid.y, grid.z};
  block_dim = {block.x, 1, 1};
  dyn_bytes = smem_bytes;
  std::memset(smem, 0xff, sizeof smem);
  std::function<void()> f = fn;
  body = &f;
  // Blocks run one at a time in a random order (no kernel may depend on the order of its blocks).
  std::vector<dim3> blocks;
  blocks.reserve(size_t(grid.x) * grid.y * grid.z);
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) blocks.emplace_back(bx, by, bz);
  std::shuffle(blocks.begin(), blocks.end(), rng);
  for (const dim3& b : blocks) run_block(block.x, b);
  stats.threads += long(blocks.size()) * block.x;
  body = nullptr;
  const auto* w = reinterpret_cast<const unsigned char*>(smem);
  for (size_t i = smem_bytes; i < kSmemBytes; ++i)
    if (w[i] != 0xff) fatal("shared-memory write past the launch's dynamic size");
}

// What transform.py turns `k<<<grid, block, smem, stream>>>(args)` into:
// emu::Launch(grid, block, smem, stream).of(k).run([=] { k(args); }).
// Streams and CUDA-graph capture. A stream made by cudaStreamCreate is an emu_stream; work queued on
// one that is capturing is recorded, not run, and cudaGraphLaunch replays the records in order
// (kernel launches with their argument values as captured, async copies and fills, the emulated
// cuBLASLt GEMM). While a capture is open, work on the legacy stream (a null stream) is refused and
// invalidates the capture, as the hardware does when the capturing stream is a blocking one; with
// a non-blocking capturing stream (what core/cuda/cuda_backend.cu uses) the hardware would run it
// at once, outside the graph, i.e. silently wrong replays: the emulator's refusal makes the tests
// catch any such operation in a captured body. Synchronising the capturing stream or the device
// is refused and invalidates the capture too; cudaStreamEndCapture then fails. cudaMalloc stays
// allowed (relaxed mode).
struct emu_stream {
  bool capturing = false;
  std::vector<std::function<void()>> rec;
  bool invalid = false;
};
inline int open_captures = 0;
inline emu_stream* capturing_stream = nullptr;  // the open capture (one at a time here)
inline long graph_launches = 0, captured_ops = 0;
// Runs f now, records it (capturing stream; true), or refuses it (legacy stream during a capture).
inline cudaError_t enqueue(cudaStream_t st, const std::function<void()>& f) {
  auto* es = static_cast<emu_stream*>(st);
  if (es != nullptr && es->capturing) {
    es->rec.push_back(f);
    ++captured_ops;
    return cudaSuccess;
  }
  if (es == nullptr && open_captures > 0) {
    capturing_stream->invalid = true;
    return cudaErrorStreamCaptureImplicit;
  }
  f();
  return cudaSuccess;
}
inline cudaError_t launch_error = cudaSuccess;  // what cudaGetLastError reports (and clears)

struct Launch {
  dim3 grid, block;
  size_t smem;
  cudaStream_t stream;
  const void* kernel = nullptr;  // for the shared-memory opt-in check
  Launch(dim3 g, dim3 b, size_t s = 0, cudaStream_t st = nullptr) : grid(g), block(b), smem(s), stream(st) {}
  template <class K> Launch& of(K* k) {
    kernel = reinterpret_cast<const void*>(k);
    return *this;
  }
  template <class L> void run(L l) const {
    const std::function<void()> f(l);
    const dim3 g = grid, b = block;
    const size_t sm = smem;
    const void* k = kernel;
    const cudaError_t e = enqueue(stream, [=] { run_grid(g, b, sm, k, f); });
    if (e != cudaSuccess) launch_error = e;
  }
};

inline uint16_t f2bf(float v) {  // round to nearest even; NaN stays a (quiet) NaN
  uint32_t u = std::bit_cast<uint32_t>(v);
  if (std::isnan(v)) return uint16_t((u >> 16) | 0x40);
  u += 0x7fff + ((u >> 16) & 1);
  return uint16_t(u >> 16);
}
inline float bf2f(uint16_t b) { return std::bit_cast<float>(uint32_t(b) << 16); }

}  // namespace emu

#define threadIdx (emu_uint3{emu::cur->tid, 0, 0})
#define blockIdx emu::block_idx
#define blockDim emu::block_dim
#define gridDim emu::grid_dim

inline void __syncthreads() { emu::syncthreads(); }
template <class V> V __shfl_xor_sync(unsigned, V v, int o) {
  return emu::exchange(v, (emu::cur->tid & 31u) ^ unsigned(o));
}
template <class V> V __shfl_sync(unsigned, V v, int src) { return emu::exchange(v, unsigned(src)); }
template <class V> V __shfl_down_sync(unsigned, V v, unsigned d) {
  const unsigned l = emu::cur->tid & 31u;
  return emu::exchange(v, l + d < 32 ? l + d : l);
}
[[noreturn]] inline void __trap() { emu::fatal("__trap() in a kernel"); }
inline uint64_t __cvta_generic_to_shared(const void* p) {
  return uint64_t(static_cast<const char*>(p) - reinterpret_cast<const char*>(emu::smem));
}
inline float __expf(float x) { return exp2f(x * 1.44269504f); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __uint_as_float(uint32_t x) { return std::bit_cast<float>(x); }
inline uint32_t __float_as_uint(float x) { return std::bit_cast<uint32_t>(x); }
inline float atomicAdd(float* p, float v) {  // fibers switch only at collectives: exact
  ++emu::stats.atomics;
  const float o = *p;
  *p = o + v;
  return o;
}
inline float __bfloat162float(__nv_bfloat16 b) { return emu::bf2f(b.x); }
inline __nv_bfloat16 __float2bfloat16_rn(float v) { return __nv_bfloat16{emu::f2bf(v)}; }
inline uint16_t __bfloat16_as_ushort(__nv_bfloat16 b) { return b.x; }
inline float2 __bfloat1622float2(__nv_bfloat162 h) { return float2{__bfloat162float(h.x), __bfloat162float(h.y)}; }
inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) {
  return __nv_bfloat162{__float2bfloat16_rn(a), __float2bfloat16_rn(b)};
}

// Runtime API (the calls the kernel files make; device memory is host memory).
template <class K> cudaError_t cudaFuncSetAttribute(K* k, cudaFuncAttribute a, int bytes) {
  if (a != cudaFuncAttributeMaxDynamicSharedMemorySize || bytes < 0 || bytes > emu::smem_optin_bytes)
    return cudaErrorInvalidValue;
  const void* key = reinterpret_cast<const void*>(k);
  for (auto& [f, b] : emu::smem_optins)
    if (f == key) {
      b = bytes;
      return cudaSuccess;
    }
  emu::smem_optins.emplace_back(key, bytes);
  return cudaSuccess;
}
// Emulated devices: HYSCALE_EMU_DEVICES (default 1) of them, all backed by host memory; the
// current one is only bookkeeping (so multi-GPU device selection can be exercised).
namespace emu {
inline int device_count() {
  const char* e = std::getenv("HYSCALE_EMU_DEVICES");
  return e != nullptr && std::atoi(e) > 0 ? std::atoi(e) : 1;
}
inline int current_device = 0;
}  // namespace emu
inline cudaError_t cudaGetDevice(int* d) {
  *d = emu::current_device;
  return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int d) {
  if (d < 0 || d >= emu::device_count()) return cudaErrorInvalidValue;
  emu::current_device = d;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int) {
  *v = a == cudaDevAttrComputeCapabilityMajor         ? emu::sm_major
       : a == cudaDevAttrMultiProcessorCount          ? 1
       : a == cudaDevAttrMaxSharedMemoryPerBlockOptin ? emu::smem_optin_bytes
                                                      : 0;
  return cudaSuccess;
}
inline cudaError_t cudaGetLastError() {
  const cudaError_t e = emu::launch_error;
  emu::launch_error = cudaSuccess;
  return e;
}
inline cudaError_t cudaPeekAtLastError() { return emu::launch_error; }
inline cudaError_t cudaMalloc(void** p, size_t n) {
  *p = std::malloc(n ? n : 1);
  std::memset(*p, 0xff, n);
  return cudaSuccess;
}
inline cudaError_t cudaFree(void* p) {
  std::free(p);
  return cudaSuccess;
}
inline cudaError_t cudaMallocAsync(void** p, size_t n, cudaStream_t st) {
  // (a captured allocation node: the memory is allocated now and lives until the matching free)
  if (st == nullptr && emu::open_captures > 0) {
    emu::capturing_stream->invalid = true;
    return cudaErrorStreamCaptureImplicit;
  }
  return cudaMalloc(p, n);
}
inline cudaError_t cudaFreeAsync(void* p, cudaStream_t st) {
  auto* es = static_cast<emu::emu_stream*>(st);
  if (es != nullptr && es->capturing) {  // freed when the graph is gone (never, here: a small leak in tests)
    return cudaSuccess;
  }
  return emu::enqueue(st, [p] { std::free(p); });
}
inline cudaError_t cudaMemsetAsync(void* p, int v, size_t n, cudaStream_t st = nullptr) {
  return emu::enqueue(st, [=] { std::memset(p, v, n); });
}
inline cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind, cudaStream_t st = nullptr) {
  return emu::enqueue(st, [=] { std::memmove(d, s, n); });
}
inline cudaError_t cudaMemcpy2DAsync(void* d, size_t dp, const void* s, size_t sp, size_t w, size_t h, cudaMemcpyKind,
                                     cudaStream_t st = nullptr) {
  if (w > dp || w > sp) return cudaErrorInvalidValue;
  return emu::enqueue(st, [=] {
    for (size_t r = 0; r < h; ++r)
      std::memmove(static_cast<char*>(d) + r * dp, static_cast<const char*>(s) + r * sp, w);
  });
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t st) {
  auto* es = static_cast<emu::emu_stream*>(st);
  if ((es != nullptr && es->capturing) || (es == nullptr && emu::open_captures > 0)) {
    emu::capturing_stream->invalid = true;
    return cudaErrorStreamCaptureUnsupported;
  }
  return cudaSuccess;
}
inline cudaError_t cudaDeviceSynchronize() {
  if (emu::open_captures > 0) {
    emu::capturing_stream->invalid = true;
    return cudaErrorStreamCaptureUnsupported;
  }
  return cudaSuccess;
}
// Streams and graphs (see emu_stream above).
enum cudaStreamCaptureMode { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1,
                             cudaStreamCaptureModeRelaxed = 2 };
enum cudaStreamCaptureStatus { cudaStreamCaptureStatusNone = 0, cudaStreamCaptureStatusActive = 1,
                               cudaStreamCaptureStatusInvalidated = 2 };
struct emu_graph {
  std::vector<std::function<void()>> ops;
};
typedef emu_graph* cudaGraph_t;
typedef emu_graph* cudaGraphExec_t;
inline cudaError_t cudaStreamCreate(cudaStream_t* st) {
  *st = new emu::emu_stream;
  return cudaSuccess;
}
constexpr unsigned cudaStreamNonBlocking = 1;
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* st, unsigned) { return cudaStreamCreate(st); }
inline cudaError_t cudaStreamDestroy(cudaStream_t st) {
  delete static_cast<emu::emu_stream*>(st);
  return cudaSuccess;
}
inline cudaError_t cudaStreamBeginCapture(cudaStream_t st, cudaStreamCaptureMode) {
  auto* es = static_cast<emu::emu_stream*>(st);
  if (es == nullptr || es->capturing || emu::open_captures > 0) return cudaErrorStreamCaptureUnsupported;
  es->capturing = true;
  es->invalid = false;
  es->rec.clear();
  ++emu::open_captures;
  emu::capturing_stream = es;
  return cudaSuccess;
}
inline cudaError_t cudaStreamIsCapturing(cudaStream_t st, cudaStreamCaptureStatus* status) {
  auto* es = static_cast<emu::emu_stream*>(st);
  *status = es != nullptr && es->capturing ? (es->invalid ? cudaStreamCaptureStatusInvalidated
                                                          : cudaStreamCaptureStatusActive)
                                           : cudaStreamCaptureStatusNone;
  return cudaSuccess;
}
inline cudaError_t cudaStreamEndCapture(cudaStream_t st, cudaGraph_t* g) {
  auto* es = static_cast<emu::emu_stream*>(st);
  *g = nullptr;
  if (es == nullptr || !es->capturing) return cudaErrorInvalidValue;
  es->capturing = false;
  --emu::open_captures;
  emu::capturing_stream = nullptr;
  if (es->invalid) {
    es->rec.clear();
    return cudaErrorStreamCaptureInvalidated;
  }
  *g = new emu_graph{std::move(es->rec)};
  es->rec.clear();
  return cudaSuccess;
}
inline cudaError_t cudaGraphInstantiate(cudaGraphExec_t* e, cudaGraph_t g, unsigned long long = 0) {
  if (g == nullptr) return cudaErrorInvalidValue;
  *e = new emu_graph{g->ops};
  return cudaSuccess;
}
inline cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t st) {
  if (e == nullptr) return cudaErrorInvalidValue;
  ++emu::graph_launches;
  return emu::enqueue(st, [e] {
    for (auto& f : e->ops) f();
  });
}
inline cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) {
  delete e;
  return cudaSuccess;
}
inline cudaError_t cudaGraphDestroy(cudaGraph_t g) {
  delete g;
  return cudaSuccess;
}
inline cudaError_t cudaMemset(void* p, int v, size_t n) { return cudaMemsetAsync(p, v, n); }
inline cudaError_t cudaMemcpy(void* d, const void* s, size_t n, cudaMemcpyKind k) { return cudaMemcpyAsync(d, s, n, k); }

// The rest of the runtime that core/cuda/cuda_backend.cu and the kernel benchmark call, for the
// emulated-device build of the whole library (tests/emu/CMakeLists.txt, test_gpu_emu): one device,
// host memory, events that complete at once (timings are host wall-clock, meaningless for a GPU).
inline cudaError_t cudaGetDeviceCount(int* n) {
  *n = emu::device_count();
  return cudaSuccess;
}
struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  int multiProcessorCount, major, minor;
};
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device) {
  if (device < 0 || device >= emu::device_count()) return cudaErrorInvalidValue;
  *p = cudaDeviceProp{};
  std::snprintf(p->name, sizeof p->name, "hyscale CPU emulator of sm_%d0", emu::sm_major);
  p->totalGlobalMem = size_t(1) << 34;
  p->multiProcessorCount = 1;
  p->major = emu::sm_major;
  return cudaSuccess;
}
struct emu_event {
  double ms = 0;
};
typedef emu_event* cudaEvent_t;
constexpr unsigned cudaEventDisableTiming = 2;
inline cudaError_t cudaEventCreate(cudaEvent_t* e) {
  *e = new emu_event;
  return cudaSuccess;
}
inline cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) { return cudaEventCreate(e); }
inline cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t st = nullptr) {
  if (st == nullptr && emu::open_captures > 0) {
    emu::capturing_stream->invalid = true;
    return cudaErrorStreamCaptureImplicit;
  }
  e->ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
  return cudaSuccess;
}
inline cudaError_t cudaEventQuery(cudaEvent_t) { return cudaSuccess; }  // kernels ran synchronously
inline cudaError_t cudaStreamWaitEvent(cudaStream_t st, cudaEvent_t, unsigned = 0) {
  if (st == nullptr && emu::open_captures > 0) {
    emu::capturing_stream->invalid = true;
    return cudaErrorStreamCaptureImplicit;
  }
  return cudaSuccess;  // (work runs in queue order here)
}
inline cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  *ms = float(b->ms - a->ms);
  return cudaSuccess;
}
inline cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
typedef void* cudaMemPool_t;
enum cudaMemPoolAttr { cudaMemPoolAttrReleaseThreshold = 4 };
inline cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* p, int) {
  *p = nullptr;
  return cudaSuccess;
}
inline cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t, cudaMemPoolAttr, void*) { return cudaSuccess; }
