#include "ibl_bind.h"
#include "ibl_threads.h"
#include "ibl_backend.h"
#include "ibl_error.h"
#include "ibl_gguf.h"
#include "ibl_keys.h"
#include "ibl_mmap.h"

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "gguf.h"

#include <cmath>
#include <functional>
#include <cstdio>
#include <cstring>
#include <sys/stat.h>

namespace {

std::string tn(const char * f, int i, const char * s = nullptr) {
    char b[GGML_MAX_NAME];
    if (s) snprintf(b, sizeof(b), f, i, s);
    else snprintf(b, sizeof(b), f, i);
    return b;
}

std::string tn1(const char * f, const char * s) {
    char b[GGML_MAX_NAME];
    snprintf(b, sizeof(b), f, s);
    return b;
}

struct bind_block {
    ggml_tensor * norm_w = nullptr, * norm_b = nullptr;
    ggml_tensor * f1 = nullptr, * f1_b = nullptr, * f2 = nullptr, * f2_b = nullptr, * f3 = nullptr, * f3_b = nullptr;
};

struct inject_layer {
    int           il = 0;  // LLM layer
    ggml_tensor * wv = nullptr, * wo = nullptr;        // from the LLM GGUF (mapped)
    ggml_tensor * lora_a = nullptr, * lora_b = nullptr;  // from the bind GGUF
};

}  // namespace

struct ibl_bind_impl {
    ggml_context *          ctx_bind = nullptr;
    ggml_backend_buffer_t   buf_bind = nullptr;
    ggml_context *          ctx_llm = nullptr;   // metadata of every LLM tensor; only Wv/Wo get data
    ggml_backend_buffer_t   buf_llm = nullptr;
    ibl_file_map            llm_map;
    ggml_backend_t          backend = nullptr;
    ggml_tensor *           proj_w = nullptr, * proj_b = nullptr, * prefix = nullptr, * gate = nullptr;
    std::vector<bind_block>   blocks;
    std::vector<inject_layer> layers;

    ~ibl_bind_impl() {
        if (buf_bind) ggml_backend_buffer_free(buf_bind);
        if (buf_llm) ggml_backend_buffer_free(buf_llm);
        if (ctx_bind) ggml_free(ctx_bind);
        if (ctx_llm) ggml_free(ctx_llm);
        if (backend) ggml_backend_free(backend);
    }

    // Runs a one-off graph built by `build` on the CPU; returns the named outputs' data.
    std::vector<std::vector<float>> run(const std::function<std::vector<ggml_tensor *>(ggml_context *, ggml_tensor *)> & build,
                                        const std::vector<float> & input) const;
};

ibl_bind::~ibl_bind() = default;

std::vector<std::vector<float>> ibl_bind_impl::run(const std::function<std::vector<ggml_tensor *>(ggml_context *, ggml_tensor *)> & build,
                                                   const std::vector<float> & input) const {
    const size_t n_nodes = 4096;
    ggml_init_params ip = { ggml_tensor_overhead() * n_nodes + ggml_graph_overhead_custom(n_nodes, false), nullptr, true };
    ggml_context * ctx = ggml_init(ip);
    if (!ctx) ibl_throw("ERR_OUT_OF_MEMORY", "cannot allocate a graph context");
    struct ctx_guard { ggml_context * c; ~ctx_guard() { ggml_free(c); } } cg{ctx};
    ggml_tensor * in = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, (int64_t) input.size());
    ggml_set_input(in);
    const std::vector<ggml_tensor *> outs = build(ctx, in);
    ggml_cgraph * gf = ggml_new_graph_custom(ctx, n_nodes, false);
    for (ggml_tensor * o : outs) {
        ggml_set_output(o);
        ggml_build_forward_expand(gf, o);
    }
    ggml_gallocr_t galloc = ggml_gallocr_new(ggml_backend_get_default_buffer_type(backend));
    struct galloc_guard { ggml_gallocr_t g; ~galloc_guard() { ggml_gallocr_free(g); } } gg{galloc};
    if (!ggml_gallocr_alloc_graph(galloc, gf)) ibl_throw("ERR_OUT_OF_MEMORY", "cannot allocate the bind graph");
    ggml_backend_tensor_set(in, input.data(), 0, ggml_nbytes(in));
    if (ggml_backend_graph_compute(backend, gf) != GGML_STATUS_SUCCESS) ibl_throw("ERR_COMPUTE", "bind graph computation failed");
    std::vector<std::vector<float>> res;
    for (ggml_tensor * o : outs) {
        std::vector<float> v(ggml_nelements(o));
        ggml_backend_tensor_get(o, v.data(), 0, ggml_nbytes(o));
        res.push_back(std::move(v));
    }
    return res;
}

