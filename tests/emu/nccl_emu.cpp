// parallel/nccl_comm.h for the emulated-device build (tests/emu): NCCL is a library, not part of
// hyscale, and "device" memory is host memory under the emulator, so the device communicator of
// a GPU run is the host group itself (MPI on the same buffers), plus the one thing NCCL does that
// the MPI backend does not: sum and max reductions of bf16 (the tensor-parallel ops reduce bf16
// activations under mixed precision). Those are widened to f32, reduced, and rounded back once
// (NCCL rounds its partial sums to bf16 along the ring, so real GPUs differ in the last bits).
// What this checks is hyscale's side: that device-resident buffers are filled, reduced over the
// device communicator and handed back correctly. NCCL's own behaviour (its stream, the unique id
// exchange in nccl_comm.cu) needs real GPUs.
#include <vector>

#include "core/error.h"
#include "cuda_emu.h"
#include "parallel/nccl_comm.h"

namespace hyscale::parallel {

namespace {

class Done : public Request {
 public:
  void wait() override {}
};

class EmuNcclComm : public Communicator {
 public:
  explicit EmuNcclComm(std::shared_ptr<Communicator> host) : host_(std::move(host)) {}
  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }
  std::string backend() const override { return "nccl"; }

  void allreduce(void* data, int64_t n, DType dt, ReduceOp op) override {
    if (dt != DType::bf16) return host_->allreduce(data, n, dt, op);
    auto* p = static_cast<uint16_t*>(data);
    std::vector<float> w(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) w[i] = emu::bf2f(p[i]);
    host_->allreduce(w.data(), n, DType::f32, op);
    for (int64_t i = 0; i < n; ++i) p[i] = emu::f2bf(w[i]);
  }
  void reduce_scatter(const void* in, void* out, int64_t n, DType dt) override {
    if (dt != DType::bf16) return host_->reduce_scatter(in, out, n, dt);
    const auto* p = static_cast<const uint16_t*>(in);
    const int64_t total = n * size();
    std::vector<float> w(static_cast<size_t>(total)), o(static_cast<size_t>(n));
    for (int64_t i = 0; i < total; ++i) w[i] = emu::bf2f(p[i]);
    host_->reduce_scatter(w.data(), o.data(), n, DType::f32);
    auto* q = static_cast<uint16_t*>(out);
    for (int64_t i = 0; i < n; ++i) q[i] = emu::f2bf(o[i]);
  }
  void allgather(const void* in, void* out, int64_t n, DType dt) override { host_->allgather(in, out, n, dt); }
  void broadcast(void* data, int64_t n, DType dt, int root) override { host_->broadcast(data, n, dt, root); }
  void barrier() override { host_->barrier(); }
  std::unique_ptr<Request> iallreduce(void* data, int64_t n, DType dt) override {
    if (dt != DType::bf16) return host_->iallreduce(data, n, dt);
    allreduce(data, n, dt, ReduceOp::Sum);
    return std::make_unique<Done>();
  }
  std::unique_ptr<Request> ireduce_scatter(const void* in, void* out, int64_t n, DType dt) override {
    if (dt != DType::bf16) return host_->ireduce_scatter(in, out, n, dt);
    reduce_scatter(in, out, n, dt);
    return std::make_unique<Done>();
  }

 private:
  std::shared_ptr<Communicator> host_;
};

}  // namespace

bool nccl_available() { return true; }

std::shared_ptr<Communicator> make_nccl_comm(const std::shared_ptr<Communicator>& host_group, int device) {
  HS_CHECK(host_group != nullptr, "make_nccl_comm: no host group");
  int n = 0;
  cudaGetDeviceCount(&n);
  HS_CHECK(device >= 0 && device < n, "make_nccl_comm (emulated): no device cuda:", device, " (", n, " emulated)");
  return std::make_shared<EmuNcclComm>(host_group);
}

}  // namespace hyscale::parallel
