// The Hugging Face hub, as far as `pull` needs it: where a file is, and its size and sha256.
//
//   file:        GET  {endpoint}/{repo}/resolve/{revision}/{path}   (LFS files redirect to a CDN;
//                     Range requests are answered with 206)
//   size, hash:  POST {endpoint}/api/models/{repo}/paths-info/{revision}  {"paths": [...], "expand": true}
//                → [{ type, path, size, oid, lfs?: { oid: <sha256>, size } }]; `oid` is the git blob
//                sha1 (what a small non-LFS file is checked with), lfs.oid the sha256 of an LFS file.
// The endpoint is https://huggingface.co unless HF_ENDPOINT says otherwise (a mirror, or the tests'
// loopback server); a token in HF_TOKEN is sent as `Authorization: Bearer`. HTTP is Node's own fetch
// (undici, in Node ≥ 20): it follows the CDN redirects (dropping the token on the way to another
// host), streams bodies, takes an AbortSignal, and needs no dependency.
import { ImageBindError } from '../errors';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';

export interface HubFile {
  repo: string;
  revision: string;
  /** Path inside the repository. */
  path: string;
}

/** What the hub says about a file. */
export interface RemoteFile extends HubFile {
  size: number;
  /** sha256 of an LFS file. */
  sha256?: string;
  /** The git blob sha1 (checks a small file kept in git itself). */
  gitSha1?: string;
}

