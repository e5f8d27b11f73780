#include "lnfree/safetensors.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>

#include "lnfree/error.h"

namespace lnfree {

size_t safetensors_dtype_size(const std::string& dtype) {
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

float bf16_to_float(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

uint16_t float_to_bf16(float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    if (std::isnan(f)) return (uint16_t)((bits >> 16) | 0x40);
    bits += 0x7fff + ((bits >> 16) & 1);
    return (uint16_t)(bits >> 16);
}

uint16_t float_to_half(float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000);
    uint32_t abs = bits & 0x7fffffff;
    if (abs >= 0x7f800000) return sign | (abs > 0x7f800000 ? 0x7e00 : 0x7c00);  // NaN, inf
    if (abs >= 0x477ff000) return sign | 0x7c00;                                // overflows to inf
    if (abs < 0x38800000) {                                                     // half subnormal or zero
        float a;
        std::memcpy(&a, &abs, 4);
        return sign | (uint16_t)std::nearbyint(a * 16777216.0f);                // units of 2^-24
    }
    uint32_t rounded = abs + 0xfff + ((abs >> 13) & 1);
    return sign | (uint16_t)((rounded - 0x38000000) >> 13);
}

size_t SafetensorsTensor::numel() const {
    size_t n = 1;
    for (size_t d : shape) n *= d;
    return n;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(std::make_unique<MappedFile>(path)), name_(path) {
    parse(file_->data(), file_->size());
}

SafetensorsFile::SafetensorsFile(const std::string& name, const unsigned char* bytes, size_t size) : name_(name) {
    parse(bytes, size);
}

void SafetensorsFile::parse(const unsigned char* bytes, size_t file_size) {
    auto fail = [&](const std::string& what) { throw Error(name_ + ": " + what); };
    if (file_size < 8) fail("too short for a safetensors header (" + std::to_string(file_size) + " bytes); the file is truncated");
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--) header_len = (header_len << 8) | bytes[i];
    if (header_len > file_size - 8 || header_len > (100u << 20))
        fail("header length " + std::to_string(header_len) + " exceeds the file or 100 MiB; the file is truncated or not safetensors");
    const std::string header((const char*)bytes + 8, header_len);
    data_ = bytes + 8 + header_len;
    const size_t data_size = file_size - 8 - header_len;

    nlohmann::json j = nlohmann::json::parse(header, nullptr, false);
    if (j.is_discarded() || !j.is_object()) fail("the header is not a JSON object; the file is corrupt or not safetensors");
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
        const size_t elem = safetensors_dtype_size(t.dtype);
        if (elem == 0) fail("tensor '" + name + "' has unknown dtype '" + t.dtype + "'");
        size_t numel = 1;
        for (auto& d : entry["shape"]) {
            if (!d.is_number_unsigned()) fail("tensor '" + name + "' has a dimension that is not a non-negative integer");
            size_t dim = d.get<size_t>();
            if (dim != 0 && numel > std::numeric_limits<size_t>::max() / elem / dim) fail("tensor '" + name + "' is impossibly large");
            numel *= dim;
            t.shape.push_back(dim);
        }
        for (auto& o : entry["data_offsets"])
            if (!o.is_number_unsigned()) fail("tensor '" + name + "' has a data offset that is not a non-negative integer");
        t.begin = entry["data_offsets"][0].get<size_t>();
        t.end = entry["data_offsets"][1].get<size_t>();
        if (t.begin > t.end || t.end > data_size)
            fail("tensor '" + name + "' has data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
                 ") outside the " + std::to_string(data_size) + "-byte data section; the file is truncated or corrupt");
        if (t.end - t.begin != numel * elem)
            fail("tensor '" + name + "' has " + std::to_string(t.end - t.begin) + " bytes, but its shape and dtype need " +
                 std::to_string(numel * elem));
        tensors_[name] = t;
    }
    // no two tensors may share bytes
    std::vector<std::pair<size_t, const std::string*>> starts;
    for (auto& [name, t] : tensors_)
        if (t.end > t.begin) starts.push_back({t.begin, &name});
    std::sort(starts.begin(), starts.end());
    for (size_t i = 1; i < starts.size(); i++)
        if (tensors_[*starts[i - 1].second].end > starts[i].first)
            fail("tensors '" + *starts[i - 1].second + "' and '" + *starts[i].second + "' overlap; the file is corrupt");
}

const SafetensorsTensor& SafetensorsFile::info(const std::string& name) const {
    auto it = tensors_.find(name);
    if (it == tensors_.end()) throw Error(path() + ": tensor '" + name + "' is missing");
    return it->second;
}

std::string SafetensorsFile::metadata(const std::string& key) const {
    auto it = metadata_.find(key);
    return it == metadata_.end() ? std::string() : it->second;
}

std::vector<double> SafetensorsFile::doubles(const std::string& name) const {
    const SafetensorsTensor& t = info(name);
    if (t.dtype != "F32" && t.dtype != "F64" && t.dtype != "F16" && t.dtype != "BF16")
        throw Error(path() + ": tensor '" + name + "' has dtype " + t.dtype + "; a floating-point tensor was expected");
    const unsigned char* p = data_ + t.begin;
    std::vector<double> out(t.numel());
    for (size_t i = 0; i < out.size(); i++) {
        if (t.dtype == "F32") { float f; std::memcpy(&f, p + 4 * i, 4); out[i] = f; }
        else if (t.dtype == "F64") { std::memcpy(&out[i], p + 8 * i, 8); }
        else if (t.dtype == "F16") { uint16_t h; std::memcpy(&h, p + 2 * i, 2); out[i] = half_to_float(h); }
        else { uint16_t h; std::memcpy(&h, p + 2 * i, 2); out[i] = bf16_to_float(h); }
    }
    return out;
}

std::vector<float> SafetensorsFile::floats(const std::string& name) const {
    const SafetensorsTensor& t = info(name);
    if (t.dtype == "F32") {  // the common case, without the double detour
        std::vector<float> out(t.numel());
        if (!out.empty()) std::memcpy(out.data(), data_ + t.begin, out.size() * 4);
        return out;
    }
    std::vector<double> d = doubles(name);
    return std::vector<float>(d.begin(), d.end());
}

std::vector<float> SafetensorsFile::floats(const std::string& name, size_t first, size_t count) const {
    const SafetensorsTensor& t = info(name);
    if (t.dtype != "F32") throw Error(path() + ": tensor '" + name + "' has dtype " + t.dtype + "; F32 was expected");
    if (first > t.numel() || count > t.numel() - first)
        throw Error(path() + ": tensor '" + name + "' has " + std::to_string(t.numel()) + " elements, fewer than " +
                    std::to_string(first + count) + "; the file is for another model");
    std::vector<float> out(count);
    if (count) std::memcpy(out.data(), data_ + t.begin + first * 4, count * 4);
    return out;
}

std::vector<int> SafetensorsFile::ints(const std::string& name) const {
    const SafetensorsTensor& t = info(name);
    if (t.dtype != "I32" && t.dtype != "I64")
        throw Error(path() + ": tensor '" + name + "' has dtype " + t.dtype + "; an integer tensor was expected");
    const unsigned char* p = data_ + t.begin;
    std::vector<int> out(t.numel());
    for (size_t i = 0; i < out.size(); i++) {
        if (t.dtype == "I32") { int32_t v; std::memcpy(&v, p + 4 * i, 4); out[i] = v; }
        else if (t.dtype == "I64") {
            int64_t v; std::memcpy(&v, p + 8 * i, 8);
            if (v < INT32_MIN || v > INT32_MAX) throw Error(path() + ": tensor '" + name + "' holds a value outside int32");
            out[i] = (int)v;
        }
    }
    return out;
}

SafetensorsView f32_view(const std::string& name, const std::vector<size_t>& shape, const float* data) {
    size_t n = 1;
    for (size_t d : shape) n *= d;
    return SafetensorsView{name, "F32", shape, data, n * 4};
}

FileDigest write_safetensors(const std::string& path, const std::vector<SafetensorsView>& tensors,
                             const std::map<std::string, std::string>& metadata) {
    nlohmann::ordered_json header;
    if (!metadata.empty()) header["__metadata__"] = metadata;
    size_t offset = 0;
    for (const SafetensorsView& t : tensors) {
        header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.nbytes}}};
        offset += t.nbytes;
    }
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data section 8-byte aligned
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)text.size() >> (8 * i));
    AtomicFile out(path);
    out.write(len, 8);
    out.write(text.data(), text.size());
    for (const SafetensorsView& t : tensors) out.write(t.data, t.nbytes);
    out.commit();
    return out.digest();
}

}  // namespace lnfree
