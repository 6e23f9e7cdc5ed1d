// GGUF keys and tensor names: the TypeScript side of native/core/ibl_keys.h (test/keys.test.mjs checks
// that both agree). Converters write exactly these names; the native loaders read them.

export const KEY = {
  ARCH: 'general.architecture',
  NAME: 'general.name',
  FILE_TYPE: 'general.file_type',
  CONVERSION_ID: 'imagebind_llm.conversion_id',
  OUT_DIM: 'imagebind.out_embed_dim',
  MODALITIES: 'imagebind.modalities',
} as const;

export const ARCH_IMAGEBIND = 'imagebind';

/** Per-modality fields: key `imagebind.<modality>.<field>`. */
export const FIELD = {
  EMBED_DIM: 'embed_dim',
  BLOCK_COUNT: 'block_count',
  HEAD_COUNT: 'head_count',
  FFN_DIM: 'feed_forward_length',
  LN_EPS: 'layer_norm_eps',
  STEM_LN_EPS: 'stem_layer_norm_eps',
  PRE_LN: 'pre_transformer_layernorm',
  KV_BIAS: 'add_bias_kv',
  CAUSAL: 'causal',
  LOGIT_SCALE: 'logit_scale',
  NUM_TOKENS: 'num_tokens',
  KERNEL: 'kernel_size',
  STRIDE: 'stride',
  IN_CHANNELS: 'in_channels',
  IMAGE_SIZE: 'image_size',
  IMAGE_MEAN: 'image_mean',
  IMAGE_STD: 'image_std',
  FRAMES: 'frames',
  CLIP_DURATION: 'clip_duration',
  CLIPS_PER_VIDEO: 'clips_per_video',
  SAMPLE_RATE: 'sample_rate',
  MEL_BINS: 'num_mel_bins',
  TARGET_LEN: 'target_length',
  AUDIO_MEAN: 'fbank_mean',
  AUDIO_STD: 'fbank_std',
  CONTEXT_LEN: 'context_length',
  VOCAB_SIZE: 'vocab_size',
  BPE_MERGES: 'bpe_merges',
  IMU_CHANNELS: 'channels',
  IMU_LENGTH: 'length',
  IMU_WINDOW: 'window',
  NUM_GROUP: 'num_group',
  GROUP_SIZE: 'group_size',
  ENCODER_DIMS: 'encoder_dims',
  PROJ_DIM: 'projection_dim',
  HEAD_LN_EPS: 'head_layer_norm_eps',
} as const;

export function modalityKey(modality: string, field: string): string {
  return `imagebind.${modality}.${field}`;
}

export const MODALITIES = ['vision', 'text', 'audio', 'depth', 'thermal', 'imu', 'point'] as const;
export type Modality = (typeof MODALITIES)[number];

export const PREFIX: Record<Modality, string> = {
  vision: 'v', text: 't', audio: 'a', depth: 'd', thermal: 'th', imu: 'imu', point: 'pt',
};

/** Tensor names; `p` is a modality prefix, `i` a block index. */
export const TN = {
  CLS: (p: string) => `${p}.cls`,
  POS: (p: string) => `${p}.pos`,
  PATCH: (p: string) => `${p}.patch.weight`,
  TOKEN_EMBD: (p: string) => `${p}.token_embd.weight`,
  STEM_NORM: (p: string, s: string) => `${p}.stem_norm.${s}`,
  PRE_NORM: (p: string, s: string) => `${p}.pre_norm.${s}`,
  ATTN_QKV: (p: string, i: number, s: string) => `${p}.blk.${i}.attn_qkv.${s}`,
  ATTN_BIAS_K: (p: string, i: number) => `${p}.blk.${i}.attn_bias_k`,
  ATTN_BIAS_V: (p: string, i: number) => `${p}.blk.${i}.attn_bias_v`,
  ATTN_OUT: (p: string, i: number, s: string) => `${p}.blk.${i}.attn_out.${s}`,
  LN1: (p: string, i: number, s: string) => `${p}.blk.${i}.ln1.${s}`,
  LN2: (p: string, i: number, s: string) => `${p}.blk.${i}.ln2.${s}`,
  FFN_UP: (p: string, i: number, s: string) => `${p}.blk.${i}.ffn_up.${s}`,
  FFN_DOWN: (p: string, i: number, s: string) => `${p}.blk.${i}.ffn_down.${s}`,
  POST_NORM: (p: string, s: string) => `${p}.post_norm.${s}`,
  HEAD_NORM: (p: string, s: string) => `${p}.head_norm.${s}`,
  HEAD: (p: string) => `${p}.head.weight`,
  PT_CONV: (i: number, s: string) => `pt.enc.conv${i}.${s}`,
  PT_REDUCE: (s: string) => `pt.reduce.${s}`,
  PT_POS1: (s: string) => `pt.pos1.${s}`,
  PT_POS2: (s: string) => `pt.pos2.${s}`,
  PT_CLS_POS: 'pt.cls_pos',
  PT_PROJ: 'pt.proj',
} as const;

