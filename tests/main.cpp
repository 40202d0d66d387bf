// tests/main.cpp: doctest's main. Every other tests/*.cpp (CPU, built with g++) and tests/*.cu (GPU
// parity, built with nvcc) is linked beside it into build/test, which `make test` runs.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
