// Shared by the fuzz targets whose reader takes a path: each input is written to a temporary file first, in
// $LNFREE_FUZZ_TMP, else /dev/shm (memory) when it is writable, else /tmp. Names carry the process id, so two
// runs never share a file; writing one costs tens of microseconds.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <fcntl.h>
#include <string>
#include <unistd.h>

#include "test/fuzz/fuzz_check.h"

namespace fuzz {

// <dir>/lnfree_fuzz_<name>_<pid>
inline std::string tmp_path(const std::string& name) {
    const char* dir = std::getenv("LNFREE_FUZZ_TMP");
    if (!dir) dir = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    return std::string(dir) + "/lnfree_fuzz_" + name + "_" + std::to_string(::getpid());
}

// The one file a target writes each input to, tmp_path(name) + ext, removed when the fuzzer exits; the first
// call (name and ext fixed then) makes it.
inline const std::string& input_file(const std::string& name, const std::string& ext) {
    static const std::string path = tmp_path(name) + ext;
    static const int removed_at_exit = std::atexit([] { ::unlink(path.c_str()); });
    (void)removed_at_exit;
    return path;
}

// Replaces the file's contents with the bytes (plain writes: no fsync, no rename, unlike lnfree::AtomicFile).
inline void write_file(const std::string& path, const void* bytes, size_t size) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    FUZZ_CHECK(fd >= 0);
    const char* p = (const char*)bytes;
    while (size > 0) {
        ssize_t w = ::write(fd, p, size);
        FUZZ_CHECK(w > 0);
        p += w;
        size -= (size_t)w;
    }
    ::close(fd);
}

}  // namespace fuzz
