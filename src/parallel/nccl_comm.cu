// NCCL backend of Communicator: collectives on CUDA device memory (nccl_comm.h says how
// streams, synchronization and requests behave). Every CUDA and NCCL call is checked; an
// error names the call, NCCL's or CUDA's reason, the device and the rank.
//
// Host-only code (no kernels): compiled by nvcc because it is part of the CUDA build, so it
// keeps to C++17 like the other .cu files.
#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <utility>

#include "core/error.h"
#include "parallel/nccl_comm.h"

namespace hyscale::parallel {

namespace {

#define HS_CUDA_CHECK(call, ...)                                                         \
  do {                                                                                   \
    cudaError_t err_ = (call);                                                           \
    if (err_ != cudaSuccess) HS_FAIL(#call, " failed: ", cudaGetErrorString(err_), " ", ##__VA_ARGS__); \
  } while (0)

// NCCL's last error message for `comm` (more specific than the result code), if any.
std::string nccl_last_error(ncclComm_t comm) {
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 13, 0)
  const char* s = ncclGetLastError(comm);
  if (s != nullptr && *s != '\0') return std::string(" (") + s + ")";
#endif
  return "";
}

#define HS_NCCL_CHECK(comm, call, ...)                                                              \
  do {                                                                                              \
    ncclResult_t res_ = (call);                                                                     \
    if (res_ != ncclSuccess)                                                                        \
      HS_FAIL(#call, " failed: ", ncclGetErrorString(res_), nccl_last_error(comm), " ", ##__VA_ARGS__); \
  } while (0)

ncclDataType_t nccl_type(DType dt) {
  switch (dt) {
    case DType::f32: return ncclFloat32;
    case DType::f64: return ncclFloat64;
    case DType::bf16: return ncclBfloat16;
    case DType::i32: return ncclInt32;
    case DType::i64: return ncclInt64;
  }
  HS_FAIL("NCCL backend: unknown dtype ", static_cast<int>(dt));
}

size_t nccl_count(int64_t n, const char* what) {
  HS_CHECK(n >= 0, what, ": negative element count ", n);
  return static_cast<size_t>(n);
}

// How long a host wait may see no completion before the communicator is aborted and the wait
// fails (a peer rank that hung or died, instead of this rank spinning forever): seconds from
// HYSCALE_NCCL_TIMEOUT_S, 1800 by default, 0 for never.
double wait_timeout_s() {
  const char* e = std::getenv("HYSCALE_NCCL_TIMEOUT_S");
  if (e == nullptr || *e == '\0') return 1800.0;
  char* end = nullptr;
  const double v = std::strtod(e, &end);
  HS_CHECK(end != e && *end == '\0' && v >= 0.0 && std::isfinite(v), "HYSCALE_NCCL_TIMEOUT_S='", e,
           "': expected a number of seconds >= 0 (0: no timeout)");
  return v;
}

int visible_devices() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // no driver / no device: a query answer, not an error
    return 0;
  }
  return n;
}

class NcclComm;

// Every live communicator of the process. When one fails (an asynchronous NCCL error, or a wait
// that timed out) all of them are aborted: a dead peer leaves every communicator's kernels
// spinning, and the streams are chained by events (the tensor-parallel collectives make the
// default stream wait for them, the data-parallel ones wait for the default stream), so one
// communicator left alive would hang the device, and with it the teardown.
struct Registry {
  std::mutex mu;
  std::unordered_set<NcclComm*> live;
  bool failed = false;
};
Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: communicators may outlive static teardown
  return *r;
}
void abort_all_comms();

class NcclRequest : public Request {
 public:
  NcclRequest(std::shared_ptr<NcclComm> comm, cudaEvent_t done) : comm_(std::move(comm)), done_(done) {}
  ~NcclRequest() override;
  void wait() override;

 private:
  std::shared_ptr<NcclComm> comm_;  // keeps the communicator (and its stream) alive
  cudaEvent_t done_;
  bool finished_ = false;
};

