// safetensors files: 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}},
// then raw little-endian tensor bytes. The reader maps the file and checks every offset, size and dtype against
// it before use; tensors must not overlap. The writer writes atomically (lnfree/file_io.h).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lnfree/file_io.h"

namespace lnfree {

struct SafetensorsTensor {
    std::string dtype;           // "F32", "F16", "BF16", "F64", "I32", "I64", ...
    std::vector<size_t> shape;
    size_t begin = 0, end = 0;   // byte range within the data section
    size_t numel() const;
};

class SafetensorsFile {
   public:
    explicit SafetensorsFile(const std::string& path);  // throws lnfree::Error naming the file and the problem
    // The same checks on bytes in memory (the caller keeps them alive); `name` labels errors.
    SafetensorsFile(const std::string& name, const unsigned char* bytes, size_t size);

    const std::string& path() const { return name_; }
    bool has(const std::string& name) const { return tensors_.count(name) > 0; }
    const SafetensorsTensor& info(const std::string& name) const;  // throws when missing
    const std::map<std::string, SafetensorsTensor>& tensors() const { return tensors_; }
    std::string metadata(const std::string& key) const;  // "" when absent

    // Values of a floating-point tensor (F32, F16, BF16 or F64), converted.
    std::vector<float> floats(const std::string& name) const;
    // Elements [first, first + count) of an F32 tensor, read from the mapped file alone (a process's shard).
    std::vector<float> floats(const std::string& name, size_t first, size_t count) const;
    std::vector<double> doubles(const std::string& name) const;
    std::vector<int> ints(const std::string& name) const;  // I32 or I64

   private:
    void parse(const unsigned char* bytes, size_t size);
    std::unique_ptr<MappedFile> file_;
    std::string name_;
    const unsigned char* data_ = nullptr;  // start of the data section
    std::map<std::string, SafetensorsTensor> tensors_;
    std::map<std::string, std::string> metadata_;
};

// A tensor to write: bytes owned by the caller, alive until write_safetensors returns.
struct SafetensorsView {
    std::string name, dtype;
    std::vector<size_t> shape;
    const void* data = nullptr;
    size_t nbytes = 0;
};

SafetensorsView f32_view(const std::string& name, const std::vector<size_t>& shape, const float* data);
// Returns the written file's size and XXH64 (what a checkpoint records of it).
FileDigest write_safetensors(const std::string& path, const std::vector<SafetensorsView>& tensors,
                             const std::map<std::string, std::string>& metadata = {});

size_t safetensors_dtype_size(const std::string& dtype);  // 0 for an unknown dtype
float half_to_float(uint16_t h);
float bf16_to_float(uint16_t h);
uint16_t float_to_half(float f);  // round to nearest even
uint16_t float_to_bf16(float f);  // round to nearest even

}  // namespace lnfree
