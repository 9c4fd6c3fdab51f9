// The emulator itself (cuda_emu.h): the kernel tests of this directory are only as good as its
// ability to expose what breaks kernels on a GPU. Small kernels written here show that it does:
// a missing __syncthreads reads stale or NaN shared memory in some schedules, an uncommitted /
// unwaited cp.async reads NaN, a warp collective that some lanes skip is reported as a deadlock
// (the child process aborts), as does a launch over 48 KB of shared memory without the opt-in;
// shuffles, mma.sync, ldmatrix and cp.async.wait_group follow the PTX ISA.
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include "emu_util.h"

using namespace hyscale::emutest;

namespace {

// Each thread stores its id in shared memory, then reads its neighbour's slot one warp away.
// With the barrier every read sees the neighbour's id; without it, some schedules read NaN.
void neighbour_kernel(float* out, bool barrier) {
  float* sh = static_cast<float*>(emu::dynamic_smem());
  const unsigned t = threadIdx.x, n = blockDim.x;
  sh[t] = float(t);
  if (barrier) __syncthreads();
  out[blockIdx.x * n + t] = sh[(t + 32) % n];
}
int wrong_reads(bool barrier) {
  const unsigned blocks = 24, threads = 128;
  std::vector<float> out(blocks * threads, -1.0f);
  float* o = out.data();
  emu::Launch(blocks, threads, threads * sizeof(float)).run([=] { neighbour_kernel(o, barrier); });
  int wrong = 0;
  for (unsigned b = 0; b < blocks; ++b)
    for (unsigned t = 0; t < threads; ++t) wrong += out[b * threads + t] != float((t + 32) % threads);
  return wrong;
}

// Runs f in a child process; true if the child died of SIGABRT (the emulator's reports abort).
template <class F> bool aborts(F f) {
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    std::signal(SIGABRT, SIG_DFL);  // not Catch's handler: die of the signal
    std::freopen("/dev/null", "w", stderr);
    std::freopen("/dev/null", "w", stdout);
    f();
    std::_Exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

}  // namespace

TEST_CASE("emulator: a missing __syncthreads is exposed, a present one is honoured", "[emu][model]") {
  CHECK(wrong_reads(true) == 0);
  CHECK(wrong_reads(false) > 0);
}

TEST_CASE("emulator: warp shuffles exchange within the warp", "[emu][model]") {
  std::vector<float> out(64, -1.0f);
  float* o = out.data();
  emu::Launch(1, 64).run([=] {
    float v = float(threadIdx.x);
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    o[threadIdx.x] = v + __shfl_sync(0xffffffffu, float(threadIdx.x), 3) / 1000.0f;
  });
  for (int t = 0; t < 64; ++t) {
    const int w0 = t & ~31;
    const float sum = float(32 * w0 + 31 * 32 / 2);
    CHECK(out[t] == sum + float(w0 + 3) / 1000.0f);
  }
}

TEST_CASE("emulator: reading a cp.async destination before the wait reads NaN", "[emu][model]") {
  alignas(16) static uint16_t src[8 * 32];
  for (int i = 0; i < 8 * 32; ++i) src[i] = uint16_t(0x3f80 + i % 7);  // bf16 1.0 .. ~1.05
  std::vector<float> early(32), late(32);
  float *e = early.data(), *l = late.data();
  emu::Launch(1, 32, 32 * 16).run([=] {
    uint16_t* sh = static_cast<uint16_t*>(emu::dynamic_smem());
    const unsigned t = threadIdx.x;
    emu::cp_async16(sh + 8 * t, src + 8 * t, true);
    emu::cp_async_commit();
    e[t] = emu::bf2f(sh[8 * t]);
    emu::cp_async_wait(0);
    l[t] = emu::bf2f(sh[8 * t]);
  });
  for (int t = 0; t < 32; ++t) {
    CHECK(std::isnan(early[t]));
    CHECK(late[t] == emu::bf2f(src[8 * t]));
  }
}

TEST_CASE("emulator: mma.sync m16n8k16 and ldmatrix follow the PTX fragment layouts", "[emu][model]") {
  // A (16 x 16) row-major and B^T (8 x 16) row-major in shared memory; one warp loads A by
  // ldmatrix.x4 and B by ldmatrix.x2 (as two 8x8 matrices), multiplies, and writes D (16 x 8).
  std::vector<float> a(256), b(128), want(128, 0.0f), got(128, NAN);
  std::mt19937 g(3);
  for (auto& x : a) x = rbf(float(int(g() % 9) - 4) / 4.0f);
  for (auto& x : b) x = rbf(float(int(g() % 9) - 4) / 4.0f);
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 8; ++j)
      for (int k = 0; k < 16; ++k) want[i * 8 + j] += a[i * 16 + k] * b[j * 16 + k];
  const float *ap = a.data(), *bp = b.data();
  float* d = got.data();
  emu::Launch(1, 32, (256 + 128) * 2).run([=] {
    uint16_t* sa = static_cast<uint16_t*>(emu::dynamic_smem());
    uint16_t* sb = sa + 256;
    const unsigned l = threadIdx.x, gid = l / 4, tig = l % 4;
    for (int i = int(l); i < 256; i += 32) sa[i] = emu::f2bf(ap[i]);
    for (int i = int(l); i < 128; i += 32) sb[i] = emu::f2bf(bp[i]);
    __syncthreads();
    uint32_t af[4], bf[4];
    emu::ldmatrix(af, 4, false, sa + (l % 16) * 16 + (l / 16) * 8);
    emu::ldmatrix(bf, 2, false, sb + (l % 8) * 16 + ((l / 8) % 2) * 8);
    float acc[4] = {0, 0, 0, 0};
    const uint32_t b2[2] = {bf[0], bf[1]};
    emu::mma_bf16_16816(acc, af, b2);
    for (int i = 0; i < 4; ++i) d[(gid + 8 * (i / 2)) * 8 + 2 * tig + i % 2] = acc[i];
  });
  CHECK(got == want);  // small exact values: no rounding anywhere
}

