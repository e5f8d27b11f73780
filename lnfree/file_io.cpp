#include "lnfree/file_io.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lnfree/error.h"

namespace lnfree {

MappedFile::MappedFile(const std::string& path) : path_(path) {
    int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) throw Error(path + ": cannot open (" + std::strerror(errno) + "); check the path");
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        throw Error(path + ": not a regular file");
    }
    size_ = (size_t)st.st_size;
    if (size_ > 0) {
        void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            ::close(fd);
            throw Error(path + ": cannot map the file (" + std::strerror(errno) + ")");
        }
        data_ = (const unsigned char*)p;
    }
    ::close(fd);
}

MappedFile::~MappedFile() {
    if (data_) ::munmap((void*)data_, size_);
}

std::string file_error(const std::string& path, const std::string& what, int err) {
    const char* advice;
    switch (err) {
        case ENOSPC:
        case EDQUOT: advice = "the disk or quota is full: free space there or write elsewhere"; break;
        case EFBIG: advice = "the file exceeds the file-size limit (ulimit -f) or the filesystem's: raise it or write elsewhere"; break;
        case EACCES:
        case EPERM: advice = "no permission: check the directory's permissions or write elsewhere"; break;
        case EROFS: advice = "the filesystem is read-only: write elsewhere"; break;
        case ENOTDIR:
        case EEXIST:
        case EISDIR: advice = "a file stands where a directory should be (or the reverse): move it away or write elsewhere"; break;
        case ENOENT: advice = "a directory on the way does not exist: check the path"; break;
        case EIO: advice = "the device reported an error: check the disk"; break;
        default: advice = "check the path and the disk"; break;
    }
    return path + ": " + what + " (" + std::strerror(err) + "); " + advice;
}

AtomicFile::AtomicFile(const std::string& path) : path_(path), tmp_path_(path + ".tmp") {
    fd_ = ::open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd_ < 0) {
        const int err = errno;  // before any allocation can change it
        throw Error(file_error(path, "cannot create", err));
    }
}

AtomicFile::~AtomicFile() {
    if (fd_ >= 0) {
        ::close(fd_);
        ::unlink(tmp_path_.c_str());
    }
}

void AtomicFile::write(const void* bytes, size_t n) {
    hash_.update(bytes, n);
    bytes_ += n;
    const char* p = (const char*)bytes;
    while (n > 0) {
        ssize_t w = ::write(fd_, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            const int err = errno;
            throw Error(file_error(path_, "write failed", err));
        }
        if (w == 0) throw Error(file_error(path_, "write failed", ENOSPC));  // nothing written and no reason given
        p += w;
        n -= (size_t)w;
    }
}

void AtomicFile::commit() {
    if (::fsync(fd_) != 0) {
        const int err = errno;
        throw Error(file_error(path_, "fsync failed", err));
    }
    // close reports late write errors on some filesystems (NFS): the file is not complete then
    const int closed = ::close(fd_), err = errno;
    fd_ = -1;
    if (closed != 0) {
        ::unlink(tmp_path_.c_str());
        throw Error(file_error(path_, "closing failed", err));
    }
    if (::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
        const int rename_err = errno;
        ::unlink(tmp_path_.c_str());
        throw Error(file_error(path_, "rename from " + tmp_path_ + " failed", rename_err));
    }
}

StagedDirectory::StagedDirectory(const std::string& path) : path_(path), tmp_path_(path + ".tmp") {
    remove_path(tmp_path_);  // what an interrupted run left
    make_directories(tmp_path_);
}

StagedDirectory::~StagedDirectory() {
    if (committed_) return;
    std::error_code ec;  // on the way out of an error already reported: removing what we can is all there is to do
    std::filesystem::remove_all(tmp_path_, ec);
}

void StagedDirectory::commit() {
    replace_directory(tmp_path_, path_);
    committed_ = true;
}

std::string read_text_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path + ": cannot open; check the path");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void write_text_file(const std::string& path, const std::string& text) {
    AtomicFile f(path);
    f.write(text.data(), text.size());
    f.commit();
}

bool file_exists(const std::string& path) { return std::filesystem::exists(path); }

void make_directories(const std::string& path) {
    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    if (!ec && !std::filesystem::is_directory(path, ec)) ec = std::make_error_code(std::errc::not_a_directory);
    if (ec) throw Error(file_error(path, "cannot create the directory", ec.value()));
}

void remove_path(const std::string& path) {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
    if (ec) throw Error(file_error(path, "cannot remove", ec.value()));
}

namespace {

// Makes a rename in `path`'s directory survive a crash; best effort (some filesystems cannot sync a directory).
void sync_parent_directory(const std::string& path) {
    const std::string parent = std::filesystem::path(path).parent_path().string();
    const int fd = ::open(parent.empty() ? "." : parent.c_str(), O_RDONLY | O_DIRECTORY);
    if (fd < 0) return;
    ::fsync(fd);
    ::close(fd);
}

void rename_or_throw(const std::string& from, const std::string& to) {
    if (::rename(from.c_str(), to.c_str()) == 0) return;
    const int err = errno;
    throw Error(file_error(to, "rename from " + from + " failed", err));
}

// Linux's renameat2 swaps two names in one step (ext4, xfs, btrfs, tmpfs); false where the filesystem or the
// kernel cannot, so that the caller falls back to two renames.
bool exchange_names(const std::string& a, const std::string& b) {
#ifdef RENAME_EXCHANGE
    if (::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE) == 0) return true;
    const int err = errno;
    if (err != EINVAL && err != ENOSYS && err != ENOTSUP) throw Error(file_error(b, "exchange with " + a + " failed", err));
#else
    (void)a;
    (void)b;
#endif
    return false;
}

}  // namespace

void replace_directory(const std::string& from, const std::string& to) {
    std::error_code ec;
    if (!std::filesystem::exists(std::filesystem::symlink_status(to, ec))) {
        rename_or_throw(from, to);
    } else if (exchange_names(from, to)) {
        std::filesystem::remove_all(from, ec);  // the old one, now under the temporary name; a leftover is removed next time
    } else {
        const std::string aside = to + ".old";
        remove_path(aside);
        rename_or_throw(to, aside);
        try {
            rename_or_throw(from, to);
        } catch (const Error&) {
            std::filesystem::rename(aside, to, ec);  // put the old one back
            throw;
        }
        std::filesystem::remove_all(aside, ec);
    }
    sync_parent_directory(to);
}

}  // namespace lnfree
