// Graph builders shared by every modality: LayerNorm, linear, multi-head attention, MLP and the
// pre-norm transformer block. A modality only wires its stem, its options and its head on top.
#pragma once

#include "ibl_model.h"

#include "ggml.h"

// ref: torch.nn.LayerNorm — x: [D, ...]
ggml_tensor * ibl_build_norm(ggml_context * ctx, ggml_tensor * x, ggml_tensor * w, ggml_tensor * b, float eps);

// ref: torch.nn.Linear — x: [in, ...] → [out, ...]; b may be null.
ggml_tensor * ibl_build_linear(ggml_context * ctx, ggml_tensor * x, ggml_tensor * w, ggml_tensor * b);

struct ibl_attn_options {
    int   n_heads = 1;
    bool  causal  = false;  // text: -inf above the diagonal
};

// ref: torch.nn.MultiheadAttention (fused in_proj rows q;k;v, optional add_bias_kv token)
// x: [D, L, B] → [D, L, B]
ggml_tensor * ibl_build_attention(ggml_context * ctx, ggml_tensor * x, const ibl_block_weights & w, const ibl_attn_options & opt);

// One block: x += Attn(LN1(x)); x += fc2(GELU_erf(fc1(LN2(x)))). x: [D, L, B]
ggml_tensor * ibl_build_block(ggml_context * ctx, ggml_tensor * x, const ibl_block_weights & w, float eps,
                              const ibl_attn_options & opt);

// Names an intermediate so it can be found and dumped ("<prefix>.<what>[.<il>]").
ggml_tensor * ibl_name(ggml_tensor * t, const char * prefix, const char * what, int il = -1);
