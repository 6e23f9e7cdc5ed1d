// The one place the native addon is loaded from. It looks in the places a build or a prebuilt package
// puts it and, when it cannot load it, says which file is missing or for which platform it was built.
import fs from 'node:fs';
import path from 'node:path';
import { ImageBindError } from './errors';
import type { NativeAddon } from './native';

export const packageRoot = path.resolve(__dirname, '..');
const ADDON_FILE = 'imagebind_llm.node';

/** Where the addon may be, in the order tried. IMAGEBIND_LLM_ADDON overrides all of them. */
export function addonCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  if (env.IMAGEBIND_LLM_ADDON) return [path.resolve(env.IMAGEBIND_LLM_ADDON)];
  return [
    path.join(packageRoot, 'build', 'Release', ADDON_FILE),
    path.join(packageRoot, 'build', 'Debug', ADDON_FILE),
    path.join(packageRoot, 'prebuilds', `${process.platform}-${process.arch}`, ADDON_FILE),
  ];
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
    throw new ImageBindError(
      'ERR_ADDON_NOT_FOUND',
      `imagebind-llm: the native addon is missing. Looked for:\n  ${candidates.join('\n  ')}\n` +
        `Build it with \`npm run build:native\` in ${packageRoot} (needs CMake, a C++17 compiler and git), ` +
        `or reinstall the package. (npm 11 may skip a dependency's install script until it is approved: ` +
        `\`npm install-scripts approve imagebind-llm\`.)`,
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

let cached: { addon: NativeAddon; path: string } | null = null;

/** The loaded addon (loaded on first use, so importing the package never fails by itself). */
export function addon(): NativeAddon {
  if (!cached) {
    const candidates = addonCandidates();
    const a = loadAddonFrom(candidates);
    cached = { addon: a, path: candidates.find((p) => fs.existsSync(p))! };
    // process.exit() joins the native thread pool: running encodes and generations must stop first.
    process.once('exit', () => a.stopJobs?.());
  }
  return cached.addon;
}

/** Path of the addon file that was (or would be) loaded. */
export function addonPath(): string | null {
  if (cached) return cached.path;
  return addonCandidates().find((p) => fs.existsSync(p)) ?? null;
}
