#include "ibl_model.h"
#include "ibl_encoder.h"
#include "ibl_threads.h"
#include "ibl_backend.h"
#include "ibl_error.h"
#include "ibl_gguf.h"
#include "ibl_keys.h"
#include "ibl_audio.h"
#include "ibl_bpe.h"

#include "ggml-alloc.h"
#include "gguf.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>

ibl_model::~ibl_model() {
    if (sched_cpu) ggml_backend_sched_free(sched_cpu);
    for (auto & m : mods) {
        if (m.buf) ggml_backend_buffer_free(m.buf);
    }
    if (gguf) gguf_free(gguf);
    if (ctx_w) ggml_free(ctx_w);
    if (backend_cpu && backend_cpu != backend) ggml_backend_free(backend_cpu);
    if (backend) ggml_backend_free(backend);
}

namespace {

std::string fmt(const char * f, const char * a, const char * b = nullptr) {
    char buf[128];
    snprintf(buf, sizeof(buf), f, a, b);
    return buf;
}

std::string fmt_blk(const char * f, const char * prefix, int il, const char * suffix = nullptr) {
    char buf[128];
    if (suffix) snprintf(buf, sizeof(buf), f, prefix, il, suffix);
    else snprintf(buf, sizeof(buf), f, prefix, il);
    return buf;
}

// Wires tensors by canonical name and checks their shapes; every error names the file and tensor.
struct tensor_getter {
    ggml_context *      ctx;
    const std::string & file;

