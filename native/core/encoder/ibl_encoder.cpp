#include "ibl_encoder.h"
#include "ibl_error.h"
#include "ibl_graph.h"

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ibl_backend.h"

#include <algorithm>
#include <cmath>
#include <cstring>

static constexpr int IBL_GRAPH_MAX_NODES = 16384;
// A CPU compute buffer up to this size is kept for the next call (ibl_model::sched_cpu): one image, text or
// audio file's graph fits many times over (ImageBind-huge f32: vision 7.5 MiB, audio 3 clips 14.7 MiB, text
// 1.8 MiB); a larger batch's buffer is freed after use.
static constexpr size_t IBL_KEEP_COMPUTE_BYTES = (size_t) 256 << 20;

namespace {

// The input geometry of a patch-stem modality: [C, T, H, W] per item and the kernel as (kt, kh, kw).
struct patch_geometry {
    int C = 1, T = 1, H = 1, W = 1;
    std::vector<int> kernel, stride;  // always 3 entries
};

patch_geometry geometry_of(const ibl_model & m, ibl_modality mod) {
    const ibl_trunk_hparams & hp = m.mod(mod).hp;
    patch_geometry g;
    g.C = hp.in_channels;
    switch (mod) {
        case IBL_MOD_VISION:  g.T = m.vision.frames; g.H = g.W = m.vision.image_size; break;
        case IBL_MOD_AUDIO:   g.H = m.audio.mel_bins; g.W = m.audio.target_len; break;
        case IBL_MOD_DEPTH:   g.H = g.W = m.depth.image_size; break;
        case IBL_MOD_THERMAL: g.H = g.W = m.thermal.image_size; break;
        case IBL_MOD_IMU:     g.W = m.imu.length; g.C = m.imu.channels; break;
        default: break;
    }
    // Left-pad kernel/stride to 3 dims (t, h, w).
    g.kernel.assign(3 - hp.kernel.size(), 1);
    g.stride.assign(3 - hp.stride.size(), 1);
    g.kernel.insert(g.kernel.end(), hp.kernel.begin(), hp.kernel.end());
    g.stride.insert(g.stride.end(), hp.stride.begin(), hp.stride.end());
    return g;
}

ggml_tensor * new_input(ggml_context * ctx, ggml_type type, int64_t ne0, int64_t ne1 = 1, int64_t ne2 = 1, const char * name = "input") {
    ggml_tensor * t = ggml_new_tensor_3d(ctx, type, ne0, ne1, ne2);
    ggml_set_name(t, name);
    ggml_set_input(t);
    return t;
}

// x: [D, P, B] → [D, 1 + P, B] with the CLS token in front.
ggml_tensor * prepend_cls(ggml_context * ctx, ggml_tensor * x, ggml_tensor * cls) {
    ggml_tensor * c = ggml_repeat(ctx, ggml_reshape_3d(ctx, cls, cls->ne[0], 1, 1),
                                  ggml_new_tensor_3d(ctx, x->type, x->ne[0], 1, x->ne[2]));
    return ggml_concat(ctx, c, x, 1);
}

// Max over dim 1 of x: [D, N, B] → [D, B].
ggml_tensor * max_over_tokens(ggml_context * ctx, ggml_tensor * x) {
    const int64_t D = x->ne[0], N = x->ne[1], B = x->ne[2];
    ggml_tensor * t = ggml_cont(ctx, ggml_permute(ctx, x, 1, 0, 2, 3));  // [N, D, B]
    t = ggml_pool_1d(ctx, t, GGML_OP_POOL_MAX, (int) N, (int) N, 0);     // [1, D, B]
    return ggml_reshape_2d(ctx, t, D, B);
}

// Fused attention where the graph runs on the CPU backend (GPU backends may lack it for f32 k/v).
ibl_attn_options attn_options(ggml_context * ctx, const ibl_model & model, const ibl_trunk_hparams & hp, int64_t L) {
    ibl_attn_options o;
    o.n_heads = hp.n_heads;
    o.causal  = hp.causal;
    o.flash   = model.flash_attn && model.backend == model.backend_cpu;
    if (o.flash && o.causal) o.mask = ibl_new_causal_mask(ctx, L);
    return o;
}

// Head: LayerNorm over the selected token(s) x: [D, B], then the projection without bias.
ggml_tensor * build_head(ggml_context * ctx, const ibl_modality_model & mm, ggml_tensor * x, float eps) {
    x = ibl_build_norm(ctx, x, mm.w.head_norm_w, mm.w.head_norm_b, eps);
    return ggml_mul_mat(ctx, mm.w.head, x);  // [out, B]
}

// Patch / window stems (vision, audio, depth, thermal, IMU): patches [K, P, B] → [out, B].
ggml_tensor * build_patch_encoder(ggml_context * ctx, const ibl_model & model, const ibl_modality_model & mm, const char * p, ggml_tensor * patches) {
    const ibl_trunk_hparams & hp = mm.hp;
    const ibl_trunk_weights & w = mm.w;
    ggml_tensor * x = ggml_mul_mat(ctx, w.patch, patches);  // [D, P, B]
    if (w.stem_norm_w) x = ibl_build_norm(ctx, x, w.stem_norm_w, w.stem_norm_b, hp.stem_ln_eps);
    x = prepend_cls(ctx, x, w.cls);                         // [D, L, B]
    x = ggml_add(ctx, x, w.pos);
    if (w.pre_norm_w) x = ibl_build_norm(ctx, x, w.pre_norm_w, w.pre_norm_b, hp.ln_eps);
    ibl_name(x, p, "tokens");
    const ibl_attn_options opt = attn_options(ctx, model, hp, x->ne[1]);
    for (int il = 0; il < hp.n_blocks; ++il) x = ibl_name(ibl_build_block(ctx, x, w.blocks[il], hp.ln_eps, opt), p, "blk", il);
    ggml_tensor * cls = ggml_view_2d(ctx, x, x->ne[0], x->ne[2], x->nb[2], 0);  // token 0 of every item: [D, B]
    return build_head(ctx, mm, ggml_cont(ctx, cls), hp.head_ln_eps);
}

// Text: ids [L, B] → embeddings + positions → causal blocks → pooled token (select [B]) → [out, B].
ggml_tensor * build_text_encoder(ggml_context * ctx, const ibl_model & model, const ibl_modality_model & mm, ggml_tensor * ids, ggml_tensor * select) {
    const ibl_trunk_hparams & hp = mm.hp;
    const int64_t D = hp.embed_dim, L = ids->ne[0], B = ids->ne[1];
    ggml_tensor * x = ggml_get_rows(ctx, mm.w.token_embd, ggml_reshape_1d(ctx, ids, L * B));  // [D, L*B]
    x = ggml_add(ctx, ggml_reshape_3d(ctx, x, D, L, B), mm.w.pos);
    const ibl_attn_options opt = attn_options(ctx, model, hp, L);
    for (int il = 0; il < hp.n_blocks; ++il) x = ibl_name(ibl_build_block(ctx, x, mm.w.blocks[il], hp.ln_eps, opt), "t", "blk", il);
    x = ggml_get_rows(ctx, ggml_reshape_2d(ctx, x, D, L * B), select);  // [D, B]
    return build_head(ctx, mm, x, hp.head_ln_eps);
}

// Point-Bind: neighbourhoods [3, K, G*B], centres [3, G, B] → [out, B].
// ref: Point-BERT Encoder (mini-PointNet), PointTransformer blocks, Point-Bind projection.
ggml_tensor * build_point_encoder(ggml_context * ctx, const ibl_model & model, const ibl_modality_model & mm, ggml_tensor * nb, ggml_tensor * centers) {
    const ibl_trunk_hparams & hp = mm.hp;
    const ibl_trunk_weights & w = mm.w;
    const int64_t K = nb->ne[1], GB = nb->ne[2], G = centers->ne[1], B = centers->ne[2], D = hp.embed_dim;

    ggml_tensor * f = ggml_relu(ctx, ibl_build_linear(ctx, nb, w.pt_conv_w[0], w.pt_conv_b[0]));  // BN folded in
    f = ibl_build_linear(ctx, f, w.pt_conv_w[1], w.pt_conv_b[1]);                                 // [c2, K, GB]
    ggml_tensor * g = ggml_reshape_3d(ctx, max_over_tokens(ctx, f), f->ne[0], 1, GB);              // [c2, 1, GB]
    f = ggml_concat(ctx, ggml_repeat(ctx, g, f), f, 0);                                            // [2c2, K, GB]
    f = ggml_relu(ctx, ibl_build_linear(ctx, f, w.pt_conv_w[2], w.pt_conv_b[2]));
    f = ibl_build_linear(ctx, f, w.pt_conv_w[3], w.pt_conv_b[3]);                                 // [enc, K, GB]
    f = max_over_tokens(ctx, f);                                                                    // [enc, GB]
    ggml_tensor * tok = ggml_reshape_3d(ctx, ibl_build_linear(ctx, f, w.pt_reduce_w, w.pt_reduce_b), D, G, B);

    ggml_tensor * pos = ggml_gelu_erf(ctx, ibl_build_linear(ctx, centers, w.pt_pos1_w, w.pt_pos1_b));
    pos = ibl_build_linear(ctx, pos, w.pt_pos2_w, w.pt_pos2_b);  // [D, G, B]
    ggml_tensor * x = prepend_cls(ctx, tok, w.cls);
    pos = prepend_cls(ctx, pos, w.pt_cls_pos);
    const ibl_attn_options opt = attn_options(ctx, model, hp, x->ne[1]);
    for (int il = 0; il < hp.n_blocks; ++il) {
        x = ggml_add(ctx, x, pos);  // Point-BERT adds the positions before every block
        x = ibl_name(ibl_build_block(ctx, x, w.blocks[il], hp.ln_eps, opt), "pt", "blk", il);
    }
    x = ibl_build_norm(ctx, x, w.post_norm_w, w.post_norm_b, hp.ln_eps);
    ggml_tensor * first = ggml_cont(ctx, ggml_view_2d(ctx, x, D, B, x->nb[2], 0));                       // [D, B]
    ggml_tensor * rest  = ggml_view_3d(ctx, x, D, G, B, x->nb[1], x->nb[2], x->nb[1]);                   // tokens 1..G
    ggml_tensor * feat  = ggml_concat(ctx, first, max_over_tokens(ctx, ggml_cont(ctx, rest)), 0);        // [2D, B]
    feat = ggml_mul_mat(ctx, w.pt_proj, feat);                                                           // [P, B]
    return build_head(ctx, mm, feat, hp.head_ln_eps);
}

bool abort_cb(void * data) {
    const auto * flag = (const std::atomic<bool> *) data;
    return flag && flag->load();
}

}  // namespace

