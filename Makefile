# lnfree. `make test` installs what is missing (Debian packages; Python packages in .venv) and runs every test:
# the C++ tests (reference, formats, and every CUDA kernel run on the CPU through the host emulation), the kernel
# tests again under AddressSanitizer, the Python tests (transformers and TransformerLens interoperability, data
# scripts), the fixtures check against the PyTorch twin, the nvcc compile gate, and a short fuzzing run.
# `make fixtures` regenerates the twin's fixtures; on a GPU machine `make test-gpu` runs the kernel tests there and
# `make cuda-lab && make -C dev/cuda run` benchmarks every kernel. USE_CUDNN=1 (with `make train`, `make test-gpu`)
# adds cuDNN's fused attention (doc/kernels.md).

CXX ?= g++
NVCC ?= nvcc
CUDA_INCLUDE ?= /usr/local/cuda/include
CXXFLAGS ?= -O2 -g
CXXFLAGS += -std=c++20 -Wall -Wextra -fopenmp -pthread -I. -MMD -MP -DLNFREE_SOURCE_DIR=\"$(CURDIR)\"
# kernel code compiled by g++ through the host emulation (doc/emulation.md)
EMU_FLAGS := -I$(CUDA_INCLUDE) -Wno-unknown-pragmas -fno-strict-aliasing -mfma -ffp-contract=fast
LDLIBS := -ldl
BUILD := build
# OpenMPI (dev/setup.sh installs it): the trainers' processes of a data-parallel run; NCCL comes with the CUDA toolkit
MPI_CFLAGS = $(shell mpicc --showme:compile 2>/dev/null)
MPI_LIBS = $(shell mpicc --showme:link 2>/dev/null)
# mpirun for the multi-process tests: as root (CI) OpenMPI needs its consent; 3 processes on 2 cores oversubscribe
MPIRUN := OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 mpirun