class NcclComm : public Communicator, public std::enable_shared_from_this<NcclComm> {
 public:
  NcclComm(std::shared_ptr<Communicator> host, int device) : host_(std::move(host)), device_(device) {
    HS_CHECK(host_ != nullptr, "make_nccl_comm: host_group is null");
    rank_ = host_->rank();
    size_ = host_->size();
    try {
      init();
    } catch (...) {
      release();
      throw;
    }
    std::lock_guard<std::mutex> lock(registry().mu);
    registry().live.insert(this);
  }
  ~NcclComm() override {
    {
      std::lock_guard<std::mutex> lock(registry().mu);
      registry().live.erase(this);
    }
    release();
  }

  // Aborts the NCCL communicator now (its kernels return; nothing waits). Idempotent.
  void abort_now() noexcept {
    if (comm_ != nullptr) ncclCommAbort(comm_);
    comm_ = nullptr;
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "nccl"; }

  void allreduce(void* data, int64_t n, DType dt, ReduceOp op) override {
    const size_t cnt = nccl_count(n, "allreduce");
    if (cnt == 0) return;
    begin("allreduce");
    HS_NCCL_CHECK(comm_, ncclAllReduce(data, data, cnt, nccl_type(dt), op == ReduceOp::Sum ? ncclSum : ncclMax,
                                       comm_, stream_), where());
    sync_stream("allreduce");
  }
  void reduce_scatter(const void* in, void* out, int64_t n, DType dt) override {
    const size_t cnt = nccl_count(n, "reduce_scatter");
    if (cnt == 0) return;
    begin("reduce_scatter");
    HS_NCCL_CHECK(comm_, ncclReduceScatter(in, out, cnt, nccl_type(dt), ncclSum, comm_, stream_), where());
    sync_stream("reduce_scatter");
  }
  void allgather(const void* in, void* out, int64_t n, DType dt) override {
    const size_t cnt = nccl_count(n, "allgather");
    if (cnt == 0) return;
    begin("allgather");
    HS_NCCL_CHECK(comm_, ncclAllGather(in, out, cnt, nccl_type(dt), comm_, stream_), where());
    sync_stream("allgather");
  }
  void broadcast(void* data, int64_t n, DType dt, int root) override {
    HS_CHECK(root >= 0 && root < size_, "broadcast: root ", root, " outside a group of ", size_);
    const size_t cnt = nccl_count(n, "broadcast");
    if (cnt == 0) return;
    begin("broadcast");
    HS_NCCL_CHECK(comm_, ncclBroadcast(data, data, cnt, nccl_type(dt), root, comm_, stream_), where());
    sync_stream("broadcast");
  }
  void allreduce_ordered(void* data, int64_t n, DType dt, ReduceOp op) override {
    const size_t cnt = nccl_count(n, "allreduce_ordered");
    if (cnt == 0) return;
    begin("allreduce_ordered");
    HS_NCCL_CHECK(comm_, ncclAllReduce(data, data, cnt, nccl_type(dt), op == ReduceOp::Sum ? ncclSum : ncclMax,
                                       comm_, stream_), where());
    join_default_stream("allreduce_ordered");
  }
  void allgather_ordered(const void* in, void* out, int64_t n, DType dt) override {
    const size_t cnt = nccl_count(n, "allgather_ordered");
    if (cnt == 0) return;
    begin("allgather_ordered");
    HS_NCCL_CHECK(comm_, ncclAllGather(in, out, cnt, nccl_type(dt), comm_, stream_), where());
    join_default_stream("allgather_ordered");
  }
  void wait_ordered() override {
    HS_CHECK(comm_ != nullptr, "wait_ordered: the NCCL communicator was aborted after an earlier error ", where());
    HS_CUDA_CHECK(cudaSetDevice(device_), where());
    HS_CUDA_CHECK(cudaEventRecord(ready_, 0), "wait_ordered ", where());
    poll([&] { return cudaEventQuery(ready_); }, "wait for the stream-ordered collectives");
  }
  void barrier() override {
    begin("barrier");
    sync_stream("barrier");
    host_->barrier();
  }
  std::unique_ptr<Request> iallreduce(void* data, int64_t n, DType dt) override {
    const size_t cnt = nccl_count(n, "iallreduce");
    begin("iallreduce");
    if (cnt > 0)
      HS_NCCL_CHECK(comm_, ncclAllReduce(data, data, cnt, nccl_type(dt), ncclSum, comm_, stream_), where());
    return record("iallreduce");
  }
  std::unique_ptr<Request> ireduce_scatter(const void* in, void* out, int64_t n, DType dt) override {
    const size_t cnt = nccl_count(n, "ireduce_scatter");
    begin("ireduce_scatter");
    if (cnt > 0) HS_NCCL_CHECK(comm_, ncclReduceScatter(in, out, cnt, nccl_type(dt), ncclSum, comm_, stream_), where());
    return record("ireduce_scatter");
  }