std::vector<float> ibl_patchify(const float * x, int C, int T, int H, int W, const std::vector<int> & k,
                                const std::vector<int> & s, int64_t * n_patches) {
    const int kt = k[0], kh = k[1], kw = k[2], st = s[0], sh = s[1], sw = s[2];
    if (T < kt || H < kh || W < kw) ibl_throw("ERR_INPUT_SHAPE", "input [%d, %d, %d, %d] is smaller than the kernel", C, T, H, W);
    const int gt = (T - kt) / st + 1, gh = (H - kh) / sh + 1, gw = (W - kw) / sw + 1;
    const int64_t K = (int64_t) C * kt * kh * kw, P = (int64_t) gt * gh * gw;
    std::vector<float> out((size_t) (K * P));
    float * dst = out.data();
    for (int pt = 0; pt < gt; ++pt)
    for (int py = 0; py < gh; ++py)
    for (int px = 0; px < gw; ++px) {
        for (int c = 0; c < C; ++c)
        for (int dt = 0; dt < kt; ++dt)
        for (int dy = 0; dy < kh; ++dy) {
            const float * src = x + (((int64_t) c * T + pt * st + dt) * H + py * sh + dy) * W + px * sw;
            memcpy(dst, src, sizeof(float) * kw);
            dst += kw;
        }
    }
    *n_patches = P;
    return out;
}

