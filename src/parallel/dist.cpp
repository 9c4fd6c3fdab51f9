#include "parallel/dist.h"

#include <algorithm>
#include <climits>
#include <cstdlib>

#include "core/error.h"

#include "parallel/mpi_check.h"

namespace hyscale::parallel {

namespace {
ProcessInfo g_info;
bool g_initialised = false;
}  // namespace

bool have_mpi() {
#ifdef HYSCALE_WITH_MPI
  return true;
#else
  return false;
#endif
}


void init(int* argc, char*** argv) {
  if (g_initialised) return;
  g_initialised = true;
#ifdef HYSCALE_WITH_MPI
  int already = 0;
  MPI_Initialized(&already);
  if (!already) HS_MPI_CHECK(MPI_Init(argc, argv));
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  HS_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &g_info.rank));
  HS_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &g_info.world));
  MPI_Comm local;
  HS_MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_info.rank, MPI_INFO_NULL, &local));
  HS_MPI_CHECK(MPI_Comm_rank(local, &g_info.local_rank));
  HS_MPI_CHECK(MPI_Comm_size(local, &g_info.local_size));
  MPI_Comm_free(&local);
#endif
}

void finalize() {
#ifdef HYSCALE_WITH_MPI
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  if (init && !fin) MPI_Finalize();
#endif
}

const ProcessInfo& process() { return g_info; }

template <class T> static void allreduce_impl(T* data, int64_t n) {
  if (g_info.world == 1 || n == 0) return;
#ifdef HYSCALE_WITH_MPI
  const MPI_Datatype type = sizeof(T) == 4 ? MPI_FLOAT : MPI_DOUBLE;
  for (int64_t off = 0; off < n; off += INT_MAX / 2) {  // MPI counts are int
    int cnt = static_cast<int>(std::min<int64_t>(INT_MAX / 2, n - off));
    HS_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data + off, cnt, type, MPI_SUM, MPI_COMM_WORLD));
  }
#endif
}

void allreduce_sum(float* data, int64_t n) { allreduce_impl(data, n); }
void allreduce_sum(double* data, int64_t n) { allreduce_impl(data, n); }

void barrier() {
#ifdef HYSCALE_WITH_MPI
  if (g_info.world > 1) HS_MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
#endif
}

void broadcast_string(std::string& s) {
#ifdef HYSCALE_WITH_MPI
  if (g_info.world == 1) return;
  int64_t n = static_cast<int64_t>(s.size());
  HS_MPI_CHECK(MPI_Bcast(&n, 1, MPI_INT64_T, 0, MPI_COMM_WORLD));
  s.resize(static_cast<size_t>(n));
  HS_CHECK(n < INT_MAX, "broadcast_string: string of ", n, " bytes is too long");
  if (n > 0) HS_MPI_CHECK(MPI_Bcast(s.data(), static_cast<int>(n), MPI_CHAR, 0, MPI_COMM_WORLD));
#else
  (void)s;
#endif
}

void abort_all(int code) {
#ifdef HYSCALE_WITH_MPI
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  if (init && !fin && g_info.world > 1) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  std::exit(code);
}

}  // namespace hyscale::parallel