    // Vectors (norms, biases, positions, tokens) must be f32: ggml's element-wise ops take them as is.
    // Matrices feed mul_mat/get_rows and may be any float or quantized type.
    ggml_tensor * get(const std::string & name, std::initializer_list<int64_t> shape, bool required = true, bool matrix = false) const {
        ggml_tensor * t = ggml_get_tensor(ctx, name.c_str());
        if (!t) {
            if (required) ibl_throw("ERR_MODEL_INVALID", "%s: missing tensor '%s'", file.c_str(), name.c_str());
            return nullptr;
        }
        const bool type_ok = matrix ? (t->type == GGML_TYPE_F32 || ggml_get_type_traits(t->type)->to_float != nullptr)
                                    : t->type == GGML_TYPE_F32;
        if (!type_ok) {
            ibl_throw("ERR_MODEL_INVALID", "%s: tensor '%s' has type %s, expected %s", file.c_str(), name.c_str(),
                      ggml_type_name(t->type), matrix ? "a float or quantized type" : "f32");
        }
        int i = 0;
        bool ok = ggml_n_dims(t) <= (int) shape.size();
        for (int64_t d : shape) ok = ok && t->ne[i++] == d;
        if (!ok) {
            std::string want, got;
            for (int64_t d : shape) want += (want.empty() ? "" : ", ") + std::to_string(d);
            for (int j = 0; j < ggml_n_dims(t); ++j) got += (got.empty() ? "" : ", ") + std::to_string(t->ne[j]);
            ibl_throw("ERR_MODEL_INVALID", "%s: tensor '%s' has shape [%s], expected [%s]", file.c_str(), name.c_str(),
                      got.c_str(), want.c_str());
        }
        return t;
    }
};

struct meta_reader {
    const gguf_context * g;
    const std::string &  file;
    std::string key(const char * mod, const char * field) const { return fmt(IBL_KEY_FMT, mod, field); }
    int  i(const char * mod, const char * f, int lo, int hi, bool req = true, int d = 0) const {
        return (int) ibl_gguf_int(g, file, key(mod, f), req, d, lo, hi);
    }
    float f(const char * mod, const char * field, double lo, double hi, bool req, double d) const {
        return (float) ibl_gguf_float(g, file, key(mod, field), req, d, lo, hi);
    }
    bool b(const char * mod, const char * field, bool d) const { return ibl_gguf_bool(g, file, key(mod, field), d); }
};

void load_trunk_hparams(const meta_reader & r, const char * m, ibl_trunk_hparams & hp) {
    // Bounds: what the architecture and memory allow (ImageBind-huge: width 1280, 32 blocks, 16 heads,
    // 5120 hidden, 257 tokens; the attention matrices grow with the square of the tokens).
    hp.embed_dim   = r.i(m, IBL_F_EMBED_DIM, 1, 8192);
    hp.n_blocks    = r.i(m, IBL_F_BLOCK_COUNT, 0, 256);
    hp.n_heads     = r.i(m, IBL_F_HEAD_COUNT, 1, 256);
    hp.ffn_dim     = r.i(m, IBL_F_FFN_DIM, 1, 65536);
    hp.num_tokens  = r.i(m, IBL_F_NUM_TOKENS, 1, 4096);
    hp.ln_eps      = r.f(m, IBL_F_LN_EPS, 0, 1, false, 1e-6);
    hp.stem_ln_eps = r.f(m, IBL_F_STEM_LN_EPS, 0, 1, false, 1e-5);
    hp.head_ln_eps = r.f(m, IBL_F_HEAD_LN_EPS, 0, 1, false, 1e-6);
    hp.logit_scale = r.f(m, IBL_F_LOGIT_SCALE, 0, 1e6, false, 0);
    hp.pre_ln      = r.b(m, IBL_F_PRE_LN, false);
    hp.kv_bias     = r.b(m, IBL_F_KV_BIAS, false);
    hp.causal      = r.b(m, IBL_F_CAUSAL, false);
    hp.in_channels = r.i(m, IBL_F_IN_CHANNELS, 0, 64, false, 0);
    for (int64_t k : ibl_gguf_int_array(r.g, r.file, r.key(m, IBL_F_KERNEL))) hp.kernel.push_back((int) k);
    for (int64_t s : ibl_gguf_int_array(r.g, r.file, r.key(m, IBL_F_STRIDE))) hp.stride.push_back((int) s);
    if (hp.embed_dim % hp.n_heads != 0) {
        ibl_throw("ERR_MODEL_INVALID", "%s: %s embed_dim %d is not a multiple of head_count %d", r.file.c_str(), m, hp.embed_dim, hp.n_heads);
    }
    if (hp.kernel.size() != hp.stride.size() || hp.kernel.size() > 3) {
        ibl_throw("ERR_MODEL_INVALID", "%s: %s kernel_size/stride must have the same 1 to 3 entries", r.file.c_str(), m);
    }
    for (size_t i = 0; i < hp.kernel.size(); ++i) {
        if (hp.kernel[i] < 1 || hp.stride[i] < 1 || hp.kernel[i] > 256 || hp.stride[i] > hp.kernel[i]) {
            ibl_throw("ERR_MODEL_INVALID", "%s: %s kernel_size/stride out of range", r.file.c_str(), m);
        }
    }
}

void load_blocks(const tensor_getter & tg, const char * p, const ibl_trunk_hparams & hp, bool qkv_bias, ibl_trunk_weights & w) {
    const int64_t D = hp.embed_dim, F = hp.ffn_dim;
    w.blocks.resize(hp.n_blocks);
    for (int il = 0; il < hp.n_blocks; ++il) {
        ibl_block_weights & b = w.blocks[il];
        b.ln1_w  = tg.get(fmt_blk(IBL_TN_LN1, p, il, "weight"), {D});
        b.ln1_b  = tg.get(fmt_blk(IBL_TN_LN1, p, il, "bias"), {D});
        b.qkv_w  = tg.get(fmt_blk(IBL_TN_ATTN_QKV, p, il, "weight"), {D, 3 * D}, true, true);
        b.qkv_b  = tg.get(fmt_blk(IBL_TN_ATTN_QKV, p, il, "bias"), {3 * D}, qkv_bias);
        if (hp.kv_bias) {
            b.bias_k = tg.get(fmt_blk(IBL_TN_ATTN_BIAS_K, p, il), {D});
            b.bias_v = tg.get(fmt_blk(IBL_TN_ATTN_BIAS_V, p, il), {D});
        }
        b.out_w  = tg.get(fmt_blk(IBL_TN_ATTN_OUT, p, il, "weight"), {D, D}, true, true);
        b.out_b  = tg.get(fmt_blk(IBL_TN_ATTN_OUT, p, il, "bias"), {D});
        b.ln2_w  = tg.get(fmt_blk(IBL_TN_LN2, p, il, "weight"), {D});
        b.ln2_b  = tg.get(fmt_blk(IBL_TN_LN2, p, il, "bias"), {D});
        b.up_w   = tg.get(fmt_blk(IBL_TN_FFN_UP, p, il, "weight"), {D, F}, true, true);
        b.up_b   = tg.get(fmt_blk(IBL_TN_FFN_UP, p, il, "bias"), {F});
        b.down_w = tg.get(fmt_blk(IBL_TN_FFN_DOWN, p, il, "weight"), {F, D}, true, true);
        b.down_b = tg.get(fmt_blk(IBL_TN_FFN_DOWN, p, il, "bias"), {D});
    }
}

int64_t kernel_volume(const ibl_trunk_hparams & hp) {
    int64_t k = hp.in_channels;
    for (int x : hp.kernel) k *= x;
    return k;
}

void load_modality(const meta_reader & r, const tensor_getter & tg, ibl_model & model, ibl_modality id) {
    const ibl_modality_info & info = ibl_modality_get(id);
    const char * m = info.name;
    const char * p = info.prefix;
    ibl_modality_model & mm = model.mods[id];
    ibl_trunk_hparams & hp = mm.hp;
    ibl_trunk_weights & w = mm.w;
    load_trunk_hparams(r, m, hp);
    const int64_t D = hp.embed_dim, L = hp.num_tokens, out = model.out_dim;

    switch (info.stem) {
        case IBL_STEM_PATCH:
        case IBL_STEM_WINDOWS: {
            if (hp.kernel.empty() || hp.in_channels < 1) {
                ibl_throw("ERR_MODEL_INVALID", "%s: %s needs in_channels, kernel_size and stride", r.file.c_str(), m);
            }
            w.patch = tg.get(fmt(IBL_TN_PATCH, p), {kernel_volume(hp), D}, true, true);
            w.cls   = tg.get(fmt(IBL_TN_CLS, p), {D});
            w.pos   = tg.get(fmt(IBL_TN_POS, p), {D, L});
            w.stem_norm_w = tg.get(fmt(IBL_TN_STEM_NORM, p, "weight"), {D}, false);
            w.stem_norm_b = tg.get(fmt(IBL_TN_STEM_NORM, p, "bias"), {D}, w.stem_norm_w != nullptr);
            break;
        }
        case IBL_STEM_TOKENS: {
            const int vocab = r.i(m, IBL_F_VOCAB_SIZE, 1, 1 << 24);
            w.token_embd = tg.get(fmt(IBL_TN_TOKEN_EMBD, p), {D, vocab}, true, true);
            w.pos        = tg.get(fmt(IBL_TN_POS, p), {D, L});
            break;
        }
        case IBL_STEM_POINTS: {
            auto conv = [&](int i, const char * s) { char b[64]; snprintf(b, sizeof(b), IBL_TN_PT_CONV, i, s); return std::string(b); };
            // Widths come from the tensors (Point-BERT: 3→128→256, concat 512→512→encoder_dims).
            auto width = [&](int i) -> int64_t {
                ggml_tensor * t = ggml_get_tensor(tg.ctx, conv(i, "weight").c_str());
                if (!t) ibl_throw("ERR_MODEL_INVALID", "%s: missing tensor '%s'", r.file.c_str(), conv(i, "weight").c_str());
                return t->ne[1];
            };
            const int64_t c1 = width(1), c2 = width(2), c3 = width(3), enc = width(4);
            const int64_t in[4] = {3, c1, 2 * c2, c3}, o[4] = {c1, c2, c3, enc};
            for (int i = 0; i < 4; ++i) {
                w.pt_conv_w[i] = tg.get(conv(i + 1, "weight"), {in[i], o[i]}, true, true);
                w.pt_conv_b[i] = tg.get(conv(i + 1, "bias"), {o[i]});
            }
            model.point.encoder_dims = (int) enc;
            w.pt_reduce_w = tg.get(fmt(IBL_TN_PT_REDUCE, "weight"), {enc, D}, true, true);
            w.pt_reduce_b = tg.get(fmt(IBL_TN_PT_REDUCE, "bias"), {D});
            ggml_tensor * p1 = ggml_get_tensor(tg.ctx, fmt(IBL_TN_PT_POS1, "weight").c_str());
            const int64_t ph = p1 ? p1->ne[1] : 0;
            w.pt_pos1_w = tg.get(fmt(IBL_TN_PT_POS1, "weight"), {3, ph}, true, true);
            w.pt_pos1_b = tg.get(fmt(IBL_TN_PT_POS1, "bias"), {ph});
            w.pt_pos2_w = tg.get(fmt(IBL_TN_PT_POS2, "weight"), {ph, D}, true, true);
            w.pt_pos2_b = tg.get(fmt(IBL_TN_PT_POS2, "bias"), {D});
            w.cls        = tg.get(fmt(IBL_TN_CLS, p), {D});
            w.pt_cls_pos = tg.get(IBL_TN_PT_CLS_POS, {D});
            w.post_norm_w = tg.get(fmt(IBL_TN_POST_NORM, p, "weight"), {D});
            w.post_norm_b = tg.get(fmt(IBL_TN_POST_NORM, p, "bias"), {D});
            model.point.proj_dim = r.i(m, IBL_F_PROJ_DIM, 1, 1 << 20);
            w.pt_proj = tg.get(IBL_TN_PT_PROJ, {2 * D, model.point.proj_dim}, true, true);
            break;
        }
    }
    if (hp.pre_ln) {
        w.pre_norm_w = tg.get(fmt(IBL_TN_PRE_NORM, p, "weight"), {D});
        w.pre_norm_b = tg.get(fmt(IBL_TN_PRE_NORM, p, "bias"), {D});
    }
    load_blocks(tg, p, hp, info.stem != IBL_STEM_POINTS, w);
    const int64_t H = info.stem == IBL_STEM_POINTS ? model.point.proj_dim : D;
    w.head_norm_w = tg.get(fmt(IBL_TN_HEAD_NORM, p, "weight"), {H});
    w.head_norm_b = tg.get(fmt(IBL_TN_HEAD_NORM, p, "bias"), {H});
    w.head        = tg.get(fmt(IBL_TN_HEAD, p), {H, out}, true, true);
    mm.present = true;
}

void load_preprocess_params(const meta_reader & r, ibl_model & model) {
    if (model.mods[IBL_MOD_VISION].present) {
        auto & v = model.vision;
        v.image_size      = r.i("vision", IBL_F_IMAGE_SIZE, 1, 2048, false, v.image_size);
        v.frames          = r.i("vision", IBL_F_FRAMES, 1, 16, false, v.frames);
        v.clips_per_video = r.i("vision", IBL_F_CLIPS_PER_VIDEO, 1, 64, false, v.clips_per_video);
        v.clip_duration   = r.f("vision", IBL_F_CLIP_DURATION, 1e-3, 60, false, v.clip_duration);
        const auto mean = ibl_gguf_float_array(r.g, r.file, r.key("vision", IBL_F_IMAGE_MEAN));
        const auto std  = ibl_gguf_float_array(r.g, r.file, r.key("vision", IBL_F_IMAGE_STD));
        if (mean.size() == 3 && std.size() == 3) {
            for (int c = 0; c < 3; ++c) {
                if (!std::isfinite(mean[c]) || !(std::fabs(std[c]) >= 1e-6) || !std::isfinite(std[c])) {
                    ibl_throw("ERR_MODEL_INVALID", "%s: vision image_mean/image_std must be finite with std ≠ 0 (channel %d: %g / %g)",
                              r.file.c_str(), c, mean[c], std[c]);
                }
                v.mean[c] = (float) mean[c];
                v.std[c]  = (float) std[c];
            }
        }
    }
    if (model.mods[IBL_MOD_AUDIO].present) {
        auto & a = model.audio;
        a.sample_rate     = r.i("audio", IBL_F_SAMPLE_RATE, 1000, 192000, false, a.sample_rate);
        a.mel_bins        = r.i("audio", IBL_F_MEL_BINS, 1, 512, false, a.mel_bins);
        a.target_len      = r.i("audio", IBL_F_TARGET_LEN, 1, 4096, false, a.target_len);
        a.clips_per_video = r.i("audio", IBL_F_CLIPS_PER_VIDEO, 1, 64, false, a.clips_per_video);
        a.clip_duration   = r.f("audio", IBL_F_CLIP_DURATION, 1e-3, 60, false, a.clip_duration);
        a.mean            = r.f("audio", IBL_F_AUDIO_MEAN, -1e6, 1e6, false, a.mean);
        a.std             = r.f("audio", IBL_F_AUDIO_STD, 1e-9, 1e6, false, a.std);
    }
    if (model.mods[IBL_MOD_TEXT].present) {
        model.text.context_len = r.i("text", IBL_F_CONTEXT_LEN, 1, 1024, false, model.text.context_len);
        model.text.vocab_size  = r.i("text", IBL_F_VOCAB_SIZE, 1, 1 << 20);
        model.bpe_merges = ibl_gguf_str_array(r.g, r.file, r.key("text", IBL_F_BPE_MERGES));
        if (model.bpe_merges.empty()) ibl_throw("ERR_MODEL_INVALID", "%s: the text encoder has no BPE merges (imagebind.text.bpe_merges)", r.file.c_str());
    }
    model.depth.image_size   = r.i("depth", IBL_F_IMAGE_SIZE, 1, 2048, false, 224);
    model.thermal.image_size = r.i("thermal", IBL_F_IMAGE_SIZE, 1, 2048, false, 224);
    if (model.mods[IBL_MOD_IMU].present) {
        model.imu.channels = r.i("imu", IBL_F_IMU_CHANNELS, 1, 64, false, model.imu.channels);
        model.imu.length   = r.i("imu", IBL_F_IMU_LENGTH, 1, 1 << 17, false, model.imu.length);
        model.imu.window   = r.i("imu", IBL_F_IMU_WINDOW, 1, 4096, false, model.imu.window);
    }
    if (model.mods[IBL_MOD_POINT].present) {
        model.point.num_group  = r.i("point", IBL_F_NUM_GROUP, 1, 8192);
        model.point.group_size = r.i("point", IBL_F_GROUP_SIZE, 1, 1024);
    }
}

// Every weight tensor of a trunk.
std::vector<ggml_tensor *> trunk_tensors(const ibl_trunk_weights & w) {
    std::vector<ggml_tensor *> out = {w.cls, w.pos, w.patch, w.token_embd, w.stem_norm_w, w.stem_norm_b, w.pre_norm_w,
                                      w.pre_norm_b, w.post_norm_w, w.post_norm_b, w.head_norm_w, w.head_norm_b, w.head,
                                      w.pt_reduce_w, w.pt_reduce_b, w.pt_pos1_w, w.pt_pos1_b, w.pt_pos2_w, w.pt_pos2_b,
                                      w.pt_cls_pos, w.pt_proj};
    out.insert(out.end(), w.pt_conv_w.begin(), w.pt_conv_w.end());
    out.insert(out.end(), w.pt_conv_b.begin(), w.pt_conv_b.end());
    for (const auto & b : w.blocks) {
        out.insert(out.end(), {b.ln1_w, b.ln1_b, b.qkv_w, b.qkv_b, b.bias_k, b.bias_v, b.out_w, b.out_b, b.ln2_w, b.ln2_b,
                               b.up_w, b.up_b, b.down_w, b.down_b});
    }
    out.erase(std::remove(out.begin(), out.end(), nullptr), out.end());
    return out;
}

void unbind(const std::vector<ggml_tensor *> & tensors) {
    for (ggml_tensor * t : tensors) { t->buffer = nullptr; t->data = nullptr; }
}

// The trunk's tensors in place in the mapped file: one host buffer over the span of their data, which is
// checked for NaN/Inf first (the same check ibl_gguf_load_tensors makes on the read path).
ggml_backend_buffer_t bind_mapped(ibl_model & model, const std::vector<ggml_tensor *> & tensors, const std::atomic<bool> * abort) {
    char * base = (char *) model.map->addr + gguf_get_data_offset(model.gguf);
    size_t lo = SIZE_MAX, hi = 0, max_size = 0;
    for (ggml_tensor * t : tensors) {
        if (abort && abort->load()) ibl_throw("ERR_ABORTED", "%s: loading aborted", model.path.c_str());
        const size_t off = gguf_get_tensor_offset(model.gguf, gguf_find_tensor(model.gguf, t->name));
        if (!ggml_validate_row_data(t->type, base + off, ggml_nbytes(t))) {
            ibl_throw("ERR_MODEL_INVALID", "%s: tensor '%s' holds NaN or infinite values", model.path.c_str(), t->name);
        }
        lo = std::min(lo, off);
        hi = std::max(hi, off + ggml_nbytes(t));
        max_size = std::max(max_size, ggml_nbytes(t));
    }
    ggml_backend_dev_t dev = ggml_backend_get_device(model.backend);
    ggml_backend_buffer_t buf = ggml_backend_dev_buffer_from_host_ptr(dev, base + lo, hi - lo, max_size);
    if (!buf) ibl_throw("ERR_OUT_OF_MEMORY", "%s: cannot use the mapped weights on %s", model.path.c_str(), model.device_name.c_str());
    for (ggml_tensor * t : tensors) {
        const size_t off = gguf_get_tensor_offset(model.gguf, gguf_find_tensor(model.gguf, t->name));
        if (ggml_backend_tensor_alloc(buf, t, base + off) != GGML_STATUS_SUCCESS) {
            unbind(tensors);
            ggml_backend_buffer_free(buf);
            ibl_throw("ERR_MODEL_INVALID", "%s: cannot place tensor '%s'", model.path.c_str(), t->name);
        }
    }
    return buf;
}

// The trunk's tensors read from the file into one new buffer on the model's device.
ggml_backend_buffer_t read_into_buffer(ibl_model & model, const std::vector<ggml_tensor *> & tensors, const std::atomic<bool> * abort) {
    ggml_backend_buffer_type_t buft = ggml_backend_get_default_buffer_type(model.backend);
    const size_t align = ggml_backend_buft_get_alignment(buft);
    size_t size = 0;
    for (ggml_tensor * t : tensors) size += GGML_PAD(ggml_backend_buft_get_alloc_size(buft, t), align);
    ggml_backend_buffer_t buf = ggml_backend_buft_alloc_buffer(buft, size);
    if (!buf) ibl_throw("ERR_OUT_OF_MEMORY", "%s: cannot allocate %zu bytes of weights on %s", model.path.c_str(), size, model.device_name.c_str());
    ggml_tallocr ta = ggml_tallocr_new(buf);
    for (ggml_tensor * t : tensors) ggml_tallocr_alloc(&ta, t);
    try {
        ibl_load_monitor monitor;
        monitor.abort = abort;
        ibl_gguf_load_tensors(model.path, model.gguf, tensors, &monitor);
    } catch (...) {
        unbind(tensors);
        ggml_backend_buffer_free(buf);
        throw;
    }
    return buf;
}

}  // namespace