std::vector<float> ibl_images_to_clips(const float * x, int64_t n, int64_t C, int64_t hw, int frames) {
    std::vector<float> out;
    out.reserve((size_t) (n * C * hw * frames));
    for (int64_t i = 0; i < n; ++i)
        for (int64_t c = 0; c < C; ++c)
            for (int f = 0; f < frames; ++f) out.insert(out.end(), x + (i * C + c) * hw, x + (i * C + c + 1) * hw);
    return out;
}

void ibl_encoder_check_geometry(const ibl_model & model) {
    for (int m = 0; m < IBL_MOD_COUNT; ++m) {
        const ibl_modality mod = (ibl_modality) m;
        const ibl_modality_info & info = ibl_modality_get(mod);
        const ibl_modality_model & mm = model.mod(mod);
        if (!mm.present || (info.stem != IBL_STEM_PATCH && info.stem != IBL_STEM_WINDOWS)) continue;
        const patch_geometry g = geometry_of(model, mod);
        const int dims[3] = {g.T, g.H, g.W};
        int64_t P = 1;
        for (int i = 0; i < 3; ++i) {
            if (dims[i] < g.kernel[i]) {
                ibl_throw("ERR_MODEL_INVALID", "%s: the %s input (%d × %d × %d) is smaller than its kernel", model.path.c_str(), info.name, g.T, g.H, g.W);
            }
            P *= (dims[i] - g.kernel[i]) / g.stride[i] + 1;
        }
        if (P + 1 != mm.hp.num_tokens) {
            ibl_throw("ERR_MODEL_INVALID", "%s: the %s input geometry gives %lld patches, but the model has %d tokens", model.path.c_str(),
                      info.name, (long long) P, mm.hp.num_tokens);
        }
    }
}

