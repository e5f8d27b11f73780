// Before a long run starts: can its output directory take what the run will write? A run that would fail at its
// first checkpoint, hours in, fails in its first second instead, with one line.
#pragma once
#include <cstddef>
#include <string>

namespace lnfree {

// The bytes one checkpoint_<step>/ takes (lnfree/train_checkpoint.cuh, save_checkpoint): state.safetensors
// (master weights, AdamW m and v in float32, the compute copy of compute_element_size bytes per parameter),
// model.bin (llm.c float32) and state.json, with an allowance for headers. num_params: the model's parameters as
// the trainer holds them (the vocabulary padded). A save needs this much free space: the checkpoints it replaces
// are removed only once the new one is complete.
size_t checkpoint_bytes(size_t num_params, size_t compute_element_size);

// Creates `out` if needed, writes and removes a probe file in it, and checks its filesystem's free space against
// bytes_needed; throws lnfree::Error with one line naming `out`, what is wrong and what to do. Free space is
// statvfs's f_bavail (what an unprivileged user may fill, the conservative figure). As root, permissions never
// stop the probe: only the filesystem can.
void check_output_directory(const std::string& out, size_t bytes_needed);

}  // namespace lnfree