void ibl_model_use(ibl_model & model, ibl_modality mod, const std::atomic<bool> * abort) {
    std::lock_guard<std::mutex> lock(model.weights_mutex);
    ibl_modality_model & mm = model.mods[mod];
    if (!mm.present || mm.buf) return;
    const std::vector<ggml_tensor *> tensors = trunk_tensors(mm.w);
    mm.buf = model.map ? bind_mapped(model, tensors, abort) : read_into_buffer(model, tensors, abort);
    ggml_backend_buffer_set_usage(mm.buf, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
}

bool ibl_model_trunk_loaded(const ibl_model & model, ibl_modality mod) {
    std::lock_guard<std::mutex> lock(model.weights_mutex);
    return model.mods[mod].buf != nullptr;
}

std::unique_ptr<ibl_model> ibl_model_load(const std::string & path, const ibl_model_params & params) {
    auto model = std::make_unique<ibl_model>();
    model->path = path;
    gguf_context * g = ibl_gguf_open(path, &model->ctx_w);
    model->gguf = g;

    const std::string arch = ibl_gguf_str(g, path, IBL_KEY_ARCH, false, "");
    if (arch != IBL_ARCH_IMAGEBIND) {
        ibl_throw("ERR_MODEL_WRONG_TYPE", "%s: not an ImageBind encoder: general.architecture is '%s', expected '%s'%s",
                  path.c_str(), arch.c_str(), IBL_ARCH_IMAGEBIND,
                  arch == "llama" ? " (this is an LLM file: pass it as the model, not the encoder)" : "");
    }
    model->name      = ibl_gguf_str(g, path, IBL_KEY_NAME, false, "");
    model->file_type = ibl_gguf_str(g, path, IBL_KEY_FILE_TYPE, false, "");
    model->out_dim   = (int) ibl_gguf_int(g, path, IBL_KEY_OUT_DIM, true, 0, 1, 1 << 20);

    const meta_reader r{g, path};
    const tensor_getter tg{model->ctx_w, path};
    const auto names = ibl_gguf_str_array(g, path, IBL_KEY_MODALITIES);
    if (names.empty()) ibl_throw("ERR_MODEL_INVALID", "%s: no modalities listed in '%s'", path.c_str(), IBL_KEY_MODALITIES);
    for (const auto & n : names) {
        const ibl_modality id = ibl_modality_from_name(n);
        if (id == IBL_MOD_COUNT) ibl_throw("ERR_MODEL_INVALID", "%s: unknown modality '%s'", path.c_str(), n.c_str());
        load_modality(r, tg, *model, id);
    }
    load_preprocess_params(r, *model);
    ibl_encoder_check_geometry(*model);
    if (model->mods[IBL_MOD_TEXT].present) model->tokenizer = std::make_shared<ibl_bpe>(model->bpe_merges);
    if (model->mods[IBL_MOD_AUDIO].present) {
        ibl_audio_params ap;
        ap.sample_rate   = model->audio.sample_rate;
        ap.num_mel_bins  = model->audio.mel_bins;
        ap.target_length = model->audio.target_len;
        ap.clip_duration = model->audio.clip_duration;
        ap.clips         = model->audio.clips_per_video;
        ap.mean          = model->audio.mean;
        ap.std           = model->audio.std;
        model->audio_ctx = ibl_audio_ctx_init(ap);
    }

    ggml_backend_dev_t dev = ibl_device_pick(params.device, path);
    model->backend = ggml_backend_dev_init(dev, nullptr);
    if (!model->backend) ibl_throw("ERR_NO_DEVICE", "cannot initialise device %s", ggml_backend_dev_name(dev));
    model->device_name = ggml_backend_dev_name(dev);
    model->n_threads = ibl_threads_resolve(params.n_threads);
    ibl_threads_probe(model->n_threads);
    model->flash_attn = params.flash_attn;
    // The CPU runs what the device cannot (the scheduler falls back to it op by op).
    model->backend_cpu = ibl_device_is_cpu(dev) ? model->backend : ibl_cpu_backend_init(model->n_threads);
    ibl_backend_set_n_threads(model->backend_cpu, model->n_threads);

    for (const auto & m : model->mods) {
        for (ggml_tensor * t : trunk_tensors(m.w)) model->weights_bytes += ggml_nbytes(t);
    }
    // On the CPU the weights are used in place from the mapped file (no copy; pages are read when first
    // used); a device that cannot use host memory gets each trunk's tensors read at its first use.
    if (params.use_mmap && ibl_device_is_cpu(dev)) {
        ggml_backend_dev_props props;
        ggml_backend_dev_get_props(dev, &props);
        auto map = std::make_unique<ibl_file_map>();
        if (props.caps.buffer_from_host_ptr && map->map(path, ibl_file_size(path))) model->map = std::move(map);
    }
    // No weight data is read here (ibl_model_use does, per trunk): the load is done once it is checked.
    if (params.monitor.abort && params.monitor.abort->load()) ibl_throw("ERR_ABORTED", "%s: loading aborted", path.c_str());
    if (params.monitor.progress) params.monitor.progress(1, 1);
    return model;
}
