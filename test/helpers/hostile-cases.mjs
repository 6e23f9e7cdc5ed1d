// A generator of hostile inputs across every input surface of the CLI: model files of each kind
// (encoder, LLM, bind, cache GGUFs, each mutated in its metadata, tensor types, shapes, data and
// bytes), checkpoints (pickle bombs, forbidden globals, truncation, NaN weights), a LLaMA folder
// (params.json, tokenizer.model), faiss indexes, media of every kind, texts, numeric flags and
// special paths (FIFO, devices, sockets, folders, links). Each case is a CLI invocation and what it
// must do: fail cleanly naming the file (or flag), or succeed.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { libIndex } from './paths.mjs';
import { assets, tinyA } from './fixtures.mjs';
import { writeTorchCheckpoint, tensor, ordered } from './torch-writer.mjs';

const require = createRequire(import.meta.url);
const ibl = require(libIndex);

// --- GGUF rewriting -------------------------------------------------------------------------------

function metaEntry(key, value, type) {
  if (type === 'string' || type === 'bool') return { key, type, value };
  const arr = /^array<(.+)>$/.exec(type);
  if (arr) return { key, type: 'array', elemType: arr[1], value };
  return { key, type, value };
}

/** Reads a GGUF whole: metadata entries and tensors with their raw bytes. */
export async function readGguf(file) {
  const info = await ibl.inspectGguf(file);
  const buf = fs.readFileSync(file);
  const meta = Object.entries(info.metadata).map(([k, v]) => metaEntry(k, v, info.metadataTypes[k]));
  const tensors = info.tensors.map((t) => ({ name: t.name, type: t.type, shape: t.shape, data: new Uint8Array(buf.subarray(t.offset, t.offset + t.size)) }));
  return { meta, tensors };
}

/** Writes a mutated copy: `edit({ meta, tensors })` changes the arrays in place. */
export async function mutateGguf(src, dst, edit) {
  const g = await readGguf(src);
  edit(g);
  await ibl.writeGguf(dst, { metadata: g.meta, tensors: g.tensors });
  return dst;
}

export function setMeta(g, key, type, value) {
  g.meta = g.meta.filter((e) => e.key !== key);
  if (type !== null) g.meta.push(metaEntry(key, value, type));
}

function getMeta(g, key) {
  return g.meta.find((e) => e.key === key)?.value;
}

/** Replaces a tensor's type (raw bytes of the new size, zeros) and optionally its shape. */
function retype(g, name, type, bytesPerElem, shape) {
  const t = g.tensors.find((x) => x.name === name);
  if (!t) throw new Error(`no tensor ${name}`);
  t.type = type;
  if (shape) t.shape = shape;
  t.data = new Uint8Array(t.shape.reduce((a, b) => a * b, 1) * bytesPerElem);
}

/** Writes `value` (a float32) over the first element of a tensor in an existing file (the writer refuses NaN). */
export async function poisonTensor(file, name, value) {
  const info = await ibl.inspectGguf(file);
  const t = info.tensors.find((x) => x.name === name);
  const fd = fs.openSync(file, 'r+');
  const b = Buffer.alloc(4);
  if (t.type === 'f16') {
    b.writeUInt16LE(Number.isNaN(value) ? 0x7e00 : 0x7c00);
    fs.writeSync(fd, b, 0, 2, t.offset);
  } else {
    b.writeFloatLE(value);
    fs.writeSync(fd, b, 0, 4, t.offset);
  }
  fs.closeSync(fd);
  return file;
}

function patchBytes(src, dst, at, bytes) {
  const b = fs.readFileSync(src);
  Buffer.from(bytes).copy(b, at);
  fs.writeFileSync(dst, b);
  return dst;
}

function truncated(src, dst, n) {
  fs.writeFileSync(dst, fs.readFileSync(src).subarray(0, n));
  return dst;
}

function random(dst, n, seed = 1) {
  let s = seed;
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) { s = (s * 1103515245 + 12345) >>> 0; b[i] = s >>> 24; }
  fs.writeFileSync(dst, b);
  return dst;
}

// --- pickles --------------------------------------------------------------------------------------

const PROTO2 = [0x80, 0x02];
const STOP = 0x2e;
const u32 = (n) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return [...b]; };
const binunicode = (s) => [0x58, ...u32(Buffer.byteLength(s)), ...Buffer.from(s)];

/** A list holding `fan` references to the previous level, `levels` deep: fan^levels leaves in ~15·levels bytes. */
function listBomb(levels, fan) {
  const out = [...PROTO2, 0x5d, 0x71, 0];  // EMPTY_LIST, BINPUT 0
  for (let l = 1; l <= levels; l++) {
    out.push(0x5d, 0x28);                  // EMPTY_LIST, MARK
    for (let i = 0; i < fan; i++) out.push(0x68, l - 1);  // BINGET l-1
    out.push(0x65, 0x71, l);               // APPENDS, BINPUT l
  }
  out.push(STOP);
  return Buffer.from(out);
}

function dictBomb(levels, fan) {
  const out = [...PROTO2, 0x7d, 0x71, 0];  // EMPTY_DICT, BINPUT 0
  for (let l = 1; l <= levels; l++) {
    out.push(0x7d, 0x28);
    for (let i = 0; i < fan; i++) out.push(...binunicode(`k${i}`), 0x68, l - 1);
    out.push(0x75, 0x71, l);               // SETITEMS, BINPUT l
  }
  out.push(STOP);
  return Buffer.from(out);
}

function deepList(depth) {
  const out = [...PROTO2];
  for (let i = 0; i < depth; i++) out.push(0x5d);   // EMPTY_LIST × depth
  for (let i = 1; i < depth; i++) out.push(0x61);   // APPEND: each into the one below
  out.push(STOP);
  return Buffer.from(out);
}

const cycle = () => Buffer.from([...PROTO2, 0x5d, 0x71, 0, 0x68, 0, 0x61, STOP]);  // l = []; l.append(l)
const forbidden = () => Buffer.from([...PROTO2, 0x63, ...Buffer.from('os\nsystem\n'), ...binunicode('true'), 0x85, 0x52, STOP]);
const hugeString = () => Buffer.from([...PROTO2, 0x58, 0xff, 0xff, 0xff, 0x7f, 0x41, STOP]);

// --- media ------------------------------------------------------------------------------------------

