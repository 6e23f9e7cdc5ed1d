// The model folder: where `imagebind-llm pull` puts the converted files, and where every command and
// the API look when no file is named. Which folder: the `models` option (`--models DIR`), else the
// IMAGEBIND_LLM_MODELS environment variable, else `imagebind-llm/models` in the user's cache folder.
//
// The folder's manifest.json says which file plays which role (encoder, llm, bind, cache), with its
// size, sha256 and sources. It is written last, atomically, after the files it names are complete, so
// a reader never picks up a file that a pull is still writing: only files the manifest names are used.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ImageBindError } from './errors';

export const MODEL_ROLES = ['encoder', 'llm', 'bind', 'cache'] as const;
export type ModelRole = (typeof MODEL_ROLES)[number];

/** Where a file came from: a released file on a Hugging Face-style hub, or a local folder. */
export interface ModelSource {
  repo?: string;
  revision?: string;
  path: string;
  bytes?: number;
  sha256?: string;
}

export interface ModelEntry {
  /** The file's name inside the folder. */
  file: string;
  /** Weight type (f16, q4_k_m, …). */
  type: string;
  bytes: number;
  sha256: string;
  sources: ModelSource[];
  /** What the file was made with; `pull` rebuilds a file when this changes. */
  recipe: string;
  /** Extra facts (the LLM's base: 'chinese' or 'llama', the LLaMA folder, its layout). */
  details?: Record<string, string | number | boolean>;
  created: string;
}

export interface ModelManifest {
  format: 'imagebind-llm-models';
  version: 1;
  files: Partial<Record<ModelRole, ModelEntry>>;
}

/** A model folder resolved: absolute paths of the files its manifest names (absent roles undefined). */
export interface ModelSet {
  dir: string;
  /** How the folder was chosen. */
  from: 'option' | 'env' | 'default';
  /** The manifest file when there is one. */
  manifest?: string;
  encoder?: string;
  llm?: string;
  bind?: string;
  cache?: string;
  entries: Partial<Record<ModelRole, ModelEntry>>;
}

export const MANIFEST_NAME = 'manifest.json';

/** The user's cache folder: XDG_CACHE_HOME or ~/.cache (Linux, BSD), ~/Library/Caches (macOS), %LOCALAPPDATA% (Windows). */
export function userCacheDir(): string {
  if (process.env.XDG_CACHE_HOME) return process.env.XDG_CACHE_HOME;
  if (process.platform === 'darwin') return path.join(os.homedir(), 'Library', 'Caches');
  if (process.platform === 'win32') return process.env.LOCALAPPDATA || path.join(os.homedir(), 'AppData', 'Local');
  return path.join(os.homedir(), '.cache');
}

/** The folder `imagebind-llm pull` fills when nothing else is said. */
export function defaultModelsDir(): string {
  return path.join(userCacheDir(), 'imagebind-llm', 'models');
}

/** Which model folder: the option, else IMAGEBIND_LLM_MODELS, else the default. */
export function modelsDir(models?: string): { dir: string; from: ModelSet['from'] } {
  if (models !== undefined) {
    if (typeof models !== 'string' || models.length === 0) throw new ImageBindError('ERR_INVALID_ARG_TYPE', 'models must be a folder path string');
    return { dir: path.resolve(models), from: 'option' };
  }
  const env = process.env.IMAGEBIND_LLM_MODELS;
  if (env) return { dir: path.resolve(env), from: 'env' };
  return { dir: defaultModelsDir(), from: 'default' };
}

function invalid(file: string, msg: string): never {
  throw new ImageBindError('ERR_MODELS_INVALID', `${file}: ${msg}; run \`imagebind-llm pull\` again to rebuild it`);
}

/** A file name that stays inside the folder. */
function checkName(file: string, role: string, name: unknown): string {
  if (typeof name !== 'string' || !/^[^/\\]+$/.test(name) || name === '.' || name === '..') invalid(file, `files.${role}.file is ${JSON.stringify(name)}, expected a file name in the folder`);
  return name as string;
}

/** Reads and checks a folder's manifest; undefined when there is none. */
export function readModelManifest(dir: string): ModelManifest | undefined {
  const file = path.join(dir, MANIFEST_NAME);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ImageBindError('ERR_FILE_READ', `${file}: cannot read: ${(e as Error).message}`);
  }
  let m: ModelManifest;
  try {
    m = JSON.parse(text) as ModelManifest;
  } catch (e) {
    invalid(file, `not valid JSON (${(e as Error).message})`);
  }
  if (m === null || typeof m !== 'object' || m.format !== 'imagebind-llm-models') invalid(file, 'not an imagebind-llm model folder manifest');
  if (m.version !== 1) invalid(file, `manifest version ${JSON.stringify(m.version)} is not one this version reads (1)`);
  if (m.files === null || typeof m.files !== 'object') invalid(file, "'files' must be an object");
  for (const [role, e] of Object.entries(m.files)) {
    if (!(MODEL_ROLES as readonly string[]).includes(role)) invalid(file, `unknown role '${role}' (${MODEL_ROLES.join(', ')})`);
    if (e === null || typeof e !== 'object') invalid(file, `files.${role} must be an object`);
    checkName(file, role, e.file);
    if (!Number.isSafeInteger(e.bytes) || e.bytes < 0) invalid(file, `files.${role}.bytes must be a byte count`);
  }
  return m;
}

/**
 * The model folder and the files its manifest names (see the top of this file for which folder). A
 * role whose file is missing or has another size than the manifest says is an error naming it: the
 * folder was changed by hand or a pull was interrupted in a way it cannot recover from by itself.
 */
export function resolveModels(options: { models?: string } = {}): ModelSet {
  const { dir, from } = modelsDir(options?.models);
  const manifest = readModelManifest(dir);
  const set: ModelSet = { dir, from, entries: {} };
  if (!manifest) return set;
  set.manifest = path.join(dir, MANIFEST_NAME);
  for (const role of MODEL_ROLES) {
    const e = manifest.files[role];
    if (!e) continue;
    const file = path.join(dir, e.file);
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
    } catch {
      throw new ImageBindError('ERR_MODELS_INVALID', `${file}: missing, but ${set.manifest} lists it as the ${role}; run \`imagebind-llm pull\` again`);
    }
    if (st.size !== e.bytes) {
      throw new ImageBindError('ERR_MODELS_INVALID', `${file}: ${st.size} bytes, but ${set.manifest} says ${e.bytes}: changed since it was pulled; run \`imagebind-llm pull\` again`);
    }
    set[role] = file;
    set.entries[role] = e;
  }
  return set;
}

/** Writes a manifest atomically (a temporary file renamed over the old one). */
export function writeModelManifest(dir: string, manifest: ModelManifest): void {
  const file = path.join(dir, MANIFEST_NAME);
  const tmp = path.join(dir, `.${MANIFEST_NAME}.${process.pid}-${crypto.randomBytes(4).toString('hex')}.tmp`);
  try {
    fs.writeFileSync(tmp, JSON.stringify(manifest, null, 2) + '\n');
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw new ImageBindError('ERR_FILE_WRITE', `${file}: cannot write: ${(e as Error).message}`);
  }
}
