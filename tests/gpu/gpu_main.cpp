// Main of the gpu test executable: without a CUDA device (or in a build without
// CUDA) every gpu test is skipped with a message (ctest SKIP_RETURN_CODE 77).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <cstdio>

#include "core/device.h"

int main(int argc, char** argv) {
  if (!hyscale::cuda_available()) {
    std::printf("SKIP: no CUDA device available (build %s CUDA); gpu tests not run\n",
#ifdef HYSCALE_WITH_CUDA
                "with"
#else
                "without"
#endif
    );
    return 77;
  }
  // stderr: stdout must hold only Catch's output (ctest lists test names from it, tests/emu).
  std::fprintf(stderr, "gpu tests on %s\n", hyscale::cuda_device_name(0).c_str());
  return Catch::Session().run(argc, argv);
}
