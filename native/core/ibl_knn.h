// The kNN cache of cache-enhanced inference: a cache GGUF (imagebind-llm convert cache, layout in
// ibl_keys.h) searched with GGML matmuls on the CPU backend, and the blend of a visual feature with
// its nearest cached features.
//
// ref: LLaMA-Adapter imagebind_LLM/llama/llama_adapter.py forward_visual (knn branch); fixtures
// README §6.1 step 3:
//   s, idx = the k largest inner products of v with the cache rows     (k = cache_size = 10)
//   p      = softmax(t · s)                                            (t = cache_t = 20)
//   c      = Σ p_j · row[idx_j];   c = c / |c|
//   v      = (1 − w) · v + w · c;  v = v / |v|                        (w = cache_weight = 0.5)
// v is used as it comes (the weighted input mix, not re-normalised: with several inputs |v| < 1).
//
// Memory: the feature tensors are used in place from a read-only memory map of the file (a ggml CPU
// buffer over the mapping), so the cache is never copied; the OS pages it in on the first search and
// keeps it in its (shared, reclaimable) page cache. Without mmap the rows are read once into one
// ggml CPU buffer. A search adds one float per row and query of a group (≤ 256 MiB, see
// IBL_KNN_MAX_GROUP) for the scores.
//
// Speed: the scan reads the whole cache once per group of queries, so it is memory-bandwidth bound:
// about (count × dim × 2 bytes at f16) / bandwidth per query, e.g. 6 GB for 3M × 1024.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

enum ibl_knn_metric {
    IBL_KNN_METRIC_IP = 0,  // inner product, larger is closer (faiss IndexFlatIP)
    IBL_KNN_METRIC_L2 = 1,  // squared L2 distance, smaller is closer (faiss IndexFlatL2)
};

struct ibl_knn_params {
    int  n_threads = 0;      // 0: ibl_threads_default()
    bool use_mmap  = true;  // false: read the rows into memory (once) instead of mapping the file
};

struct ibl_knn_hit {
    int64_t index;  // row in the cache (= faiss id)
    float   score;  // inner product (ip cache) or squared L2 distance (l2 cache)
};

struct ibl_knn_impl;

struct ibl_knn {
    std::string    path;
    std::string    name;
    std::string    file_type;   // "f16" / "f32": type of the stored features
    std::string    source_type; // faiss fourcc of the source index
    int64_t        dim = 0;
    int64_t        count = 0;
    int64_t        chunk_rows = 0;
    ibl_knn_metric metric = IBL_KNN_METRIC_IP;
    bool           mapped = false;       // features used in place from a memory map
    size_t         features_bytes = 0;   // bytes of the feature (and norm) tensors

    ~ibl_knn();
    std::unique_ptr<ibl_knn_impl> impl;
};

// Loads a cache GGUF. Throws ibl_error naming the file: not a GGUF, not a cache (e.g. an encoder or
// LLM file: ERR_MODEL_WRONG_TYPE), missing / mis-shaped / mistyped chunk tensors (ERR_MODEL_INVALID).
std::unique_ptr<ibl_knn> ibl_knn_load(const std::string & path, const ibl_knn_params & params = {});

void ibl_knn_set_n_threads(ibl_knn & knn, int n_threads);

// The k nearest rows of each of nq queries (queries: nq × dim floats, row-major), best first; ties
// keep the lower index first. k larger than the cache gives all rows. Result: nq × min(k, count).
// The scan is one GGML matmul per chunk (f16/f32 rows × f32 queries) on the CPU backend; the best
// k + IBL_KNN_RERANK candidates per query are then re-scored on the host in double precision
// against the stored rows, so f16 rounding of the query (ggml converts it to the row type) does not
// reorder close neighbours. Thread-safe (one search at a time per cache).
std::vector<ibl_knn_hit> ibl_knn_search(ibl_knn & knn, const float * queries, int64_t nq, int64_t k);

constexpr int64_t IBL_KNN_RERANK = 32;
// Queries per matmul: each pass over the cache serves up to this many (fewer when count × group
// scores would pass 256 MiB).
constexpr int64_t IBL_KNN_MAX_GROUP = 64;

struct ibl_knn_blend_params {
    int64_t k      = 10;     // cache_size
    float   t      = 20.0f;  // cache_t: softmax temperature factor
    float   weight = 0.5f;   // cache_weight: share of the cached features in the result
};

// Blends one visual feature (dim floats) with its k nearest cached features (formula above) and
// returns the new unit vector; `hits`, when given, receives the neighbours used. Inner-product caches
// only (upstream's cache is an IndexFlatIP): an l2 cache throws ERR_INVALID_ARG.
std::vector<float> ibl_knn_blend(ibl_knn & knn, const float * query, const ibl_knn_blend_params & params = {},
                                 std::vector<ibl_knn_hit> * hits = nullptr);

// Row i as floats (faiss reconstruct).
std::vector<float> ibl_knn_row(const ibl_knn & knn, int64_t i);
