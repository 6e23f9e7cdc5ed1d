// ImageBind-LLM's bind network and per-layer injection vectors (DESIGN.md §3, fixtures README §6.1-6.2).
//   visual = bind(e)                           e: the mixed (and cache-blended) ImageBind embedding
//   d_l    = Wo_l · gate_l(Wv_l,base · (visual + prefix_l))   for the last query_layer layers, else 0
// Wv_l,base·a is computed as Wv_l,merged·a − B_l(A_l·a) with the merged Wv read in place from the LLM
// GGUF (memory-mapped, shared with llama.cpp's mapping) and the wv LoRA factors from the bind file.
#pragma once

#include <memory>
#include <string>
#include <vector>

struct ibl_bind_impl;

struct ibl_bind {
    std::string path;
    std::string bridge;  // "rmsnorm" (stable) or "layernorm" (beta)
    int input_dim = 0, dim = 0, ffn_dim = 0, n_blocks = 0, query_layer = 0, n_head = 0, wv_rank = 0;
    int llm_n_layer = 0, llm_n_embd = 0, llm_n_vocab = 0;
    float norm_eps = 1e-6f;
    size_t weights_bytes = 0;  // the bind network's weights in memory
    std::unique_ptr<ibl_bind_impl> impl;
    ~ibl_bind();

    // The bind network's output for one embedding (input_dim values).
    std::vector<float> visual(const std::vector<float> & e) const;
    // Injection vectors for every LLM layer (n_layer × n_embd; zeros where none is injected).
    std::vector<float> injection(const std::vector<float> & visual) const;
};

// Loads a bind GGUF and pairs it with the LLM GGUF it was converted with; errors name both files when
// they do not belong together (another model size, another vocabulary).
std::unique_ptr<ibl_bind> ibl_bind_load(const std::string & bind_path, const std::string & llm_path, int n_threads);

// Mixes unit embeddings with weights as upstream: Σ w_i e_i / (Σ w_i + 1e-6).
std::vector<float> ibl_mix_embeddings(const std::vector<std::vector<float>> & embeddings, const std::vector<float> & weights);
