// parallel/nccl_comm.h for the emulated-device build (tests/emu): NCCL is a library, not part of
// hyscale, and "device" memory is host memory under the emulator, so the device communicator of
// a data-parallel GPU run is the host group itself (MPI on the same buffers). What this checks is
// hyscale's side: that device-resident gradient buckets are filled, reduced over the device
// communicator, averaged and handed back correctly. NCCL's own behaviour (its stream, the unique
// id exchange in nccl_comm.cu) needs real GPUs.
#include "core/error.h"
#include "cuda_emu.h"
#include "parallel/nccl_comm.h"

namespace hyscale::parallel {

bool nccl_available() { return true; }

std::shared_ptr<Communicator> make_nccl_comm(const std::shared_ptr<Communicator>& host_group, int device) {
  HS_CHECK(host_group != nullptr, "make_nccl_comm: no host group");
  int n = 0;
  cudaGetDeviceCount(&n);
  HS_CHECK(device >= 0 && device < n, "make_nccl_comm (emulated): no device cuda:", device, " (", n, " emulated)");
  return host_group;
}

}  // namespace hyscale::parallel
