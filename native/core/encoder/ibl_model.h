// An ImageBind encoder GGUF loaded onto a ggml backend: hyperparameters and weights per modality.
#pragma once

#include "ibl_gguf.h"
#include "ibl_modality.h"
#include "ibl_mmap.h"

#include "ggml-backend.h"
#include "ggml.h"

#include <array>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

struct gguf_context;
struct ibl_audio_ctx;
struct ibl_bpe;

// Transformer trunk shape and options; one per modality present.
struct ibl_trunk_hparams {
    int   embed_dim   = 0;
    int   n_blocks    = 0;
    int   n_heads     = 0;
    int   ffn_dim     = 0;
    int   num_tokens  = 0;      // sequence length including CLS
    float ln_eps      = 1e-6f;  // blocks
    float stem_ln_eps = 1e-5f;
    float head_ln_eps = 1e-6f;
    float logit_scale = 0.0f;   // 0: none (vision)
    bool  pre_ln      = false;
    bool  kv_bias     = false;
    bool  causal      = false;
    int   in_channels = 0;
    std::vector<int> kernel;    // patch stems: (kt, kh, kw) / (kh, kw) / (kw)
    std::vector<int> stride;
};

struct ibl_block_weights {
    ggml_tensor * ln1_w = nullptr, * ln1_b = nullptr;
    ggml_tensor * qkv_w = nullptr, * qkv_b = nullptr;
    ggml_tensor * bias_k = nullptr, * bias_v = nullptr;
    ggml_tensor * out_w = nullptr, * out_b = nullptr;
    ggml_tensor * ln2_w = nullptr, * ln2_b = nullptr;
    ggml_tensor * up_w = nullptr, * up_b = nullptr;
    ggml_tensor * down_w = nullptr, * down_b = nullptr;
};

struct ibl_trunk_weights {
    ggml_tensor * cls = nullptr, * pos = nullptr;
    ggml_tensor * patch = nullptr, * token_embd = nullptr;
    ggml_tensor * stem_norm_w = nullptr, * stem_norm_b = nullptr;
    ggml_tensor * pre_norm_w = nullptr, * pre_norm_b = nullptr;
    ggml_tensor * post_norm_w = nullptr, * post_norm_b = nullptr;
    ggml_tensor * head_norm_w = nullptr, * head_norm_b = nullptr;
    ggml_tensor * head = nullptr;
    std::vector<ibl_block_weights> blocks;
    // Point-Bind only.
    std::array<ggml_tensor *, 4> pt_conv_w{}, pt_conv_b{};
    ggml_tensor * pt_reduce_w = nullptr, * pt_reduce_b = nullptr;
    ggml_tensor * pt_pos1_w = nullptr, * pt_pos1_b = nullptr;
    ggml_tensor * pt_pos2_w = nullptr, * pt_pos2_b = nullptr;
    ggml_tensor * pt_cls_pos = nullptr, * pt_proj = nullptr;
};

// Preprocessing constants stored with the model (fixtures README §4).
struct ibl_vision_params {
    int   image_size = 224, frames = 2, clips_per_video = 5;
    float clip_duration = 2.0f;
    float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
    float std[3]  = {0.26862954f, 0.26130258f, 0.27577711f};
};
struct ibl_audio_hparams {
    int   sample_rate = 16000, mel_bins = 128, target_len = 204, clips_per_video = 3;
    float clip_duration = 2.0f, mean = -4.268f, std = 9.138f;
};
struct ibl_text_params  { int context_len = 77, vocab_size = 49408; };
struct ibl_image1_params { int image_size = 224; };  // depth, thermal
struct ibl_imu_params   { int channels = 6, length = 2000, window = 8; };
struct ibl_point_params { int num_group = 512, group_size = 32, encoder_dims = 256, proj_dim = 512; };

struct ibl_modality_model {
    bool                  present = false;
    ibl_trunk_hparams     hp;
    ibl_trunk_weights     w;
    ggml_backend_buffer_t buf = nullptr;  // the trunk's weights, bound at its first use (ibl_model_use)
};

struct ibl_model_params {
    int         n_threads = 0;            // 0: ibl_threads_default()
    std::string device = "auto";  // "auto" (first GPU, else CPU), "cpu", or a ggml device name
    bool        use_mmap = true;  // CPU: use the weights in place from the mapped file (else read each trunk)
    bool        flash_attn = true;  // CPU: fused attention (false: the mul_mat attention, for comparisons)
    ibl_load_monitor monitor;      // abort flag and progress of the load (no weight data is read there)
};

struct ibl_model {
    std::string path;
    std::string name;
    std::string file_type;
    int         out_dim = 0;
    std::array<ibl_modality_model, IBL_MOD_COUNT> mods;
    ibl_vision_params  vision;
    ibl_audio_hparams  audio;
    ibl_text_params    text;
    ibl_image1_params  depth, thermal;
    ibl_imu_params     imu;
    ibl_point_params   point;
    std::vector<std::string> bpe_merges;
    size_t weights_bytes = 0;
    // Preprocessing state built once per model (tables, tokenizer), see ibl_embed.cpp.
    std::shared_ptr<ibl_audio_ctx> audio_ctx;
    std::shared_ptr<ibl_bpe>       tokenizer;

    ggml_context *          ctx_w = nullptr;      // weight tensors (metadata); data per trunk, see ibl_model_use
    gguf_context *          gguf = nullptr;       // the file's tensor table (offsets of the data)
    std::unique_ptr<ibl_file_map> map;            // the whole file mapped, when the weights are used in place
    mutable std::mutex      weights_mutex;
    ggml_backend_t          backend = nullptr;    // where the graph runs
    ggml_backend_t          backend_cpu = nullptr;
    std::string             device_name;
    int                     n_threads = 1;
    bool                    flash_attn = true;
    // Observes every node of the encoder graphs when set (per-op profiling: ibl-driver profile).
    ggml_backend_sched_eval_callback eval_cb = nullptr;
    void *                  eval_cb_data = nullptr;
    // The scheduler of CPU graphs, kept from one call to the next (under compute_mutex) so that its compute
    // buffer is reused: mapped afresh per call, an audio batch's 14.7 MiB were page-faulted and zeroed again
    // each time. Not kept past IBL_KEEP_COMPUTE_BYTES (large batches), so an idle encoder holds little.
    ggml_backend_sched_t    sched_cpu = nullptr;
    std::mutex              compute_mutex;

    ~ibl_model();
    const ibl_modality_model & mod(ibl_modality m) const { return mods[m]; }
};

// Makes a trunk's weights usable (thread-safe, once per trunk): on the CPU the mapped file's pages are
// used in place, elsewhere the trunk's tensors are read into a buffer on the device. An image-only user
// thus never pays for the text, audio, ... weights. The trunk's data is checked for NaN/Inf first
// (ERR_MODEL_INVALID naming the file and tensor; the trunk stays unbound); `abort` stops a read.
void ibl_model_use(ibl_model & model, ibl_modality mod, const std::atomic<bool> * abort = nullptr);

// Whether the trunk's weights have been bound (ibl_model_use); thread-safe.
bool ibl_model_trunk_loaded(const ibl_model & model, ibl_modality mod);

// Loads and validates an encoder GGUF: metadata, tensor shapes and preprocessing tables; no weight data. Throws ibl_error naming the file and the problem: not a GGUF,
// not an ImageBind encoder (e.g. an LLM file), a missing or mis-shaped tensor, an out-of-range key.
std::unique_ptr<ibl_model> ibl_model_load(const std::string & path, const ibl_model_params & params);
