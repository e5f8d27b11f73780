// XXH64, the checksum of checkpoint files (lnfree/checkpoint_integrity.h). Why XXH64: it is fully specified
// (Yann Collet's xxHash spec, with reference test vectors), runs at about 10 GB/s in plain portable C++ on one
// core, so hashing a multi-GB checkpoint costs less than reading it from disk, and needs no library nor CPU
// feature (CRC-32C is that fast only with SSE4.2 or ARMv8 CRC instructions; SHA-256 is several times slower).
// It guards against damage (bit rot, truncation, a partial copy), not against deliberate tampering.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace lnfree {

// Streaming XXH64 (seed 0 unless given): update() with the bytes in any pieces, digest() at any time.
class Xxh64 {
   public:
    explicit Xxh64(uint64_t seed = 0);
    void update(const void* bytes, size_t n);
    uint64_t digest() const;

   private:
    void consume_stripe(const unsigned char* p);
    uint64_t seed_, acc_[4], total_ = 0;
    unsigned char buffer_[32];
    size_t buffered_ = 0;
};

uint64_t xxh64(const void* bytes, size_t n, uint64_t seed = 0);
std::string to_hex(uint64_t value);  // 16 lowercase hex digits, as xxhsum prints it

// A file's size and the XXH64 of its bytes.
struct FileDigest {
    uint64_t bytes = 0, xxh64 = 0;
    bool operator==(const FileDigest&) const = default;
};

// Reads the whole file sequentially (large reads, no mapping); throws lnfree::Error naming it.
FileDigest file_digest(const std::string& path);

}  // namespace lnfree
