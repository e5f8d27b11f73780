// Files in and out without surprises: a read-only memory map for large inputs (checkpoints, shards), and an
// output file or directory that appears under its final name only once it is complete (temporary name, fsync,
// rename). A failed write throws lnfree::Error with one line: the path, the system's reason and what to do.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "lnfree/checksum.h"

namespace lnfree {

class MappedFile {
   public:
    explicit MappedFile(const std::string& path);  // throws lnfree::Error naming the file
    ~MappedFile();
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;
    const unsigned char* data() const { return data_; }
    size_t size() const { return size_; }
    const std::string& path() const { return path_; }

   private:
    std::string path_;
    const unsigned char* data_ = nullptr;
    size_t size_ = 0;
};

// Writes to "<path>.tmp"; commit() flushes, fsyncs and renames it to path. Destroyed without commit() (an error
// on the way), it removes the temporary file, so no half-written output is left under either name.
class AtomicFile {
   public:
    explicit AtomicFile(const std::string& path);
    ~AtomicFile();
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;
    void write(const void* bytes, size_t n);
    void commit();
    // the size and XXH64 of what was written, hashed on the way (a checkpoint records it without reading back)
    FileDigest digest() const { return {bytes_, hash_.digest()}; }

   private:
    std::string path_, tmp_path_;
    int fd_ = -1;
    Xxh64 hash_;
    uint64_t bytes_ = 0;
};

// A directory written under "<path>.tmp" (any leftover of that name is removed first) and put in place of path
// by commit(). Destroyed without commit() (an error on the way), it removes the temporary directory, so a failed
// write leaves path as it was and nothing beside it.
class StagedDirectory {
   public:
    explicit StagedDirectory(const std::string& path);
    ~StagedDirectory();
    StagedDirectory(const StagedDirectory&) = delete;
    StagedDirectory& operator=(const StagedDirectory&) = delete;
    const std::string& path() const { return tmp_path_; }  // where to write
    void commit();

   private:
    std::string path_, tmp_path_;
    bool committed_ = false;
};

// One line for a failed file-system operation: "PATH: WHAT (the system's reason); what to do about it".
std::string file_error(const std::string& path, const std::string& what, int err);

// The whole file as a string (small text files: JSON).
std::string read_text_file(const std::string& path);
// Atomically writes text to path.
void write_text_file(const std::string& path, const std::string& text);
bool file_exists(const std::string& path);
void make_directories(const std::string& path);
// Removes a file or a directory tree if present; throws lnfree::Error naming it when it cannot.
void remove_path(const std::string& path);
// Puts the complete directory `from` in place of `to` (which may exist): an atomic exchange where the filesystem
// offers one, otherwise the old one is moved aside first, so `to` is missing for an instant at most.
void replace_directory(const std::string& from, const std::string& to);

}  // namespace lnfree
