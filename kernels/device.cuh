// The device layer: memory, copies, synchronisation and streams, with a CUDA implementation and a CPU one for the
// emulated build (where "device" memory is host memory and every launch has already finished when it returns).
// The trainer and the kernel tests use only these, so the same source runs on a GPU and on the CPU.
#pragma once
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/common.cuh"

namespace lnfree::device {

#if defined(__CUDACC__)
inline void check(cudaError_t e, const char* what) {
    if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e));
}
inline void* allocate(size_t bytes) {
    void* p = nullptr;
    if (bytes) check(cudaMalloc(&p, bytes), "cudaMalloc");
    return p;
}
inline void release(void* p) { if (p) cudaFree(p); }
inline void to_device(void* dst, const void* src, size_t bytes) { check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "copy to device"); }
inline void to_host(void* dst, const void* src, size_t bytes) { check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "copy to host"); }
inline void copy(void* dst, const void* src, size_t bytes, cudaStream_t s) { check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, s), "device copy"); }
inline void zero(void* p, size_t bytes, cudaStream_t s) { check(cudaMemsetAsync(p, 0, bytes, s), "cudaMemsetAsync"); }
inline void synchronize(cudaStream_t s) { check(cudaStreamSynchronize(s), "cudaStreamSynchronize"); }
// From page-locked host memory (PinnedBuffer), ordered on the stream; the host goes on at once.
inline void to_device_async(void* dst, const void* src, size_t bytes, cudaStream_t s) {
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s), "async copy to device");
}
inline void* allocate_pinned(size_t bytes) {
    void* p = nullptr;
    if (bytes) check(cudaMallocHost(&p, bytes), "cudaMallocHost");
    return p;
}
inline void release_pinned(void* p) { if (p) cudaFreeHost(p); }

// A point in a stream the host can wait for: that the copies out of a staging buffer are done before refilling it.
class Event {
   public:
    Event() { check(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming), "cudaEventCreate"); }
    ~Event() { cudaEventDestroy(event_); }
    Event(const Event&) = delete;
    Event& operator=(const Event&) = delete;
    void record(cudaStream_t s) { check(cudaEventRecord(event_, s), "cudaEventRecord"); }
    void synchronize() { check(cudaEventSynchronize(event_), "cudaEventSynchronize"); }

   private:
    cudaEvent_t event_;
};
#else
inline void* allocate(size_t bytes) {
    void* p = bytes ? std::aligned_alloc(256, (bytes + 255) / 256 * 256) : nullptr;
    if (bytes && !p) throw std::bad_alloc();
    return p;
}
inline void release(void* p) { std::free(p); }
inline void to_device(void* dst, const void* src, size_t bytes) { if (bytes) std::memcpy(dst, src, bytes); }
inline void to_host(void* dst, const void* src, size_t bytes) { if (bytes) std::memcpy(dst, src, bytes); }
inline void copy(void* dst, const void* src, size_t bytes, cudaStream_t) { if (bytes) std::memmove(dst, src, bytes); }
inline void zero(void* p, size_t bytes, cudaStream_t) { if (bytes) std::memset(p, 0, bytes); }
inline void synchronize(cudaStream_t) {}
inline void to_device_async(void* dst, const void* src, size_t bytes, cudaStream_t) { if (bytes) std::memcpy(dst, src, bytes); }
inline void* allocate_pinned(size_t bytes) { return allocate(bytes); }
inline void release_pinned(void* p) { release(p); }
class Event {  // every launch and copy has finished when it returns: nothing to wait for
   public:
    void record(cudaStream_t) {}
    void synchronize() {}
};
#endif

// Bytes this process holds in live Buffers: the device memory it allocated itself (the trainer reports it; the
// device is process-wide, and so is this count).
inline std::atomic<size_t>& buffer_bytes() {
    static std::atomic<size_t> bytes{0};
    return bytes;
}

// An owning array in device memory.
template <typename T>
class Buffer {
   public:
    Buffer() = default;
    explicit Buffer(size_t n) : n_(n), data_(static_cast<T*>(allocate(n * sizeof(T)))) { buffer_bytes() += n * sizeof(T); }
    explicit Buffer(const std::vector<T>& host) : Buffer(host.size()) { to_device(data_, host.data(), n_ * sizeof(T)); }
    ~Buffer() {
        release(data_);
        buffer_bytes() -= n_ * sizeof(T);
    }
    Buffer(Buffer&& o) noexcept : n_(o.n_), data_(o.data_) { o.n_ = 0; o.data_ = nullptr; }
    Buffer& operator=(Buffer&& o) noexcept { std::swap(n_, o.n_); std::swap(data_, o.data_); return *this; }
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;

    T* data() { return data_; }
    const T* data() const { return data_; }
    size_t size() const { return n_; }
    std::vector<T> to_host() const {
        std::vector<T> out(n_);
        device::to_host(out.data(), data_, n_ * sizeof(T));
        return out;
    }

   private:
    size_t n_ = 0;
    T* data_ = nullptr;
};

// An owning array of page-locked host memory, for asynchronous uploads (plain host memory in the CPU build).
template <typename T>
class PinnedBuffer {
   public:
    PinnedBuffer() = default;
    explicit PinnedBuffer(size_t n) : n_(n), data_(static_cast<T*>(allocate_pinned(n * sizeof(T)))) {}
    ~PinnedBuffer() { release_pinned(data_); }
    PinnedBuffer(PinnedBuffer&& o) noexcept : n_(o.n_), data_(o.data_) { o.n_ = 0; o.data_ = nullptr; }
    PinnedBuffer& operator=(PinnedBuffer&& o) noexcept { std::swap(n_, o.n_); std::swap(data_, o.data_); return *this; }
    PinnedBuffer(const PinnedBuffer&) = delete;
    PinnedBuffer& operator=(const PinnedBuffer&) = delete;
    T* data() { return data_; }
    size_t size() const { return n_; }

   private:
    size_t n_ = 0;
    T* data_ = nullptr;
};

}  // namespace lnfree::device
