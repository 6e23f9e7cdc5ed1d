// GGUF files: inspect any .gguf (keys, tensor names/types/shapes) and write one through ggml's own
// gguf API (what the converters and tests use).
import { addon } from './binding';
import { ImageBindError } from './errors';
import type { GgufInfo, GgufWriteSpec } from './native';

export type { GgufInfo, GgufTensorInfo, GgufWriteSpec, GgufMetaEntry, GgufTensorSpec, GgufValue } from './native';

function checkPath(path: unknown, fn: string): asserts path is string {
  if (typeof path !== 'string' || path.length === 0) {
    throw new ImageBindError('ERR_INVALID_ARG_TYPE', `${fn}: expected a file path string, received ${path === '' ? 'an empty string' : typeof path}`);
  }
}

/** Reads a GGUF's header, metadata and tensor table (not the tensor data), off the JS thread. */
export async function inspectGguf(path: string): Promise<GgufInfo> {
  checkPath(path, 'inspectGguf');
  return addon().ggufInspect(path);
}

/** Writes a GGUF file (metadata + tensors) off the JS thread. */
export async function writeGguf(path: string, spec: GgufWriteSpec): Promise<void> {
  checkPath(path, 'writeGguf');
  return addon().ggufWrite(path, spec);
}
