// Point clouds for the Point-Bind encoder: file readers (.npy .ply .xyz/.pts/.txt/.csv .obj .pcd) and
// the grouping step of its trunk (farthest point sampling + kNN neighbourhoods).
// ref: ImageBind-LLM imagebind_LLM/ImageBind/models/pointbert/point_encoder.py (Group, fps, knn_point)
//
// Error codes (ibl_error::code), every message names the source:
//   ERR_POINTS_FORMAT       unknown / undetectable format
//   ERR_POINTS_MALFORMED    bad header or line (with its line number), truncated body, counts the file cannot hold
//   ERR_POINTS_UNSUPPORTED  a valid file we do not read (PCD binary_compressed, integer .npy, wrong .npy shape)
//   ERR_POINTS_EMPTY        no points
//   ERR_POINTS_INVALID      NaN / Inf coordinates (or values outside float32 range)
//   ERR_POINTS_TOO_FEW      fewer points than max(num_group, group_size)
//   ERR_INVALID_ARGUMENT    num_group / group_size < 1
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

struct ibl_point_cloud {
    int64_t            n = 0;  // number of points
    std::vector<float> xyz;    // [n, 3] row-major, as stored (no centring or scaling)
};

// Parses a point cloud held in memory. Only x, y, z are kept; other columns / properties / elements are
// skipped. Text and float64 values are read as double and then rounded to float32, like upstream's
// float64 readers followed by .float().
//   what:   file name or "<buffer>"; used in messages and, when format is "", for the extension
//   format: "npy", "ply", "xyz", "pts", "txt", "csv", "obj", "pcd", or "" to detect from the extension of
//           `what`, then from the content (npy / ply / pcd magic, OBJ "v" lines, numeric text)
ibl_point_cloud ibl_points_parse(const uint8_t * data, size_t size, const std::string & what, const std::string & format = "");
ibl_point_cloud ibl_points_load(const std::string & path, const std::string & format = "");

// The Point-Bind trunk's grouping of one cloud (steps 1-2 of fixtures/README.md section 5).
struct ibl_point_groups {
    int                  num_group  = 0;  // G
    int                  group_size = 0;  // K
    std::vector<int64_t> fps_idx;         // [G]       centre point indices, in FPS order
    std::vector<float>   centers;         // [G, 3]    xyz[fps_idx]
    std::vector<int64_t> knn_idx;         // [G, K]    neighbours of each centre, nearest first (ties: lower index)
    std::vector<float>   neighborhoods;   // [G, K, 3] xyz[knn_idx] - centre
};

// FPS starts at point 0 (upstream draws a random start; the fixtures fix it to 0). All distance
// arithmetic is float32 in upstream's evaluation order, so indices match the PyTorch reference.
ibl_point_groups ibl_points_group(const float * xyz, int64_t n, int num_group, int group_size);
