// Checks an LLM GGUF before llama.cpp sees it. llama.cpp asserts (aborting the process) or reads out
// of bounds on files it does not expect: a block count of 0, a negative epsilon, duplicate tokens, a
// tensor of a type its graph cannot use. Here each problem is an ERR_MODEL_INVALID naming the file,
// the key or tensor, and the bound.
#pragma once

#include <string>

struct gguf_context;
struct ggml_context;

struct ibl_llm_hparams {
    int n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, n_ff = 0, n_vocab = 0, n_ctx_train = 0, n_rot = 0;
    bool f32_weights = false;  // general.file_type 0 (all f32): sessions default to exact attention
};

// `g` and `tensors` come from ibl_gguf_open; general.architecture must already be 'llama'.
ibl_llm_hparams ibl_llm_check(const gguf_context * g, const ggml_context * tensors, const std::string & path);