// A tensor the bind network uses: present (when required), of a type its graph computes with (vectors
// f32; matrices f32 or f16 in the bind file, any matmul type in the LLM file), of the expected shape.
static ggml_tensor * need(ggml_context * ctx, const std::string & file, const std::string & name, std::initializer_list<int64_t> shape,
                          bool required = true, bool llm_matrix = false) {
    ggml_tensor * t = ggml_get_tensor(ctx, name.c_str());
    if (!t) {
        if (required) ibl_throw("ERR_MODEL_INVALID", "%s: missing tensor '%s'", file.c_str(), name.c_str());
        return nullptr;
    }
    const bool matrix = shape.size() > 1;
    const bool type_ok = t->type == GGML_TYPE_F32 || (matrix && (t->type == GGML_TYPE_F16 || (llm_matrix && ggml_is_quantized(t->type))));
    if (!type_ok) {
        ibl_throw("ERR_MODEL_INVALID", "%s: tensor '%s' is stored as %s, which the bind network cannot use (%s)", file.c_str(), name.c_str(),
                  ggml_type_name(t->type), matrix ? "f32 or f16" : "f32");
    }
    int i = 0;
    bool ok = true;
    for (int64_t d : shape) ok = ok && t->ne[i++] == d;
    for (; i < GGML_MAX_DIMS; ++i) ok = ok && t->ne[i] == 1;
    if (!ok) {
        ibl_throw("ERR_MODEL_MISMATCH", "%s: tensor '%s' is [%lld, %lld, %lld, %lld], expected [%lld, %lld]", file.c_str(), name.c_str(),
                  (long long) t->ne[0], (long long) t->ne[1], (long long) t->ne[2], (long long) t->ne[3],
                  (long long) *shape.begin(), (long long) (shape.size() > 1 ? *(shape.begin() + 1) : 1));
    }
    return t;
}