export interface Hub {
  endpoint: string;
  token?: string;
  userAgent: string;
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { version } = require('../../package.json') as { version: string };

/** The endpoint (option, else HF_ENDPOINT, else huggingface.co) and token (option, else HF_TOKEN). */
export function hubOf(o: { endpoint?: string; token?: string } = {}): Hub {
  const raw = o.endpoint ?? process.env.HF_ENDPOINT ?? DEFAULT_ENDPOINT;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ImageBindError('ERR_INVALID_ARG', `the hub endpoint ${JSON.stringify(raw)} (HF_ENDPOINT) is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new ImageBindError('ERR_INVALID_ARG', `the hub endpoint ${raw} (HF_ENDPOINT) must be an http(s) URL`);
  const token = o.token ?? process.env.HF_TOKEN ?? process.env.HUGGING_FACE_HUB_TOKEN;
  return { endpoint: raw.replace(/\/+$/, ''), token: token || undefined, userAgent: `imagebind-llm/${version}` };
}

const enc = (p: string) => p.split('/').map(encodeURIComponent).join('/');

export function resolveUrl(hub: Hub, f: HubFile): string {
  return `${hub.endpoint}/${f.repo}/resolve/${encodeURIComponent(f.revision)}/${enc(f.path)}`;
}

export function headers(hub: Hub, extra: Record<string, string> = {}): Record<string, string> {
  return { 'user-agent': hub.userAgent, ...(hub.token ? { authorization: `Bearer ${hub.token}` } : {}), ...extra };
}

export const describeFile = (f: HubFile) => `${f.repo}/${f.path}${f.revision === 'main' ? '' : `@${f.revision.slice(0, 12)}`}`;

/** The error for an HTTP status that retrying does not cure (401, 403, 404, other 4xx). */
export function statusError(hub: Hub, status: number, f: HubFile, url: string): ImageBindError {
  const what = describeFile(f);
  if (status === 401) {
    return new ImageBindError('ERR_PULL_UNAUTHORIZED', hub.token
      ? `${what}: the hub refused the token in HF_TOKEN (401 at ${url}): check that it is valid and can read ${f.repo}`
      : `${what}: the hub wants a login (401 at ${url}): the repository is private or gated, or its name is wrong; set HF_TOKEN to a token from ${hub.endpoint}/settings/tokens`);
  }
  if (status === 403) {
    return new ImageBindError('ERR_PULL_FORBIDDEN', `${what}: access denied (403 at ${url}): the repository is gated; accept its terms at ${hub.endpoint}/${f.repo} with the account whose token is in HF_TOKEN`);
  }
  if (status === 404) return new ImageBindError('ERR_PULL_NOT_FOUND', `${what}: not found at ${hub.endpoint} (404 at ${url}): the repository, revision or file does not exist there`);
  return new ImageBindError('ERR_PULL_HTTP', `${what}: the hub answered ${status} at ${url}`);
}

/** Statuses worth another try: rate limits and server errors. */
export const retryable = (status: number) => status === 408 || status === 429 || status >= 500;

/** A fetch failure (no answer at all) as an error naming the host and the cause. */
export function networkError(hub: Hub, e: unknown, f: HubFile): ImageBindError {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  const detail = cause?.code ?? cause?.message ?? (e as Error).message;
  return new ImageBindError('ERR_PULL_NETWORK', `${describeFile(f)}: cannot reach ${hub.endpoint} (${detail}): check the connection, or set HF_ENDPOINT to a mirror`, { cause: e });
}

const HEX64 = /^[0-9a-f]{64}$/;
const HEX40 = /^[0-9a-f]{40}$/;

/** Size and hashes of files of one repository at one revision. */
export async function pathsInfo(hub: Hub, repo: string, revision: string, paths: string[], signal?: AbortSignal): Promise<Map<string, RemoteFile>> {
  const url = `${hub.endpoint}/api/models/${repo}/paths-info/${encodeURIComponent(revision)}`;
  const first = { repo, revision, path: paths[0]! };
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST', signal, headers: headers(hub, { 'content-type': 'application/json', accept: 'application/json' }),
      body: JSON.stringify({ paths, expand: true }),
    });
  } catch (e) {
    if (signal?.aborted) throw e;
    throw networkError(hub, e, first);
  }
  if (!res.ok) {
    await res.body?.cancel().catch(() => undefined);
    // A 404 here means the repository or revision is unknown: name the repository, not one file.
    throw statusError(hub, res.status, { repo, revision, path: paths.join(', ') }, url);
  }
  let body: unknown;
  try {
    body = await res.json();
  } catch (e) {
    throw new ImageBindError('ERR_PULL_HUB_INVALID', `${url}: the answer is not JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(body)) throw new ImageBindError('ERR_PULL_HUB_INVALID', `${url}: expected a JSON array of files`);
  const out = new Map<string, RemoteFile>();
  for (const x of body as Array<Record<string, unknown>>) {
    if (x === null || typeof x !== 'object' || typeof x.path !== 'string' || !paths.includes(x.path)) continue;
    const lfs = x.lfs as { oid?: unknown; size?: unknown } | undefined;
    const size = lfs?.size ?? x.size;
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw new ImageBindError('ERR_PULL_HUB_INVALID', `${url}: '${x.path}' has size ${JSON.stringify(size)}`);
    const f: RemoteFile = { repo, revision, path: x.path, size };
    if (lfs) {
      if (typeof lfs.oid !== 'string' || !HEX64.test(lfs.oid)) throw new ImageBindError('ERR_PULL_HUB_INVALID', `${url}: '${x.path}' has lfs.oid ${JSON.stringify(lfs.oid)}, expected a sha256`);
      f.sha256 = lfs.oid;
    } else if (typeof x.oid === 'string' && HEX40.test(x.oid)) {
      f.gitSha1 = x.oid;
    } else {
      throw new ImageBindError('ERR_PULL_HUB_INVALID', `${url}: '${x.path}' has neither an LFS sha256 nor a git oid to check it with`);
    }
    out.set(x.path, f);
  }
  for (const p of paths) {
    if (!out.has(p)) throw new ImageBindError('ERR_PULL_NOT_FOUND', `${describeFile({ repo, revision, path: p })}: not in the repository at ${hub.endpoint} (paths-info lists no such file)`);
  }
  return out;
}
