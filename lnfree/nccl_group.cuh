// NcclGroup: the GPU build's process group. One process per GPU, each picking its GPU by its node-local rank;
// rank 0 makes the NCCL id and MPI broadcasts it, then NCCL moves the device buffers (gradients, the compute copy,
// the sigma statistics) on the trainer's stream and MPI the few host values.
#pragma once
#include <nccl.h>

#include <stdexcept>
#include <string>

#include "lnfree/mpi_group.h"
#include "lnfree/process_group.h"

namespace lnfree {

inline void nccl_check(ncclResult_t r, const char* what) {
    if (r != ncclSuccess) throw std::runtime_error(std::string("NCCL ") + what + ": " + ncclGetErrorString(r));
}

class NcclGroup final : public ProcessGroup {
   public:
    // Call before any other CUDA call of this process: it selects the GPU.
    explicit NcclGroup(const MpiWorld& world) : rank_(world.rank()), size_(world.size()) {
        int gpus = 0;
        if (cudaGetDeviceCount(&gpus) != cudaSuccess || gpus == 0)
            throw std::runtime_error("rank " + std::to_string(rank_) + ": no GPU visible (CUDA_VISIBLE_DEVICES?)");
        if (world.local_rank() >= gpus)
            throw std::runtime_error("rank " + std::to_string(rank_) + " is process " + std::to_string(world.local_rank() + 1) +
                                     " on its node, which has " + std::to_string(gpus) + " GPUs: start one process per GPU");
        device_ = world.local_rank();
        if (cudaSetDevice(device_) != cudaSuccess) throw std::runtime_error("cudaSetDevice failed");
        ncclUniqueId id;
        if (rank_ == 0) nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
        MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, MPI_COMM_WORLD);
        nccl_check(ncclCommInitRank(&comm_, size_, id, rank_), "ncclCommInitRank");
    }
    ~NcclGroup() override { ncclCommDestroy(comm_); }
    NcclGroup(const NcclGroup&) = delete;
    NcclGroup& operator=(const NcclGroup&) = delete;

    int rank() const override { return rank_; }
    int size() const override { return size_; }
    int device() const { return device_; }

    void reduce_scatter_sum(float* data, size_t n, cudaStream_t s) override {
        const size_t chunk = n / size_;  // in place: the result lands in this rank's own shard
        nccl_check(ncclReduceScatter(data, data + rank_ * chunk, chunk, ncclFloat, ncclSum, comm_, s), "reduce-scatter");
    }
    void all_gather(void* data, size_t elem_bytes, size_t n, cudaStream_t s) override {
        const size_t bytes = n / size_ * elem_bytes;
        char* base = static_cast<char*>(data);
        nccl_check(ncclAllGather(base + rank_ * bytes, base, bytes, ncclUint8, comm_, s), "all-gather");
    }
    void all_reduce_sum(double* data, size_t n, cudaStream_t s) override {
        nccl_check(ncclAllReduce(data, data, n, ncclDouble, ncclSum, comm_, s), "all-reduce");
    }
    void all_gather_host(const double* values, size_t n, double* out) override { mpi_all_gather_doubles(values, n, out); }

   private:
    int rank_, size_, device_ = 0;
    ncclComm_t comm_ = nullptr;
};

}  // namespace lnfree