function wavHeader({ rate = 16000, channels = 1, bits = 16, format = 1, dataBytes = 0, claimData }) {
  const b = Buffer.alloc(44);
  b.write('RIFF', 0); b.writeUInt32LE(36 + dataBytes, 4); b.write('WAVE', 8);
  b.write('fmt ', 12); b.writeUInt32LE(16, 16); b.writeUInt16LE(format, 20); b.writeUInt16LE(channels, 22);
  b.writeUInt32LE(rate, 24); b.writeUInt32LE(Math.floor((rate * channels * bits) / 8) % 2 ** 32, 28); b.writeUInt16LE(Math.floor((channels * bits) / 8) & 0xffff, 32);
  b.writeUInt16LE(bits, 34); b.write('data', 36); b.writeUInt32LE(claimData ?? dataBytes, 40);
  return b;
}

function wav(dst, opts, samples) {
  fs.writeFileSync(dst, Buffer.concat([wavHeader({ ...opts, dataBytes: samples.length }), samples]));
  return dst;
}

function npy(dst, descr, shape, data, fortran = false) {
  let header = `{'descr': '${descr}', 'fortran_order': ${fortran ? 'True' : 'False'}, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const h = Buffer.alloc(10);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]).copy(h);
  h.writeUInt16LE(header.length, 8);
  fs.writeFileSync(dst, Buffer.concat([h, Buffer.from(header, 'latin1'), Buffer.from(data.buffer ?? data, data.byteOffset ?? 0, data.byteLength ?? data.length)]));
  return dst;
}

function pngHeader(dst, w, h, depth = 8, colour = 2) {
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const ihdr = Buffer.alloc(25);
  ihdr.writeUInt32BE(13, 0); ihdr.write('IHDR', 4); ihdr.writeUInt32BE(w, 8); ihdr.writeUInt32BE(h, 12);
  ihdr[16] = depth; ihdr[17] = colour;
  fs.writeFileSync(dst, Buffer.concat([sig, ihdr, Buffer.alloc(64)]));
  return dst;
}

// --- special paths ----------------------------------------------------------------------------------

/** Paths that are not regular files, made in `dir`; the socket server is returned for closing. */
export async function specialPaths(dir) {
  const fifo = path.join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const sock = path.join(dir, 'sock');
  const server = net.createServer(() => {});
  await new Promise((r) => server.listen(sock, r));
  const folder = path.join(dir, 'folder');
  fs.mkdirSync(folder);
  const loop = path.join(dir, 'loop-a');
  fs.symlinkSync(path.join(dir, 'loop-b'), loop);
  fs.symlinkSync(loop, path.join(dir, 'loop-b'));
  const dangling = path.join(dir, 'dangling');
  fs.symlinkSync(path.join(dir, 'nowhere'), dangling);
  const zeroLink = path.join(dir, 'zero-link');
  fs.symlinkSync('/dev/zero', zeroLink);
  const empty = path.join(dir, 'empty');
  fs.writeFileSync(empty, '');
  return {
    server,
    paths: { fifo, socket: sock, folder, 'symlink loop': loop, 'dangling link': dangling, '/dev/zero': '/dev/zero',
      'link to /dev/zero': zeroLink, '/dev/null': '/dev/null', '/proc/self/status': '/proc/self/status', missing: path.join(dir, 'missing'), empty },
  };
}

// --- the cases ----------------------------------------------------------------------------------------

/**
 * Builds every case. `m`: the tiny models ({ encoder, model, bind, cache }); `dir`: a scratch folder.
 * A case: { surface, name, args, file?: what stderr must name, ok?: true when it must succeed,
 * outputs?: files that must be unchanged }.
 */
export async function buildCases(m, dir, special) {
  const cases = [];
  const f = (name) => path.join(dir, name);
  const llmAsk = (model, extra = []) => ['ask', '--model', model, '--bind', m.bind, '--threads', '1', '--max-tokens', '2', ...extra, 'hi'];
  const bindAsk = (bind) => ['ask', '--model', m.model, '--bind', bind, '--threads', '1', '--max-tokens', '2', 'hi'];
  const cacheAsk = (cache) => ['ask', '--model', m.model, '--bind', m.bind, '--cache', cache, '--threads', '1', '--max-tokens', '2', 'hi'];
  const embedText = (enc) => ['embed', '--encoder', enc, '--threads', '1', '--text', 'a dog'];
  const embedImage = (enc) => ['embed', '--encoder', enc, '--threads', '1', '--image', path.join(assets, 'dog_image.png')];
  const add = (surface, name, args, file, extra = {}) => cases.push({ surface, name, args, file, ...extra });

  // LLM GGUF -------------------------------------------------------------------------------------
  const llmMut = async (name, edit) => add('LLM GGUF', name, llmAsk(await mutateGguf(m.model, f(`llm-${cases.length}.gguf`), edit)), `llm-${cases.length}.gguf`);
  await llmMut('block count 0', (g) => setMeta(g, 'llama.block_count', 'u32', 0));
  await llmMut('block count 100000', (g) => setMeta(g, 'llama.block_count', 'u32', 100000));
  await llmMut('block count 600', (g) => setMeta(g, 'llama.block_count', 'u32', 600));
  await llmMut('block count 4 (one more than the tensors)', (g) => setMeta(g, 'llama.block_count', 'u32', 4));
  await llmMut('negative RMS epsilon', (g) => setMeta(g, 'llama.attention.layer_norm_rms_epsilon', 'f32', -1));
  await llmMut('NaN RMS epsilon', (g) => setMeta(g, 'llama.attention.layer_norm_rms_epsilon', 'f32', NaN));
  await llmMut('infinite RMS epsilon', (g) => setMeta(g, 'llama.attention.layer_norm_rms_epsilon', 'f32', Infinity));
  await llmMut('RMS epsilon missing', (g) => setMeta(g, 'llama.attention.layer_norm_rms_epsilon', null));
  await llmMut('embedding length 0', (g) => setMeta(g, 'llama.embedding_length', 'u32', 0));
  await llmMut('embedding length 2^31', (g) => setMeta(g, 'llama.embedding_length', 'u32', 2 ** 31));
  await llmMut('head count 0', (g) => setMeta(g, 'llama.attention.head_count', 'u32', 0));
  await llmMut('head count 3 (does not divide)', (g) => setMeta(g, 'llama.attention.head_count', 'u32', 3));
  await llmMut('KV head count 3', (g) => setMeta(g, 'llama.attention.head_count_kv', 'u32', 3));
  await llmMut('KV head count 0', (g) => setMeta(g, 'llama.attention.head_count_kv', 'u32', 0));
  await llmMut('feed-forward length 0', (g) => setMeta(g, 'llama.feed_forward_length', 'u32', 0));
  await llmMut('context length 0', (g) => setMeta(g, 'llama.context_length', 'u32', 0));
  await llmMut('rope dimensions 1000', (g) => setMeta(g, 'llama.rope.dimension_count', 'u32', 1000));
  await llmMut('rope dimensions odd', (g) => setMeta(g, 'llama.rope.dimension_count', 'u32', 7));
  await llmMut('rope freq base NaN', (g) => setMeta(g, 'llama.rope.freq_base', 'f32', NaN));
  await llmMut('block count as a string', (g) => setMeta(g, 'llama.block_count', 'string', 'three'));
  await llmMut('tokenizer gpt2', (g) => setMeta(g, 'tokenizer.ggml.model', 'string', 'gpt2'));
  await llmMut('tokenizer bert', (g) => setMeta(g, 'tokenizer.ggml.model', 'string', 'bert'));
  await llmMut('no tokenizer model', (g) => setMeta(g, 'tokenizer.ggml.model', null));
  await llmMut('no tokens', (g) => setMeta(g, 'tokenizer.ggml.tokens', null));
  await llmMut('duplicate tokens', (g) => { const t = getMeta(g, 'tokenizer.ggml.tokens').slice(); t[300] = t[299]; setMeta(g, 'tokenizer.ggml.tokens', 'array<string>', t); });
  await llmMut('tokens fewer than the embedding rows', (g) => setMeta(g, 'tokenizer.ggml.tokens', 'array<string>', getMeta(g, 'tokenizer.ggml.tokens').slice(0, 100)));
  await llmMut('NaN score', (g) => { const s = getMeta(g, 'tokenizer.ggml.scores').slice(); s[10] = NaN; setMeta(g, 'tokenizer.ggml.scores', 'array<f32>', s); });
  await llmMut('scores too short', (g) => setMeta(g, 'tokenizer.ggml.scores', 'array<f32>', getMeta(g, 'tokenizer.ggml.scores').slice(0, 5)));
  await llmMut('token type 99', (g) => { const s = getMeta(g, 'tokenizer.ggml.token_type').slice(); s[4] = 99; setMeta(g, 'tokenizer.ggml.token_type', 'array<i32>', s); });
  await llmMut('BOS id out of range', (g) => setMeta(g, 'tokenizer.ggml.bos_token_id', 'u32', 99999));
  await llmMut('EOS id negative', (g) => setMeta(g, 'tokenizer.ggml.eos_token_id', 'i32', -5));
  await llmMut('token embeddings as i16', (g) => retype(g, 'token_embd.weight', 'i16', 2));
  await llmMut('output as i32', (g) => retype(g, 'output.weight', 'i32', 4));
  await llmMut('output norm as f16', (g) => retype(g, 'output_norm.weight', 'f16', 2));
  await llmMut('attention norm as i32', (g) => retype(g, 'blk.0.attn_norm.weight', 'i32', 4));
  await llmMut('attention output bias as f16', (g) => retype(g, 'blk.1.attn_output.bias', 'f16', 2));
  await llmMut('Q weight as i8', (g) => retype(g, 'blk.0.attn_q.weight', 'i8', 1));
  await llmMut('Q weight of the wrong shape', (g) => retype(g, 'blk.0.attn_q.weight', 'f32', 4, [64, 32]));
  await llmMut('FFN weight 3-D', (g) => retype(g, 'blk.2.ffn_up.weight', 'f32', 4, [64, 96, 2]));
  await llmMut('FFN up missing', (g) => { g.tensors = g.tensors.filter((t) => t.name !== 'blk.0.ffn_up.weight'); });
  await llmMut('an unknown tensor', (g) => g.tensors.push({ name: 'junk.weight', type: 'f32', shape: [4], data: new Uint8Array(16) }));
  await llmMut('architecture gpt2', (g) => setMeta(g, 'general.architecture', 'string', 'gpt2'));
  await llmMut('no architecture', (g) => setMeta(g, 'general.architecture', null));
  for (const [tn, v] of [['token_embd.weight', NaN], ['blk.0.ffn_down.weight', Infinity], ['output_norm.weight', NaN], ['blk.2.attn_q.bias', -Infinity]]) {
    const file = f(`llm-poison-${cases.length}.gguf`);
    fs.copyFileSync(m.model, file);
    add('LLM GGUF', `${tn} holds ${v}`, llmAsk(await poisonTensor(file, tn, v)), path.basename(file));
  }
  for (const [name, mk] of [
    ['cut at half', (p) => truncated(m.model, p, fs.statSync(m.model).size >> 1)],
    ['cut in the header', (p) => truncated(m.model, p, 30)],
    ['cut in the metadata', (p) => truncated(m.model, p, 2000)],
    ['random bytes', (p) => random(p, 100000)],
    ['GGUF version 99', (p) => patchBytes(m.model, p, 4, [99, 0, 0, 0])],
    ['2^62 tensors claimed', (p) => patchBytes(m.model, p, 8, [0, 0, 0, 0, 0, 0, 0, 0x40])],
    ['2^62 keys claimed', (p) => patchBytes(m.model, p, 16, [0, 0, 0, 0, 0, 0, 0, 0x40])],
    ['a key length of 2^40', (p) => patchBytes(m.model, p, 24, [0, 0, 0, 0, 0, 1, 0, 0])],
  ]) {
    const p = f(`llm-bytes-${cases.length}.gguf`);
    mk(p);
    add('LLM GGUF', name, llmAsk(p), path.basename(p));
  }
  add('LLM GGUF', 'the encoder given as the LLM', llmAsk(m.encoder), path.basename(m.encoder));
  add('LLM GGUF', 'the bind file given as the LLM', llmAsk(m.bind), path.basename(m.bind));
  add('LLM GGUF', 'the cache given as the LLM', llmAsk(m.cache), path.basename(m.cache));

  // Bind GGUF ------------------------------------------------------------------------------------
  const bindMut = async (name, edit) => add('bind GGUF', name, bindAsk(await mutateGguf(m.bind, f(`bind-${cases.length}.gguf`), edit)), `bind-${cases.length}.gguf`);
  await bindMut('bind.proj.weight as i32', (g) => retype(g, 'bind.proj.weight', 'i32', 4));
  await bindMut('bind.proj.weight as q8_0', (g) => { const t = g.tensors.find((x) => x.name === 'bind.proj.weight'); t.type = 'q8_0'; t.shape = [32, 64]; t.data = new Uint8Array((32 / 32) * 34 * 64); });
  await bindMut('bind.proj.bias as f16', (g) => retype(g, 'bind.proj.bias', 'f16', 2));
  await bindMut('prefix as f16', (g) => retype(g, 'inject.prefix', 'f16', 2));
  await bindMut('gate as i32', (g) => retype(g, 'inject.gate', 'i32', 4));
  await bindMut('proj of the wrong shape', (g) => retype(g, 'bind.proj.weight', 'f32', 4, [32, 10]));
  await bindMut('proj 3-D', (g) => retype(g, 'bind.proj.weight', 'f32', 4, [32, 64, 2]));
  await bindMut('proj missing', (g) => { g.tensors = g.tensors.filter((t) => t.name !== 'bind.proj.weight'); });
  for (const [key, type, v] of [['imagebind-llm-bind.input_dim', 'u32', 0], ['imagebind-llm-bind.input_dim', 'u32', 2 ** 31], ['imagebind-llm-bind.query_layer', 'u32', 99],
    ['imagebind-llm-bind.head_count', 'u32', 0], ['imagebind-llm-bind.head_count', 'u32', 5], ['imagebind-llm-bind.block_count', 'u32', 1000],
    ['imagebind-llm-bind.norm_eps', 'f32', NaN], ['imagebind-llm-bind.bridge', 'string', 'weird'], ['imagebind-llm-bind.llm.vocab_size', 'u32', 7],
    ['imagebind-llm-bind.feed_forward_length', 'u32', 0], ['imagebind-llm-bind.wv_lora_rank', 'u32', 1 << 20], ['imagebind_llm.conversion_id', 'string', 'another conversion']]) {
    await bindMut(`${key} = ${v}`, (g) => setMeta(g, key, type, v));
  }
  for (const [tn, v] of [['bind.proj.weight', NaN], ['inject.gate', Infinity], ['bind.blk.0.f2.weight', NaN]]) {
    const file = f(`bind-poison-${cases.length}.gguf`);
    fs.copyFileSync(m.bind, file);
    add('bind GGUF', `${tn} holds ${v}`, bindAsk(await poisonTensor(file, tn, v)), path.basename(file));
  }
  for (const [name, mk] of [['cut at half', (p) => truncated(m.bind, p, fs.statSync(m.bind).size >> 1)], ['random bytes', (p) => random(p, 50000, 7)]]) {
    const p = f(`bind-bytes-${cases.length}.gguf`);
    mk(p);
    add('bind GGUF', name, bindAsk(p), path.basename(p));
  }
  add('bind GGUF', 'the LLM given as the bind file', bindAsk(m.model), path.basename(m.model));
  add('bind GGUF', 'the encoder given as the bind file', bindAsk(m.encoder), path.basename(m.encoder));

  // Cache GGUF -----------------------------------------------------------------------------------
  const cacheInfo = await ibl.inspectGguf(m.cache);
  const feat = cacheInfo.tensors.find((t) => t.shape.length === 2).name;
  const sq = cacheInfo.tensors.find((t) => t.shape.length === 1)?.name;
  const cacheMut = async (name, edit) => add('cache GGUF', name, cacheAsk(await mutateGguf(m.cache, f(`cache-${cases.length}.gguf`), edit)), `cache-${cases.length}.gguf`);
  await cacheMut('features as i32', (g) => retype(g, feat, 'i32', 4));
  await cacheMut('features as q8_0', (g) => { const t = g.tensors.find((x) => x.name === feat); t.type = 'q8_0'; t.data = new Uint8Array((t.shape[0] / 32) * 34 * t.shape[1]); });
  if (sq) await cacheMut('norms as f16', (g) => retype(g, sq, 'f16', 2));
  await cacheMut('features of another dimension', (g) => { const t = g.tensors.find((x) => x.name === feat); retype(g, feat, 'f32', 4, [16, t.shape[1]]); });
  for (const [key, type, v] of [['cache.count', 'u64', 0n], ['cache.count', 'u64', 2n ** 40n], ['cache.dimension', 'u32', 0], ['cache.chunk_rows', 'u32', 0], ['cache.metric', 'string', 'cosine']]) {
    await cacheMut(`${key} = ${v}`, (g) => setMeta(g, key, type, v));
  }
  {
    const file = f('cache-nan.gguf');
    fs.copyFileSync(m.cache, file);
    add('cache GGUF', 'features hold NaN', cacheAsk(await poisonTensor(file, feat, NaN)), 'cache-nan.gguf');
  }
  for (const [name, mk] of [['cut at half', (p) => truncated(m.cache, p, fs.statSync(m.cache).size >> 1)], ['random bytes', (p) => random(p, 20000, 9)]]) {
    const p = f(`cache-bytes-${cases.length}.gguf`);
    mk(p);
    add('cache GGUF', name, cacheAsk(p), path.basename(p));
  }
  add('cache GGUF', 'the encoder given as the cache', cacheAsk(m.encoder), path.basename(m.encoder));

  // Encoder GGUF ----------------------------------------------------------------------------------
  const encMut = async (name, edit, run = embedImage) => add('encoder GGUF', name, run(await mutateGguf(m.encoder, f(`enc-${cases.length}.gguf`), edit)), `enc-${cases.length}.gguf`);
  const K = (mod, field) => `imagebind.${mod}.${field}`;
  for (const [key, type, v, run] of [
    [K('vision', 'image_size'), 'u32', 16384], [K('vision', 'image_size'), 'u32', 0], [K('vision', 'image_size'), 'u32', 448],
    [K('vision', 'frames'), 'u32', 1000], [K('vision', 'clips_per_video'), 'u32', 1024], [K('vision', 'clip_duration'), 'f32', NaN],
    [K('vision', 'num_tokens'), 'u32', 1e9], [K('vision', 'embed_dim'), 'u32', 0], [K('vision', 'embed_dim'), 'u32', 1e6],
    [K('vision', 'head_count'), 'u32', 0], [K('vision', 'head_count'), 'u32', 7], [K('vision', 'block_count'), 'u32', 10000],
    [K('vision', 'layer_norm_eps'), 'f32', NaN], [K('vision', 'layer_norm_eps'), 'f32', -1], [K('vision', 'feed_forward_length'), 'u32', 2 ** 31],
    [K('vision', 'image_std'), 'array<f32>', [0, 0, 0]], [K('vision', 'image_mean'), 'array<f32>', [NaN, 0, 0]],
    [K('vision', 'kernel_size'), 'array<i32>', [2, 0, 14]], [K('vision', 'kernel_size'), 'array<i32>', [2, 100000, 14]],
    [K('vision', 'stride'), 'array<i32>', [2, 14]], [K('vision', 'in_channels'), 'u32', 100000],
    [K('audio', 'target_length'), 'u32', 1 << 20, embedText], [K('audio', 'num_mel_bins'), 'u32', 100000, embedText],
    [K('audio', 'sample_rate'), 'u32', 1, embedText], [K('audio', 'fbank_std'), 'f32', 0, embedText],
    [K('text', 'context_length'), 'u32', 1e6, embedText], [K('text', 'vocab_size'), 'u32', 0, embedText], [K('text', 'logit_scale'), 'f32', NaN, embedText],
    [K('text', 'bpe_merges'), 'array<string>', [], embedText], [K('point', 'num_group'), 'u32', 1e6, embedText], [K('point', 'group_size'), 'u32', 1e6, embedText],
    [K('imu', 'length'), 'u32', 1 << 30, embedText], ['imagebind.out_embed_dim', 'u32', 0], ['imagebind.out_embed_dim', 'u32', 33],
    ['imagebind.modalities', 'array<string>', ['vision', 'smell']],
  ]) {
    await encMut(`${key} = ${Array.isArray(v) ? `[${v}]` : v}`, (g) => setMeta(g, key, type, v), run);
  }
  const encInfo = await ibl.inspectGguf(m.encoder);
  const encNorm = encInfo.tensors.find((t) => /ln1\.weight$/.test(t.name) || /norm.*weight$/.test(t.name)).name;
  const encMat = encInfo.tensors.find((t) => /attn_qkv\.weight$/.test(t.name)).name;
  await encMut(`${encNorm} as i32`, (g) => retype(g, encNorm, 'i32', 4));
  await encMut(`${encMat} as i16`, (g) => retype(g, encMat, 'i16', 2));
  await encMut(`${encMat} of the wrong shape`, (g) => retype(g, encMat, 'f32', 4, [64, 64]));
  await encMut(`${encMat} missing`, (g) => { g.tensors = g.tensors.filter((t) => t.name !== encMat); });
  for (const [tn, v] of [[encMat, NaN], [encNorm, Infinity]]) {
    const file = f(`enc-poison-${cases.length}.gguf`);
    fs.copyFileSync(m.encoder, file);
    add('encoder GGUF', `${tn} holds ${v}`, embedImage(await poisonTensor(file, tn, v)), path.basename(file));
  }
  for (const [name, mk] of [['cut at half', (p) => truncated(m.encoder, p, fs.statSync(m.encoder).size >> 1)], ['random bytes', (p) => random(p, 60000, 3)],
    ['cut in the header', (p) => truncated(m.encoder, p, 20)]]) {
    const p = f(`enc-bytes-${cases.length}.gguf`);
    mk(p);
    add('encoder GGUF', name, embedText(p), path.basename(p));
  }
  add('encoder GGUF', 'the LLM given as the encoder', embedText(m.model), path.basename(m.model));

  // Checkpoints (.pth) -------------------------------------------------------------------------------
  // Every conversion writes over an output of its own that exists already: it must stay as it was.
  const outputFile = (name, content) => { const p = f(name); fs.writeFileSync(p, content); return p; };
  let out;
  const convertEnc = (ckpt) => {
    out = outputFile(`converted-${cases.length}.gguf`, 'the user\'s previous output');
    return ['convert', 'imagebind', ckpt, '-o', out, '--config', path.join(tinyA, 'imagebind.config.json')];
  };
  const pickleCkpt = async (name, bytes) => {
    const p = f(`ckpt-${cases.length}.pth`);
    await writeTorchCheckpoint(p, {}, { pickle: bytes });
    add('checkpoint', name, convertEnc(p), path.basename(p), { outputs: [out] });
  };
  await pickleCkpt('list reference bomb (10^30 leaves)', listBomb(30, 10));
  await pickleCkpt('dict reference bomb (8^20 leaves)', dictBomb(20, 8));
  await pickleCkpt('nesting 100000 deep', deepList(100000));
  await pickleCkpt('nesting 70 deep', deepList(70));
  await pickleCkpt('a list that contains itself', cycle());
  await pickleCkpt('os.system as a global', forbidden());
  await pickleCkpt('a 2 GiB string claimed', hugeString());
  await pickleCkpt('random pickle bytes', (() => { const b = Buffer.alloc(3000); for (let i = 0; i < b.length; i++) b[i] = (i * 7919) & 255; return Buffer.concat([Buffer.from(PROTO2), b]); })());
  await pickleCkpt('an empty pickle', Buffer.alloc(0));
  {
    const p = f('ckpt-nan.pth');
    const ck = await ibl.openTorchCheckpoint(path.join(tinyA, 'imagebind.pth'));
    const entries = {};
    for (const info of ck.tensors()) {
      const data = await ck.readFloat32(info);
      if (info.name.endsWith('trunks.vision.blocks.0.attn.in_proj_weight')) data[3] = NaN;
      entries[info.name] = tensor('float32', info.shape, data);
    }
    await ck.close();
    await writeTorchCheckpoint(p, ordered(entries));
    add('checkpoint', 'NaN in a weight', convertEnc(p), 'ckpt-nan.pth', { outputs: [out] });
  }
  await (async () => {
    const p = f('ckpt-inf.pth');
    await writeTorchCheckpoint(p, ordered({ 'modality_trunks.vision.blocks.0.attn.in_proj_weight': tensor('float32', [3, 2], new Float32Array([1, Infinity, 0, 0, 0, 0])) }));
    add('checkpoint', 'Inf in a weight (and not ImageBind)', convertEnc(p), 'ckpt-inf.pth', { outputs: [out] });
  })();
  for (const [name, mk] of [
    ['cut at half', (p) => truncated(path.join(tinyA, 'imagebind.pth'), p, fs.statSync(path.join(tinyA, 'imagebind.pth')).size >> 1)],
    ['cut to 100 bytes', (p) => truncated(path.join(tinyA, 'imagebind.pth'), p, 100)],
    ['random bytes', (p) => random(p, 80000, 11)],
    ['a PNG named .pth', (p) => fs.copyFileSync(path.join(assets, 'dog_image.png'), p)],
  ]) {
    const p = f(`ckpt-bytes-${cases.length}.pth`);
    mk(p);
    add('checkpoint', name, convertEnc(p), path.basename(p), { outputs: [out] });
  }

  // LLaMA folder: params.json, tokenizer.model, shards; adapter ------------------------------------------
  const llamaCopy = (tag, edit) => {
    const d = f(`llama-${tag}`);
    fs.mkdirSync(d);
    for (const n of fs.readdirSync(path.join(tinyA, 'llama'))) fs.copyFileSync(path.join(tinyA, 'llama', n), path.join(d, n));
    edit(d);
    return d;
  };
  let pairOut;
  const convertLlm = (llama, adapter = path.join(tinyA, 'adapter.pth')) => {
    const prefix = f(`pair-${cases.length}`);
    pairOut = { outputs: [outputFile(`pair-${cases.length}-llm.gguf`, 'previous llm'), outputFile(`pair-${cases.length}-bind.gguf`, 'previous bind')] };
    return ['convert', 'llm', '--llama', llama, '--adapter', adapter, '-o', prefix];
  };
  const params = JSON.parse(fs.readFileSync(path.join(tinyA, 'llama', 'params.json'), 'utf8'));
  for (const [name, text] of [
    ['not JSON', '{"dim": 64,'], ['an array', '[1, 2]'], ['dim -64', JSON.stringify({ ...params, dim: -64 })], ['dim 1e12', JSON.stringify({ ...params, dim: 1e12 })],
    ['dim 64.5', JSON.stringify({ ...params, dim: 64.5 })], ['dim as a string', JSON.stringify({ ...params, dim: '64' })], ['n_layers 0', JSON.stringify({ ...params, n_layers: 0 })],
    ['n_layers 10^6', JSON.stringify({ ...params, n_layers: 1e6 })], ['n_heads 0', JSON.stringify({ ...params, n_heads: 0 })], ['n_heads 5', JSON.stringify({ ...params, n_heads: 5 })],
    ['norm_eps 1e999 (Infinity)', JSON.stringify({ ...params }).replace(/"norm_eps":[^,}]+/, '"norm_eps":1e999')], ['norm_eps -1', JSON.stringify({ ...params, norm_eps: -1 })],
    ['multiple_of 0', JSON.stringify({ ...params, multiple_of: 0 })], ['a 20 MB params.json', JSON.stringify({ ...params, pad: 'x'.repeat(20 * 1024 * 1024) })], ['empty', ''],
  ]) {
    add('params.json', name, convertLlm(llamaCopy(`p${cases.length}`, (d) => fs.writeFileSync(path.join(d, 'params.json'), text))), 'params.json', pairOut);
  }
  for (const [name, mk] of [
    ['random bytes', (p) => random(p, 5000, 5)], ['empty', (p) => fs.writeFileSync(p, '')], ['cut at half', (p) => truncated(path.join(tinyA, 'llama', 'tokenizer.model'), p, fs.statSync(path.join(tinyA, 'llama', 'tokenizer.model')).size >> 1)],
    ['a piece length of 2^31', (p) => fs.writeFileSync(p, Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x07, 0x0a, 0x01, 0x61]))],
  ]) {
    add('tokenizer.model', name, convertLlm(llamaCopy(`t${cases.length}`, (d) => mk(path.join(d, 'tokenizer.model')))), 'tokenizer.model', pairOut);
  }
  for (const [name, mk] of [
    ['cut at half', (p) => truncated(p, p, fs.statSync(p).size >> 1)], ['random bytes', (p) => random(p, 40000, 13)],
    ['a list bomb', (p) => writeTorchCheckpoint(p, {}, { pickle: listBomb(25, 10) })],
  ]) {
    const d = llamaCopy(`s${cases.length}`, () => {});
    await mk(path.join(d, 'consolidated.00.pth'));
    add('LLaMA weights', name, convertLlm(d), 'consolidated.00.pth', pairOut);
  }
  for (const [name, bytes] of [['a dict bomb', dictBomb(18, 8)], ['os.system', forbidden()], ['a cycle', cycle()]]) {
    const p = f(`adapter-${cases.length}.pth`);
    await writeTorchCheckpoint(p, {}, { pickle: bytes });
    add('adapter', name, convertLlm(path.join(tinyA, 'llama'), p), path.basename(p), pairOut);
  }
  {
    const p = f('adapter-random.pth');
    random(p, 30000, 17);
    add('adapter', 'random bytes', convertLlm(path.join(tinyA, 'llama'), p), 'adapter-random.pth', pairOut);
  }

  // faiss index -------------------------------------------------------------------------------------
  let cacheOut;
  const convertCache = (idx) => {
    cacheOut = outputFile(`cache-out-${cases.length}.gguf`, 'previous cache');
    return ['convert', 'cache', idx, '-o', cacheOut];
  };
  const knn = path.join(tinyA, 'knn.index');
  const knnBytes = fs.readFileSync(knn);
  for (const [name, mk] of [
    ['cut at half', (p) => truncated(knn, p, knnBytes.length >> 1)], ['cut to 10 bytes', (p) => truncated(knn, p, 10)], ['random bytes', (p) => random(p, 9000, 19)],
    ['fourcc IVFx', (p) => patchBytes(knn, p, 0, Buffer.from('IwFl'))], ['dimension 0', (p) => patchBytes(knn, p, 4, [0, 0, 0, 0])],
    ['dimension 2^31-1', (p) => patchBytes(knn, p, 4, [0xff, 0xff, 0xff, 0x7f])], ['2^60 vectors claimed', (p) => patchBytes(knn, p, 8, [0, 0, 0, 0, 0, 0, 0, 0x10])],
    ['NaN in a vector', (p) => { const b = Buffer.from(knnBytes); b.writeFloatLE(NaN, b.length - 8); fs.writeFileSync(p, b); }],
    ['Infinity in a vector', (p) => { const b = Buffer.from(knnBytes); b.writeFloatLE(Infinity, b.length - 40); fs.writeFileSync(p, b); }],
  ]) {
    const p = f(`faiss-${cases.length}.index`);
    mk(p);
    add('faiss index', name, convertCache(p), path.basename(p), { outputs: [cacheOut] });
  }

  // Media -------------------------------------------------------------------------------------------
  const E = ['--encoder', m.encoder, '--threads', '1'];
  const embedKind = (kind, p) => ['embed', ...E, `--${kind}`, p];
  const media = (surface, kind, name, mk, ext) => {
    const p = f(`${kind}-${cases.length}.${ext}`);
    mk(p);
    add(surface, name, embedKind(kind, p), path.basename(p));
  };
  const jpg = fs.readFileSync(path.join(assets, 'dog_image.jpg'));
  media('image', 'image', 'a JPEG cut short', (p) => fs.writeFileSync(p, jpg.subarray(0, jpg.length >> 2)), 'jpg');
  media('image', 'image', 'random bytes named .jpg', (p) => random(p, 20000, 23), 'jpg');
  media('image', 'image', 'a PNG header of 100000 × 100000', (p) => pngHeader(p, 100000, 100000), 'png');
  media('image', 'image', 'a PNG header of 0 × 0', (p) => pngHeader(p, 0, 0), 'png');
  media('image', 'image', 'a PNG header of 65535 × 65535 16-bit', (p) => pngHeader(p, 65535, 65535, 16), 'png');
  media('image', 'image', 'a GIF header of 65535 × 65535', (p) => fs.writeFileSync(p, Buffer.concat([Buffer.from('GIF89a'), Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0]), Buffer.alloc(32)])), 'gif');
  media('image', 'image', 'a BMP claiming 2^30 × 2^30', (p) => { const b = Buffer.alloc(64); b.write('BM', 0); b.writeUInt32LE(54, 10); b.writeUInt32LE(40, 14); b.writeInt32LE(1 << 30, 18); b.writeInt32LE(1 << 30, 22); b.writeUInt16LE(1, 26); b.writeUInt16LE(24, 28); fs.writeFileSync(p, b); }, 'bmp');
  media('image', 'image', 'a text file named .png', (p) => fs.writeFileSync(p, 'not an image'), 'png');
  media('audio', 'audio', 'a WAV at 1 Hz', (p) => wav(p, { rate: 1 }, Buffer.alloc(20000)), 'wav');
  media('audio', 'audio', 'a WAV at 0 Hz', (p) => wav(p, { rate: 0 }, Buffer.alloc(2000)), 'wav');
  media('audio', 'audio', 'a WAV of 0 channels', (p) => wav(p, { channels: 0 }, Buffer.alloc(2000)), 'wav');
  media('audio', 'audio', 'a WAV of 65535 channels', (p) => wav(p, { channels: 65535 }, Buffer.alloc(2000)), 'wav');
  // Streams (ffmpeg's own pipe output among them) write placeholder sizes: the samples present are read.
  media('audio', 'audio', 'a WAV claiming 4 GB of data (read as far as it goes)', (p) => fs.writeFileSync(p, Buffer.concat([wavHeader({ claimData: 0xffffffff }), Buffer.alloc(64000)])), 'wav');
  cases[cases.length - 1].ok = true;
  media('audio', 'audio', 'a float WAV holding NaN', (p) => { const s = Buffer.alloc(64000); for (let i = 0; i < 16000; i++) s.writeFloatLE(i === 500 ? NaN : 0.1, i * 4); wav(p, { format: 3, bits: 32 }, s); }, 'wav');
  media('audio', 'audio', 'a float WAV holding 3e38', (p) => { const s = Buffer.alloc(64000); for (let i = 0; i < 16000; i++) s.writeFloatLE(3e38, i * 4); wav(p, { format: 3, bits: 32 }, s); }, 'wav');
  media('audio', 'audio', 'a WAV of 24-bit samples at 7 bits', (p) => wav(p, { bits: 7 }, Buffer.alloc(2000)), 'wav');
  media('audio', 'audio', 'a WAV with no samples', (p) => wav(p, {}, Buffer.alloc(0)), 'wav');
  media('audio', 'audio', 'random bytes named .mp3', (p) => random(p, 30000, 29), 'mp3');
  media('audio', 'audio', 'random bytes named .flac', (p) => random(p, 30000, 31), 'flac');
  {
    // A small file of two hours of silence (decodes to gigabytes).
    const p = f('silence-2h.flac');
    execFileSync(process.env.FFMPEG_PATH || require('@ffmpeg-installer/ffmpeg').path, ['-nostdin', '-loglevel', 'error', '-f', 'lavfi', '-i', 'anullsrc=r=44100:cl=stereo', '-t', '7200', '-c:a', 'flac', '-compression_level', '0', p]);
    add('audio', 'a FLAC of two hours of silence', embedKind('audio', p), 'silence-2h.flac');
  }
  const mp4 = fs.readFileSync(path.join(assets, 'photos_5s.mp4'));
  media('video', 'video', 'an MP4 cut to 1000 bytes', (p) => fs.writeFileSync(p, mp4.subarray(0, 1000)), 'mp4');
  media('video', 'video', 'an MP4 cut at half', (p) => fs.writeFileSync(p, mp4.subarray(0, mp4.length >> 1)), 'mp4');
  media('video', 'video', 'random bytes named .mp4', (p) => random(p, 50000, 37), 'mp4');
  media('video', 'video', 'a WAV named .mp4 (no video stream)', (p) => fs.copyFileSync(path.join(assets, 'dog_audio.wav'), p), 'mp4');
  // ffmpeg reads a still image as a one-frame video: that is a valid input.
  media('video', 'video', 'an image named .mp4 (a one-frame video)', (p) => fs.copyFileSync(path.join(assets, 'dog_image.jpg'), p), 'mp4');
  cases[cases.length - 1].ok = true;
  const f32 = (n, v) => { const a = new Float32Array(n); a.fill(0.5); if (v !== undefined) a[n >> 1] = v; return a; };
  for (const [kind, shape] of [['imu', [6, 2000]], ['point', [8192, 3]], ['depth', [1, 224, 224]]]) {
    const n = shape.reduce((a, b) => a * b, 1);
    media(`${kind} .npy`, kind, 'NaN', (p) => npy(p, '<f4', shape, f32(n, NaN)), 'npy');
    media(`${kind} .npy`, kind, 'Infinity', (p) => npy(p, '<f4', shape, f32(n, Infinity)), 'npy');
    media(`${kind} .npy`, kind, '3e38 everywhere', (p) => npy(p, '<f4', shape, new Float32Array(n).fill(3e38)), 'npy');
    media(`${kind} .npy`, kind, '-3e38 once', (p) => npy(p, '<f4', shape, f32(n, -3e38)), 'npy');
    media(`${kind} .npy`, kind, 'the wrong shape', (p) => npy(p, '<f4', [7, 7], f32(49)), 'npy');
    media(`${kind} .npy`, kind, 'a shape of 10^12 claimed', (p) => npy(p, '<f4', [1000000, 1000000], f32(16)), 'npy');
    media(`${kind} .npy`, kind, 'object dtype (a pickle)', (p) => npy(p, '|O', [1], Buffer.from([0x80, 0x02, 0x63, ...Buffer.from('os\nsystem\n'), 0x2e])), 'npy');
    media(`${kind} .npy`, kind, 'a header cut short', (p) => fs.writeFileSync(p, Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, 0xff, 0xff, 0x7b])), 'npy');
    media(`${kind} .npy`, kind, 'complex128', (p) => npy(p, '<c16', shape, new Float64Array(n * 2)), 'npy');
  }
  const ply = (body, header) => `ply\nformat ascii 1.0\n${header}\nproperty float x\nproperty float y\nproperty float z\nend_header\n${body}`;
  media('point cloud', 'point', 'a PLY holding nan', (p) => fs.writeFileSync(p, ply('0 0 0\nnan 1 2\n1 1 1\n', 'element vertex 3')), 'ply');
  media('point cloud', 'point', 'a PLY claiming 10^12 vertices', (p) => fs.writeFileSync(p, ply('0 0 0\n', 'element vertex 1000000000000')), 'ply');
  media('point cloud', 'point', 'a binary PLY claiming 2^31 vertices', (p) => fs.writeFileSync(p, 'ply\nformat binary_little_endian 1.0\nelement vertex 2147483647\nproperty float x\nproperty float y\nproperty float z\nend_header\n' + '\0'.repeat(64)), 'ply');
  media('point cloud', 'point', 'a PLY with 3e38 coordinates', (p) => fs.writeFileSync(p, ply('3e38 3e38 3e38\n-3e38 0 0\n1 1 1\n', 'element vertex 3')), 'ply');
  media('point cloud', 'point', 'an XYZ of text', (p) => fs.writeFileSync(p, 'hello world\nthis is not\na point cloud\n'), 'xyz');
  media('point cloud', 'point', 'an XYZ with inf', (p) => fs.writeFileSync(p, '0 0 0\ninf 0 0\n'), 'xyz');
  media('point cloud', 'point', 'an OBJ with no vertices', (p) => fs.writeFileSync(p, '# nothing\nf 1 2 3\n'), 'obj');
  media('point cloud', 'point', 'a PCD claiming WIDTH 10^12', (p) => fs.writeFileSync(p, 'VERSION .7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 1000000000000\nHEIGHT 1\nPOINTS 1000000000000\nDATA ascii\n0 0 0\n'), 'pcd');
  media('point cloud', 'point', 'a single point', (p) => fs.writeFileSync(p, '1 2 3\n'), 'xyz');
  media('depth map', 'depth', 'an RGB photo as depth', (p) => fs.copyFileSync(path.join(assets, 'dog_image.png'), p), 'png');
  media('depth map', 'depth', 'a PNG header of 100000 × 100000 16-bit gray', (p) => pngHeader(p, 100000, 100000, 16, 0), 'png');
  media('thermal map', 'thermal', 'random bytes named .png', (p) => random(p, 4000, 41), 'png');

  // Texts --------------------------------------------------------------------------------------------
  add('text', '100 KB of text (truncated as ImageBind does)', ['embed', ...E, '--text', 'word '.repeat(20000)], undefined, { ok: true });
  add('text', 'an empty text', ['embed', ...E, '--text', ''], undefined, { ok: true });
  add('text', 'control characters and invalid sequences', ['embed', ...E, '--text', '\u0001\u0002\u001b[31m\ufffd\ud7ff'], undefined, { ok: true });
  add('text', 'a 100 KB prompt', ['ask', '--model', m.model, '--bind', m.bind, '--threads', '1', 'q '.repeat(50000)], undefined, { expect: /do not fit in the context|too long/ });

  // Numeric flags ------------------------------------------------------------------------------------
  for (const [flag, v] of [['--threads', '1e3'], ['--threads', '-2'], ['--threads', '100000'], ['--max-tokens', '1e12'], ['--max-tokens', '-1'], ['-c', '99999999999'],
    ['--temperature', 'NaN'], ['--temperature', 'Infinity'], ['--top-p', '2'], ['--top-k', '1.5'], ['--seed', '5000000000'], ['--repeat-penalty', '-1'],
    ['--gpu-layers', '1e9'], ['--cache-k', '0'], ['--cache-t', '-5'], ['--cache-weight', '1.5'], ['--weight', 'smell=2'], ['--weight', 'image=NaN'], ['--device', 'NoSuchGPU']]) {
    add('numeric flags', `ask ${flag} ${v}`, ['ask', '--model', m.model, '--bind', m.bind, '--cache', m.cache, flag, v, 'hi'], undefined, { flag: flag === '-c' ? '--context' : flag, code: 2 });
  }
  add('numeric flags', 'convert llm --context-length 1e12', ['convert', 'llm', '--llama', 'x', '--adapter', 'y', '-o', 'z', '--context-length', '1e12'], undefined, { flag: '--context-length', code: 2 });
  add('numeric flags', 'convert cache --chunk-rows 0', ['convert', 'cache', knn, '-o', cacheOut, '--chunk-rows', '0'], undefined, { flag: '--chunk-rows', code: 2 });
  add('numeric flags', 'embed --threads abc', ['embed', ...E.slice(0, 2), '--threads', 'abc', '--text', 'x'], undefined, { flag: '--threads', code: 2 });

  // Special paths, on every surface that takes a file -------------------------------------------------------
  const surfaces = [
    ['encoder GGUF', (p) => embedText(p)], ['LLM GGUF', (p) => llmAsk(p)], ['bind GGUF', (p) => bindAsk(p)], ['cache GGUF', (p) => cacheAsk(p)],
    ['checkpoint', (p) => convertEnc(p)], ['faiss index', (p) => convertCache(p)], ['adapter', (p) => convertLlm(path.join(tinyA, 'llama'), p)],
    ['image', (p) => embedKind('image', p)], ['audio', (p) => embedKind('audio', p)], ['video', (p) => embedKind('video', p)],
    ['point cloud', (p) => embedKind('point', p)], ['imu .npy', (p) => embedKind('imu', p)], ['depth map', (p) => embedKind('depth', p)],
    ['thermal map', (p) => embedKind('thermal', p)],
  ];
  for (const [surface, args] of surfaces) {
    for (const [what, p] of Object.entries(special.paths)) {
      const argv = args(p);  // sets the output files of a conversion
      const outputs = surface === 'checkpoint' ? [out] : surface === 'faiss index' ? [cacheOut] : surface === 'adapter' ? pairOut.outputs : undefined;
      add(`special paths (${surface})`, what, argv, p === special.paths['link to /dev/zero'] ? 'zero-link' : p, { outputs, special: true });
    }
  }
  return cases;
}
