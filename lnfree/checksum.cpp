#include "lnfree/checksum.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <unistd.h>

#include "lnfree/error.h"

namespace lnfree {
namespace {

static_assert(std::endian::native == std::endian::little, "XXH64 reads its input as little-endian words");

// the five primes of the XXH64 specification
constexpr uint64_t kP1 = 0x9E3779B185EBCA87ull, kP2 = 0xC2B2AE3D27D4EB4Full, kP3 = 0x165667B19E3779F9ull,
                   kP4 = 0x85EBCA77C2B2AE63ull, kP5 = 0x27D4EB2F165667C5ull;

uint64_t read64(const unsigned char* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

uint32_t read32(const unsigned char* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

uint64_t round(uint64_t acc, uint64_t lane) { return std::rotl(acc + lane * kP2, 31) * kP1; }

uint64_t merge(uint64_t h, uint64_t acc) { return (h ^ round(0, acc)) * kP1 + kP4; }

}  // namespace

Xxh64::Xxh64(uint64_t seed) : seed_(seed), acc_{seed + kP1 + kP2, seed + kP2, seed, seed - kP1} {}

void Xxh64::consume_stripe(const unsigned char* p) {
    for (int i = 0; i < 4; i++) acc_[i] = round(acc_[i], read64(p + 8 * i));
}

void Xxh64::update(const void* bytes, size_t n) {
    if (n == 0) return;  // bytes may then be null (an empty vector's data()), which memcpy must not be given
    const unsigned char* p = (const unsigned char*)bytes;
    total_ += n;
    if (buffered_ > 0) {  // complete the stripe left over from the last call first
        const size_t take = std::min(n, sizeof buffer_ - buffered_);
        std::memcpy(buffer_ + buffered_, p, take);
        buffered_ += take;
        p += take;
        n -= take;
        if (buffered_ < sizeof buffer_) return;
        consume_stripe(buffer_);
        buffered_ = 0;
    }
    for (; n >= 32; p += 32, n -= 32) consume_stripe(p);
    std::memcpy(buffer_, p, n);
    buffered_ = n;
}

uint64_t Xxh64::digest() const {
    uint64_t h;
    if (total_ >= 32) {
        h = std::rotl(acc_[0], 1) + std::rotl(acc_[1], 7) + std::rotl(acc_[2], 12) + std::rotl(acc_[3], 18);
        for (uint64_t a : acc_) h = merge(h, a);
    } else {
        h = seed_ + kP5;
    }
    h += total_;
    const unsigned char* p = buffer_;
    size_t n = buffered_;
    for (; n >= 8; p += 8, n -= 8) h = std::rotl(h ^ round(0, read64(p)), 27) * kP1 + kP4;
    if (n >= 4) {
        h = std::rotl(h ^ (uint64_t)read32(p) * kP1, 23) * kP2 + kP3;
        p += 4;
        n -= 4;
    }
    for (; n > 0; p++, n--) h = std::rotl(h ^ *p * kP5, 11) * kP1;
    h ^= h >> 33;  // the avalanche
    h *= kP2;
    h ^= h >> 29;
    h *= kP3;
    return h ^ (h >> 32);
}

uint64_t xxh64(const void* bytes, size_t n, uint64_t seed) {
    Xxh64 h(seed);
    h.update(bytes, n);
    return h.digest();
}

std::string to_hex(uint64_t value) {
    char text[17];
    std::snprintf(text, sizeof text, "%016llx", (unsigned long long)value);
    return text;
}

FileDigest file_digest(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) {
        const int err = errno;  // before any allocation can change it
        throw Error(path + ": cannot open (" + std::strerror(err) + "); check the path");
    }
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);  // a hint for readahead; its failure changes nothing
    constexpr size_t kChunk = 8 << 20;  // large reads keep a disk busy; hashing a chunk takes under a millisecond
    std::unique_ptr<unsigned char[]> chunk(new unsigned char[kChunk]);
    Xxh64 h;
    FileDigest d;
    for (;;) {
        const ssize_t got = ::read(fd, chunk.get(), kChunk);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            const int err = errno;
            ::close(fd);
            throw Error(path + ": read failed (" + std::strerror(err) + "); check the disk");
        }
        if (got == 0) break;
        h.update(chunk.get(), (size_t)got);
        d.bytes += (uint64_t)got;
    }
    ::close(fd);
    d.xxh64 = h.digest();
    return d;
}

}  // namespace lnfree
