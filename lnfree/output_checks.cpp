#include "lnfree/output_checks.h"

#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "lnfree/error.h"
#include "lnfree/file_io.h"

namespace lnfree {
namespace {

// state.json grows with the depth (two sigma arrays of 2L+1 numbers): about 10 KB for GPT-2 XL; the
// safetensors header is under 1 KB and llm.c's is 1 KB
constexpr size_t kSmallFilesAllowance = 1 << 20;

std::string readable_bytes(double bytes) {
    char text[32];
    if (bytes >= 1e9) std::snprintf(text, sizeof text, "%.2f GB", bytes / 1e9);
    else std::snprintf(text, sizeof text, "%.2f MB", bytes / 1e6);
    return text;
}

// The probe is a real write, not access(2): it meets what the checkpoint will meet (a read-only mount, a full
// quota, a file-size limit of zero, permissions).
void probe_write(const std::string& out) {
    const std::string probe = out + "/.lnfree_write_probe_" + std::to_string(::getpid());
    const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        const int err = errno;  // before any allocation can change it
        throw Error(file_error(out, "cannot create a file in the output directory", err));
    }
    const char byte = 0;
    const bool wrote = ::write(fd, &byte, 1) == 1;
    const int err = errno;
    ::close(fd);
    ::unlink(probe.c_str());
    if (!wrote) throw Error(file_error(out, "cannot write a file in the output directory", err));
}

}  // namespace

size_t checkpoint_bytes(size_t num_params, size_t compute_element_size) {
    const size_t state_safetensors = num_params * (3 * sizeof(float) + compute_element_size);
    const size_t model_bin = num_params * sizeof(float);
    return state_safetensors + model_bin + kSmallFilesAllowance;
}

void check_output_directory(const std::string& out, size_t bytes_needed) {
    make_directories(out);
    probe_write(out);
    struct statvfs fs;
    if (::statvfs(out.c_str(), &fs) != 0) {
        const int err = errno;
        throw Error(file_error(out, "cannot read the filesystem's free space", err));
    }
    const double free_bytes = (double)fs.f_bavail * (double)fs.f_frsize;
    if (free_bytes < (double)bytes_needed)
        throw Error(out + ": " + readable_bytes(free_bytes) + " free on its filesystem, a checkpoint needs " +
                    readable_bytes((double)bytes_needed) + "; free space there or give another output directory");
}

}  // namespace lnfree
