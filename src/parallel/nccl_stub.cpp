// nccl_comm.h in a build without NCCL: no backend, and an error that says how to get one.
// (With NCCL, nccl_comm.cu defines these instead and HYSCALE_WITH_NCCL is set.)
#ifndef HYSCALE_WITH_NCCL
#include "core/error.h"
#include "parallel/nccl_comm.h"

namespace hyscale::parallel {

bool nccl_available() { return false; }

std::shared_ptr<Communicator> make_nccl_comm(const std::shared_ptr<Communicator>&, int) {
#ifdef HYSCALE_WITH_CUDA
  HS_FAIL("make_nccl_comm: this hyscale build has CUDA but no NCCL (nccl.h / libnccl were not found at configure "
          "time): install NCCL (or set NCCL_ROOT) and reconfigure");
#else
  HS_FAIL("make_nccl_comm: this hyscale build has no NCCL backend: reconfigure with -DHYSCALE_CUDA=ON on a machine "
          "with nvcc and NCCL");
#endif
}

}  // namespace hyscale::parallel
#endif
