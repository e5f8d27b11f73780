// The processes of a data-parallel run (ZeRO-1) and what they exchange. Each process runs its share of a step's
// micro-batches, then the gradients are reduce-scattered (summed, each process keeping its shard), each process
// runs AdamW on its shard of the master weights and moments (the only part it allocates), and the shards of the
// compute copy are all-gathered. Besides the gradients the processes exchange the sigma statistic of every
// LayerNorm call (gathered, so every process applies every micro-batch's update in the one-process order), the
// step's losses and the evaluation sums (gathered and added in global order) and the gradient norm.
// SingleProcess is the identity; MpiGroup (lnfree/mpi_group.h, host memory: the CPU build) and NcclGroup
// (lnfree/nccl_group.cuh, the GPU build) are the multi-process ones.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstring>

#include "kernels/common.cuh"

namespace lnfree {

class ProcessGroup {
   public:
    virtual ~ProcessGroup() = default;
    virtual int rank() const = 0;
    virtual int size() const = 0;
    // Device floats, n a multiple of size(): afterwards shard rank() of `data` (shard_range) holds the sum over
    // processes of that shard; the other shards are left undefined.
    virtual void reduce_scatter_sum(float* data, size_t n, cudaStream_t stream) = 0;
    // Device buffer of n elements of elem_bytes, n a multiple of size(): each process's own shard goes to every
    // process, in place.
    virtual void all_gather(void* data, size_t elem_bytes, size_t n, cudaStream_t stream) = 0;
    // Device doubles, in place: the sum over processes.
    virtual void all_reduce_sum(double* data, size_t n, cudaStream_t stream) = 0;
    // Host doubles: every process's n values into out (n * size()), in rank order.
    virtual void all_gather_host(const double* values, size_t n, double* out) = 0;
};

// Elements [first, last) of an n-element buffer that process `rank` of `size` owns: n / size each (n is a
// multiple of size, the equal shards NCCL's reduce-scatter and all-gather want).
struct ShardRange {
    size_t first = 0, last = 0;
    size_t size() const { return last - first; }
};
inline ShardRange shard_range(size_t n, int rank, int size) {
    const size_t chunk = n / size;
    return {rank * chunk, (rank + 1) * chunk};
}

// The length the sharded buffers of n parameters are padded to for `size` processes: a multiple of size * 64, so
// every shard is whole and starts 256-byte aligned for float32.
inline size_t padded_length(size_t n, int size) {
    const size_t unit = (size_t)size * 64;
    return (n + unit - 1) / unit * unit;
}

class SingleProcess final : public ProcessGroup {
   public:
    int rank() const override { return 0; }
    int size() const override { return 1; }
    void reduce_scatter_sum(float*, size_t, cudaStream_t) override {}
    void all_gather(void*, size_t, size_t, cudaStream_t) override {}
    void all_reduce_sum(double*, size_t, cudaStream_t) override {}
    void all_gather_host(const double* values, size_t n, double* out) override {
        std::memcpy(out, values, n * sizeof(double));
    }
};

}  // namespace lnfree
