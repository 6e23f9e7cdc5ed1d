// NumPy .npy files (format 1.0/2.0/3.0, little endian, C order): what the fixtures, depth/thermal/IMU
// inputs and point clouds come as.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

struct ibl_npy {
    std::string          dtype;  // numpy descr without byte order: "f4", "f8", "i8", "u1", "u2", ...
    std::vector<int64_t> shape;  // numpy order (C order: last dimension fastest)
    std::vector<uint8_t> data;   // raw little-endian element bytes

    int64_t numel() const;
    // Element values converted to float / int64 (any numeric dtype); throws for others.
    std::vector<float>   to_f32() const;
    std::vector<int64_t> to_i64() const;
};

// `what` names the source in error messages (a file path, or e.g. "<buffer>").
ibl_npy ibl_npy_parse(const uint8_t * bytes, size_t size, const std::string & what);
ibl_npy ibl_npy_load(const std::string & path);
// Writes a float32 array (used by tests and debugging dumps).
void    ibl_npy_save_f32(const std::string & path, const std::vector<int64_t> & shape, const float * data);

// Reads a whole file; throws ERR_FILE_NOT_FOUND / ERR_FILE_READ naming it.
std::vector<uint8_t> ibl_read_file(const std::string & path, size_t max_bytes = (size_t) 1 << 34);
