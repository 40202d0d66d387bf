# muongpt: one binary, ./train, built with nvcc (CPU + CUDA) or, where nvcc is missing, with g++ (CPU only).
#   make            build ./train
#   make train      the default job: Muon vs AdamW on the embedded corpus (./train compare)
#   make test       build and run the doctest suite: on the CPU, then the GPU tests on the CPU emulation of CUDA,
#                   then the data-parallel tests in a job of 2 ranks under mpirun (where MPI is installed)
#   make sanitize-cpu  the emulated GPU tests under AddressSanitizer + UBSan, and under ThreadSanitizer
#   make fuzz-run   the libFuzzer targets of tests/fuzz (tokenizer, shards, model files and checkpoints, flags),
#                   FUZZ_SECONDS (20) each from the committed seeds, under ASan + UBSan (CI runs it)
#   make bench      Google Benchmark: kernels, a training step, tokens/s
#   make sanitize   compute-sanitizer memcheck + racecheck on a tiny GPU run
#   make experiments  the papers' controlled experiments (fp64, CPU)
#   make study      Muon against AdamW, tuned and over seeds, and the papers' claims on the GPT (about an hour, CPU)
# Dependencies are Debian packages; `make deps` installs them (as root) or names what is missing.

CXX   ?= g++
NVCC  ?= nvcc
HAVE_NVCC := $(shell command -v $(NVCC) 2>/dev/null)

# Build for the GPU that is here; with none, for A100 (sm_80) and H100/H200 (sm_90) plus PTX for later GPUs.
GPU_CC := $(shell nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d '. ')
ifneq ($(GPU_CC),)
  CUDA_ARCH := -gencode arch=compute_$(GPU_CC),code=[sm_$(GPU_CC),compute_$(GPU_CC)]
else
  CUDA_ARCH := -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=[sm_90,compute_90]
endif

WARN      := -Wall -Wno-unused-function
CXXFLAGS  ?= -O3 -march=native
CXXFLAGS  += -std=c++17 -fopenmp -fno-trapping-math $(WARN) -I. -MMD -MP
NVCCFLAGS ?= -O3 -lineinfo
NVCCFLAGS += -std=c++17 $(CUDA_ARCH) --default-stream per-thread -I. -MMD -MP -Xcompiler -fopenmp,-march=native,-fno-trapping-math,-Wall,-Wno-unused-function
LDLIBS    := -lpcre2-8
CUDA_LIBS := -lcublas -lcublasLt -lcusolver

# MPI (OpenMPI), for data parallel runs across processes (dist.h): built in where mpicxx is found, and NCCL with it
# under nvcc where its header is. Read when a recipe runs (after `make deps` may have installed MPI), not when
# this file is parsed. Without MPI the binary is built single-process (./train --help says which).
MPI_CFLAGS = $(shell command -v mpicxx >/dev/null 2>&1 && echo -DUSE_MPI $$(mpicxx --showme:incdirs | sed 's/[^ ][^ ]*/-I&/g'))
MPI_LIBS   = $(shell command -v mpicxx >/dev/null 2>&1 && echo $$(mpicxx --showme:libdirs | sed 's/[^ ][^ ]*/-L&/g') -lmpi)
NCCL_FLAG  = $(if $(MPI_CFLAGS),$(shell echo '\#include <nccl.h>' | $(NVCC) -E -x cu - >/dev/null 2>&1 && echo -DUSE_NCCL))
MPIRUN     = mpirun $(if $(filter 0,$(shell id -u)),--allow-run-as-root) --oversubscribe -q

ifneq ($(HAVE_NVCC),)
  CU_COMPILE = $(NVCC) $(NVCCFLAGS) $(MPI_CFLAGS) $(NCCL_FLAG)
  LINK       = $(NVCC) $(NVCCFLAGS) -Xcompiler -fopenmp
  LINK_LIBS  = $(LDLIBS) $(CUDA_LIBS) $(MPI_LIBS) $(if $(NCCL_FLAG),-lnccl) -lgomp
