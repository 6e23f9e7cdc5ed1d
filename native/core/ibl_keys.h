// The one registry of GGUF metadata keys and tensor names written by our converters and read by our
// loaders. ts/keys.ts mirrors it (test/keys.test.mjs checks that they agree).
//
// Tensor names carry a modality prefix (IBL_PREFIX_*) and follow llama.cpp/mtmd's spelling:
//   "<prefix>.blk.<i>.attn_qkv.weight" etc. Shapes are ggml order (ne[0] = input features).
#pragma once

// --- general ------------------------------------------------------------------------------------
#define IBL_KEY_ARCH               "general.architecture"
#define IBL_KEY_NAME               "general.name"
#define IBL_KEY_FILE_TYPE          "general.file_type"          // ggml type name of the matrices, e.g. "q8_0"
// A random id that files converted together carry (the LLM and its bind file): a mixed pair is refused.
#define IBL_KEY_CONVERSION_ID      "imagebind_llm.conversion_id"
#define IBL_ARCH_IMAGEBIND         "imagebind"

#define IBL_KEY_OUT_DIM            "imagebind.out_embed_dim"
#define IBL_KEY_MODALITIES         "imagebind.modalities"       // string array of modality names present

// --- per modality: "imagebind.<modality>.<field>" ---------------------------------------------
#define IBL_KEY_FMT                "imagebind.%s.%s"
#define IBL_F_EMBED_DIM            "embed_dim"
#define IBL_F_BLOCK_COUNT          "block_count"
#define IBL_F_HEAD_COUNT           "head_count"
#define IBL_F_FFN_DIM              "feed_forward_length"
#define IBL_F_LN_EPS               "layer_norm_eps"             // trunk blocks and head
#define IBL_F_STEM_LN_EPS          "stem_layer_norm_eps"
#define IBL_F_PRE_LN               "pre_transformer_layernorm"  // bool
#define IBL_F_KV_BIAS              "add_bias_kv"                // bool
#define IBL_F_CAUSAL               "causal"                     // bool (text)
#define IBL_F_LOGIT_SCALE          "logit_scale"                // f32; 0 = no scaling (vision)
#define IBL_F_NUM_TOKENS           "num_tokens"                 // sequence length incl. CLS
#define IBL_F_KERNEL               "kernel_size"                // u32 array
#define IBL_F_STRIDE               "stride"                     // u32 array
#define IBL_F_IN_CHANNELS          "in_channels"
#define IBL_F_IMAGE_SIZE           "image_size"
#define IBL_F_IMAGE_MEAN           "image_mean"                 // f32 array
#define IBL_F_IMAGE_STD            "image_std"                  // f32 array
#define IBL_F_FRAMES               "frames"                     // vision: frames per clip (2)
#define IBL_F_CLIP_DURATION        "clip_duration"              // seconds (f32)
#define IBL_F_CLIPS_PER_VIDEO      "clips_per_video"
#define IBL_F_SAMPLE_RATE          "sample_rate"
#define IBL_F_MEL_BINS             "num_mel_bins"
#define IBL_F_TARGET_LEN           "target_length"
#define IBL_F_AUDIO_MEAN           "fbank_mean"
#define IBL_F_AUDIO_STD            "fbank_std"
#define IBL_F_CONTEXT_LEN          "context_length"
#define IBL_F_VOCAB_SIZE           "vocab_size"
#define IBL_F_BPE_MERGES           "bpe_merges"                 // string array (CLIP merges, MIT licence)
#define IBL_F_IMU_CHANNELS         "channels"
#define IBL_F_IMU_LENGTH           "length"
#define IBL_F_IMU_WINDOW           "window"
#define IBL_F_NUM_GROUP            "num_group"                  // point
#define IBL_F_GROUP_SIZE           "group_size"
#define IBL_F_ENCODER_DIMS         "encoder_dims"
#define IBL_F_PROJ_DIM             "projection_dim"
#define IBL_F_HEAD_LN_EPS          "head_layer_norm_eps"

