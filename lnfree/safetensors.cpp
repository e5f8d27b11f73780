#include "lnfree/safetensors.h"

#include <cstring>
#include <fstream>
#include <limits>

#include "lnfree/error.h"

namespace lnfree {
namespace {

size_t dtype_size(const std::string& dtype) {
    if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
    if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
    if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
    if (dtype == "I8" || dtype == "U8" || dtype == "BOOL") return 1;
    return 0;
}

float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {  // subnormal: renormalise
            exp = 127 - 15 + 1;
            while (!(mant & 0x400)) { mant <<= 1; exp--; }
            bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000 | (mant << 13);
    } else {
        bits = sign | ((exp - 15 + 127) << 23) | (mant << 13);
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

}  // namespace

size_t SafetensorsTensor::numel() const {
    size_t n = 1;
    for (size_t d : shape) n *= d;
    return n;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
    auto fail = [&](const std::string& what) { throw Error(path + ": " + what); };
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in) fail("cannot open the file; check the path");
    const uint64_t file_size = (uint64_t)in.tellg();
    in.seekg(0);
    if (file_size < 8) fail("too short for a safetensors header (" + std::to_string(file_size) + " bytes); the file is truncated");
    unsigned char len_bytes[8];
    in.read((char*)len_bytes, 8);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--) header_len = (header_len << 8) | len_bytes[i];
    if (header_len > file_size - 8 || header_len > (100u << 20))
        fail("header length " + std::to_string(header_len) + " exceeds the file or 100 MiB; the file is truncated or not safetensors");
    std::string header(header_len, '\0');
    in.read(header.data(), (std::streamsize)header_len);

    nlohmann::json j = nlohmann::json::parse(header, nullptr, false);
    if (j.is_discarded() || !j.is_object()) fail("header is not a JSON object; the file is corrupt or not safetensors");
    const uint64_t data_size = file_size - 8 - header_len;
    for (auto& [name, entry] : j.items()) {
        if (name == "__metadata__") {
            if (!entry.is_object()) fail("__metadata__ is not an object");
            for (auto& [k, v] : entry.items())
                if (v.is_string()) metadata_[k] = v.get<std::string>();
            continue;
        }
        if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") || !entry.contains("data_offsets") ||
            !entry["dtype"].is_string() || !entry["shape"].is_array() || !entry["data_offsets"].is_array() ||
            entry["data_offsets"].size() != 2)
            fail("tensor '" + name + "' lacks a valid dtype, shape or data_offsets");
        SafetensorsTensor t;
        t.dtype = entry["dtype"].get<std::string>();
        size_t elem = dtype_size(t.dtype);
        if (elem == 0) fail("tensor '" + name + "' has unknown dtype '" + t.dtype + "'");
        size_t numel = 1;
        for (auto& d : entry["shape"]) {
            if (!d.is_number_unsigned()) fail("tensor '" + name + "' has a non-integer dimension");
            size_t dim = d.get<size_t>();
            if (dim != 0 && numel > std::numeric_limits<size_t>::max() / dim) fail("tensor '" + name + "' is too large");
            numel *= dim;
            t.shape.push_back(dim);
        }
        for (auto& o : entry["data_offsets"])
            if (!o.is_number_unsigned()) fail("tensor '" + name + "' has a non-integer data offset");
        t.begin = entry["data_offsets"][0].get<size_t>();
        t.end = entry["data_offsets"][1].get<size_t>();
        if (t.begin > t.end || t.end > data_size)
            fail("tensor '" + name + "' has data_offsets outside the file; the file is truncated or corrupt");
        if (numel > (t.end - t.begin) / elem || t.end - t.begin != numel * elem)
            fail("tensor '" + name + "' has " + std::to_string(t.end - t.begin) + " bytes, its shape and dtype need " +
                 std::to_string(numel * elem));
        tensors_[name] = t;
    }
    data_.resize(data_size);
    in.read((char*)data_.data(), (std::streamsize)data_size);
    if ((uint64_t)in.gcount() != data_size) fail("could not read the tensor data; the file is truncated");
}

const SafetensorsTensor& SafetensorsFile::info(const std::string& name) const {
    auto it = tensors_.find(name);
    if (it == tensors_.end()) throw Error(path_ + ": tensor '" + name + "' is missing");
    return it->second;
}

std::string SafetensorsFile::metadata(const std::string& key) const {
    auto it = metadata_.find(key);
    return it == metadata_.end() ? std::string() : it->second;
}

std::vector<double> SafetensorsFile::doubles(const std::string& name) const {
    const SafetensorsTensor& t = info(name);
    const unsigned char* p = data_.data() + t.begin;
    std::vector<double> out(t.numel());
    for (size_t i = 0; i < out.size(); i++) {
        if (t.dtype == "F32") { float f; std::memcpy(&f, p + 4 * i, 4); out[i] = f; }
        else if (t.dtype == "F64") { std::memcpy(&out[i], p + 8 * i, 8); }
        else if (t.dtype == "F16") { uint16_t h; std::memcpy(&h, p + 2 * i, 2); out[i] = half_to_float(h); }
        else if (t.dtype == "BF16") {
            uint16_t h; std::memcpy(&h, p + 2 * i, 2);
            uint32_t bits = (uint32_t)h << 16; float f; std::memcpy(&f, &bits, 4); out[i] = f;
        } else throw Error(path_ + ": tensor '" + name + "' has dtype " + t.dtype + ", a floating-point tensor was expected");
    }
    return out;
}

std::vector<float> SafetensorsFile::floats(const std::string& name) const {
    std::vector<double> d = doubles(name);
    return std::vector<float>(d.begin(), d.end());
}

std::vector<int> SafetensorsFile::ints(const std::string& name) const {
    const SafetensorsTensor& t = info(name);
    const unsigned char* p = data_.data() + t.begin;
    std::vector<int> out(t.numel());
    for (size_t i = 0; i < out.size(); i++) {
        if (t.dtype == "I32") { int32_t v; std::memcpy(&v, p + 4 * i, 4); out[i] = v; }
        else if (t.dtype == "I64") {
            int64_t v; std::memcpy(&v, p + 8 * i, 8);
            if (v < INT32_MIN || v > INT32_MAX) throw Error(path_ + ": tensor '" + name + "' holds a value outside int32");
            out[i] = (int)v;
        } else throw Error(path_ + ": tensor '" + name + "' has dtype " + t.dtype + ", an integer tensor was expected");
    }
    return out;
}

}  // namespace lnfree