else
  CU_COMPILE = $(CXX) $(CXXFLAGS) $(MPI_CFLAGS) -x c++
  LINK       = $(CXX) $(CXXFLAGS)
  LINK_LIBS  = $(LDLIBS) $(MPI_LIBS)
endif

.PHONY: all train test sanitize-cpu bench sanitize experiments study deps clean
SHELL := /bin/bash
all: deps build/train
	@ln -f build/train train

# ---- dependencies -----------------------------------------------------------------------------------
# Each line: a header (or a library, or a command) the build needs, and the Debian package that ships it.
# LAPACK and perl serve the CUDA emulation of the tests (tests/emu: cuSOLVER's eigensolver; translate.pl).
DEP_HEADERS := doctest/doctest.h:doctest-dev stb/stb_image_write.h:libstb-dev \
               benchmark/benchmark.h:libbenchmark-dev pcre2.h:libpcre2-dev
DEP_LIBS    := lapack:liblapack-dev
DEP_TOOLS   := perl:perl
# optional: without them the build is single-process (dist.h)
MPI_PACKAGES := libopenmpi-dev openmpi-bin
deps: build/.deps-ok
build/.deps-ok:
	@mkdir -p build
	@missing=""; for d in $(DEP_HEADERS); do h=$${d%%:*}; p=$${d##*:}; \
	  printf '#define PCRE2_CODE_UNIT_WIDTH 8\n#include <%s>\n' "$$h" | $(CXX) -E -x c++ - >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	for d in $(DEP_LIBS); do l=$${d%%:*}; p=$${d##*:}; \
	  echo 'int main() { return 0; }' | $(CXX) -x c++ - -o /dev/null -l$$l >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	for d in $(DEP_TOOLS); do t=$${d%%:*}; p=$${d##*:}; command -v $$t >/dev/null || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || \
	      { echo "error: could not install:$$missing (try: sudo apt-get install$$missing)"; exit 1; }; \
	  else echo "error: missing Debian packages:$$missing (install with: sudo apt-get install$$missing)"; exit 1; fi; fi
	@[ -n "$(HAVE_NVCC)" ] || echo "note: nvcc not found: building the CPU-only binary with $(CXX) (install the CUDA toolkit for the GPU path)"
	@if ! command -v mpicxx >/dev/null || ! command -v mpirun >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages: $(MPI_PACKAGES)"; \
	    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(MPI_PACKAGES) >/dev/null || \
	      echo "note: could not install $(MPI_PACKAGES): building single-process (no mpirun)"; \
	  else echo "note: MPI not found: building single-process (for mpirun -np N: sudo apt-get install $(MPI_PACKAGES))"; fi; fi
	@touch $@

# ---- the binary -------------------------------------------------------------------------------------
build/train.o: train.cu | deps
	@mkdir -p $(dir $@)
	$(CU_COMPILE) -c $< -o $@
build/train: build/train.o
	$(LINK) $^ -o $@ $(LINK_LIBS)

# ---- tests: tests/*.cpp with g++ (CPU), tests/*.cu with nvcc (GPU parity; they skip without a GPU) ----
TEST_OBJS := $(patsubst tests/%.cpp,build/tests/%.o,$(wildcard tests/*.cpp))
ifneq ($(HAVE_NVCC),)
  TEST_OBJS += $(patsubst tests/%.cu,build/tests/%.o,$(wildcard tests/*.cu))
endif
build/tests/%.o: tests/%.cpp | deps
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) $(MPI_CFLAGS) -c $< -o $@
build/tests/%.o: tests/%.cu | deps
	@mkdir -p $(dir $@)
	$(CU_COMPILE) -c $< -o $@
build/test: $(TEST_OBJS)
	$(LINK) $^ -o $@ $(LINK_LIBS)

# ---- the same GPU tests on the CPU: the CUDA emulation (tests/emu) ----------------------------------------
# tests/test_gpu*.cu, the emulation's own tests (tests/emu/test_emu.cu) and every kernel they reach, built by g++
# against stand-ins for the CUDA runtime, cuBLAS and cuSOLVER (tests/emu/include); each launch runs its blocks
# and threads on the CPU. The sources are copied to build/emu/src with their launches translated
# (tests/emu/translate.pl); nothing else differs. Three builds of it: plain (make test), and under
# AddressSanitizer + UndefinedBehaviorSanitizer and under ThreadSanitizer (make sanitize-cpu). The
# ThreadSanitizer build leaves the emulation's scheduler uninstrumented (its bookkeeping is not the kernels'
# data) and runs without OpenMP (libgomp is not instrumented).
SUMMARY     := bash tests/summary.sh
EMU_COPY    := build/emu/src
EMU_SOURCES := $(addprefix $(EMU_COPY)/,$(wildcard *.h ops/*.h data/*.h tests/*.h tests/test_gpu*.cu tests/emu/*.cu))
EMU_TESTS   := $(patsubst tests/%.cu,%,$(wildcard tests/test_gpu*.cu tests/emu/*.cu))
EMU_CXX     := $(CXX) -std=c++17 -g -fno-trapping-math $(WARN) -Wno-unknown-pragmas -D__CUDACC__ -Itests/emu/include -I$(EMU_COPY) -MMD -MP
EMU_LIBS    := $(LDLIBS) -llapack -lpthread
.SECONDARY: $(EMU_SOURCES)
$(EMU_COPY)/%: % tests/emu/translate.pl
	@mkdir -p $(dir $@)
	@perl tests/emu/translate.pl $< > $@

# $(1): the build folder; $(2): flags for the tests and the project's code; $(3): flags for the emulation's runtime
define emu_build
$(1)/%.o: $(EMU_COPY)/tests/%.cu $(EMU_SOURCES) | deps
	@mkdir -p $$(dir $$@)
	$(EMU_CXX) $(2) -x c++ -c $$< -o $$@
$(1)/main.o: tests/main.cpp | deps
	@mkdir -p $$(dir $$@)
	$(EMU_CXX) $(2) -c $$< -o $$@
$(1)/runtime.o: tests/emu/runtime.cpp tests/emu/cuda_emu.h tests/emu/internal.h | deps
	@mkdir -p $$(dir $$@)
	$(EMU_CXX) $(3) -c $$< -o $$@
$(1)/blas.o: tests/emu/blas.cpp tests/emu/cuda_emu.h tests/emu/internal.h $(wildcard tests/emu/include/*.h) | deps
	@mkdir -p $$(dir $$@)
	$(EMU_CXX) $(2) -c $$< -o $$@
$(1)/test: $(addprefix $(1)/,$(addsuffix .o,$(EMU_TESTS)) main.o runtime.o blas.o)
	$(EMU_CXX) $(2) $$^ -o $$@ $(EMU_LIBS)
endef
EMU_SAN_FLAGS := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all -fopenmp
$(eval $(call emu_build,build/emu/plain,-O2 -fopenmp,-O2 -fopenmp))
$(eval $(call emu_build,build/emu/asan,$(EMU_SAN_FLAGS),$(EMU_SAN_FLAGS)))
$(eval $(call emu_build,build/emu/tsan,-O1 -fsanitize=thread,-O1 -DEMU_TSAN -fsanitize=thread -fno-sanitize=thread))

# ---- the data-parallel tests inside one job of 2 ranks (tests/mpi; make test runs them under mpirun) ----------
build/test_ranks: tests/mpi/test_ranks.cpp | deps
	@mkdir -p build
	$(CXX) $(CXXFLAGS) $(MPI_CFLAGS) $< -o $@ $(LDLIBS) $(MPI_LIBS)
# under mpirun where the build has MPI; a line saying why not where it has none
RANKS_TEST = if [ -n "$(MPI_CFLAGS)" ] && command -v mpirun >/dev/null; then \
	  $(MAKE) --no-print-directory build/test_ranks >/dev/null && \
	  timeout 600 $(MPIRUN) -np 2 ./build/test_ranks 2>&1 | tee build/test_ranks.log; \
	else echo "SKIPPED: the data-parallel tests need MPI (make deps installs it as root)" | tee build/test_ranks.log; fi

# The suites, then one line each: what ran, and what skipped (the real-GPU cases, without a GPU).
test: all build/test build/study build/emu/plain/test
	@set -o pipefail; cpu=0; emu=0; ranks=0; \
	./build/test 2>&1 | tee build/test.log || cpu=1; \
	echo "---- the GPU tests again, on the CPU emulation of CUDA (tests/emu) ----"; \
	./build/emu/plain/test 2>&1 | tee build/emu/test.log || emu=1; \
	echo "---- the data-parallel tests, in one job of 2 ranks (tests/mpi) ----"; \
	$(RANKS_TEST) || ranks=1; \
	echo; \
	$(SUMMARY) build/test.log "tests (CPU$(if $(HAVE_NVCC),; the GPU cases run only on a GPU,; built without nvcc: no real-GPU cases))"; \
	$(SUMMARY) build/emu/test.log "GPU tests on the CPU emulation"; \
	$(SUMMARY) build/test_ranks.log "data-parallel tests on 2 ranks (mpirun)"; \
	[ $$cpu -eq 0 ] && [ $$emu -eq 0 ] && [ $$ranks -eq 0 ]

# the emulated GPU tests under the sanitizers (CI runs this after make test). ThreadSanitizer looks for races
# between the threads of a block, so it runs every kernel's own cases; the whole training runs (train:, timing:,
# the first 20 steps) call the same kernels again and took 60% of its 14 minutes: AddressSanitizer runs those.
# The 50-step bf16 run (90 s of the plain emulation: 1.6M parameters' elementwise kernels, a fiber per element)
# runs only there; AddressSanitizer runs the same kernels in the shorter runs.
TSAN_SKIP := train:*,timing:*,gpu: the first 20 training steps*
ASAN_SKIP := train: 50 steps of a GPU run*
sanitize-cpu: build/emu/asan/test build/emu/tsan/test
	@set -o pipefail; asan=0; tsan=0; \
	ASAN_OPTIONS=detect_leaks=0 ./build/emu/asan/test --test-case-exclude='$(ASAN_SKIP)' 2>&1 | tee build/emu/asan.log || asan=1; \
	TSAN_OPTIONS=halt_on_error=1 ./build/emu/tsan/test --test-case-exclude='$(TSAN_SKIP)' 2>&1 | tee build/emu/tsan.log || tsan=1; \
	echo; \
	$(SUMMARY) build/emu/asan.log "GPU tests on the CPU emulation, AddressSanitizer + UBSan"; \
	$(SUMMARY) build/emu/tsan.log "GPU tests on the CPU emulation, ThreadSanitizer"; \
	[ $$asan -eq 0 ] && [ $$tsan -eq 0 ]

train: all
	./train compare

# ---- benchmarks: CPU always; the GPU benchmark where nvcc built it (it says so and exits without a GPU) ----
build/bench_cpu: dev/bench_cpu.cpp | deps
	@mkdir -p build
	$(CXX) $(CXXFLAGS) $< -o $@ -lbenchmark -lpthread $(LDLIBS)
BENCH_BINS := build/bench_cpu
ifneq ($(HAVE_NVCC),)
ifneq ($(wildcard dev/bench_gpu.cu),)
build/bench_gpu: dev/bench_gpu.cu | deps
	@mkdir -p build
	$(NVCC) $(NVCCFLAGS) $< -o $@ -lbenchmark -lpthread $(LINK_LIBS)
BENCH_BINS += build/bench_gpu
endif
endif
build/bench_dist: dev/bench_dist.cpp | deps
	@mkdir -p build
	$(CXX) $(CXXFLAGS) $(MPI_CFLAGS) $< -o $@ $(LDLIBS) $(MPI_LIBS)
# the Python with tiktoken and torch, for the comparisons against them
PYTHON ?= python3
bench: all $(BENCH_BINS)
	./build/bench_cpu
	@if [ -x build/bench_gpu ]; then ./build/bench_gpu; fi
	@if [ -n "$(MPI_CFLAGS)" ] && command -v mpirun >/dev/null; then \
	   $(MAKE) --no-print-directory build/bench_dist >/dev/null && $(MPIRUN) -np 2 ./build/bench_dist; \
	 else echo "optimizer step on 1 and 2 ranks: skipped (needs MPI: make deps installs it as root)"; fi
	@if $(PYTHON) -c "import tiktoken" 2>/dev/null; then $(PYTHON) dev/bench_tokenizer.py; \
	 else echo "tokenizer vs tiktoken: skipped (needs $(PYTHON) with tiktoken: pip install tiktoken)"; fi
	@if $(PYTHON) -c "import torch" 2>/dev/null; then \
	   $(PYTHON) dev/speed_compare.py --device cpu --model d4 --batch 8 --seq-len 256 --steps 8; \
	   if [ -x build/bench_gpu ] && nvidia-smi >/dev/null 2>&1; then \
	     $(PYTHON) dev/speed_compare.py --device cuda --model d12 --batch 16 --seq-len 1024 --precision bf16 --steps 12 && \
	     $(PYTHON) dev/speed_compare.py --device cuda --model d12 --batch 16 --seq-len 1024 --precision bf16 --steps 12 \
	       --no-compile --cuda-graph 1; fi; \
	 else echo "training step vs PyTorch eager and torch.compile: skipped (needs $(PYTHON) with torch:" \
	   "pip install torch numpy, or make bench PYTHON=/path/to/venv/bin/python)"; fi

# ---- compute-sanitizer: memcheck and racecheck on the GPU tests and a tiny training run (needs a GPU) ----
SANITIZE_RUN := ./train train --device cuda --model tiny --batch 2 --seq-len 64 --steps 4 --warmup 2 \
                --health-every 2 --sample-every 2 --out build/sanitize
sanitize: all build/test
	@nvidia-smi >/dev/null 2>&1 || { echo "make sanitize: needs a CUDA GPU, and none was found"; exit 1; }
	compute-sanitizer --tool memcheck --error-exitcode 1 ./build/test -tc='gpu*'
	compute-sanitizer --tool memcheck --error-exitcode 1 $(SANITIZE_RUN) --optimizer muon
	compute-sanitizer --tool racecheck --error-exitcode 1 $(SANITIZE_RUN) --optimizer adamw

# ---- the papers' controlled experiments: dev/experiments.cpp, then the spectral family on a small GPT ----
# 1. the staged linear nets in fp64 ("Muon as a Residual Connection", arXiv 2607.01124), EXP_SEEDS seeds;
# 2. U Σ^p Vᵀ for p in {0, ¼, ½, 1} on the momentum and the Adam-RMS base ("Delving into Muon and Beyond",
#    arXiv 2602.04669): 8 runs at equal budgets. EXP_GPT sizes them to fit, with the linear nets, in under
#    15 minutes on 2 CPU cores (about 9 on an idle 2-core AMD EPYC); EXP_GPT='--model auto' trains the
#    default model instead (d4 on the CPU, d12 on a GPU), far past that budget on a CPU.
# Tables (Markdown, CSV) and PNG plots go to EXP_OUT/linear/ and EXP_OUT/spectral/.
EXP_OUT   ?= out/experiments
EXP_SEEDS ?= 20
EXP_GPT   ?= --model tiny --batch 8 --seq-len 64 --steps 100
build/experiments: dev/experiments.cpp | deps
	@mkdir -p build
	$(CXX) $(CXXFLAGS) $< -o $@
experiments: all build/experiments
	./build/experiments --seeds $(EXP_SEEDS) --out $(EXP_OUT)/linear
	./train compare --optimizers spectral $(EXP_GPT) --out $(EXP_OUT)/spectral
	@echo "experiments: tables and plots in $(EXP_OUT)/linear/ and $(EXP_OUT)/spectral/"

# ---- the study: dev/study.cpp drives ./train over lr sweeps, seeds, the spectral family and the decay rules ----
# Resumable (the same command continues an interrupted study); tables, plots and summary.md in STUDY_OUT.
# STUDY_MODEL sets every part's model, STUDY_BUDGET multiplies every part's steps; on a GPU, e.g.
#   make study STUDY_MODEL=d12 STUDY_BUDGET=8 STUDY_FLAGS="--batch 16 --seq-len 1024 --train-flags '--device cuda'"
STUDY_OUT    ?= out/study
STUDY_MODEL  ?=
STUDY_BUDGET ?= 1
STUDY_FLAGS  ?=
build/study: dev/study.cpp | deps
	@mkdir -p build
	$(CXX) $(CXXFLAGS) $< -o $@ $(LDLIBS)
study: all build/study
	./build/study --out $(STUDY_OUT) --budget $(STUDY_BUDGET) $(if $(STUDY_MODEL),--model $(STUDY_MODEL)) $(STUDY_FLAGS)

# ---- fuzzing (tests/fuzz): libFuzzer targets under AddressSanitizer + UBSan ---------------------------------
# make fuzz        builds build/fuzz/<target> for each tests/fuzz/fuzz_*.cpp (clang++ and its libFuzzer runtime:
#                  the Debian packages clang and libclang-rt-N-dev, installed as root like `make deps` does)
# make fuzz-run    runs each target for FUZZ_SECONDS on a scratch copy of its seed corpus (build/fuzz/work/<target>);
#                  crashes go to build/fuzz/crashes/<target>/; fails naming the target and the input if any crashes
# make fuzz-corpus regenerates the binary seeds in tests/fuzz/corpus (model files, checkpoints, shards)
# No OpenMP: the targets run single-threaded, so a report is reproducible (the pragmas are ignored).
.PHONY: fuzz fuzz-run fuzz-corpus
FUZZ_CXX      ?= clang++
FUZZ_SECONDS  ?= 20
FUZZ_FLAGS    := -std=c++17 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
                 -fno-sanitize-recover=undefined $(WARN) -Wno-unknown-pragmas -I. -MMD -MP
FUZZ_TARGETS  := $(patsubst tests/fuzz/%.cpp,%,$(wildcard tests/fuzz/fuzz_*.cpp))
FUZZ_BINS     := $(addprefix build/fuzz/,$(FUZZ_TARGETS))
FUZZ_CLANG_V   = $(or $(shell $(FUZZ_CXX) -dumpversion 2>/dev/null | cut -d. -f1),14)
FUZZ_PACKAGES  = clang libclang-rt-$(FUZZ_CLANG_V)-dev
FUZZ_PROBE    := echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' | \
                 $(FUZZ_CXX) -fsanitize=fuzzer,address,undefined -x c++ - -o /dev/null >/dev/null 2>&1
build/fuzz/.deps-ok:
	@mkdir -p $(dir $@)
	@if ! { command -v $(FUZZ_CXX) >/dev/null && $(FUZZ_PROBE); }; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages: $(FUZZ_PACKAGES)"; \
	    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(FUZZ_PACKAGES) >/dev/null || \
	      { echo "error: could not install: $(FUZZ_PACKAGES) (try: sudo apt-get install $(FUZZ_PACKAGES))"; exit 1; }; \
	    $(FUZZ_PROBE) || { echo "error: $(FUZZ_CXX) cannot build a libFuzzer target even after installing $(FUZZ_PACKAGES)"; exit 1; }; \
	  else echo "error: missing Debian packages: $(FUZZ_PACKAGES) (install with: sudo apt-get install $(FUZZ_PACKAGES))"; exit 1; fi; fi
	@touch $@
$(FUZZ_BINS): build/fuzz/%: tests/fuzz/%.cpp | deps build/fuzz/.deps-ok
	$(FUZZ_CXX) $(FUZZ_FLAGS) $< -o $@ $(LDLIBS)
fuzz: $(FUZZ_BINS)
fuzz-run: fuzz
	@bash tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)
build/fuzz/gen_corpus: tests/fuzz/gen_corpus.cpp | deps
	@mkdir -p $(dir $@)
	$(CXX) -std=c++17 -g -O1 $(WARN) -Wno-unknown-pragmas -I. -MMD -MP $< -o $@ $(LDLIBS)
fuzz-corpus: build/fuzz/gen_corpus
	./build/fuzz/gen_corpus tests/fuzz/corpus
-include $(wildcard build/fuzz/*.d)
# ---- end of fuzzing ------------------------------------------------------------------------------------------

clean:
	rm -rf build train

-include $(wildcard build/*.d build/tests/*.d build/emu/*/*.d build/emu/*/emu/*.d)
