// ImageBind-LLM assembled: the LLaMA (llama.cpp), the bind network + injection, and the optional kNN
// cache. From ImageBind embeddings to a session's per-layer injection (DESIGN.md §1, §3).
#pragma once

#include "ibl_bind.h"
#include "ibl_knn.h"
#include "ibl_llm.h"

#include <memory>
#include <mutex>
#include <string>
#include <vector>

struct ibl_mmllm {
    std::unique_ptr<ibl_llm>  llm;
    std::unique_ptr<ibl_bind> bind;
    std::unique_ptr<ibl_knn>  cache;  // null: no cache-enhanced inference
    std::mutex                cache_mu;
};

struct ibl_mmllm_paths {
    std::string llm, bind, cache;  // cache may be empty
};

std::unique_ptr<ibl_mmllm> ibl_mmllm_load(const ibl_mmllm_paths & paths, const ibl_llm_params & params);

// Bytes the loaded set holds: the LLM's weights (mapped or on a device), the bind network, the cache's
// features.
size_t ibl_mmllm_bytes(const ibl_mmllm & m);

struct ibl_visual {
    std::vector<float>       mixed;      // Σ w_i e_i / (Σ w + 1e-6)
    std::vector<float>       blended;    // after the cache (== mixed without one)
    std::vector<ibl_knn_hit> hits;       // cache neighbours used
    std::vector<float>       visual;     // bind network output
    std::vector<float>       injection;  // n_layer × n_embd
};

// e_i: unit ImageBind embeddings; `cache`: blend with the kNN cache (needs one loaded) or null.
ibl_visual ibl_mmllm_visual(ibl_mmllm & m, const std::vector<std::vector<float>> & embeddings, const std::vector<float> & weights,
                            const ibl_knn_blend_params * cache);
