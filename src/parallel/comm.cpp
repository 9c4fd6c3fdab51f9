#include "parallel/comm.h"

#include <algorithm>
#include <climits>
#include <cstring>

#include "core/error.h"
#include "parallel/dist.h"

#include "parallel/mpi_check.h"

namespace hyscale::parallel {

void Communicator::allreduce(Tensor& t, ReduceOp op) {
  HS_CHECK(t.is_contiguous(), "allreduce: tensor must be contiguous");
  allreduce(t.raw_data(), t.numel(), t.dtype(), op);
}

void Communicator::broadcast(Tensor& t, int root) {
  HS_CHECK(t.is_contiguous(), "broadcast: tensor must be contiguous");
  broadcast(t.raw_data(), t.numel(), t.dtype(), root);
}

namespace {

class DoneRequest : public Request {
 public:
  void wait() override {}
};

class SelfComm : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "self"; }
  void allreduce(void*, int64_t, DType, ReduceOp) override {}
  void reduce_scatter(const void* in, void* out, int64_t n, DType dt) override {
    if (in != out) std::memmove(out, in, static_cast<size_t>(n) * dtype_size(dt));
  }
  void allgather(const void* in, void* out, int64_t n, DType dt) override {
    if (in != out) std::memmove(out, in, static_cast<size_t>(n) * dtype_size(dt));
  }
  void broadcast(void*, int64_t, DType, int root) override {
    HS_CHECK(root == 0, "broadcast: root ", root, " outside a one-rank group");
  }
  void barrier() override {}
  std::unique_ptr<Request> iallreduce(void*, int64_t, DType) override { return std::make_unique<DoneRequest>(); }
  std::unique_ptr<Request> ireduce_scatter(const void* in, void* out, int64_t n, DType dt) override {
    reduce_scatter(in, out, n, dt);
    return std::make_unique<DoneRequest>();
  }
};

#ifdef HYSCALE_WITH_MPI

MPI_Datatype mpi_type(DType dt, bool reduce) {
  switch (dt) {
    case DType::f32: return MPI_FLOAT;
    case DType::f64: return MPI_DOUBLE;
    case DType::i32: return MPI_INT32_T;
    case DType::i64: return MPI_INT64_T;
    case DType::bf16:
      HS_CHECK(!reduce, "MPI backend: bf16 reductions are not supported (reduce in f32)");
      return MPI_UINT16_T;
  }
  HS_FAIL("MPI backend: unknown dtype");
}

int mpi_count(int64_t n, const char* what) {
  HS_CHECK(n >= 0 && n <= INT_MAX, what, ": count ", n, " exceeds MPI's int range");
  return static_cast<int>(n);
}

class MpiRequest : public Request {
 public:
  MPI_Request req = MPI_REQUEST_NULL;
  ~MpiRequest() override {
    if (req != MPI_REQUEST_NULL) MPI_Wait(&req, MPI_STATUS_IGNORE);
  }
  void wait() override {
    if (req != MPI_REQUEST_NULL) HS_MPI_CHECK(MPI_Wait(&req, MPI_STATUS_IGNORE));
  }
};

class MpiComm : public Communicator {
 public:
  MpiComm(MPI_Comm c, bool owned) : comm_(c), owned_(owned) {
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    HS_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
    HS_MPI_CHECK(MPI_Comm_size(comm_, &size_));
  }
  ~MpiComm() override {
    int fin = 0;
    MPI_Finalized(&fin);
    if (owned_ && !fin) MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }

  void allreduce(void* data, int64_t n, DType dt, ReduceOp op) override {
    if (size_ == 1 || n == 0) return;
    const MPI_Datatype t = mpi_type(dt, true);
    const MPI_Op o = op == ReduceOp::Sum ? MPI_SUM : MPI_MAX;
    auto* p = static_cast<char*>(data);
    const int64_t step = INT_MAX / 2;
    for (int64_t off = 0; off < n; off += step) {
      const int cnt = static_cast<int>(std::min(step, n - off));
      HS_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, p + off * dtype_size(dt), cnt, t, o, comm_));
    }
  }
  void reduce_scatter(const void* in, void* out, int64_t n, DType dt) override {
    if (size_ == 1) {
      if (in != out) std::memmove(out, in, static_cast<size_t>(n) * dtype_size(dt));
      return;
    }
    HS_MPI_CHECK(MPI_Reduce_scatter_block(in, out, mpi_count(n, "reduce_scatter"), mpi_type(dt, true), MPI_SUM, comm_));
  }
  void allgather(const void* in, void* out, int64_t n, DType dt) override {
    if (size_ == 1) {
      if (in != out) std::memmove(out, in, static_cast<size_t>(n) * dtype_size(dt));
      return;
    }
    const MPI_Datatype t = mpi_type(dt, false);
    const int cnt = mpi_count(n, "allgather");
    // In place when `in` already sits at this rank's slot of `out`.
    const bool inplace = in == static_cast<const char*>(out) + static_cast<size_t>(rank_) * n * dtype_size(dt);
    HS_MPI_CHECK(MPI_Allgather(inplace ? MPI_IN_PLACE : in, cnt, t, out, cnt, t, comm_));
  }
  void broadcast(void* data, int64_t n, DType dt, int root) override {
    HS_CHECK(root >= 0 && root < size_, "broadcast: root ", root, " outside a group of ", size_);
    if (size_ == 1 || n == 0) return;
    HS_MPI_CHECK(MPI_Bcast(data, mpi_count(n, "broadcast"), mpi_type(dt, false), root, comm_));
  }
  void barrier() override {
    if (size_ > 1) HS_MPI_CHECK(MPI_Barrier(comm_));
  }
  std::unique_ptr<Request> iallreduce(void* data, int64_t n, DType dt) override {
    auto r = std::make_unique<MpiRequest>();
    if (size_ == 1 || n == 0) return r;
    HS_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, data, mpi_count(n, "iallreduce"), mpi_type(dt, true), MPI_SUM, comm_,
                                &r->req));
    return r;
  }
  std::unique_ptr<Request> ireduce_scatter(const void* in, void* out, int64_t n, DType dt) override {
    auto r = std::make_unique<MpiRequest>();
    if (size_ == 1) {
      reduce_scatter(in, out, n, dt);
      return r;
    }
    HS_MPI_CHECK(MPI_Ireduce_scatter_block(in, out, mpi_count(n, "ireduce_scatter"), mpi_type(dt, true), MPI_SUM,
                                           comm_, &r->req));
    return r;
  }

 private:
  MPI_Comm comm_;
  bool owned_;
  int rank_ = 0, size_ = 1;
};
#endif

bool mpi_running() {
#ifdef HYSCALE_WITH_MPI
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  return init && !fin;
#else
  return false;
#endif
}

Grid& grid_storage() {
  static Grid g;
  return g;
}
bool g_grid_set = false;

}  // namespace

std::shared_ptr<Communicator> make_self_comm() { return std::make_shared<SelfComm>(); }

Grid make_grid(int tp) {
  const auto& pi = process();
  HS_CHECK(tp >= 1, "parallel.tp must be >= 1 (got ", tp, ")");
  HS_CHECK(pi.world % tp == 0, "parallel.tp = ", tp, " does not divide the number of ranks (", pi.world,
           "); launch a multiple of ", tp, " processes");
  Grid g;
  g.world = pi.world;
  g.rank = pi.rank;
  g.tp = tp;
  g.dp = pi.world / tp;
  g.tp_rank = pi.rank % tp;
  g.dp_rank = pi.rank / tp;
#ifdef HYSCALE_WITH_MPI
  if (mpi_running() && pi.world > 1) {
    g.world_comm = std::make_shared<MpiComm>(MPI_COMM_WORLD, false);
    MPI_Comm tpc, dpc;
    HS_MPI_CHECK(MPI_Comm_split(MPI_COMM_WORLD, g.dp_rank, g.tp_rank, &tpc));
    HS_MPI_CHECK(MPI_Comm_split(MPI_COMM_WORLD, g.tp_rank, g.dp_rank, &dpc));
    g.tp_comm = std::make_shared<MpiComm>(tpc, true);
    g.dp_comm = std::make_shared<MpiComm>(dpc, true);
    return g;
  }
#endif
  g.world_comm = g.tp_comm = g.dp_comm = make_self_comm();
  return g;
}

const Grid& grid() {
  if (!g_grid_set) {
    grid_storage() = make_grid(1);
    g_grid_set = true;
  }
  return grid_storage();
}

void set_grid(const Grid& g) {
  grid_storage() = g;
  g_grid_set = true;
}

}  // namespace hyscale::parallel
