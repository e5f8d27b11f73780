// Files in and out without surprises: a read-only memory map for large inputs (checkpoints, shards), and an
// output file that appears under its final name only once it is complete (temporary name, fsync, rename).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

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

   private:
    std::string path_, tmp_path_;
    int fd_ = -1;
};

// The whole file as a string (small text files: JSON).
std::string read_text_file(const std::string& path);
// Atomically writes text to path.
void write_text_file(const std::string& path, const std::string& text);
bool file_exists(const std::string& path);
void make_directories(const std::string& path);

}  // namespace lnfree
