// What this installation is and can run on.
import { addon, addonPath } from './binding';
import type { BackendInfo, NativeVersions } from './native';

export type { BackendInfo, DeviceInfo, NativeVersions } from './native';

export function versions(): NativeVersions {
  return addon().versions();
}

/** ggml backends compiled in (CPU always; CUDA/Metal when built with them) and their devices. */
export function backends(): BackendInfo[] {
  return addon().backends();
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
  versions: NativeVersions;
  backends: BackendInfo[];
  systemInfo: string;
}

export function installationInfo(): InstallationInfo {
  return { versions: versions(), backends: backends(), systemInfo: systemInfo(), addonPath: addonPath() };
}
