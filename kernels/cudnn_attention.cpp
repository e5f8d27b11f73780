// cuDNN's fused attention through the cuDNN frontend's graph API (header-only, fetched by
// `dev/setup.sh --cudnn-frontend`, pinned to 1.32.0). Host code only: g++ builds it once into
// build/cudnn/cudnn_attention.o, because the frontend's headers take about a minute to compile.
//
// One graph per (B, T, C, NH, dropout probability, direction), built on first use and cached. The probability is
// part of the key, not only whether it is non-zero, because the graph bakes it in. Each graph reads q, k and v in
// place from qkv (B,T,3C), and writes out, dq, dk and dv in place, through strides: no permute. Frontend 1.32 calls
// used, all non-deprecated:
//   Graph::sdpa and Graph::sdpa_backward (not the deprecated scaled_dot_product_flash_attention[_backward]);
//   SDPA_attributes::set_generate_stats(true) (not the deprecated set_is_inference(false));
//   set_diagonal_alignment(TOP_LEFT) + set_diagonal_band_right_bound(0) for the causal mask (set_causal_mask
//   just forwards to these two and is marked for deprecation);
//   set_attn_scale(float), set_dropout(probability, seed, offset), and
//   SDPA_backward_attributes::set_deterministic_algorithm(true);
//   Graph::validate, build_operation_graph(handle), create_execution_plans({HeurMode_t::A}), check_support(),
//   build_plans() (not the check_support(handle) and build_plans(handle) overloads, or build(handle, ...), which
//   the headers mark for removal), get_workspace_size(int64_t&) and execute(handle, uid -> pointer map, workspace).
// Dropout: cuDNN's Philox RNG keyed by seed and offset. The frontend's samples and PyTorch pass these as device
// INT64 (1,1,1,1) tensors; the headers do not say the SDPA engines accept pass-by-value ones. So each call copies
// its two values into a small device buffer on the stream, ahead of the attention that reads them.
// The backward asks for the deterministic algorithm: llm.c found the default one non-deterministic at large
// batch, and everything else in this project is deterministic. cuDNN refuses it on Blackwell (sm_100) with dropout;
// the trainer targets sm_80 and sm_90a. With it the frontend picks the backward that keeps dP in the workspace
// (its estimate: B*NH*T*T*2 bytes, about 0.94 GB at XL's micro-batch), so one workspace serves every call.
#include "kernels/cudnn_attention.h"

#include <cmath>
#include <compare>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include <cudnn_frontend.h>

namespace fe = cudnn_frontend;

