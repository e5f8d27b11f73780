// MPI for data-parallel runs: the world a process was launched into (mpirun, a hostfile, srun under Slurm; a
// plain run without a launcher is one process), and MpiGroup, the process group of the CPU build, whose
// "device" buffers are host memory. The GPU build's NcclGroup (lnfree/nccl_group.cuh) is bootstrapped by the
// same world. Any MPI error aborts the whole job (MPI's default handler), so no rank waits on a dead one.
#pragma once
// the C API only: no C++ bindings to link
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <climits>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "lnfree/process_group.h"

namespace lnfree {

class MpiWorld {
   public:
    MpiWorld(int* argc, char*** argv) {
        int provided = 0;
        MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
        MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
        MPI_Comm_size(MPI_COMM_WORLD, &size_);
        MPI_Comm node;  // the processes that share this node: the local rank picks the GPU
        MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node);
        MPI_Comm_rank(node, &local_rank_);
        MPI_Comm_free(&node);
    }
    ~MpiWorld() { MPI_Finalize(); }
    MpiWorld(const MpiWorld&) = delete;
    MpiWorld& operator=(const MpiWorld&) = delete;

    int rank() const { return rank_; }
    int size() const { return size_; }
    int local_rank() const { return local_rank_; }
    // Started by a launcher (mpirun, srun, another PMI one), even as a single process.
    static bool launched() {
        for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"})
            if (std::getenv(v)) return true;
        return false;
    }
    // Ends every process of the job with `code` (after this process has printed its error).
    [[noreturn]] void abort(int code) const {
        MPI_Abort(MPI_COMM_WORLD, code);
        std::_Exit(code);
    }

   private:
    int rank_ = 0, size_ = 1, local_rank_ = 0;
};

// All-gather of host doubles over MPI_COMM_WORLD (the host side of both multi-process groups).
inline void mpi_all_gather_doubles(const double* values, size_t n, double* out) {
    if (n > INT_MAX) throw std::runtime_error("MPI all-gather: more than INT_MAX values");
    MPI_Allgather(values, (int)n, MPI_DOUBLE, out, (int)n, MPI_DOUBLE, MPI_COMM_WORLD);
}

class MpiGroup final : public ProcessGroup {
   public:
    explicit MpiGroup(const MpiWorld& world) : rank_(world.rank()), size_(world.size()) {}
    int rank() const override { return rank_; }
    int size() const override { return size_; }

    // Every process sends shard j to process j, which adds the P pieces in rank order: the same sum every run.
    void reduce_scatter_sum(float* data, size_t n, cudaStream_t) override {
        const size_t chunk = n / size_;
        if (chunk > INT_MAX) throw std::runtime_error("MPI reduce-scatter: shard of more than INT_MAX floats");
        received_.resize(n);
        MPI_Alltoall(data, (int)chunk, MPI_FLOAT, received_.data(), (int)chunk, MPI_FLOAT, MPI_COMM_WORLD);
        float* own = data + rank_ * chunk;
        for (size_t i = 0; i < chunk; i++) own[i] = received_[i];
        for (int p = 1; p < size_; p++)
            for (size_t i = 0; i < chunk; i++) own[i] += received_[p * chunk + i];
    }
    void all_gather(void* data, size_t elem_bytes, size_t n, cudaStream_t) override {
        const size_t chunk = n / size_;
        if (chunk > INT_MAX) throw std::runtime_error("MPI all-gather: shard of more than INT_MAX elements");
        MPI_Datatype element;
        MPI_Type_contiguous((int)elem_bytes, MPI_BYTE, &element);
        MPI_Type_commit(&element);
        MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data, (int)chunk, element, MPI_COMM_WORLD);
        MPI_Type_free(&element);
    }
    void all_reduce_sum(double* data, size_t n, cudaStream_t) override {
        MPI_Allreduce(MPI_IN_PLACE, data, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    }
    void all_gather_host(const double* values, size_t n, double* out) override { mpi_all_gather_doubles(values, n, out); }

   private:
    int rank_, size_;
    std::vector<float> received_;  // reduce_scatter_sum's P incoming shards
};

}  // namespace lnfree