  // Blocks until `ev` completes, watching for NCCL's asynchronous errors meanwhile (a peer
  // that died would otherwise leave this rank spinning forever).
  void wait_event(cudaEvent_t ev, const char* what) {
    HS_CHECK(comm_ != nullptr, what, ": the NCCL communicator was aborted after an earlier error ", where());
    HS_CUDA_CHECK(cudaSetDevice(device_), where());
    poll([&] { return cudaEventQuery(ev); }, what);
  }

 private:
  void init() {
    // Local setup first, then agree over the host group that every rank succeeded, so a
    // bad device on one rank fails every rank with a message instead of hanging the others
    // inside ncclCommInitRank.
    std::string local_error;
    // [0]: 1 when rank 0 could not create the id; [1..]: the ncclUniqueId bytes.
    constexpr int64_t kIdWords = (sizeof(ncclUniqueId) + sizeof(int32_t) - 1) / sizeof(int32_t);
    int32_t msg[1 + kIdWords] = {};
    try {
      timeout_s_ = wait_timeout_s();  // here, so that a bad value fails every rank (below)
      const int count = visible_devices();
      HS_CHECK(count > 0, "make_nccl_comm: no CUDA device is visible on rank ", rank_);
      HS_CHECK(device_ >= 0 && device_ < count, "make_nccl_comm: device ", device_, " outside the ", count,
               " visible CUDA device(s) on rank ", rank_);
      HS_CUDA_CHECK(cudaSetDevice(device_), where());
      HS_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), where());
      HS_CUDA_CHECK(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming), where());
      HS_CUDA_CHECK(cudaEventCreateWithFlags(&joined_, cudaEventDisableTiming), where());
      if (rank_ == 0) {
        ncclUniqueId id;
        HS_NCCL_CHECK(nullptr, ncclGetUniqueId(&id), where());
        std::memcpy(&msg[1], &id, sizeof(id));
      }
    } catch (const Error& e) {
      local_error = e.what();
    }
    int32_t failed = local_error.empty() ? 0 : 1;
    host_->allreduce(&failed, 1, DType::i32, ReduceOp::Max);
    if (failed != 0) {
      if (!local_error.empty()) HS_FAIL(local_error);
      HS_FAIL("make_nccl_comm: another rank of the ", size_, "-rank group failed to set up CUDA/NCCL (see its error)");
    }
    host_->broadcast(msg, 1 + kIdWords, DType::i32, 0);
    ncclUniqueId id;
    std::memcpy(&id, &msg[1], sizeof(id));
    HS_NCCL_CHECK(nullptr, ncclCommInitRank(&comm_, size_, id, rank_), where());
  }

  void release() noexcept {
    bool failed = false;
    {
      std::lock_guard<std::mutex> lock(registry().mu);
      failed = registry().failed;
    }
    if (stream_ != nullptr) cudaSetDevice(device_);
    if (failed) {
      abort_now();  // after a failure nothing may wait for the device: its work may never finish
    } else if (stream_ != nullptr) {
      cudaStreamSynchronize(stream_);
    }
    if (comm_ != nullptr) ncclCommDestroy(comm_);
    if (ready_ != nullptr) cudaEventDestroy(ready_);
    if (joined_ != nullptr) cudaEventDestroy(joined_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
    comm_ = nullptr;
    ready_ = nullptr;
    joined_ = nullptr;
    stream_ = nullptr;
  }

  std::string where() const {
    return detail::cat("(NCCL rank ", rank_, " of ", size_, ", cuda:", device_, ")");
  }

  // Makes the device current, reports an asynchronous error of an earlier collective (a stream-
  // ordered one has no host wait of its own), and orders the communicator's stream after the
  // work already enqueued on the default stream (where the buffers were produced).
  void begin(const char* what) {
    HS_CHECK(comm_ != nullptr, what, ": the NCCL communicator was aborted after an earlier error ", where());
    HS_CUDA_CHECK(cudaSetDevice(device_), where());
    check_async(what);
    HS_CUDA_CHECK(cudaEventRecord(ready_, 0), what, " ", where());
    HS_CUDA_CHECK(cudaStreamWaitEvent(stream_, ready_, 0), what, " ", where());
  }

  // Orders the default stream after everything enqueued on the communicator's stream so far.
  // (An event's wait captures its state when cudaStreamWaitEvent is called, so one event serves
  // every call.)
  void join_default_stream(const char* what) {
    HS_CUDA_CHECK(cudaEventRecord(joined_, stream_), what, " ", where());
    HS_CUDA_CHECK(cudaStreamWaitEvent(0, joined_, 0), what, " ", where());
  }

  void check_async(const char* what) {
    ncclResult_t async = ncclSuccess;
    const ncclResult_t res = ncclCommGetAsyncError(comm_, &async);
    if (res == ncclSuccess && async == ncclSuccess) return;
    const std::string reason = ncclGetErrorString(res != ncclSuccess ? res : async) + nccl_last_error(comm_);
    abort_all_comms();  // this one is unusable, and the others may wait on it (Registry)
    HS_FAIL(what, ": NCCL reported an asynchronous error: ", reason, "; every NCCL communicator of this process was ",
            "aborted ", where());
  }

  void sync_stream(const char* what) {
    poll([&] { return cudaStreamQuery(stream_); }, what);
  }

  std::unique_ptr<Request> record(const char* what) {
    cudaEvent_t ev = nullptr;
    HS_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), what, " ", where());
    const cudaError_t err = cudaEventRecord(ev, stream_);
    if (err != cudaSuccess) {
      cudaEventDestroy(ev);
      HS_FAIL("cudaEventRecord failed: ", cudaGetErrorString(err), " ", what, " ", where());
    }
    return std::make_unique<NcclRequest>(shared_from_this(), ev);
  }

  template <class Query>
  void poll(Query query, const char* what) {
    const auto t0 = std::chrono::steady_clock::now();
    for (uint64_t spin = 0;; ++spin) {
      const cudaError_t err = query();
      if (err == cudaSuccess) return;
      if (err != cudaErrorNotReady) HS_FAIL(what, ": CUDA error while waiting: ", cudaGetErrorString(err), " ", where());
      // "Not ready" is recorded as the runtime's last error: clear it, or the next kernel
      // launch's check (HS_LAUNCH_CHECK reads cudaGetLastError) would report it as a failure.
      (void)cudaGetLastError();
      check_async(what);
      if (timeout_s_ > 0 && spin % 1024 == 0 &&
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > timeout_s_) {
        abort_all_comms();  // unblocks the kernels of the stuck collective, and of the others
        HS_FAIL(what, ": no completion after ", timeout_s_, " s: a peer rank is hung or gone (or is much slower, e.g. ",
                "writing a large checkpoint: raise HYSCALE_NCCL_TIMEOUT_S, 0 for no timeout); every NCCL ",
                "communicator of this process was aborted ", where());
      }
      std::this_thread::yield();
    }
  }

  std::shared_ptr<Communicator> host_;
  double timeout_s_ = 1800.0;  // set by init() from HYSCALE_NCCL_TIMEOUT_S
  int device_ = 0, rank_ = 0, size_ = 1;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;  // the communicator's own stream (non-blocking)
  cudaEvent_t ready_ = nullptr;    // recorded on the default stream before each collective
  cudaEvent_t joined_ = nullptr;   // recorded on stream_ after a stream-ordered collective
};

void abort_all_comms() {
  std::lock_guard<std::mutex> lock(registry().mu);
  registry().failed = true;
  for (NcclComm* c : registry().live) c->abort_now();
}

NcclRequest::~NcclRequest() {
  try {
    wait();
  } catch (...) {
    // A destructor cannot throw; the communicator was aborted and the next call reports it.
  }
  cudaEventDestroy(done_);
}

void NcclRequest::wait() {
  if (finished_) return;
  comm_->wait_event(done_, "NCCL request wait");
  finished_ = true;
}

}  // namespace

bool nccl_available() { return visible_devices() > 0; }

std::shared_ptr<Communicator> make_nccl_comm(const std::shared_ptr<Communicator>& host_group, int device) {
  return std::make_shared<NcclComm>(host_group, device);
}

}  // namespace hyscale::parallel