TEST_CASE("emulator: a warp collective skipped by some lanes, or a stray shared write, aborts", "[emu][model]") {
  CHECK(aborts([] {
    std::vector<float> out(32);
    float* o = out.data();
    emu::Launch(1, 32).run([=] {
      float v = 1.0f;
      if (threadIdx.x != 5) v = __shfl_xor_sync(0xffffffffu, v, 1);  // lane 5 never arrives
      o[threadIdx.x] = v;
    });
  }));
  CHECK(aborts([] {
    emu::Launch(1, 32, 64).run([=] {
      float* sh = static_cast<float*>(emu::dynamic_smem());
      sh[16 + threadIdx.x] = 0.0f;  // 64 bytes (16 floats) requested: every thread writes past them
    });
  }));
  CHECK_FALSE(aborts([] {
    emu::Launch(1, 32, 128).run([=] {
      float* sh = static_cast<float*>(emu::dynamic_smem());
      sh[threadIdx.x] = 0.0f;  // inside the 128 bytes
    });
  }));
}

TEST_CASE("emulator: ldmatrix registers hold the PTX ISA's elements, plain and transposed", "[emu][model]") {
  // Four 8 x 8 bf16 matrices; element (m, r, c) = 64 m + 8 r + c (exact in bf16). Lane l points at
  // row l % 8 of matrix l / 8. Register i of lane 4 g + t: matrix i, row g, columns 2t, 2t+1
  // (lower column in the low half); .trans: column g, rows 2t, 2t+1.
  std::vector<uint32_t> plain(32 * 4), trans(32 * 4);
  uint32_t *pp = plain.data(), *pt = trans.data();
  emu::Launch(1, 32, 4 * 64 * 2).run([=] {
    uint16_t* sh = static_cast<uint16_t*>(emu::dynamic_smem());
    const unsigned l = threadIdx.x;
    for (unsigned i = l; i < 256; i += 32) sh[i] = emu::f2bf(float(i));
    __syncthreads();
    uint32_t r[4];
    emu::ldmatrix(r, 4, false, sh + 64 * (l / 8) + 8 * (l % 8));
    for (int i = 0; i < 4; ++i) pp[4 * l + i] = r[i];
    emu::ldmatrix(r, 4, true, sh + 64 * (l / 8) + 8 * (l % 8));
    for (int i = 0; i < 4; ++i) pt[4 * l + i] = r[i];
  });
  auto pair = [](float lo, float hi) { return uint32_t(emu::f2bf(lo)) | (uint32_t(emu::f2bf(hi)) << 16); };
  for (unsigned l = 0; l < 32; ++l)
    for (unsigned i = 0; i < 4; ++i) {
      const unsigned g = l / 4, t = l % 4;
      INFO("lane " << l << " register " << i);
      CHECK(plain[4 * l + i] == pair(64.f * i + 8 * g + 2 * t, 64.f * i + 8 * g + 2 * t + 1));
      CHECK(trans[4 * l + i] == pair(64.f * i + 8 * (2 * t) + g, 64.f * i + 8 * (2 * t + 1) + g));
    }
}

TEST_CASE("emulator: cp.async.wait_group N leaves the newest N groups in flight", "[emu][model]") {
  alignas(16) static uint16_t src[3 * 8 * 32];
  for (int i = 0; i < 3 * 8 * 32; ++i) src[i] = uint16_t(0x3f80 + i % 5);
  std::vector<int> arrived(32 * 3);
  int* a = arrived.data();
  emu::Launch(1, 32, 3 * 32 * 16).run([=] {
    uint16_t* sh = static_cast<uint16_t*>(emu::dynamic_smem());
    const unsigned t = threadIdx.x;
    for (int grp = 0; grp < 3; ++grp) {  // three groups of one 16-byte copy each
      emu::cp_async16(sh + 8 * (32 * grp + t), src + 8 * (32 * grp + t), true);
      emu::cp_async_commit();
    }
    emu::cp_async_wait(1);  // groups 0 and 1 complete, group 2 may still be in flight
    for (int grp = 0; grp < 3; ++grp) a[3 * t + grp] = !std::isnan(emu::bf2f(sh[8 * (32 * grp + t)]));
    emu::cp_async_wait(0);
  });
  for (int t = 0; t < 32; ++t) {
    CHECK(arrived[3 * t + 0] == 1);
    CHECK(arrived[3 * t + 1] == 1);
    CHECK(arrived[3 * t + 2] == 0);  // the emulator completes a group only when waited on
  }
}

namespace {
void big_smem_kernel(float* out) {
  float* sh = static_cast<float*>(emu::dynamic_smem());
  sh[threadIdx.x] = 1.0f;
  out[threadIdx.x] = sh[threadIdx.x];
}
}  // namespace

TEST_CASE("emulator: more than 48 KB of dynamic shared memory needs the kernel's opt-in", "[emu][model]") {
  std::vector<float> out(32);
  float* o = out.data();
  const size_t bytes = 64 * 1024;
  CHECK(aborts([=] { emu::Launch(1, 32, bytes).of(big_smem_kernel).run([=] { big_smem_kernel(o); }); }));
  CHECK_FALSE(aborts([=] {
    cudaFuncSetAttribute(big_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes));
    emu::Launch(1, 32, bytes).of(big_smem_kernel).run([=] { big_smem_kernel(o); });
  }));
  CHECK(cudaFuncSetAttribute(big_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 300 * 1024) ==
        cudaErrorInvalidValue);
}
