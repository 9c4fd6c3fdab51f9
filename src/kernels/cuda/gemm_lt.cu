// cuBLASLt GEMM (kernels/cuda.h): row-major C = op(A) op(B) computed as the column-major
// C^T = op(B)^T op(A)^T, so A and B swap places and no data is transposed.
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <map>
#include <mutex>
#include <tuple>

#include "core/error.h"
#include "kernels/cuda.h"

namespace hyscale::kernels::cuda {

namespace {

#define HS_LT_CHECK(call, ...)                                                                      \
  do {                                                                                              \
    cublasStatus_t st_ = (call);                                                                    \
    if (st_ != CUBLAS_STATUS_SUCCESS)                                                               \
      HS_FAIL(#call, " failed: ", cublasGetStatusString(st_), " (", __VA_ARGS__, ")");             \
  } while (0)

constexpr size_t kWorkspace = size_t{32} << 20;

struct DeviceLt {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
};

std::mutex g_mu;
std::map<int, DeviceLt> g_dev;
// The heuristic's algorithm per (device, shape, layout, types): asked once, then reused.
using AlgoKey = std::tuple<int, bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool, bool, int64_t,
                           int64_t, int64_t, int64_t>;
std::map<AlgoKey, cublasLtMatmulAlgo_t> g_algo;

DeviceLt& lt_for_current_device() {
  int dev = 0;
  cudaError_t e = cudaGetDevice(&dev);
  HS_CHECK(e == cudaSuccess, "cuBLASLt: cudaGetDevice: ", cudaGetErrorString(e));
  std::lock_guard<std::mutex> lk(g_mu);
  DeviceLt& d = g_dev[dev];
  if (!d.handle) {
    HS_LT_CHECK(cublasLtCreate(&d.handle), "device ", dev);
    e = cudaMalloc(&d.workspace, kWorkspace);  // once per device, never in a step
    HS_CHECK(e == cudaSuccess, "cuBLASLt workspace (", kWorkspace, " bytes) on cuda:", dev, ": ",
             cudaGetErrorString(e));
  }
  return d;
}

struct Desc {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  ~Desc() {
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

void set_batch(cublasLtMatrixLayout_t l, int64_t batch, int64_t stride) {
  if (batch <= 1) return;
  int32_t n = static_cast<int32_t>(batch);
  HS_LT_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &n, sizeof n), "batch");
  HS_LT_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride),
              "batch stride");
}

}  // namespace

void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void* A, int64_t lda, const void* B,
          int64_t ldb, float beta, void* C, int64_t ldc, bool ab_bf16, bool c_bf16, int64_t batch, int64_t stride_a,
          int64_t stride_b, int64_t stride_c, void* stream) {
  if (M == 0 || N == 0 || batch == 0) return;
  HS_CHECK(K > 0, "gemm (cuBLASLt): K = 0 (the caller zero-fills C)");
  HS_CHECK(batch < (int64_t{1} << 31), "gemm (cuBLASLt): batch ", batch, " too large");
  DeviceLt& d = lt_for_current_device();
  const cudaDataType_t ab = ab_bf16 ? CUDA_R_16BF : CUDA_R_32F, ct = c_bf16 ? CUDA_R_16BF : CUDA_R_32F;
  Desc desc;
  HS_LT_CHECK(cublasLtMatmulDescCreate(&desc.op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "desc");
  // Column-major view: C^T (N x M) = op(B)^T (N x K) op(A)^T (K x M). The first operand is B.
  cublasOperation_t opB = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opA = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  HS_LT_CHECK(cublasLtMatmulDescSetAttribute(desc.op, CUBLASLT_MATMUL_DESC_TRANSA, &opB, sizeof opB), "transa");
  HS_LT_CHECK(cublasLtMatmulDescSetAttribute(desc.op, CUBLASLT_MATMUL_DESC_TRANSB, &opA, sizeof opA), "transb");
  // Stored column-major shapes: B is (tb ? K x N : N x K) with leading dim ldb, etc.
  HS_LT_CHECK(cublasLtMatrixLayoutCreate(&desc.b, ab, tb ? K : N, tb ? N : K, ldb), "layout B");
  HS_LT_CHECK(cublasLtMatrixLayoutCreate(&desc.a, ab, ta ? M : K, ta ? K : M, lda), "layout A");
  HS_LT_CHECK(cublasLtMatrixLayoutCreate(&desc.c, ct, N, M, ldc), "layout C");
  set_batch(desc.b, batch, stride_b);
  set_batch(desc.a, batch, stride_a);
  set_batch(desc.c, batch, stride_c);
  int dev = 0;
  cudaGetDevice(&dev);
  const AlgoKey key{dev, ta, tb, M, N, K, lda, ldb, ldc, ab_bf16, c_bf16, batch, stride_a, stride_b, stride_c};
  cublasLtMatmulAlgo_t algo{};
  bool cached = false;
  {
    std::lock_guard<std::mutex> lk(g_mu);
    auto it = g_algo.find(key);
    if (it != g_algo.end()) algo = it->second, cached = true;
  }
  if (!cached) {
    cublasLtMatmulPreference_t pref = nullptr;
    HS_LT_CHECK(cublasLtMatmulPreferenceCreate(&pref), "preference");
    size_t ws = kWorkspace;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    cublasLtMatmulHeuristicResult_t heur{};
    int found = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(d.handle, desc.op, desc.b, desc.a, desc.c, desc.c, pref, 1,
                                                       &heur, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    HS_CHECK(st == CUBLAS_STATUS_SUCCESS && found > 0, "gemm (cuBLASLt): no algorithm for M=", M, " N=", N, " K=", K,
             " batch=", batch, ab_bf16 ? " bf16" : " f32", " inputs: ", cublasGetStatusString(st));
    algo = heur.algo;
    std::lock_guard<std::mutex> lk(g_mu);
    g_algo[key] = algo;
  }
  HS_LT_CHECK(cublasLtMatmul(d.handle, desc.op, &alpha, B, desc.b, A, desc.a, &beta, C, desc.c, C, desc.c, &algo,
                             d.workspace, kWorkspace,
                             static_cast<cudaStream_t>(stream != nullptr ? stream : current_stream())),
              "M=", M, " N=", N, " K=", K, " batch=", batch);
}

}  // namespace hyscale::kernels::cuda
