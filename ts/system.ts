// What this installation is and can run on.
import { addon, addonPath, addonSource, type AddonSource } from './binding';
import type { BackendInfo, BackendModules, DeviceInfo, NativeVersions } from './native';

export type { BackendInfo, BackendModules, DeviceInfo, NativeVersions } from './native';

export function versions(): NativeVersions {
  return addon().versions();
}

/** ggml backends loaded (CPU always; Vulkan/CUDA/Metal when their module and runtime are there) and their devices. */
export function backends(): BackendInfo[] {
  return addon().backends();
}

/** Every device of every backend: the names `device` options take ("CPU", "Vulkan0", "CUDA0", "MTL0"). */
export function devices(): DeviceInfo[] {
  return backends().flatMap((b) => b.devices);
}

/** The backend modules loaded and the CPU variant chosen for this machine. */
export function backendModules(): BackendModules {
  return addon().backendModules();
}

/** llama.cpp's one-line system summary (SIMD features, backends). */
export function systemInfo(): string {
  return addon().systemInfo();
}

/** Print ggml/llama.cpp's own log to stderr (off by default; IMAGEBIND_LLM_VERBOSE=1 also turns it on). */
export function setVerbose(verbose: boolean): void {
  addon().setVerbose(verbose);
}

export interface InstallationInfo {
  addonPath: string | null;
  /** Where the addon came from: IMAGEBIND_LLM_ADDON, a source build, or a platform package. */
  addon: AddonSource;
  modules: BackendModules;
  versions: NativeVersions;
  backends: BackendInfo[];
  systemInfo: string;
}

export function installationInfo(): InstallationInfo {
  return { versions: versions(), backends: backends(), modules: backendModules(), systemInfo: systemInfo(), addonPath: addonPath(), addon: addonSource() };
}