int64_t ibl_encoder_item_size(const ibl_model & model, ibl_modality mod) {
    switch (mod) {
        case IBL_MOD_TEXT: return model.text.context_len;
        case IBL_MOD_POINT: return (int64_t) model.point.num_group * model.point.group_size * 3;
        default: {
            const patch_geometry g = geometry_of(model, mod);
            return (int64_t) g.C * g.T * g.H * g.W;
        }
    }
}

std::vector<float> ibl_encode(ibl_model & model, const ibl_encoder_batch & batch, const std::atomic<bool> * abort_flag) {
    const ibl_modality mod = batch.mod;
    const ibl_modality_info & info = ibl_modality_get(mod);
    const ibl_modality_model & mm = model.mod(mod);
    if (!mm.present) ibl_throw("ERR_MODALITY_MISSING", "%s: this encoder has no %s modality", model.path.c_str(), info.name);
    const int B = batch.n;
    if (B <= 0) ibl_throw("ERR_INVALID_ARG", "empty %s batch", info.name);
    const int64_t item = ibl_encoder_item_size(model, mod);
    const size_t have = mod == IBL_MOD_TEXT ? batch.ids.size() : batch.data.size();
    if (have != (size_t) (item * B)) {
        ibl_throw("ERR_INPUT_SHAPE", "%s input has %zu values, expected %d × %lld", info.name, have, B, (long long) item);
    }
    ibl_model_use(model, mod, abort_flag);

    const size_t ctx_size = ggml_tensor_overhead() * IBL_GRAPH_MAX_NODES + ggml_graph_overhead_custom(IBL_GRAPH_MAX_NODES, false);
    ggml_init_params ip = { ctx_size, nullptr, /*no_alloc*/ true };
    ggml_context * ctx = ggml_init(ip);
    if (!ctx) ibl_throw("ERR_OUT_OF_MEMORY", "cannot allocate a graph context");
    struct ctx_guard { ggml_context * c; ~ctx_guard() { ggml_free(c); } } cg{ctx};
    ggml_cgraph * gf = ggml_new_graph_custom(ctx, IBL_GRAPH_MAX_NODES, false);

    // Host-side inputs, prepared before the graph is allocated.
    std::vector<float> patches, centers = batch.centers;
    std::vector<int32_t> select;
    ggml_tensor * in_a = nullptr, * in_b = nullptr, * out = nullptr;
    switch (info.stem) {
        case IBL_STEM_PATCH:
        case IBL_STEM_WINDOWS: {
            const patch_geometry g = geometry_of(model, mod);
            int64_t P = 0;
            for (int b = 0; b < B; ++b) {
                std::vector<float> pb = ibl_patchify(batch.data.data() + b * item, g.C, g.T, g.H, g.W, g.kernel, g.stride, &P);
                patches.insert(patches.end(), pb.begin(), pb.end());
            }
            if (P + 1 != mm.hp.num_tokens) {
                ibl_throw("ERR_MODEL_INVALID", "%s: %s input gives %lld patches but the model has %d tokens", model.path.c_str(),
                          info.name, (long long) P, mm.hp.num_tokens);
            }
            const int64_t K = (int64_t) patches.size() / (P * B);
            in_a = new_input(ctx, GGML_TYPE_F32, K, P, B, "patches");
            out = build_patch_encoder(ctx, model, mm, info.prefix, in_a);
            break;
        }
        case IBL_STEM_TOKENS: {
            const int L = model.text.context_len;
            if (L != mm.hp.num_tokens) ibl_throw("ERR_MODEL_INVALID", "%s: text context %d != %d tokens", model.path.c_str(), L, mm.hp.num_tokens);
            for (int b = 0; b < B; ++b) {
                const int32_t * row = batch.ids.data() + (size_t) b * L;
                for (int i = 0; i < L; ++i) {
                    if (row[i] < 0 || row[i] >= model.text.vocab_size) ibl_throw("ERR_INPUT_SHAPE", "token id %d out of range", row[i]);
                }
                // ref: ImageBind SelectEOSAndProject — the token at the first argmax of the ids.
                select.push_back(b * L + (int32_t) (std::max_element(row, row + L) - row));
            }
            in_a = new_input(ctx, GGML_TYPE_I32, L, B, 1, "ids");
            in_b = new_input(ctx, GGML_TYPE_I32, B, 1, 1, "select");
            out = build_text_encoder(ctx, model, mm, in_a, in_b);
            break;
        }
        case IBL_STEM_POINTS: {
            const int G = model.point.num_group, K = model.point.group_size;
            if (centers.size() != (size_t) G * 3 * B) ibl_throw("ERR_INPUT_SHAPE", "point centres: %zu values, expected %d", centers.size(), G * 3 * B);
            in_a = new_input(ctx, GGML_TYPE_F32, 3, K, (int64_t) G * B, "neighbourhoods");
            in_b = new_input(ctx, GGML_TYPE_F32, 3, G, B, "centers");
            out = build_point_encoder(ctx, model, mm, in_a, in_b);
            break;
        }
    }
    ggml_set_name(out, "head_out");
    ggml_set_output(out);
    ggml_build_forward_expand(gf, out);

    // On a device other than the CPU, a backend of its own for this graph: ggml-vulkan grows its scratch
    // buffers in the middle of a graph that needs more than an earlier graph of the same backend did,
    // and that corrupts the heap under lavapipe (Mesa 22.3; docs/DEVICES.md). A fresh backend sizes them
    // for this graph alone. It is cheap next to the graph: the device keeps its pipelines and weights.
    const bool on_cpu = model.backend == model.backend_cpu;
    ggml_backend_t dev_backend = on_cpu ? model.backend : ggml_backend_dev_init(ggml_backend_get_device(model.backend), nullptr);
    if (!dev_backend) ibl_throw("ERR_NO_DEVICE", "cannot initialise device %s", model.device_name.c_str());
    struct backend_guard { ggml_backend_t b; bool own; ~backend_guard() { if (own) ggml_backend_free(b); } } bg{dev_backend, !on_cpu};
    ggml_backend_t backends[2] = {dev_backend, model.backend_cpu};
    const int n_backends = on_cpu ? 1 : 2;
    // On the CPU the model's scheduler (and its compute buffer) is reused; a device graph gets its own.
    std::unique_lock<std::mutex> compute_lock(model.compute_mutex, std::defer_lock);
    if (on_cpu) compute_lock.lock();
    ggml_backend_sched_t sched = on_cpu ? model.sched_cpu : nullptr;
    if (sched) ggml_backend_sched_reset(sched);
    else sched = ggml_backend_sched_new(backends, nullptr, n_backends, IBL_GRAPH_MAX_NODES, false, true);
    if (on_cpu) model.sched_cpu = sched;
    // frees a device graph's scheduler, and the kept one when its buffer grew past the bound or the call failed
    struct sched_guard {
        ibl_model & m; ggml_backend_sched_t s; bool ok = false;
        ~sched_guard() {
            const bool keep = ok && s == m.sched_cpu && ggml_backend_sched_get_buffer_size(s, m.backend) <= IBL_KEEP_COMPUTE_BYTES;
            if (keep) return;
            if (s == m.sched_cpu) m.sched_cpu = nullptr;
            ggml_backend_sched_free(s);
        }
    } sg{model, sched};
    ggml_backend_sched_set_eval_callback(sched, model.eval_cb, model.eval_cb_data);
    if (!ggml_backend_sched_alloc_graph(sched, gf)) ibl_throw("ERR_OUT_OF_MEMORY", "cannot allocate the %s graph (batch %d)", info.name, B);

    switch (info.stem) {
        case IBL_STEM_PATCH:
        case IBL_STEM_WINDOWS: ggml_backend_tensor_set(in_a, patches.data(), 0, ggml_nbytes(in_a)); break;
        case IBL_STEM_TOKENS:
            ggml_backend_tensor_set(in_a, batch.ids.data(), 0, ggml_nbytes(in_a));
            ggml_backend_tensor_set(in_b, select.data(), 0, ggml_nbytes(in_b));
            if (ggml_tensor * mask = ggml_graph_get_tensor(gf, "causal_mask")) {
                const std::vector<ggml_fp16_t> m = ibl_causal_mask(mask->ne[0]);
                ggml_backend_tensor_set(mask, m.data(), 0, ggml_nbytes(mask));
            }
            break;
        case IBL_STEM_POINTS:
            ggml_backend_tensor_set(in_a, batch.data.data(), 0, ggml_nbytes(in_a));
            ggml_backend_tensor_set(in_b, centers.data(), 0, ggml_nbytes(in_b));
            break;
    }
    ibl_backend_set_n_threads(model.backend_cpu, model.n_threads);
    ibl_backend_set_abort_callback(model.backend_cpu, abort_cb, (void *) abort_flag);
    const ggml_status st = ggml_backend_sched_graph_compute(sched, gf);
    ibl_backend_set_abort_callback(model.backend_cpu, nullptr, nullptr);
    if (abort_flag && abort_flag->load()) ibl_throw("ERR_ABORTED", "encoding aborted");
    if (st != GGML_STATUS_SUCCESS) ibl_throw("ERR_COMPUTE", "%s graph computation failed (status %d)", info.name, (int) st);

    std::vector<float> result((size_t) model.out_dim * B);
    ggml_backend_tensor_get(out, result.data(), 0, ggml_nbytes(out));
    sg.ok = true;
    return result;
}

void ibl_postprocess(const ibl_model & model, ibl_modality mod, const float * raw, int n_clips, int out_dim,
                     std::vector<float> & raw_mean, std::vector<float> & embedding) {
    const float scale = model.mod(mod).hp.logit_scale;
    raw_mean.assign(out_dim, 0.0f);
    embedding.assign(out_dim, 0.0f);
    for (int c = 0; c < n_clips; ++c) {
        const float * r = raw + (size_t) c * out_dim;
        double ss = 0;
        for (int i = 0; i < out_dim; ++i) ss += (double) r[i] * r[i];
        // ref: torch.nn.functional.normalize (eps 1e-12), then LearnableLogitScaling.
        const double inv = 1.0 / std::max(std::sqrt(ss), 1e-12);
        for (int i = 0; i < out_dim; ++i) {
            raw_mean[i] += r[i] / n_clips;
            embedding[i] += (float) (r[i] * inv * (scale > 0 ? scale : 1.0)) / n_clips;
        }
    }
}
