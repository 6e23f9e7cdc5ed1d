// `imagebind-llm pull`: from nothing to a model folder that every command uses by default.
//
// It fetches the released files it still needs (download.ts: resumable, several connections, checked
// against the hub's sha256), converts them, and records the results in the folder's manifest:
//   the kNN cache    knn.index                              → knn-cache-<type>.gguf
//   the encoder      imagebind_w3D.pth                      → imagebind-w3D-<type>.gguf
//   the LLM + bind   7B.pth + the user's LLaMA-7B (+ the Open-Chinese-LLaMA delta, added on the fly)
//                                                           → imagebind-llm-7B-<base>-<type>-{llm,bind}.gguf
// One part at a time (download, convert, record, delete its downloads), so the disk holds at most one
// part's downloads; the manifest is rewritten after each part, only once its files are complete. A
// part whose recipe (sources' sha256, types, the LLaMA folder) is unchanged is kept as it is, so running
// pull again after an interruption or with another --type redoes only what changed.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { AbortError, ImageBindError, throwIfAborted } from '../errors';
import { convertCache, CacheType } from '../convert/cache';
import { convertImagebind, ENCODER_TYPES, EncoderType } from '../convert/imagebind';
import { BindType, convertLlm, LLM_TYPES, LlmType } from '../convert/llm';
import { MANIFEST_NAME, ModelEntry, ModelManifest, ModelRole, ModelSet, modelsDir, readModelManifest, resolveModels, writeModelManifest } from '../models';
import { checkInt } from '../options';
import { RELEASED, ReleasedFile } from './catalogue';
import { hashFile } from './download';
import { checkFreeSpace, Downloads } from './downloads';
import { lockFolder } from './lock';
import { DEFAULT_ENDPOINT, describeFile, Hub, hubOf, pathsInfo, RemoteFile } from './hub';

export { RELEASED } from './catalogue';
export { DEFAULT_ENDPOINT } from './hub';

export interface PullOptions {
  /** The user's LLaMA-7B folder (Meta or Hugging Face layout). Without it the LLM is not built. */
  llama?: string;
  /** The model folder (default: IMAGEBIND_LLM_MODELS, else the user's cache folder). */
  models?: string;
  /** 'chinese' (default): Open-Chinese-LLaMA-7B, what the stable adapter was trained on; 'llama': plain LLaMA-7B. */
  base?: 'chinese' | 'llama';
  /** 'stable' (default, 7B.pth) or 'beta' (7B-beta.pth, trained on plain LLaMA: needs base 'llama'). */
  adapter?: 'stable' | 'beta';
  /** LLM weight type; default q4_k_m (the best quality for its speed on a CPU). */
  type?: LlmType;
  /** Encoder weight type; default f16. */
  encoderType?: EncoderType;
  /** Bind network type; default f16 (the released bridge is 604 M values: 2.3 GiB in f32, run once per question). */
  bindType?: BindType;
  cacheType?: CacheType;
  /** Hyperparameters for an encoder checkpoint other than ImageBind-huge (see `convert imagebind --config`). */
  encoderConfig?: string;
  /** Fetch and convert the kNN cache (default true). */
  knn?: boolean;
  /** Keep the downloaded checkpoints in `<models>/downloads` (default: delete them once converted). */
  keepDownloads?: boolean;
  /** Connections per file (default 4). */
  connections?: number;
  /** The hub (default HF_ENDPOINT, else https://huggingface.co) and token (default HF_TOKEN). */
  endpoint?: string;
  token?: string;
  /** Failed requests in a row before giving up on a file (default 5), and the first pause (ms, default 1000). */
  retries?: number;
  retryDelayMs?: number;
  /** A connection silent for this long (ms, default 60000) is retried. */
  stallMs?: number;
  /** Bytes per range request (default 64 MiB). */
  segmentBytes?: number;
  signal?: AbortSignal;
  onEvent?: (e: PullEvent) => void;
}

export type PullEvent =
  | { phase: 'note'; message: string }
  | { phase: 'download' | 'check' | 'convert' | 'hash'; label: string; done: number; total: number };