namespace lnfree::kernels {
namespace {

// The tensors' ids in a graph's variant pack.
enum Uid : int64_t { Q = 1, K, V, O, STATS, DOUT, DQ, DK, DV, SEED, OFFSET };

struct GraphKey {
    int B, T, C, NH;
    float dropout;
    bool backward;
    auto operator<=>(const GraphKey&) const = default;
};

// What this process keeps between calls. Never destroyed: at exit the CUDA runtime may already have torn down the
// context that cudnnDestroy and cudaFree would need.
struct CudnnState {
    cudnnHandle_t handle = nullptr;
    std::map<GraphKey, std::shared_ptr<fe::graph::Graph>> graphs;
    void* workspace = nullptr;
    int64_t workspace_bytes = 0;
    int64_t* philox = nullptr;  // device: the current call's seed and offset
};

void check(fe::error_t status, const char* what) {
    if (!status.is_good()) throw std::runtime_error(std::string(what) + ": " + status.get_message());
}
void check(cudnnStatus_t status, const char* what) {
    if (status != CUDNN_STATUS_SUCCESS) throw std::runtime_error(std::string(what) + ": " + cudnnGetErrorString(status));
}
void check(cudaError_t status, const char* what) {
    if (status != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
}

CudnnState& state() {
    static CudnnState* s = [] {
        auto* created = new CudnnState;
        check(cudnnCreate(&created->handle), "cudnnCreate");
        check(cudaMalloc(&created->philox, 2 * sizeof(int64_t)), "cudaMalloc of the dropout seed and offset");
        return created;
    }();
    return *s;
}

std::string describe(const GraphKey& key) {
    std::ostringstream s;
    s << "cuDNN attention " << (key.backward ? "backward" : "forward") << " (B " << key.B << ", T " << key.T << ", C "
      << key.C << ", NH " << key.NH << ", dropout " << key.dropout << ")";
    return s.str();
}

void validate(const GraphKey& key) {
    if (key.B <= 0 || key.T <= 0 || key.C <= 0 || key.NH <= 0) throw std::runtime_error("sizes must be positive");
    if (key.C % key.NH != 0) throw std::runtime_error("C must be a multiple of NH");
    if (!(key.dropout >= 0.0f && key.dropout < 1.0f)) throw std::runtime_error("dropout must be in [0, 1)");
}

std::shared_ptr<fe::graph::Graph> build_graph(const GraphKey& key, cudnnHandle_t handle) {
    const int64_t b = key.B, h = key.NH, t = key.T, c = key.C, d = c / h;
    const std::vector<int64_t> heads{b, h, t, d};
    const std::vector<int64_t> qkv_strides{t * 3 * c, d, 3 * c, 1};  // a head's channels inside a (B,T,3C) row
    const std::vector<int64_t> out_strides{t * c, d, c, 1};          // inside a (B,T,C) row
    const std::vector<int64_t> stats_dims{b, h, t, 1}, stats_strides{h * t, t, 1, 1};
    const std::vector<int64_t> scalar{1, 1, 1, 1};

    auto graph = std::make_shared<fe::graph::Graph>();
    graph->set_io_data_type(fe::DataType_t::BFLOAT16)
        .set_intermediate_data_type(fe::DataType_t::FLOAT)
        .set_compute_data_type(fe::DataType_t::FLOAT);
    auto input = [&](const char* name, Uid uid, const std::vector<int64_t>& dims, const std::vector<int64_t>& strides) {
        return graph->tensor(fe::graph::Tensor_attributes().set_name(name).set_uid(uid).set_dim(dims).set_stride(strides));
    };
    auto q = input("Q", Q, heads, qkv_strides), k = input("K", K, heads, qkv_strides), v = input("V", V, heads, qkv_strides);
    std::shared_ptr<fe::graph::Tensor_attributes> seed, offset;
    if (key.dropout > 0.0f) {
        seed = input("Seed", SEED, scalar, scalar);
        offset = input("Offset", OFFSET, scalar, scalar);
        seed->set_data_type(fe::DataType_t::INT64);
        offset->set_data_type(fe::DataType_t::INT64);
    }
    const float scale = 1.0f / std::sqrt((float)d);

    if (!key.backward) {
        auto options = fe::graph::SDPA_attributes()
                           .set_name("attention")
                           .set_generate_stats(true)
                           .set_attn_scale(scale)
                           .set_diagonal_alignment(fe::DiagonalAlignment_t::TOP_LEFT)
                           .set_diagonal_band_right_bound(0);
        if (seed) options.set_dropout(key.dropout, seed, offset);
        auto [out, stats] = graph->sdpa(q, k, v, options);
        out->set_output(true).set_uid(O).set_dim(heads).set_stride(out_strides);
        stats->set_output(true).set_uid(STATS).set_data_type(fe::DataType_t::FLOAT).set_dim(stats_dims).set_stride(stats_strides);
    } else {
        auto out = input("O", O, heads, out_strides), dout = input("dO", DOUT, heads, out_strides);
        auto stats = input("Stats", STATS, stats_dims, stats_strides);
        stats->set_data_type(fe::DataType_t::FLOAT);
        auto options = fe::graph::SDPA_backward_attributes()
                           .set_name("attention_backward")
                           .set_attn_scale(scale)
                           .set_diagonal_alignment(fe::DiagonalAlignment_t::TOP_LEFT)
                           .set_diagonal_band_right_bound(0)
                           .set_deterministic_algorithm(true);
        if (seed) options.set_dropout(key.dropout, seed, offset);
        auto [dq, dk, dv] = graph->sdpa_backward(q, k, v, out, dout, stats, options);
        dq->set_output(true).set_uid(DQ).set_dim(heads).set_stride(qkv_strides);
        dk->set_output(true).set_uid(DK).set_dim(heads).set_stride(qkv_strides);
        dv->set_output(true).set_uid(DV).set_dim(heads).set_stride(qkv_strides);
    }

    check(graph->validate(), "validate");
    check(graph->build_operation_graph(handle), "build_operation_graph");
    check(graph->create_execution_plans({fe::HeurMode_t::A}), "create_execution_plans");
    check(graph->check_support(), "check_support");
    check(graph->build_plans(), "build_plans");
    return graph;
}

// Runs the key's graph with the tensors of `pack` (seed, offset and workspace added here) on `stream`.
void run(const GraphKey& key, std::unordered_map<int64_t, void*> pack, uint64_t seed, uint64_t offset,
         cudaStream_t stream) {
    try {
        validate(key);
        CudnnState& s = state();
        auto found = s.graphs.find(key);
        if (found == s.graphs.end()) found = s.graphs.emplace(key, build_graph(key, s.handle)).first;
        const fe::graph::Graph& graph = *found->second;

        int64_t bytes = 0;
        check(graph.get_workspace_size(bytes), "get_workspace_size");
        if (bytes > s.workspace_bytes) {
            // work queued earlier, on any stream, may still use the old workspace; growing happens once per shape
            check(cudaDeviceSynchronize(), "cudaDeviceSynchronize before growing the workspace");
            check(cudaFree(s.workspace), "cudaFree of the workspace");
            s.workspace = nullptr;
            s.workspace_bytes = 0;
            check(cudaMalloc(&s.workspace, bytes), "cudaMalloc of the workspace");
            s.workspace_bytes = bytes;
        }
        if (key.dropout > 0.0f) {
            // from pageable memory, so the two values are staged before this returns and the local may go
            const int64_t philox[2] = {(int64_t)seed, (int64_t)offset};
            check(cudaMemcpyAsync(s.philox, philox, sizeof(philox), cudaMemcpyHostToDevice, stream),
                  "copying the dropout seed and offset");
            pack[SEED] = s.philox;
            pack[OFFSET] = s.philox + 1;
        }
        check(cudnnSetStream(s.handle, stream), "cudnnSetStream");
        check(graph.execute(s.handle, pack, s.workspace), "execute");
    } catch (const std::exception& e) {
        throw std::runtime_error(describe(key) + ": " + e.what());
    }
}

// A bf16 tensor's address `elements` in from `base`, as the variant pack's untyped pointer.
void* at(const void* base, size_t elements) {
    return const_cast<char*>(static_cast<const char*>(base)) + elements * 2;
}

}  // namespace

void cudnn_attention_forward(void* out, float* stats, const void* qkv, float dropout, uint64_t seed, uint64_t offset,
                             int B, int T, int C, int NH, cudaStream_t stream) {
    run({B, T, C, NH, dropout, false},
        {{Q, at(qkv, 0)}, {K, at(qkv, C)}, {V, at(qkv, 2 * (size_t)C)}, {O, out}, {STATS, stats}}, seed, offset, stream);
}

void cudnn_attention_backward(void* dqkv, const void* dout, const void* out, const void* qkv, const float* stats,
                              float dropout, uint64_t seed, uint64_t offset, int B, int T, int C, int NH,
                              cudaStream_t stream) {
    run({B, T, C, NH, dropout, true},
        {{Q, at(qkv, 0)}, {K, at(qkv, C)}, {V, at(qkv, 2 * (size_t)C)}, {O, at(out, 0)}, {DOUT, at(dout, 0)},
         {STATS, const_cast<float*>(stats)}, {DQ, at(dqkv, 0)}, {DK, at(dqkv, C)}, {DV, at(dqkv, 2 * (size_t)C)}},
        seed, offset, stream);
}

}  // namespace lnfree::kernels
