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
