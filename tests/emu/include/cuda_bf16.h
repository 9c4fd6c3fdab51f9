// Stand-in for the CUDA bf16 header in the emulator build of the kernels (tests/emu).
#pragma once
#include "../cuda_emu.h"
