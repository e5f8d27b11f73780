// The processes of a data-parallel run, and the few values they must agree on. The trainer asks the group for
// each of them: the gradients (mean over processes before the optimizer step), the step's losses and the
// evaluation sums, and the sigma statistic of every LayerNorm call (mean, so every process updates the same EMA
// and freezes the same sigma). Each process updates its shard of the optimizer state and the shards are gathered
// back into every process's compute copy. SingleProcess is the identity, and the only group so far; multi-GPU runs
// add an NCCL group over MPI behind the same interface.
#pragma once
#include <algorithm>
#include <cstddef>

#include "kernels/common.cuh"

namespace lnfree {

class ProcessGroup {
   public:
    virtual ~ProcessGroup() = default;
    virtual int rank() const = 0;
    virtual int size() const = 0;
    // device floats, in place, ordered on `stream`: the mean over processes
    virtual void all_reduce_mean(float* data, size_t n, cudaStream_t stream) = 0;
    // host doubles, in place: the sum over processes
    virtual void all_reduce_sum(double* values, size_t n) = 0;
    // device buffer of n elements of elem_bytes, split into size() shards (shard_range); each process holds its
    // own shard up to date, and afterwards every process holds all of them
    virtual void all_gather_shards(void* data, size_t elem_bytes, size_t n, cudaStream_t stream) = 0;
};

// Elements [first, last) of an n-element buffer that process `rank` of `size` owns: equal shards of
// ceil(n / size), the last one shorter (the layout NCCL's all-gather wants).
struct ShardRange {
    size_t first = 0, last = 0;
};
inline ShardRange shard_range(size_t n, int rank, int size) {
    const size_t chunk = (n + size - 1) / size;
    return {std::min(n, rank * chunk), std::min(n, (rank + 1) * chunk)};
}

class SingleProcess final : public ProcessGroup {
   public:
    int rank() const override { return 0; }
    int size() const override { return 1; }
    void all_reduce_mean(float*, size_t, cudaStream_t) override {}
    void all_reduce_sum(double*, size_t) override {}
    void all_gather_shards(void*, size_t, size_t, cudaStream_t) override {}
};

}  // namespace lnfree