std::unique_ptr<ibl_bind> ibl_bind_load(const std::string & bind_path, const std::string & llm_path, int n_threads) {
    auto bind = std::make_unique<ibl_bind>();
    bind->path = bind_path;
    bind->impl = std::make_unique<ibl_bind_impl>();
    ibl_bind_impl & im = *bind->impl;
    // The bind network is a few small matrix-vector products per query: it runs on the CPU.
    im.backend = ibl_cpu_backend_init(ibl_threads_resolve(n_threads));

    gguf_context * g = ibl_gguf_open(bind_path, &im.ctx_bind);
    struct gg { gguf_context * g; ~gg() { gguf_free(g); } } gguard{g};
    const std::string arch = ibl_gguf_str(g, bind_path, IBL_KEY_ARCH, false, "");
    if (arch != IBL_ARCH_BIND) {
        ibl_throw("ERR_MODEL_WRONG_TYPE", "%s: not an ImageBind-LLM bind file: general.architecture is '%s', expected '%s'",
                  bind_path.c_str(), arch.c_str(), IBL_ARCH_BIND);
    }
    auto geti = [&](const char * k, int lo, int hi) { return (int) ibl_gguf_int(g, bind_path, k, true, 0, lo, hi); };
    bind->input_dim   = geti(IBL_KEY_BIND_INPUT_DIM, 1, 1 << 20);
    bind->dim         = geti(IBL_KEY_BIND_EMBED_DIM, 1, 1 << 20);
    bind->ffn_dim     = geti(IBL_KEY_BIND_FFN_DIM, 1, 1 << 24);
    bind->n_blocks    = geti(IBL_KEY_BIND_BLOCK_COUNT, 0, 64);
    bind->query_layer = geti(IBL_KEY_BIND_QUERY_LAYER, 0, 4096);
    bind->n_head      = geti(IBL_KEY_BIND_HEAD_COUNT, 1, 4096);
    bind->wv_rank     = (int) ibl_gguf_int(g, bind_path, IBL_KEY_BIND_WV_LORA_RANK, false, 0, 0, 1 << 16);
    bind->llm_n_layer = geti(IBL_KEY_BIND_LLM_BLOCK_COUNT, 1, 4096);
    bind->llm_n_embd  = geti(IBL_KEY_BIND_LLM_EMBED_DIM, 1, 1 << 20);
    bind->llm_n_vocab = geti(IBL_KEY_BIND_LLM_VOCAB_SIZE, 1, 1 << 24);
    bind->norm_eps    = (float) ibl_gguf_float(g, bind_path, IBL_KEY_BIND_NORM_EPS, false, 1e-6, 0, 1);
    bind->bridge      = ibl_gguf_str(g, bind_path, IBL_KEY_BIND_BRIDGE, false, "rmsnorm");
    const int kv_heads = (int) ibl_gguf_int(g, bind_path, IBL_KEY_BIND_HEAD_COUNT_KV, false, bind->n_head, 1, 4096);
    if (bind->bridge != "rmsnorm" && bind->bridge != "layernorm") {
        ibl_throw("ERR_MODEL_INVALID", "%s: unknown bridge kind '%s'", bind_path.c_str(), bind->bridge.c_str());
    }
    if (kv_heads != bind->n_head) ibl_throw("ERR_MODEL_INVALID", "%s: grouped-query attention is not supported by the injection", bind_path.c_str());
    if (bind->query_layer > bind->llm_n_layer || bind->dim % bind->n_head != 0) {
        ibl_throw("ERR_MODEL_INVALID", "%s: query_layer/head_count do not fit the model", bind_path.c_str());
    }
    const bool ln = bind->bridge == "layernorm";
    const int64_t D = bind->dim, H = bind->ffn_dim, Q = bind->query_layer;
    im.proj_w = need(im.ctx_bind, bind_path, tn1(IBL_TN_BIND_PROJ, "weight"), {bind->input_dim, D});
    im.proj_b = need(im.ctx_bind, bind_path, tn1(IBL_TN_BIND_PROJ, "bias"), {D});
    for (int i = 0; i < bind->n_blocks; ++i) {
        bind_block b;
        b.norm_w = need(im.ctx_bind, bind_path, tn(IBL_TN_BIND_NORM, i, "weight"), {D});
        b.norm_b = need(im.ctx_bind, bind_path, tn(IBL_TN_BIND_NORM, i, "bias"), {D}, ln);
        b.f1 = need(im.ctx_bind, bind_path, tn(IBL_TN_BIND_F1, i, "weight"), {D, H});
        b.f2 = need(im.ctx_bind, bind_path, tn(IBL_TN_BIND_F2, i, "weight"), {H, D});
        b.f3 = need(im.ctx_bind, bind_path, tn(IBL_TN_BIND_F3, i, "weight"), {D, H});
        b.f1_b = need(im.ctx_bind, bind_path, tn(IBL_TN_BIND_F1, i, "bias"), {H}, false);
        b.f2_b = need(im.ctx_bind, bind_path, tn(IBL_TN_BIND_F2, i, "bias"), {D}, false);
        b.f3_b = need(im.ctx_bind, bind_path, tn(IBL_TN_BIND_F3, i, "bias"), {H}, false);
        im.blocks.push_back(b);
    }
    if (Q > 0) {
        im.prefix = need(im.ctx_bind, bind_path, IBL_TN_INJ_PREFIX, {D, Q});
        im.gate   = need(im.ctx_bind, bind_path, IBL_TN_INJ_GATE, {bind->n_head, Q});
        for (const ggml_tensor * t : {im.prefix, im.gate}) {
            if (t->type != GGML_TYPE_F32) {
                ibl_throw("ERR_MODEL_INVALID", "%s: tensor '%s' is stored as %s, which the bind network cannot use (f32)", bind_path.c_str(),
                          t->name, ggml_type_name(t->type));
            }
        }
    }
    im.buf_bind = ggml_backend_alloc_ctx_tensors(im.ctx_bind, im.backend);
    if (!im.buf_bind) ibl_throw("ERR_OUT_OF_MEMORY", "%s: cannot allocate the bind weights", bind_path.c_str());
    bind->weights_bytes = ggml_backend_buffer_get_size(im.buf_bind);
    ibl_gguf_load_tensor_data(bind_path, g, im.ctx_bind);

    // The LLM file: check the pairing, then map its Wv / Wo.
    gguf_context * gl = ibl_gguf_open(llm_path, &im.ctx_llm);
    struct gg2 { gguf_context * g; ~gg2() { gguf_free(g); } } gguard2{gl};
    const std::string pair_bind = ibl_gguf_str(g, bind_path, IBL_KEY_CONVERSION_ID, false, "");
    const std::string pair_llm  = ibl_gguf_str(gl, llm_path, IBL_KEY_CONVERSION_ID, false, "");
    if (!pair_bind.empty() && !pair_llm.empty() && pair_bind != pair_llm) {
        ibl_throw("ERR_MODEL_MISMATCH", "%s and %s come from different conversions (convert llm writes them as a pair): convert again",
                  bind_path.c_str(), llm_path.c_str());
    }
    const int n_layer = (int) ibl_gguf_int(gl, llm_path, "llama.block_count", true, 0, 1, 4096);
    const int n_embd  = (int) ibl_gguf_int(gl, llm_path, "llama.embedding_length", true, 0, 1, 1 << 20);
    if (n_layer != bind->llm_n_layer || n_embd != bind->llm_n_embd || D != n_embd) {
        ibl_throw("ERR_MODEL_MISMATCH", "%s was converted for a model with %d layers of width %d, but %s has %d layers of width %d",
                  bind_path.c_str(), bind->llm_n_layer, bind->llm_n_embd, llm_path.c_str(), n_layer, n_embd);
    }
    struct stat st;
    if (stat(llm_path.c_str(), &st) != 0) ibl_throw("ERR_FILE_READ", "%s: cannot stat", llm_path.c_str());
    const int first = bind->llm_n_layer - bind->query_layer;
    for (int j = 0; j < Q; ++j) {
        inject_layer L;
        L.il = first + j;
        L.wv = need(im.ctx_llm, llm_path, tn(IBL_LLM_TN_ATTN_V, L.il), {D, D}, true, true);
        L.wo = need(im.ctx_llm, llm_path, tn(IBL_LLM_TN_ATTN_OUT, L.il), {D, D}, true, true);
        if (bind->wv_rank > 0) {
            L.lora_a = need(im.ctx_bind, bind_path, tn(IBL_TN_INJ_WV_LORA_A, L.il), {D, bind->wv_rank});
            L.lora_b = need(im.ctx_bind, bind_path, tn(IBL_TN_INJ_WV_LORA_B, L.il), {bind->wv_rank, D});
        }
        im.layers.push_back(L);
    }
    if (!im.layers.empty()) {
        const size_t data_off = gguf_get_data_offset(gl);
        if (im.llm_map.map(llm_path, (uint64_t) st.st_size)) {
            // Wv / Wo are used in place from the mapping.
            im.buf_llm = ggml_backend_cpu_buffer_from_ptr((char *) im.llm_map.addr + data_off, (size_t) st.st_size - data_off);
            for (auto & L : im.layers) {
                for (ggml_tensor * t : {L.wv, L.wo}) {
                    const size_t off = gguf_get_tensor_offset(gl, gguf_find_tensor(gl, t->name));
                    ggml_backend_tensor_alloc(im.buf_llm, t, (char *) im.llm_map.addr + data_off + off);
                }
            }
        } else {
            // No mmap here: read just those tensors.
            ggml_init_params ip = { ggml_tensor_overhead() * 2 * im.layers.size(), nullptr, true };
            ggml_context * sub = ggml_init(ip);
            for (auto & L : im.layers) {
                for (ggml_tensor ** tp : {&L.wv, &L.wo}) {
                    ggml_tensor * c = ggml_dup_tensor(sub, *tp);
                    ggml_set_name(c, (*tp)->name);
                    *tp = c;
                }
            }
            ggml_free(im.ctx_llm);
            im.ctx_llm = sub;
            im.buf_llm = ggml_backend_alloc_ctx_tensors(sub, im.backend);
            if (!im.buf_llm) ibl_throw("ERR_OUT_OF_MEMORY", "%s: cannot allocate Wv/Wo", llm_path.c_str());
            ibl_gguf_load_tensor_data(llm_path, gl, sub);
        }
    }
    return bind;
}

