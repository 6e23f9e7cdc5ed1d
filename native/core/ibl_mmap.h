// A read-only memory map of a whole file: model data used in place (shared with the page cache and
// with llama.cpp's own mapping of the same file) instead of being copied into memory.
#pragma once

#include <cstdint>
#include <string>

struct ibl_file_map {
    void *   addr = nullptr;
    uint64_t size = 0;
#ifdef _WIN32
    void *   mapping = nullptr;
#endif
    ibl_file_map() = default;
    ibl_file_map(const ibl_file_map &) = delete;
    ibl_file_map & operator=(const ibl_file_map &) = delete;
    ~ibl_file_map();

    // Returns false (and maps nothing) where the platform cannot map the file; callers then read it.
    bool map(const std::string & path, uint64_t file_size);
};
