// Writes an ImageBind(+Point-Bind)-shaped checkpoint of random weights in the released key layout,
// streamed to disk, for the converter's memory test and the benchmark. Nothing is downloaded.
// Sizes follow a config in the fixtures' imagebind.config.json schema (HUGE below is ImageBind-huge).
import { ordered, storage, view, tensor } from './torch-writer.mjs';
import { writeTorchCheckpoint } from './torch-writer.mjs';

export const HUGE = {
  out_embed_dim: 1024,
  vision: { embed_dim: 1280, num_blocks: 32, num_heads: 16, mlp_hidden: 5120 },
  text: { embed_dim: 1024, num_blocks: 24, num_heads: 16, mlp_hidden: 4096, context_length: 77, vocab_size: 49408 },
  audio: { embed_dim: 768, num_blocks: 12, num_heads: 12, mlp_hidden: 3072, kernel_size: 16, stride: 10, num_tokens: 229 },
  depth: { embed_dim: 384, num_blocks: 12, num_heads: 8, mlp_hidden: 1536, kernel_size: 16, num_tokens: 197 },
  thermal: { embed_dim: 768, num_blocks: 12, num_heads: 12, mlp_hidden: 3072, kernel_size: 16, num_tokens: 197 },
  imu: { embed_dim: 512, num_blocks: 6, num_heads: 8, mlp_hidden: 2048, channels: 6, num_tokens: 251 },
  point: { trans_dim: 384, depth: 12, num_heads: 6, mlp_hidden: 1536, num_group: 512, group_size: 32, encoder_dims: 256, pc_projection_shape: [768, 512] },
};

// A deterministic stream of pseudo-random floats in chunks, scaled; never all in memory.
function randomChunks(numel, scale, offset, seed) {
  return async function* () {
    let s = (seed * 2654435761) >>> 0 || 1;
    const CHUNK = 1 << 20;
    for (let done = 0; done < numel; done += CHUNK) {
      const n = Math.min(CHUNK, numel - done);
      const a = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
        a[i] = offset + scale * ((s / 4294967296) * 2 - 1);
      }
      yield a;
    }
  };
}

