// Catch2 main shared by the test executables: fixes OpenBLAS's CPU detection
// first (see kernels/gemm.h), so tests run the same kernels as the program.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "kernels/gemm.h"

int main(int argc, char** argv) {
  hyscale::kernels::cpu::fix_blas_core_detection(argv);
  return Catch::Session().run(argc, argv);
}
