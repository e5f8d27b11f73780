// Reader for safetensors files (8-byte little-endian header length, a JSON header, then raw little-endian tensor
// bytes). Every offset and size is checked against the file before it is used.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lnfree {

struct SafetensorsTensor {
    std::string dtype;           // "F32", "F16", "BF16", "F64", "I32", "I64", ...
    std::vector<size_t> shape;
    size_t begin = 0, end = 0;   // byte range within the data section
    size_t numel() const;
};

class SafetensorsFile {
   public:
    explicit SafetensorsFile(const std::string& path);  // throws lnfree::Error

    const std::string& path() const { return path_; }
    bool has(const std::string& name) const { return tensors_.count(name) > 0; }
    const SafetensorsTensor& info(const std::string& name) const;
    const std::map<std::string, SafetensorsTensor>& tensors() const { return tensors_; }
    // The __metadata__ string `key` (empty when absent).
    std::string metadata(const std::string& key) const;

    // Values of a floating-point tensor (F32, F16, BF16 or F64) as float or double.
    std::vector<float> floats(const std::string& name) const;
    std::vector<double> doubles(const std::string& name) const;
    std::vector<int> ints(const std::string& name) const;  // I32 or I64 tensor

   private:
    std::string path_;
    std::map<std::string, SafetensorsTensor> tensors_;
    std::map<std::string, std::string> metadata_;
    std::vector<unsigned char> data_;  // the data section
};

}  // namespace lnfree