export function makeImagebindTensors(cfg, { modalities = ['vision', 'text', 'audio', 'depth', 'thermal', 'imu', 'point'] } = {}) {
  const entries = new Map();
  let seed = 1;
  const add = (name, shape, scale = 0.02, offset = 0) => {
    const numel = shape.reduce((a, b) => a * b, 1);
    entries.set(name, view(storage('float32', numel, randomChunks(numel, scale, offset, seed++)), shape));
  };
  const scalar = (name, value) => entries.set(name, tensor('float32', [], new Float32Array([value])));
  const out = cfg.out_embed_dim;
  const blocks = (prefix, D, n, F, kvBias, point = false) => {
    for (let i = 0; i < n; i++) {
      const b = `${prefix}${i}.`;
      if (point) {
        add(b + 'norm1.weight', [D], 0.1, 1); add(b + 'norm1.bias', [D]);
        add(b + 'norm2.weight', [D], 0.1, 1); add(b + 'norm2.bias', [D]);
        add(b + 'attn.qkv.weight', [3 * D, D]);
        add(b + 'attn.proj.weight', [D, D]); add(b + 'attn.proj.bias', [D]);
      } else {
        add(b + 'attn.in_proj_weight', [3 * D, D]); add(b + 'attn.in_proj_bias', [3 * D]);
        if (kvBias) { add(b + 'attn.bias_k', [1, 1, D]); add(b + 'attn.bias_v', [1, 1, D]); }
        add(b + 'attn.out_proj.weight', [D, D]); add(b + 'attn.out_proj.bias', [D]);
        add(b + 'norm_1.weight', [D], 0.1, 1); add(b + 'norm_1.bias', [D]);
        add(b + 'norm_2.weight', [D], 0.1, 1); add(b + 'norm_2.bias', [D]);
      }
      add(b + 'mlp.fc1.weight', [F, D]); add(b + 'mlp.fc1.bias', [F]);
      add(b + 'mlp.fc2.weight', [D, F]); add(b + 'mlp.fc2.bias', [D]);
    }
  };
  const head = (m, D, idx = 2) => {
    add(`modality_heads.${m}.0.weight`, [D], 0.1, 1); add(`modality_heads.${m}.0.bias`, [D]);
    add(`modality_heads.${m}.${idx}.weight`, [out, D]);
  };
  const pre = (m) => `modality_preprocessors.${m}.`;
  if (modalities.includes('vision')) {
    const { embed_dim: D, num_blocks: n, mlp_hidden: F } = cfg.vision;
    add(pre('vision') + 'cls_token', [1, 1, D]);
    add(pre('vision') + 'rgbt_stem.proj.1.weight', [D, 3, 2, 14, 14]);
    add(pre('vision') + 'pos_embedding_helper.pos_embed', [1, 257, D]);
    add('modality_trunks.vision.pre_transformer_layer.0.weight', [D], 0.1, 1);
    add('modality_trunks.vision.pre_transformer_layer.0.bias', [D]);
    blocks('modality_trunks.vision.blocks.', D, n, F, false);
    head('vision', D);
  }
  if (modalities.includes('text')) {
    const { embed_dim: D, num_blocks: n, mlp_hidden: F, context_length: L, vocab_size: V } = cfg.text;
    add(pre('text') + 'pos_embed', [1, L, D]);
    add(pre('text') + 'token_embedding.weight', [V, D]);
    blocks('modality_trunks.text.blocks.', D, n, F, false);
    add('modality_heads.text.proj.0.weight', [D], 0.1, 1); add('modality_heads.text.proj.0.bias', [D]);
    add('modality_heads.text.proj.1.weight', [out, D]);
    scalar('modality_postprocessors.text.1.log_logit_scale', Math.log(1 / 0.07));
  }
  for (const [m, stem, scale] of [['audio', 'rgbt_stem', 20], ['depth', 'depth_stem', 5], ['thermal', 'rgbt_stem', 10]]) {
    if (!modalities.includes(m)) continue;
    const { embed_dim: D, num_blocks: n, mlp_hidden: F, kernel_size: k, num_tokens: L } = cfg[m];
    add(pre(m) + 'cls_token', [1, 1, D]);
    add(pre(m) + `${stem}.proj.weight`, [D, 1, k, k]);
    add(pre(m) + `${stem}.norm_layer.weight`, [D], 0.1, 1); add(pre(m) + `${stem}.norm_layer.bias`, [D]);
    add(pre(m) + 'pos_embedding_helper.pos_embed', [1, L, D]);
    blocks(`modality_trunks.${m}.blocks.`, D, n, F, true);
    head(m, D);
    scalar(`modality_postprocessors.${m}.1.log_logit_scale`, Math.log(scale));
  }
  if (modalities.includes('imu')) {
    const { embed_dim: D, num_blocks: n, mlp_hidden: F, channels: C, num_tokens: L } = cfg.imu;
    add(pre('imu') + 'pos_embed', [1, L, D]);
    add(pre('imu') + 'cls_token', [1, 1, D]);
    add(pre('imu') + 'imu_stem.proj.weight', [D, C * 8]);
    add(pre('imu') + 'imu_stem.norm_layer.weight', [D], 0.1, 1); add(pre('imu') + 'imu_stem.norm_layer.bias', [D]);
    blocks('modality_trunks.imu.blocks.', D, n, F, true);
    head('imu', D, 3);
    scalar('modality_postprocessors.imu.1.log_logit_scale', Math.log(5));
  }
  if (modalities.includes('point')) {
    const { trans_dim: D, depth: n, mlp_hidden: F, encoder_dims: E, pc_projection_shape: [pin, P] } = cfg.point;
    const e = 'point_trunk.point_encoder.';
    add('point_trunk.pc_projection', [pin, P]);
    add(e + 'cls_token', [1, 1, D]); add(e + 'cls_pos', [1, 1, D]);
    add(e + 'encoder.first_conv.0.weight', [128, 3, 1]); add(e + 'encoder.first_conv.0.bias', [128]);
    add(e + 'encoder.first_conv.1.weight', [128], 0.1, 1); add(e + 'encoder.first_conv.1.bias', [128]);
    add(e + 'encoder.first_conv.1.running_mean', [128]); add(e + 'encoder.first_conv.1.running_var', [128], 0.1, 1);
    add(e + 'encoder.first_conv.3.weight', [256, 128, 1]); add(e + 'encoder.first_conv.3.bias', [256]);
    add(e + 'encoder.second_conv.0.weight', [512, 512, 1]); add(e + 'encoder.second_conv.0.bias', [512]);
    add(e + 'encoder.second_conv.1.weight', [512], 0.1, 1); add(e + 'encoder.second_conv.1.bias', [512]);
    add(e + 'encoder.second_conv.1.running_mean', [512]); add(e + 'encoder.second_conv.1.running_var', [512], 0.1, 1);
    add(e + 'encoder.second_conv.3.weight', [E, 512, 1]); add(e + 'encoder.second_conv.3.bias', [E]);
    add(e + 'reduce_dim.weight', [D, E]); add(e + 'reduce_dim.bias', [D]);
    add(e + 'pos_embed.0.weight', [128, 3]); add(e + 'pos_embed.0.bias', [128]);
    add(e + 'pos_embed.2.weight', [D, 128]); add(e + 'pos_embed.2.bias', [D]);
    blocks(e + 'blocks.blocks.', D, n, F, false, true);
    add(e + 'norm.weight', [D], 0.1, 1); add(e + 'norm.bias', [D]);
    head('point', P);
    scalar('modality_postprocessors.point.1.log_logit_scale', 0);
  }
  return entries;
}

/** Writes the checkpoint; returns its size in bytes. */
export async function writeRandomImagebind(file, cfg = HUGE, options = {}) {
  await writeTorchCheckpoint(file, ordered(makeImagebindTensors(cfg, options)));
  const fs = await import('node:fs');
  return fs.statSync(file).size;
}
