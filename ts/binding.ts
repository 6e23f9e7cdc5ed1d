// The one place the native addon is loaded from, in this order: IMAGEBIND_LLM_ADDON, a source build
// in this package (build/Release), the prebuilt platform package npm installed for this machine
// (@imagebind-llm/<platform>-<arch>, plus any GPU flavour package whose runtime is present), then a clear
// error that says how to build from source. When it cannot load a file it says which file is missing,
// for which platform it was built, or which package version does not match.
import fs from 'node:fs';
import path from 'node:path';
import { ImageBindError } from './errors';
import type { NativeAddon } from './native';
import { GPU_FLAVOURS, type GpuFlavour, gpuRuntimePresent, packageName, platformKey } from './platform';

export const packageRoot = path.resolve(__dirname, '..');
const ADDON_FILE = 'imagebind_llm.node';
/** Where a platform package keeps the addon, its libraries and ggml's backend modules. */
export const PREBUILT_BIN_DIR = 'bin';

function ownVersion(): string {
  return (JSON.parse(fs.readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
}

export interface PrebuiltPackage {
  name: string;
  /** The package folder; the addon and libraries are in its bin/. */
  dir: string;
  version: string;
  flavour?: GpuFlavour;
}

/**
 * The platform package `name` if npm installed it (resolved from this package, as Node would), else
 * null. A package of another version than this one is ERR_ADDON_VERSION naming both versions.
 */
export function findPrebuilt(name: string, resolveFrom: string = packageRoot, version: string = ownVersion()): PrebuiltPackage | null {
  let pj: string;
  try {
    pj = require.resolve(`${name}/package.json`, { paths: [resolveFrom] });
  } catch {
    return null;
  }
  const found = (JSON.parse(fs.readFileSync(pj, 'utf8')) as { version: string }).version;
  if (found !== version) {
    throw new ImageBindError('ERR_ADDON_VERSION',
      `imagebind-llm ${version} found ${name} ${found} (${path.dirname(pj)}): the two must be the same version. ` +
      `Install ${name}@${version}, or reinstall imagebind-llm.`);
  }
  return { name, dir: path.dirname(pj), version: found };
}

/** Installed GPU flavour packages for this platform whose runtime (Vulkan loader, CUDA driver) is present. */
export function findGpuPrebuilts(key: string = platformKey(), resolveFrom: string = packageRoot,
  runtimePresent: (f: GpuFlavour) => boolean = (f) => gpuRuntimePresent(f)): PrebuiltPackage[] {
  const out: PrebuiltPackage[] = [];
  for (const flavour of GPU_FLAVOURS[key] ?? []) {
    const p = findPrebuilt(packageName(key, flavour), resolveFrom);
    if (p && runtimePresent(flavour)) out.push({ ...p, flavour });
  }
  return out;
}

/** Where the addon may be, in the order tried. IMAGEBIND_LLM_ADDON overrides all of them. */
export function addonCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  if (env.IMAGEBIND_LLM_ADDON) return [path.resolve(env.IMAGEBIND_LLM_ADDON)];
  const out = [
    path.join(packageRoot, 'build', 'Release', ADDON_FILE),
    path.join(packageRoot, 'build', 'Debug', ADDON_FILE),
  ];
  // A source build wins: the platform package is not even looked at (nor its version checked).
  if (out.some((p) => fs.existsSync(p))) return out;
  const prebuilt = findPrebuilt(packageName(platformKey()));
  if (prebuilt) out.push(path.join(prebuilt.dir, PREBUILT_BIN_DIR, ADDON_FILE));
  return out;
}

interface BinaryTarget { platform: string; arch?: string }

// ELF e_machine values and Mach-O cpu types for the architectures Node runs on.
const ELF_MACHINES: Record<number, string> = { 3: 'ia32', 40: 'arm', 62: 'x64', 183: 'arm64', 243: 'riscv64', 21: 'ppc64', 22: 's390x' };
const MACHO_CPUS: Record<number, string> = { 7: 'ia32', 0x01000007: 'x64', 12: 'arm', 0x0100000c: 'arm64' };
const PE_MACHINES: Record<number, string> = { 0x14c: 'ia32', 0x8664: 'x64', 0xaa64: 'arm64' };

/** Reads which platform and architecture a shared library was built for, from its header. */
export function binaryTarget(file: string): BinaryTarget | null {
  let buf: Buffer;
  try {
    const fd = fs.openSync(file, 'r');
    buf = Buffer.alloc(512);
    fs.readSync(fd, buf, 0, 512, 0);
    fs.closeSync(fd);
  } catch {
    return null;
  }
  if (buf.readUInt32BE(0) === 0x7f454c46) {
    const little = buf[5] === 1;
    const machine = little ? buf.readUInt16LE(18) : buf.readUInt16BE(18);
    return { platform: 'linux', arch: ELF_MACHINES[machine] ?? `elf-machine-${machine}` };
  }
  const magic = buf.readUInt32LE(0);
  if (magic === 0xfeedfacf || magic === 0xfeedface) return { platform: 'darwin', arch: MACHO_CPUS[buf.readUInt32LE(4)] };
  if (magic === 0xcafebabe || buf.readUInt32BE(0) === 0xcafebabe) return { platform: 'darwin' }; // universal binary
  if (buf[0] === 0x4d && buf[1] === 0x5a) {
    const pe = buf.readUInt32LE(0x3c);
    const machine = pe + 6 <= buf.length ? buf.readUInt16LE(pe + 4) : -1;
    return { platform: 'win32', arch: PE_MACHINES[machine] };
  }
  return { platform: 'unknown' };
}

/** Loads the addon from the first candidate that exists; errors name the files and the problem. */
export function loadAddonFrom(candidates: string[]): NativeAddon {
  const found = candidates.find((p) => fs.existsSync(p));
  if (!found) {
    const pkg = packageName(platformKey());
    throw new ImageBindError(
      'ERR_ADDON_NOT_FOUND',
      `imagebind-llm: the native addon is missing. Looked for:\n  ${candidates.join('\n  ')}\n` +
        `No prebuilt package ${pkg} is installed: npm installs it as an optional dependency where one is published ` +
        `(not with --omit=optional / --no-optional). To build from source instead (needs CMake >= 3.19, a C++17 compiler, git, ` +
        `and cmake-js, node-addon-api and tar in your project): \`npm rebuild imagebind-llm --build-from-source\`, ` +
        `or \`npm run build:native\` in ${packageRoot}.`,
    );
  }
  const target = binaryTarget(found);
  if (target && (target.platform !== process.platform || (target.arch && target.arch !== process.arch))) {
    throw new ImageBindError(
      'ERR_ADDON_PLATFORM',
      `imagebind-llm: ${found} was built for ${target.platform}${target.arch ? '-' + target.arch : ''}, ` +
        `but this is ${process.platform}-${process.arch}. Rebuild it here with \`npm run build:native\`.`,
    );
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(found) as NativeAddon;
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new ImageBindError('ERR_ADDON_LOAD', `imagebind-llm: cannot load ${found}: ${msg}`, { cause: e });
  }
}

export interface AddonSource {
  path: string;
  /** "env" (IMAGEBIND_LLM_ADDON), "source" (a build in this package) or "prebuilt" (a platform package). */
  kind: 'env' | 'source' | 'prebuilt';
  /** The platform package, for a prebuilt addon. */
  package: PrebuiltPackage | null;
  /** GPU flavour packages whose backend modules were added (prebuilt only). */
  gpuPackages: PrebuiltPackage[];
}

let cached: { addon: NativeAddon; source: AddonSource } | null = null;

function chooseSource(): AddonSource {
  const candidates = addonCandidates();
  const found = candidates.find((p) => fs.existsSync(p)) ?? candidates[0];
  if (process.env.IMAGEBIND_LLM_ADDON) return { path: found, kind: 'env', package: null, gpuPackages: [] };
  const prebuilt = findPrebuilt(packageName(platformKey()));
  if (prebuilt && found === path.join(prebuilt.dir, PREBUILT_BIN_DIR, ADDON_FILE)) {
    return { path: found, kind: 'prebuilt', package: prebuilt, gpuPackages: findGpuPrebuilts() };
  }
  return { path: found, kind: 'source', package: null, gpuPackages: [] };
}

/** The loaded addon (loaded on first use, so importing the package never fails by itself). */
export function addon(): NativeAddon {
  if (!cached) {
    const source = chooseSource();
    const a = loadAddonFrom(addonCandidates());
    // The GPU modules are loaded with the rest on first use of a backend, from here on.
    for (const g of source.gpuPackages) a.addBackendDir(path.join(g.dir, PREBUILT_BIN_DIR));
    cached = { addon: a, source };
    // process.exit() joins the native thread pool: running encodes and generations must stop first.
    process.once('exit', () => a.stopJobs?.());
  }
  return cached.addon;
}

/** Which addon was (or would be) loaded, and from where. */
export function addonSource(): AddonSource {
  if (cached) return cached.source;
  return chooseSource();
}

/** Path of the addon file that was (or would be) loaded. */
export function addonPath(): string | null {
  if (cached) return cached.source.path;
  return addonCandidates().find((p) => fs.existsSync(p)) ?? null;
}
