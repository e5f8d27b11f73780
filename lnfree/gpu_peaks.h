// What a GPU can do at most, for MFU (model FLOP utilisation): dense bf16 tensor-core and fp32 (non-tensor) peaks
// at boost clock from NVIDIA's datasheets, matched by compute capability, SM count and, where one SM count has two
// parts, a substring of the name; and the model FLOPs of a training token. Sustained clocks under load can be lower
// (power limit), so the peaks are upper bounds and MFU a lower one. Shared by the trainer and the kernel lab.
#pragma once
#include <cstddef>
#include <string>

#include "lnfree/model.h"

namespace lnfree {

struct PeakEntry {
    int major, minor, sms;
    const char* name_has;
    double bf16_tflops, fp32_tflops;
    const char* source;
};
inline constexpr PeakEntry kPeaks[] = {
    {8, 0, 108, "", 312.0, 19.5, "A100 SXM/PCIe datasheet: 312 bf16 dense, 19.5 fp32"},
    {8, 0, 56, "", 165.0, 10.3, "A30 datasheet: 165 bf16 dense, 10.3 fp32"},
    {9, 0, 132, "NVL", 835.0, 60.0, "H100 NVL / H200 NVL datasheet: 835 bf16 dense, 60 fp32"},
    {9, 0, 132, "", 989.0, 67.0, "H100 SXM5 / H200 SXM datasheet: 989 bf16 dense, 67 fp32"},
    {9, 0, 114, "", 756.0, 51.0, "H100 PCIe datasheet: 756 bf16 dense, 51 fp32"},
};

// The table's entry for a GPU, or nullptr.
inline const PeakEntry* find_peak(int major, int minor, int sms, const std::string& name) {
    for (const PeakEntry& e : kPeaks)
        if (e.major == major && e.minor == minor && e.sms == sms && name.find(e.name_has) != std::string::npos) return &e;
    return nullptr;
}

// Model FLOPs of one training token (forward and backward) at sequence length T, as llm.c counts them: 6 per
// parameter, and 6 L C T for the causal attention's two products (the FLOPs a fused kernel executes; recomputation
// is not counted).
inline double training_flops_per_token(const GPT2Config& c, int T) {
    double n = 0;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) n += (double)param_numel(c, i);
    return 6.0 * n + 6.0 * c.L * c.C * (double)T;
}

}  // namespace lnfree