/** kNN cache GGUF (convert cache): the features in row chunks `cache.features.<k>` of [d, rows_k]. */
export const ARCH_CACHE = 'imagebind-llm-cache';

export const CACHE_KEY = {
  DIM: 'cache.dimension',
  COUNT: 'cache.count',
  METRIC: 'cache.metric',
  CHUNK_ROWS: 'cache.chunk_rows',
  CHUNK_COUNT: 'cache.chunk_count',
  SOURCE: 'cache.source_type',
} as const;

export const TN_CACHE = {
  FEATURES: (k: number) => `cache.features.${k}`,
  SQNORMS: (k: number) => `cache.sqnorms.${k}`,
} as const;

// --- `convert llm`: the LLM GGUF is llama.cpp's own `llama` architecture (its keys and tensor names
// are llama.cpp's); the names the injection looks up in it are listed here. ---------------------
export const ARCH_LLAMA = 'llama';
export const LLM_TN = {
  ATTN_V: (l: number) => `blk.${l}.attn_v.weight`,       // merged Wv (base + LoRA delta)
  ATTN_OUT: (l: number) => `blk.${l}.attn_output.weight`, // merged Wo
} as const;

// --- `convert llm`: the bind GGUF (bind network + what the per-layer injection needs) -----------
export const ARCH_BIND = 'imagebind-llm-bind';
export const BIND_KEY = {
  INPUT_DIM: 'imagebind-llm-bind.input_dim',                   // bridge in-features = encoder out_embed_dim
  EMBED_DIM: 'imagebind-llm-bind.embedding_length',            // bridge width = LLM dim
  FFN_DIM: 'imagebind-llm-bind.feed_forward_length',           // bridge block hidden (f1/f3 out)
  BLOCK_COUNT: 'imagebind-llm-bind.block_count',               // bridge blocks (3)
  NORM_EPS: 'imagebind-llm-bind.norm_eps',                     // bridge norms' eps (RMSNorm 1e-6; beta LayerNorm 1e-5)
  BRIDGE: 'imagebind-llm-bind.bridge',                         // "rmsnorm" | "layernorm" (beta: norms and f1-3 with biases)
  QUERY_LAYER: 'imagebind-llm-bind.query_layer',               // injected layers: the last query_layer
  HEAD_COUNT: 'imagebind-llm-bind.head_count',
  HEAD_COUNT_KV: 'imagebind-llm-bind.head_count_kv',
  WV_LORA_RANK: 'imagebind-llm-bind.wv_lora_rank',             // 0: no LoRA on wv (nothing to undo)
  LLM_BLOCK_COUNT: 'imagebind-llm-bind.llm.block_count',       // pairing checks against the LLM GGUF
  LLM_EMBED_DIM: 'imagebind-llm-bind.llm.embedding_length',
  LLM_VOCAB_SIZE: 'imagebind-llm-bind.llm.vocab_size',
} as const;

/** Bind GGUF tensor names; `i` a bridge block (0..2), `l` an LLM layer index (as in blk.<l>). */
export const BIND_TN = {
  PROJ: (s: string) => `bind.proj.${s}`,
  NORM: (i: number, s: string) => `bind.blk.${i}.norm.${s}`,
  F1: (i: number, s: string) => `bind.blk.${i}.f1.${s}`,
  F2: (i: number, s: string) => `bind.blk.${i}.f2.${s}`,
  F3: (i: number, s: string) => `bind.blk.${i}.f3.${s}`,
  PREFIX: 'inject.prefix',
  GATE: 'inject.gate',
  WV_LORA_A: (l: number) => `inject.blk.${l}.wv_lora_a`,
  WV_LORA_B: (l: number) => `inject.blk.${l}.wv_lora_b`,
} as const;