std::vector<float> ibl_bind::visual(const std::vector<float> & e) const {
    if ((int) e.size() != input_dim) {
        ibl_throw("ERR_MODEL_MISMATCH", "%s: the bind network takes %d-d embeddings, the encoder gives %zu-d", path.c_str(), input_dim, e.size());
    }
    const ibl_bind_impl & im = *impl;
    const bool ln = bridge == "layernorm";
    const float eps = norm_eps;
    auto out = im.run([&](ggml_context * ctx, ggml_tensor * in) -> std::vector<ggml_tensor *> {
        // ref: ImageBind-LLM llama_adapter.forward_visual: proj, then 3 × (x + f2(silu(f1 n) ⊙ f3 n)), n = RMSNorm(x)
        ggml_tensor * x = ggml_add(ctx, ggml_mul_mat(ctx, im.proj_w, in), im.proj_b);
        for (const auto & b : im.blocks) {
            ggml_tensor * n = ln ? ggml_norm(ctx, x, eps) : ggml_rms_norm(ctx, x, eps);
            n = ggml_mul(ctx, n, b.norm_w);
            if (b.norm_b) n = ggml_add(ctx, n, b.norm_b);
            ggml_tensor * h1 = ggml_mul_mat(ctx, b.f1, n);
            if (b.f1_b) h1 = ggml_add(ctx, h1, b.f1_b);
            ggml_tensor * h3 = ggml_mul_mat(ctx, b.f3, n);
            if (b.f3_b) h3 = ggml_add(ctx, h3, b.f3_b);
            ggml_tensor * h = ggml_mul_mat(ctx, b.f2, ggml_mul(ctx, ggml_silu(ctx, h1), h3));
            if (b.f2_b) h = ggml_add(ctx, h, b.f2_b);
            x = ggml_add(ctx, x, h);
        }
        return {x};
    }, e);
    return out[0];
}

