// Graph builders shared by every modality: LayerNorm, linear, multi-head attention, MLP and the
// pre-norm transformer block. A modality only wires its stem, its options and its head on top.
#pragma once

#include "ibl_model.h"

#include "ggml.h"

#include <vector>

// ref: torch.nn.LayerNorm — x: [D, ...]
ggml_tensor * ibl_build_norm(ggml_context * ctx, ggml_tensor * x, ggml_tensor * w, ggml_tensor * b, float eps);

// ref: torch.nn.Linear — x: [in, ...] → [out, ...]; b may be null.
ggml_tensor * ibl_build_linear(ggml_context * ctx, ggml_tensor * x, ggml_tensor * w, ggml_tensor * b);

struct ibl_attn_options {
    int   n_heads = 1;
    bool  causal  = false;  // text: -inf above the diagonal
    // Fused attention (ggml_flash_attn_ext) reading q, k, v in place from the qkv projection: no
    // permute copies and no L x L score matrix in memory. With `causal` it needs `mask`.
    bool          flash   = false;
    ggml_tensor * mask    = nullptr;  // f16 [Lk, L]: 0 where attended, -inf elsewhere
};

// The f16 mask input for causal fused attention over L tokens ([L, L]); fill it with ibl_causal_mask.
ggml_tensor * ibl_new_causal_mask(ggml_context * ctx, int64_t L);
std::vector<ggml_fp16_t> ibl_causal_mask(int64_t L);

// ref: torch.nn.MultiheadAttention (fused in_proj rows q;k;v, optional add_bias_kv token)
// x: [D, L, B] → [D, L, B]
ggml_tensor * ibl_build_attention(ggml_context * ctx, ggml_tensor * x, const ibl_block_weights & w, const ibl_attn_options & opt);

// One block: x += Attn(LN1(x)); x += fc2(GELU_erf(fc1(LN2(x)))). x: [D, L, B]
ggml_tensor * ibl_build_block(ggml_context * ctx, ggml_tensor * x, const ibl_block_weights & w, float eps,
                              const ibl_attn_options & opt);

// Names an intermediate so it can be found and dumped ("<prefix>.<what>[.<il>]").
ggml_tensor * ibl_name(ggml_tensor * t, const char * prefix, const char * what, int il = -1);
