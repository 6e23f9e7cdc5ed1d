// The prebuilt platform packages: their names, which ones fit this machine, and whether a GPU
// flavour's runtime is installed. The packages themselves are made by scripts/prebuild.mjs.
import fs from 'node:fs';
import path from 'node:path';

export const PACKAGE_SCOPE = '@imagebind-llm';

/** A GPU flavour: a package holding one more ggml backend module, used when its runtime is present. */
export type GpuFlavour = 'vulkan' | 'cuda';

/** Platforms a CPU package is published for (darwin-arm64's includes Metal). */
export const CPU_PLATFORMS = ['linux-x64', 'linux-arm64', 'darwin-arm64', 'darwin-x64', 'win32-x64'] as const;
/** GPU flavours published per platform. */
export const GPU_FLAVOURS: Record<string, GpuFlavour[]> = {
  'linux-x64': ['cuda', 'vulkan'],
  'win32-x64': ['cuda', 'vulkan'],
};

export function platformKey(platform: string = process.platform, arch: string = process.arch): string {
  return `${platform}-${arch}`;
}

export function packageName(key: string, flavour?: GpuFlavour): string {
  return `${PACKAGE_SCOPE}/${key}${flavour ? `-${flavour}` : ''}`;
}

// The shared libraries that stand for each runtime (the driver's, not a toolkit's).
const RUNTIME_LIBS: Record<GpuFlavour, { linux: string; win32: string }> = {
  vulkan: { linux: 'libvulkan.so.1', win32: 'vulkan-1.dll' },
  cuda: { linux: 'libcuda.so.1', win32: 'nvcuda.dll' },
};

const LINUX_LIB_DIRS = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib64', '/lib/x86_64-linux-gnu', '/usr/lib/wsl/lib'];

/**
 * Whether the flavour's runtime library is on this machine: the dynamic linker's cache, the usual
 * library folders and LD_LIBRARY_PATH on Linux; System32 on Windows. (Loading the module would tell
 * too, but a GPU module whose runtime is missing is simply skipped by the core, so this check only
 * decides which packages are worth adding.)
 */
export function gpuRuntimePresent(flavour: GpuFlavour, env: NodeJS.ProcessEnv = process.env, platform: string = process.platform): boolean {
  const libs = RUNTIME_LIBS[flavour];
  if (platform === 'win32') {
    const sys = path.join(env.SystemRoot ?? env.windir ?? 'C:\\Windows', 'System32');
    return fs.existsSync(path.join(sys, libs.win32));
  }
  if (platform !== 'linux') return false;
  const dirs = [...(env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean), ...LINUX_LIB_DIRS];
  if (dirs.some((d) => fs.existsSync(path.join(d, libs.linux)))) return true;
  try {
    return fs.readFileSync('/etc/ld.so.cache').includes(libs.linux);
  } catch {
    return false;
  }
}