export interface PullResult {
  dir: string;
  manifest: string;
  models: ModelSet;
  /** Parts converted by this run, and parts kept as they were. */
  built: string[];
  kept: string[];
  /** Parts not made, and why. */
  skipped: string[];
  /** Bytes fetched from the hub by this run, and bytes of downloads reused (kept or resumed). */
  fetchedBytes: number;
  reusedBytes: number;
}

const MiB = 1 << 20;
// Converted size per source byte or per parameter, for the disk check (a little above the real figures).
const ENCODER_OUT = { f32: 1.01, f16: 0.51, bf16: 0.51, q8_0: 0.3 } as const; // of the f32 checkpoint
const LLM_OUT = { f32: 4.05, f16: 2.05, q8_0: 1.1, q4_0: 0.6, q4_k_m: 0.65 } as const; // bytes per parameter

interface Part {
  name: 'cache' | 'encoder' | 'llm';
  label: string;
  roles: ModelRole[];
  sources: RemoteFile[];
  recipe: string;
  outBytes: number;
  build: (local: Map<RemoteFile, string>, dir: string, signal: AbortSignal | undefined, progress: (d: number, t: number) => void) => Promise<Partial<Record<ModelRole, { file: string; type: string }>>>;
  details?: ModelEntry['details'];
}

function fail(code: string, msg: string): never {
  throw new ImageBindError(code, msg);
}