// --- tensor names ("%s" = modality prefix, "%d" = block) --------------------------------------
#define IBL_PREFIX_VISION          "v"
#define IBL_PREFIX_TEXT            "t"
#define IBL_PREFIX_AUDIO           "a"
#define IBL_PREFIX_DEPTH           "d"
#define IBL_PREFIX_THERMAL         "th"
#define IBL_PREFIX_IMU             "imu"
#define IBL_PREFIX_POINT           "pt"

#define IBL_TN_CLS                 "%s.cls"                    // [D]
#define IBL_TN_POS                 "%s.pos"                    // [D, L]
#define IBL_TN_PATCH               "%s.patch.weight"           // [C*k..., D]: conv stem as a matrix over im2col patches
#define IBL_TN_TOKEN_EMBD          "%s.token_embd.weight"      // [D, vocab]
#define IBL_TN_STEM_NORM           "%s.stem_norm.%s"           // weight / bias
#define IBL_TN_PRE_NORM            "%s.pre_norm.%s"
#define IBL_TN_ATTN_QKV            "%s.blk.%d.attn_qkv.%s"     // [D, 3D] rows q;k;v
#define IBL_TN_ATTN_BIAS_K         "%s.blk.%d.attn_bias_k"     // [D]
#define IBL_TN_ATTN_BIAS_V         "%s.blk.%d.attn_bias_v"     // [D]
#define IBL_TN_ATTN_OUT            "%s.blk.%d.attn_out.%s"
#define IBL_TN_LN1                 "%s.blk.%d.ln1.%s"
#define IBL_TN_LN2                 "%s.blk.%d.ln2.%s"
#define IBL_TN_FFN_UP              "%s.blk.%d.ffn_up.%s"
#define IBL_TN_FFN_DOWN            "%s.blk.%d.ffn_down.%s"
#define IBL_TN_POST_NORM           "%s.post_norm.%s"           // point trunk's final LayerNorm
#define IBL_TN_HEAD_NORM           "%s.head_norm.%s"
#define IBL_TN_HEAD                "%s.head.weight"            // [D (or P), out]

// Point-Bind extras (BatchNorm folded into the preceding Conv1d at conversion).
#define IBL_TN_PT_CONV             "pt.enc.conv%d.%s"          // 1..4: 3→128, 128→256, 512→512, 512→enc
#define IBL_TN_PT_REDUCE           "pt.reduce.%s"              // enc → trans_dim
#define IBL_TN_PT_POS1             "pt.pos1.%s"                // 3 → 128
#define IBL_TN_PT_POS2             "pt.pos2.%s"                // 128 → trans_dim
#define IBL_TN_PT_CLS_POS          "pt.cls_pos"
#define IBL_TN_PT_PROJ             "pt.proj"                   // [2*trans_dim, P]

// --- kNN cache (imagebind-llm convert cache; native/core/ibl_knn.h) ---------------------------
// A faiss flat index as GGUF. The N×d features are split into row chunks: tensor k holds rows
// [k·chunk_rows, min(N, (k+1)·chunk_rows)) as ggml [d, rows_k] (one stored row per cache entry, in
// faiss order), so a converter streams one chunk at a time and a loader can map the file as is.
#define IBL_ARCH_CACHE             "imagebind-llm-cache"
#define IBL_KEY_CACHE_DIM          "cache.dimension"            // u32 d
#define IBL_KEY_CACHE_COUNT        "cache.count"                // u64 N (rows over all chunks)
#define IBL_KEY_CACHE_METRIC       "cache.metric"               // "ip" (inner product) or "l2" (squared L2)
#define IBL_KEY_CACHE_CHUNK_ROWS   "cache.chunk_rows"           // u32: rows per chunk (the last may have fewer)
#define IBL_KEY_CACHE_CHUNK_COUNT  "cache.chunk_count"          // u32: number of feature tensors
#define IBL_KEY_CACHE_SOURCE       "cache.source_type"          // faiss fourcc it came from, e.g. "IxFI"
#define IBL_TN_CACHE_FEATURES      "cache.features.%d"          // [d, rows_k] f32 or f16
#define IBL_TN_CACHE_SQNORMS       "cache.sqnorms.%d"           // [rows_k] f32 |x|², l2 caches only

