// tests/emu/include/cuda_runtime.h: stands in for CUDA's cuda_runtime.h in the emulated test build (everything is
// in tests/emu/cuda_emu.h).
#pragma once
#include "../cuda_emu.h"