function checkChoice<T extends string>(v: T | undefined, name: string, allowed: readonly T[], def: T): T {
  if (v === undefined) return def;
  if (!allowed.includes(v)) fail('ERR_INVALID_ARG', `${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
  return v;
}

/** On huggingface.co itself, a file with a known size and sha256 must still be that file. */
export function checkKnown(hub: Hub, released: ReleasedFile, remote: RemoteFile): void {
  if (!released.known || hub.endpoint !== DEFAULT_ENDPOINT) return;
  if (remote.size !== released.known.bytes || remote.sha256 !== released.known.sha256) {
    fail('ERR_PULL_CHANGED', `${describeFile(released)}: the hub lists ${remote.size} bytes, sha256 ${remote.sha256 ?? '(none)'}, but the released file is ${released.known.bytes} bytes, sha256 ${released.known.sha256}: it changed upstream, so pull stops rather than build from another file`);
  }
}

/** What identifies a LLaMA folder's contents, cheaply: its real path and its files' sizes and times. */
function folderFingerprint(dir: string): string {
  const real = fs.realpathSync(dir);
  const files = fs.readdirSync(real).sort().map((f) => {
    const st = fs.statSync(path.join(real, f));
    return st.isFile() ? `${f}:${st.size}:${Math.trunc(st.mtimeMs)}` : `${f}/`;
  });
  return `${real}|${files.join(',')}`;
}

const sha256Of = (file: string) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/** Parameters of a LLaMA from its weight files' size, assuming 16-bit weights (for the disk check). */
function paramsEstimate(dir: string): number {
  const bytes = fs.readdirSync(dir).filter((f) => /\.(pth|safetensors|bin)$/.test(f)).reduce((a, f) => a + fs.statSync(path.join(dir, f)).size, 0);
  return bytes / 2;
}

async function remoteFiles(hub: Hub, files: ReleasedFile[], signal?: AbortSignal): Promise<Map<ReleasedFile, RemoteFile>> {
  const byRepo = new Map<string, ReleasedFile[]>();
  for (const f of files) byRepo.set(`${f.repo}@${f.revision}`, [...(byRepo.get(`${f.repo}@${f.revision}`) ?? []), f]);
  const out = new Map<ReleasedFile, RemoteFile>();
  for (const group of byRepo.values()) {
    const info = await pathsInfo(hub, group[0]!.repo, group[0]!.revision, group.map((f) => f.path), signal);
    for (const f of group) {
      const r = info.get(f.path)!;
      checkKnown(hub, f, r);
      out.set(f, r);
    }
  }
  return out;
}

interface Settings {
  dir: string; llama?: string; base: 'chinese' | 'llama'; adapter: 'stable' | 'beta'; type: LlmType; encoderType: EncoderType;
  bindType: BindType; cacheType: CacheType; encoderConfig?: string; knn: boolean;
}

/** The parts to make, with their sources as the hub lists them. */
async function planParts(hub: Hub, s: Settings, signal: AbortSignal | undefined, note: (m: string) => void): Promise<{ parts: Part[]; skipped: string[] }> {
  const skipped: string[] = [];
  const wanted: ReleasedFile[] = [RELEASED.encoder];
  if (s.knn) wanted.push(RELEASED.knn);
  else skipped.push('cache (--no-knn)');
  const adapter = s.adapter === 'beta' ? RELEASED.adapterBeta : RELEASED.adapter;
  if (s.llama) wanted.push(adapter, ...(s.base === 'chinese' ? [RELEASED.delta, RELEASED.deltaParams] : []));
  else skipped.push('llm (no --llama: LLaMA-7B needs Meta\'s licence; pass your copy with --llama DIR)');
  const remote = await remoteFiles(hub, wanted, signal);
  const r = (f: ReleasedFile) => remote.get(f)!;
  const recipe = (x: object) => JSON.stringify(x);
  const parts: Part[] = [];
  if (s.knn) {
    const src = r(RELEASED.knn);
    parts.push({
      name: 'cache', label: 'the kNN cache', roles: ['cache'], sources: [src], outBytes: src.size,
      recipe: recipe({ part: 'cache', source: src.sha256 ?? src.gitSha1, type: s.cacheType }),
      build: async (local, dir, signal, progress) => {
        const file = `knn-cache-${s.cacheType}.gguf`;
        await convertCache(local.get(src)!, path.join(dir, file), { type: s.cacheType, signal, onProgress: progress });
        return { cache: { file, type: s.cacheType } };
      },
    });
  }
  const enc = r(RELEASED.encoder);
  const config = s.encoderConfig;
  parts.push({
    name: 'encoder', label: 'the encoder', roles: ['encoder'], sources: [enc], outBytes: enc.size * ENCODER_OUT[s.encoderType],
    recipe: recipe({ part: 'encoder', source: enc.sha256, type: s.encoderType, config: config ? sha256Of(config) : null }),
    build: async (local, dir, signal, progress) => {
      const file = `imagebind-w3D-${s.encoderType}.gguf`;
      await convertImagebind(local.get(enc)!, path.join(dir, file), {
        type: s.encoderType, config, signal, onProgress: progress, name: 'ImageBind-huge + Point-Bind (imagebind_w3D.pth)',
      });
      return { encoder: { file, type: s.encoderType } };
    },
  });
  if (s.llama) {
    const ad = r(adapter);
    const delta = s.base === 'chinese' ? [r(RELEASED.delta), r(RELEASED.deltaParams)] : [];
    const params = delta.length ? delta[0]!.size / 2 : paramsEstimate(s.llama);
    const variant = `7B${s.adapter === 'beta' ? '-beta' : ''}-${s.base}`;
    parts.push({
      // The bind network holds the adapter's bridge (f32 in 7B.pth): about its size in f32, half in f16.
      name: 'llm', label: 'the LLM', roles: ['llm', 'bind'], sources: [ad, ...delta], outBytes: params * LLM_OUT[s.type] + ad.size * (s.bindType === 'f16' ? 0.55 : 1.05),
      recipe: recipe({ part: 'llm', adapter: ad.sha256, delta: delta.map((d) => d.sha256 ?? d.gitSha1), base: s.base, llama: folderFingerprint(s.llama), type: s.type, bindType: s.bindType }),
      details: { base: s.base === 'chinese' ? 'Open-Chinese-LLaMA-7B (LLaMA-7B + delta)' : 'LLaMA-7B', llama: path.resolve(s.llama), adapter: ad.path },
      build: async (local, dir, signal, progress) => {
        const prefix = `imagebind-llm-${variant}-${s.type}`;
        const res = await convertLlm({
          llamaDir: s.llama!, delta: delta.length ? path.dirname(local.get(delta[0]!)!) : undefined, adapter: local.get(ad)!,
          outPrefix: path.join(dir, prefix), type: s.type, bindType: s.bindType, signal, onProgress: progress,
          name: `ImageBind-LLM ${variant}`,
        });
        note(`LLaMA folder ${s.llama}: ${res.layout === 'hf' ? 'Hugging Face' : 'Meta'} layout${res.delta ? ', delta added' : ''}`);
        return { llm: { file: path.basename(res.llm), type: s.type }, bind: { file: path.basename(res.bind), type: s.bindType } };
      },
    });
  }
  return { parts, skipped };
}

/** The part is in the folder as the manifest says, made by the same recipe. */
function isCurrent(part: Part, manifest: ModelManifest, dir: string): boolean {
  return part.roles.every((role) => {
    const e = manifest.files[role];
    if (!e || e.recipe !== part.recipe) return false;
    const st = fs.statSync(path.join(dir, e.file), { throwIfNoEntry: false });
    return !!st && st.size === e.bytes;
  });
}

function settingsOf(o: PullOptions): Settings {
  if (o.llama !== undefined && (typeof o.llama !== 'string' || !o.llama)) fail('ERR_INVALID_ARG_TYPE', 'pull: llama must be a folder path');
  if (o.llama !== undefined && !fs.statSync(o.llama, { throwIfNoEntry: false })?.isDirectory()) fail('ERR_FILE_NOT_FOUND', `${o.llama}: no such LLaMA folder`);
  if (o.encoderConfig !== undefined && !fs.existsSync(o.encoderConfig)) fail('ERR_FILE_NOT_FOUND', `${o.encoderConfig}: no such encoder config`);
  const base = checkChoice(o.base, 'base', ['chinese', 'llama'] as const, 'chinese');
  const adapter = checkChoice(o.adapter, 'adapter', ['stable', 'beta'] as const, 'stable');
  if (adapter === 'beta' && base !== 'llama') fail('ERR_INVALID_ARG', "the beta adapter was trained on plain LLaMA-7B: use it with base 'llama'");
  return {
    dir: modelsDir(o.models).dir, llama: o.llama, base, adapter,
    type: checkChoice(o.type, 'type', LLM_TYPES, 'q4_k_m'),
    encoderType: checkChoice(o.encoderType, 'encoderType', ENCODER_TYPES, 'f16'),
    bindType: checkChoice(o.bindType, 'bindType', ['f32', 'f16'] as const, 'f16'),
    cacheType: checkChoice(o.cacheType, 'cacheType', ['f32', 'f16'] as const, 'f16'),
    encoderConfig: o.encoderConfig, knn: o.knn !== false,
  };
}

/** Downloads, converts and records whatever the folder still lacks (see the top of this file). */
export async function pull(options: PullOptions = {}): Promise<PullResult> {
  const s = settingsOf(options ?? {});
  const o = {
    connections: checkInt(options.connections, 'connections', 1, 16) ?? 4,
    retries: checkInt(options.retries, 'retries', 0, 100) ?? 5,
    retryDelayMs: checkInt(options.retryDelayMs, 'retryDelayMs', 0, 600_000) ?? 1000,
    stallMs: checkInt(options.stallMs, 'stallMs', 1, 3_600_000) ?? 60_000,
    segmentBytes: checkInt(options.segmentBytes, 'segmentBytes', 1, 1 << 30) ?? 64 * MiB,
  };
  const hub = hubOf({ endpoint: options.endpoint, token: options.token });
  const emit = (e: PullEvent) => options.onEvent?.(e);
  const note = (message: string) => emit({ phase: 'note', message });
  throwIfAborted(options.signal, 'pull');
  fs.mkdirSync(s.dir, { recursive: true });
  const signal = options.signal;
  const release = lockFolder(s.dir);
  const result: PullResult = { dir: s.dir, manifest: path.join(s.dir, MANIFEST_NAME), models: undefined as unknown as ModelSet, built: [], kept: [], skipped: [], fetchedBytes: 0, reusedBytes: 0 };
  try {
    let manifest: ModelManifest;
    try {
      manifest = readModelManifest(s.dir) ?? { format: 'imagebind-llm-models', version: 1, files: {} };
    } catch (e) {
      note(`${(e as Error).message.split(';')[0]}: starting the manifest anew`);
      manifest = { format: 'imagebind-llm-models', version: 1, files: {} };
    }
    const { parts, skipped } = await planParts(hub, s, signal, note);
    result.skipped = skipped;
    const downloads = new Downloads(s.dir);
    for (const part of parts) {
      if (isCurrent(part, manifest, s.dir)) {
        result.kept.push(part.name);
        continue;
      }
      await buildPart(part, { hub, dir: s.dir, manifest, downloads, o, signal, emit, keep: !!options.keepDownloads, result });
      result.built.push(part.name);
    }
    if (!options.keepDownloads) downloads.remove();
    result.models = resolveModels({ models: s.dir });
    return result;
  } catch (e) {
    if (signal?.aborted && !(e instanceof ImageBindError)) throw new AbortError('pull aborted', { cause: e });
    throw e;
  } finally {
    release();
  }
}

interface BuildContext {
  hub: Hub; dir: string; manifest: ModelManifest; downloads: Downloads; keep: boolean; result: PullResult;
  o: { connections: number; retries: number; retryDelayMs: number; stallMs: number; segmentBytes: number };
  signal?: AbortSignal; emit: (e: PullEvent) => void;
}

/** Downloads a part's sources, converts them, records the files, deletes what is no longer used. */
async function buildPart(part: Part, c: BuildContext): Promise<void> {
  const missing = part.sources.reduce((a, f) => a + c.downloads.missingBytes(f, c.o.segmentBytes), 0);
  checkFreeSpace(c.dir, missing + part.outBytes, `${part.label} (${(missing / 1e9).toFixed(2)} GB to download, about ${(part.outBytes / 1e9).toFixed(2)} GB converted)`);
  const local = new Map<RemoteFile, string>();
  const sha = new Map<RemoteFile, string>();
  for (const f of part.sources) {
    const label = describeFile(f);
    const got = await c.downloads.get(c.hub, f, {
      ...c.o, partialDir: c.downloads.partialDir, signal: c.signal,
      onProgress: (done, total) => c.emit({ phase: 'download', label, done, total }),
      onVerify: (done, total) => c.emit({ phase: 'check', label, done, total }),
    });
    c.result.fetchedBytes += got.fetched;
    c.result.reusedBytes += got.resumed;
    local.set(f, got.path);
    sha.set(f, got.sha256);
  }
  throwIfAborted(c.signal, 'pull');
  const made = await part.build(local, c.dir, c.signal, (done, total) => c.emit({ phase: 'convert', label: part.label, done, total }));
  const before = new Set(Object.values(c.manifest.files).map((e) => e!.file));
  for (const role of part.roles) {
    const m = made[role]!;
    const file = path.join(c.dir, m.file);
    const bytes = fs.statSync(file).size;
    const { sha256 } = await hashFile(file, bytes, false, (done, total) => c.emit({ phase: 'hash', label: m.file, done, total }), c.signal);
    c.manifest.files[role] = {
      file: m.file, type: m.type, bytes, sha256, recipe: part.recipe, created: new Date().toISOString(), details: part.details,
      sources: part.sources.map((f) => ({ repo: f.repo, revision: f.revision, path: f.path, bytes: f.size, sha256: sha.get(f) })),
    };
  }
  writeModelManifest(c.dir, c.manifest);
  // Files the manifest named before and names no more (a part remade with another type).
  const now = new Set(Object.values(c.manifest.files).map((e) => e!.file));
  for (const f of before) if (!now.has(f)) fs.rmSync(path.join(c.dir, f), { force: true });
  if (!c.keep) c.downloads.remove([...local.values()]);
}