// --- `convert llm`: the LLM GGUF is llama.cpp's own "llama" architecture; the names the injection
// looks up in it ----------------------------------------------------------------------------------
#define IBL_ARCH_LLAMA             "llama"
#define IBL_LLM_TN_ATTN_V          "blk.%d.attn_v.weight"      // merged Wv = base + LoRA delta
#define IBL_LLM_TN_ATTN_OUT        "blk.%d.attn_output.weight" // merged Wo

// --- `convert llm`: the bind GGUF: bind network + what the per-layer injection needs -----------
// Injection (fixtures README §6.2): for each of the last query_layer layers l, with j = l - (n_layer -
// query_layer): a = bind(e) + prefix[:, j]; u = Wv_base·a, per head h scaled by tanh(gate[h, j]),
// added to the attention output before Wo. Wv_base is NOT stored: the LLM GGUF holds only the merged
// Wv, and Wv_base·a = Wv_merged·a − B·(A·a) with the wv LoRA factors below (no second model copy).
#define IBL_ARCH_BIND              "imagebind-llm-bind"
#define IBL_KEY_BIND_INPUT_DIM     "imagebind-llm-bind.input_dim"            // u32: bridge in = encoder out_embed_dim
#define IBL_KEY_BIND_EMBED_DIM     "imagebind-llm-bind.embedding_length"     // u32: bridge width = LLM dim
#define IBL_KEY_BIND_FFN_DIM       "imagebind-llm-bind.feed_forward_length"  // u32: bridge block hidden
#define IBL_KEY_BIND_BLOCK_COUNT   "imagebind-llm-bind.block_count"          // u32: bridge blocks (3)
#define IBL_KEY_BIND_NORM_EPS      "imagebind-llm-bind.norm_eps"             // f32: bridge norm eps (RMSNorm 1e-6, LayerNorm 1e-5)
#define IBL_KEY_BIND_BRIDGE        "imagebind-llm-bind.bridge"               // string: "rmsnorm" | "layernorm" (beta: + biases)
#define IBL_KEY_BIND_QUERY_LAYER   "imagebind-llm-bind.query_layer"          // u32: injected layers = the last query_layer
#define IBL_KEY_BIND_HEAD_COUNT    "imagebind-llm-bind.head_count"           // u32
#define IBL_KEY_BIND_HEAD_COUNT_KV "imagebind-llm-bind.head_count_kv"        // u32
#define IBL_KEY_BIND_WV_LORA_RANK  "imagebind-llm-bind.wv_lora_rank"         // u32: 0 = no wv LoRA tensors
#define IBL_KEY_BIND_LLM_BLOCK_COUNT "imagebind-llm-bind.llm.block_count"    // u32: pairing checks with the LLM
#define IBL_KEY_BIND_LLM_EMBED_DIM "imagebind-llm-bind.llm.embedding_length" // u32
#define IBL_KEY_BIND_LLM_VOCAB_SIZE "imagebind-llm-bind.llm.vocab_size"      // u32

// Tensor names ("%d": bridge block 0..2, or the LLM layer index l as in "blk.<l>"); ggml order.
#define IBL_TN_BIND_PROJ           "bind.proj.%s"              // weight [input_dim, dim], bias [dim]
#define IBL_TN_BIND_NORM           "bind.blk.%d.norm.%s"       // weight [dim] (+ bias [dim] for "layernorm")
#define IBL_TN_BIND_F1             "bind.blk.%d.f1.%s"         // weight [dim, hidden] (+ bias [hidden] for "layernorm")
#define IBL_TN_BIND_F2             "bind.blk.%d.f2.%s"         // weight [hidden, dim] (+ bias [dim])
#define IBL_TN_BIND_F3             "bind.blk.%d.f3.%s"         // weight [dim, hidden] (+ bias [hidden])
#define IBL_TN_INJ_PREFIX          "inject.prefix"             // [dim, query_layer]: column j = prefix of layer n_layer-query_layer+j
#define IBL_TN_INJ_GATE            "inject.gate"               // [n_head, query_layer]: raw gates (tanh at run time)
#define IBL_TN_INJ_WV_LORA_A       "inject.blk.%d.wv_lora_a"   // [dim, rank]   = lora_wv_l1 (A)
#define IBL_TN_INJ_WV_LORA_B       "inject.blk.%d.wv_lora_b"   // [rank, dim_v] = lora_wv_l2 (B)
