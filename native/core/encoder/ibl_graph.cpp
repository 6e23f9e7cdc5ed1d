#include "ibl_graph.h"

#include <cmath>
#include <cstdio>

ggml_tensor * ibl_name(ggml_tensor * t, const char * prefix, const char * what, int il) {
    if (il >= 0) ggml_format_name(t, "%s.%s.%d", prefix, what, il);
    else ggml_format_name(t, "%s.%s", prefix, what);
    return t;
}

ggml_tensor * ibl_build_norm(ggml_context * ctx, ggml_tensor * x, ggml_tensor * w, ggml_tensor * b, float eps) {
    x = ggml_norm(ctx, x, eps);
    if (w) x = ggml_mul(ctx, x, w);
    if (b) x = ggml_add(ctx, x, b);
    return x;
}

ggml_tensor * ibl_build_linear(ggml_context * ctx, ggml_tensor * x, ggml_tensor * w, ggml_tensor * b) {
    x = ggml_mul_mat(ctx, w, x);
    if (b) x = ggml_add(ctx, x, b);
    return x;
}

ggml_tensor * ibl_new_causal_mask(ggml_context * ctx, int64_t L) {
    ggml_tensor * m = ggml_new_tensor_2d(ctx, GGML_TYPE_F16, L, L);
    ggml_set_name(m, "causal_mask");
    ggml_set_input(m);
    return m;
}

std::vector<ggml_fp16_t> ibl_causal_mask(int64_t L) {
    std::vector<ggml_fp16_t> m((size_t) (L * L));
    for (int64_t i = 0; i < L; ++i)
        for (int64_t j = 0; j < L; ++j) m[(size_t) (i * L + j)] = ggml_fp32_to_fp16(j <= i ? 0.0f : -INFINITY);  // row i: query i
    return m;
}

namespace {

// Fused attention on views of qkv [3D, L, B]; k, v: [hd, H, Lk, B] (views, or with the bias token).
// Returns [D, L, B]: the op's output is already [hd, H, L, B].
ggml_tensor * flash_attention(ggml_context * ctx, ggml_tensor * q, ggml_tensor * k, ggml_tensor * v, const ibl_attn_options & opt,
                              int64_t D, int64_t L, int64_t B, float scale) {
    ggml_tensor * Q = ggml_permute(ctx, q, 0, 2, 1, 3);  // [hd, L, H, B]
    ggml_tensor * K = ggml_permute(ctx, k, 0, 2, 1, 3);  // [hd, Lk, H, B]
    ggml_tensor * V = ggml_permute(ctx, v, 0, 2, 1, 3);  // [hd, Lk, H, B]
    ggml_tensor * out = ggml_flash_attn_ext(ctx, Q, K, V, opt.causal ? opt.mask : nullptr, scale, 0.0f, 0.0f);
    ggml_flash_attn_ext_set_prec(out, GGML_PREC_F32);
    return ggml_reshape_3d(ctx, out, D, L, B);
}

}  // namespace

ggml_tensor * ibl_build_attention(ggml_context * ctx, ggml_tensor * x, const ibl_block_weights & w, const ibl_attn_options & opt) {
    const int64_t D = x->ne[0], L = x->ne[1], B = x->ne[2];
    const int64_t H = opt.n_heads, hd = D / H;

    ggml_tensor * qkv = ibl_build_linear(ctx, x, w.qkv_w, w.qkv_b);  // [3D, L, B]
    const size_t es = ggml_element_size(qkv);
    // Views of the q, k, v thirds of each row as [hd, H, L, B].
    auto third = [&](int i) {
        return ggml_view_4d(ctx, qkv, hd, H, L, B, hd * es, qkv->nb[1], qkv->nb[2], (size_t) i * D * es);
    };
    ggml_tensor * q = third(0);
    ggml_tensor * k = third(1);
    ggml_tensor * v = third(2);
    if (!opt.flash) {
        k = ggml_cont(ctx, k);
        v = ggml_cont(ctx, v);
    }
    int64_t Lk = L;
    if (w.bias_k) {
        // add_bias_kv: one learned key/value (already projected) appended after the sequence.
        ggml_tensor * bk = ggml_repeat(ctx, ggml_reshape_4d(ctx, w.bias_k, hd, H, 1, 1), ggml_new_tensor_4d(ctx, k->type, hd, H, 1, B));
        ggml_tensor * bv = ggml_repeat(ctx, ggml_reshape_4d(ctx, w.bias_v, hd, H, 1, 1), ggml_new_tensor_4d(ctx, v->type, hd, H, 1, B));
        k = ggml_concat(ctx, k, bk, 2);  // [hd, H, L+1, B]
        v = ggml_concat(ctx, v, bv, 2);
        Lk = L + 1;
    }
    const float scale = 1.0f / std::sqrt((float) hd);
    if (opt.flash) return ibl_build_linear(ctx, flash_attention(ctx, q, k, v, opt, D, L, B, scale), w.out_w, w.out_b);

    ggml_tensor * Q = ggml_permute(ctx, q, 0, 2, 1, 3);                  // [hd, L, H, B]
    ggml_tensor * K = ggml_permute(ctx, k, 0, 2, 1, 3);                  // [hd, Lk, H, B]
    ggml_tensor * Vt = ggml_cont(ctx, ggml_permute(ctx, v, 1, 2, 0, 3));  // [Lk, hd, H, B]

    ggml_tensor * kq = ggml_mul_mat(ctx, K, Q);                          // [Lk, L, H, B]
    if (opt.causal) {
        kq = ggml_scale(ctx, kq, scale);
        kq = ggml_diag_mask_inf(ctx, kq, 0);
        kq = ggml_soft_max(ctx, kq);
    } else {
        kq = ggml_soft_max_ext(ctx, kq, nullptr, scale, 0.0f);
    }
    (void) Lk;
    ggml_tensor * kqv = ggml_mul_mat(ctx, Vt, kq);                       // [hd, L, H, B]
    ggml_tensor * merged = ggml_cont(ctx, ggml_permute(ctx, kqv, 0, 2, 1, 3));  // [hd, H, L, B]
    merged = ggml_reshape_3d(ctx, merged, D, L, B);
    return ibl_build_linear(ctx, merged, w.out_w, w.out_b);
}

ggml_tensor * ibl_build_block(ggml_context * ctx, ggml_tensor * x, const ibl_block_weights & w, float eps,
                              const ibl_attn_options & opt) {
    ggml_tensor * h = ibl_build_norm(ctx, x, w.ln1_w, w.ln1_b, eps);
    x = ggml_add(ctx, x, ibl_build_attention(ctx, h, w, opt));
    h = ibl_build_norm(ctx, x, w.ln2_w, w.ln2_b, eps);
    h = ibl_build_linear(ctx, h, w.up_w, w.up_b);
    h = ggml_gelu_erf(ctx, h);
    h = ibl_build_linear(ctx, h, w.down_w, w.down_b);
    return ggml_add(ctx, x, h);
}