std::vector<float> ibl_bind::injection(const std::vector<float> & v) const {
    if ((int) v.size() != dim) ibl_throw("ERR_INVALID_ARG", "injection: the visual vector has %zu values, expected %d", v.size(), dim);
    const ibl_bind_impl & im = *impl;
    std::vector<float> d((size_t) llm_n_layer * llm_n_embd, 0.0f);
    if (im.layers.empty()) return d;
    const int64_t hd = dim / n_head;
    auto outs = im.run([&](ggml_context * ctx, ggml_tensor * in) -> std::vector<ggml_tensor *> {
        std::vector<ggml_tensor *> res;
        ggml_tensor * gates = ggml_tanh(ctx, im.gate);  // [n_head, Q]
        for (size_t j = 0; j < im.layers.size(); ++j) {
            const inject_layer & L = im.layers[j];
            ggml_tensor * pj = ggml_view_1d(ctx, im.prefix, dim, j * im.prefix->nb[1]);
            ggml_tensor * a  = ggml_add(ctx, in, pj);                 // visual + prefix_l
            ggml_tensor * u  = ggml_mul_mat(ctx, L.wv, a);            // merged Wv · a
            if (L.lora_a) u = ggml_sub(ctx, u, ggml_mul_mat(ctx, L.lora_b, ggml_mul_mat(ctx, L.lora_a, a)));  // − B(A a): base Wv
            ggml_tensor * g  = ggml_cont(ctx, ggml_view_2d(ctx, gates, 1, n_head, gates->nb[0], j * gates->nb[1]));  // [1, n_head]
            u = ggml_mul(ctx, ggml_reshape_2d(ctx, u, hd, n_head), g);  // per-head tanh(gate)
            res.push_back(ggml_mul_mat(ctx, L.wo, ggml_reshape_1d(ctx, ggml_cont(ctx, u), dim)));  // Wo · u
        }
        return res;
    }, v);
    for (size_t j = 0; j < im.layers.size(); ++j) {
        std::copy(outs[j].begin(), outs[j].end(), d.begin() + (size_t) im.layers[j].il * llm_n_embd);
    }
    return d;
}

std::vector<float> ibl_mix_embeddings(const std::vector<std::vector<float>> & embeddings, const std::vector<float> & weights) {
    if (embeddings.empty() || embeddings.size() != weights.size()) ibl_throw("ERR_INVALID_ARG", "mix: one weight per embedding is needed");
    const size_t n = embeddings[0].size();
    double wsum = 0;
    for (float w : weights) {
        if (!(w >= 0) || !std::isfinite(w)) ibl_throw("ERR_INVALID_ARG", "mix: weights must be finite and non-negative");
        wsum += w;
    }
    std::vector<float> out(n, 0.0f);
    for (size_t i = 0; i < embeddings.size(); ++i) {
        if (embeddings[i].size() != n) ibl_throw("ERR_INVALID_ARG", "mix: embeddings of different sizes");
        // ref: ImageBind-LLM: weights w_i / (Σ w + 1e-6), so even one input is scaled by 1/(1 + 1e-6).
        const float w = (float) (weights[i] / (wsum + 1e-6));
        for (size_t k = 0; k < n; ++k) out[k] += w * embeddings[i][k];
    }
    return out;
}