LIB_SRC := $(wildcard lnfree/*.cpp)
TEST_SRC := $(wildcard test/*.cpp)
KERNEL_TEST_SRC := $(wildcard test/kernels/*.cpp test/emulation/test_*.cpp)
LIB_OBJ := $(LIB_SRC:%.cpp=$(BUILD)/%.o)
TEST_OBJ := $(TEST_SRC:%.cpp=$(BUILD)/%.o) $(KERNEL_TEST_SRC:%.cpp=$(BUILD)/%.o)
# Catch2's main and implementation are not instrumented: compiled once (test/catch_session.cpp), linked everywhere
CATCH_OBJ := $(BUILD)/test/main.o $(BUILD)/test/catch_session.o
ASAN_OBJ := $(KERNEL_TEST_SRC:%.cpp=$(BUILD)/asan/%.o) $(CATCH_OBJ)
# --threads 0: nvcc compiles the two architectures in parallel
GPU_ARCH := -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90a,code=sm_90a --threads 0
# USE_CUDNN=1: cuDNN's fused attention as the alternative attention (kernels/cudnn_attention.h), in the trainer and
# the GPU kernel tests. Its translation unit is built once, on its own: the cuDNN frontend's headers (fetched by
# dev/setup.sh --cudnn-frontend) take about a minute to compile. The frontend compiles some engines at run time,
# hence NVRTC.
USE_CUDNN ?= 0
CUDNN_FRONTEND := $(BUILD)/cudnn_frontend/include
# what the last GPU build used, so that switching USE_CUDNN rebuilds what depends on it
CUDNN_STAMP := $(BUILD)/use_cudnn
$(shell mkdir -p $(BUILD) && (echo $(USE_CUDNN) | cmp -s - $(CUDNN_STAMP) || echo $(USE_CUDNN) > $(CUDNN_STAMP)))
ifeq ($(USE_CUDNN),1)
CUDNN_OBJ := $(BUILD)/cudnn/cudnn_attention.o
CUDNN_DEFINES := -DLNFREE_CUDNN
CUDNN_LIBS := -lcudnn -lnvrtc
endif

.PHONY: all run test setup fixtures clean test-gpu test-gpu-build cuda-lab train cpu
all: $(BUILD)/test_lnfree $(BUILD)/test_kernels_asan $(BUILD)/test_mpi_group $(BUILD)/lnfree_tool train_gpt2_lnfree_cpu

# the trainer: `make train` for the GPU (nvcc), `make cpu` for the CPU (g++ through the host emulation; float32)
train: train_gpt2_lnfree
cpu: train_gpt2_lnfree_cpu

train_gpt2_lnfree: train_gpt2_lnfree.cu $(LIB_OBJ) $(CUDNN_OBJ) $(CUDNN_STAMP) $(wildcard kernels/*.cuh lnfree/*.h lnfree/*.cuh)
	$(NVCC) -std=c++20 -O3 -I. $(CUDNN_DEFINES) $(MPI_CFLAGS) $(GPU_ARCH) -o $@ train_gpt2_lnfree.cu $(LIB_OBJ) $(CUDNN_OBJ) \
		-lcublasLt $(CUDNN_LIBS) -lnccl $(MPI_LIBS) -Xcompiler -fopenmp

$(CUDNN_FRONTEND)/cudnn_frontend.h:
	bash dev/setup.sh --cudnn-frontend

# host code only; the frontend's headers as system headers, so that their warnings do not bury ours
$(BUILD)/cudnn/cudnn_attention.o: kernels/cudnn_attention.cpp kernels/cudnn_attention.h | $(CUDNN_FRONTEND)/cudnn_frontend.h
	@mkdir -p $(dir $@)
	$(CXX) -std=c++20 -O2 -Wall -Wextra -I. -I$(CUDA_INCLUDE) -isystem $(CUDNN_FRONTEND) -c -o $@ $<

$(BUILD)/train_gpt2_lnfree_cpu.o: train_gpt2_lnfree.cu
	@mkdir -p $(BUILD)
	$(CXX) $(CXXFLAGS) $(EMU_FLAGS) $(MPI_CFLAGS) -DLNFREE_FLOAT32 -x c++ -c -o $@ $<

train_gpt2_lnfree_cpu: $(BUILD)/train_gpt2_lnfree_cpu.o $(LIB_OBJ)
	$(CXX) $(CXXFLAGS) -o $@ $^ $(LDLIBS) $(MPI_LIBS)

# the MPI process group's collectives, run under mpirun by `make test`
$(BUILD)/test/mpi/%.o: CXXFLAGS += $(EMU_FLAGS) $(MPI_CFLAGS)
$(BUILD)/test_mpi_group: $(BUILD)/test/mpi/test_mpi_group.o $(BUILD)/test/catch_session.o $(LIB_OBJ)
	$(CXX) $(CXXFLAGS) -o $@ $^ $(LDLIBS) $(MPI_LIBS)

setup:
	@bash dev/setup.sh --python

# the main job: remove every LayerNorm of the bundled tiny model (or pass ARGS="-m xl ..."), on the GPU where
# one is present, on the CPU otherwise
run:
	@bash dev/setup.sh
	@if nvidia-smi -L >/dev/null 2>&1; then $(MAKE) --no-print-directory train && ./train_gpt2_lnfree $(ARGS); \
	else $(MAKE) --no-print-directory -j2 cpu && ./train_gpt2_lnfree_cpu $(ARGS); fi

# each step prints its wall time (dev/timed.sh; doc/testing.md says where it goes)
TIMED := bash dev/timed.sh
test: setup
	@$(TIMED) "build" $(MAKE) --no-print-directory -j2 all
	OMP_NUM_THREADS=2 $(TIMED) "C++ tests" ./$(BUILD)/test_lnfree
	ASAN_OPTIONS=detect_leaks=1 $(TIMED) "kernel tests under ASan" ./$(BUILD)/test_kernels_asan
	$(TIMED) "MPI process group (3 processes)" env $(MPIRUN) -np 3 ./$(BUILD)/test_mpi_group
	$(TIMED) "Python tests" .venv/bin/python -m pytest -q test/python
	$(TIMED) "fixtures against the twin" .venv/bin/python dev/pytorch_twin.py --out $(BUILD)/fixtures --check test/fixtures
	$(TIMED) "nvcc compile gate" bash dev/check_kernels.sh
	$(TIMED) "fuzzing" bash dev/fuzz.sh --runs 20000

$(BUILD)/test_lnfree: $(TEST_OBJ) $(LIB_OBJ)
	$(CXX) $(CXXFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/lnfree_tool: $(BUILD)/dev/lnfree_tool.o $(LIB_OBJ)
	$(CXX) $(CXXFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/test/kernels/%.o $(BUILD)/test/emulation/%.o: CXXFLAGS += $(EMU_FLAGS)

$(BUILD)/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c -o $@ $<

# the emulated kernel tests under AddressSanitizer: an out-of-bounds access in a kernel names its source line
$(BUILD)/asan/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(filter-out -O2,$(CXXFLAGS)) $(EMU_FLAGS) -O1 -Wno-maybe-uninitialized -fsanitize=address -fno-omit-frame-pointer -c -o $@ $<

$(BUILD)/test_kernels_asan: $(ASAN_OBJ) $(LIB_OBJ)
	$(CXX) $(CXXFLAGS) -fsanitize=address -o $@ $^ $(LDLIBS)

# the same kernel tests built by nvcc: they compare the GPU with the CPU reference (needs a GPU to run)
test-gpu-build: $(BUILD)/test_kernels_gpu
GPU_TEST_OBJ := $(BUILD)/gpu/test_kernels.o $(BUILD)/gpu/test_flash_attention.o $(BUILD)/gpu/test_device_model.o \
	$(BUILD)/gpu/test_distribution.o \
	$(CATCH_OBJ)
ifeq ($(USE_CUDNN),1)
GPU_TEST_OBJ += $(BUILD)/gpu/test_cudnn_attention.o $(CUDNN_OBJ)
$(BUILD)/gpu/test_cudnn_attention.o: kernels/cudnn_attention.h
endif
$(BUILD)/gpu/%.o: test/kernels/%.cpp $(CUDNN_STAMP) $(wildcard kernels/*.cuh lnfree/*.cuh lnfree/*.h lnfree/reference/*.h)
	@mkdir -p $(BUILD)/gpu
	$(NVCC) -std=c++20 -O2 -I. $(CUDNN_DEFINES) -DLNFREE_SOURCE_DIR=\"$(CURDIR)\" $(GPU_ARCH) -x cu -c -o $@ $<
$(BUILD)/test_kernels_gpu: $(GPU_TEST_OBJ) $(LIB_OBJ) $(CUDNN_STAMP)
	$(NVCC) $(GPU_ARCH) -o $@ $(GPU_TEST_OBJ) $(LIB_OBJ) -lcublasLt $(CUDNN_LIBS) -Xcompiler -fopenmp

test-gpu: $(BUILD)/test_kernels_gpu
	./$(BUILD)/test_kernels_gpu

# the kernel lab (dev/cuda): one benchmark program per kernel; run with `make -C dev/cuda run` on a GPU machine
cuda-lab:
	$(MAKE) -C dev/cuda

fixtures: setup
	.venv/bin/python dev/pytorch_twin.py --out test/fixtures

clean:
	rm -rf $(BUILD)

-include $(TEST_OBJ:.o=.d) $(LIB_OBJ:.o=.d) $(ASAN_OBJ:.o=.d) $(BUILD)/dev/lnfree_tool.d $(BUILD)/train_gpt2_lnfree_cpu.d \
	$(BUILD)/test/mpi/test_mpi_group.d
