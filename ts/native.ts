// Types of what the native addon exports (native/addon/*.cpp). Keep in step with the C++ bindings.

export interface NativeVersions {
  package: string;
  llamaCppTag: string;
  llamaCppCommit: string;
  ggmlVersion: string;
  ggmlCommit: string;
  napi: number;
}

export interface DeviceInfo {
  name: string;
  description: string;
  /** "cpu", "gpu", "igpu" or "accel" */
  type: string;
  backend: string;
  memoryFree: number;
  memoryTotal: number;
}

export interface BackendInfo {
  name: string;
  /** Compile-time features of the backend, e.g. { AVX2: "1", FMA: "1", F16C: "1" } for the CPU. */
  features: Record<string, string>;
  devices: DeviceInfo[];
}

export interface BackendModules {
  /** The directory of libggml, where the backend modules are. */
  dir: string;
  /** The CPU module loaded, e.g. "libggml-cpu-zen4.so". */
  cpuModule: string;
  /** Its variant ("haswell", "zen4", …), or "native" for a source build's module tuned for its machine. */
  cpuVariant: string;
  /** Every backend module file loaded. */
  modules: string[];
}

export type GgufScalar = number | bigint | boolean | string;
export type GgufValue = GgufScalar | GgufScalar[];

export interface GgufTensorInfo {
  name: string;
  /** ggml type name: "f32", "f16", "q8_0", "q4_K", ... */
  type: string;
  /** ggml order: shape[0] is the fastest-varying (row) dimension. */
  shape: number[];
  /** Absolute byte offset of the tensor data in the file. */
  offset: number;
  size: number;
}

export interface GgufInfo {
  version: number;
  alignment: number;
  dataOffset: number;
  fileSize: number;
  metadata: Record<string, GgufValue>;
  /** GGUF type of each metadata value: "u32", "string", "array<f32>", ... */
  metadataTypes: Record<string, string>;
  tensors: GgufTensorInfo[];
}

export type GgufMetaType = 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'u64' | 'i64' | 'f32' | 'f64' | 'bool' | 'string';

export type GgufMetaEntry =
  | { key: string; type: Exclude<GgufMetaType, 'string' | 'bool'>; value: number | bigint }
  | { key: string; type: 'bool'; value: boolean }
  | { key: string; type: 'string'; value: string }
  | { key: string; type: 'array'; elemType: GgufMetaType; value: GgufScalar[] };

export interface GgufTensorSpec {
  name: string;
  /** Type to store as (default f32). Float32Array data is converted with ggml's own routines. */
  type?: string;
  shape: number[];
  /** Values (converted to `type`) or raw bytes already in `type`. */
  data: Float32Array | Uint8Array;
}

export interface GgufWriteSpec {
  metadata?: GgufMetaEntry[];
  tensors?: GgufTensorSpec[];
}

/** Streaming GGUF writer (native): declare metadata and tensors, begin(), then write each tensor in order. */
export interface NativeGgufStreamWriter {
  setMetadata(entries: GgufMetaEntry[]): void;
  addTensor(name: string, type: string, shape: number[]): void;
  begin(): void;
  /** Float32Array values are converted to the declared type off the JS thread; Uint8Array is raw bytes. */
  writeTensor(name: string, data: Float32Array | Uint8Array): Promise<void>;
  finish(): Promise<void>;
  /** Drops the writer; an unfinished file is deleted. */
  dispose(): void;
}

export interface NativeAddon {
  GgufStreamWriter: new (path: string) => NativeGgufStreamWriter;
  /** Loads an encoder GGUF; the result is typed in encoder.ts. */
  loadEncoder(path: string, options: { threads: number; device: string; mmap?: boolean }, abortToken?: unknown, onProgress?: (fraction: number) => void): Promise<unknown>;
  AbortToken: new () => { abort(): void; readonly aborted: boolean };
  /** Loads LLM + bind (+ cache); typed in llm.ts. */
  loadLlm(options: { model: string; bind: string; cache?: string; threads: number; gpuLayers: number; device: string },
          abortToken?: unknown, onProgress?: (fraction: number) => void): Promise<unknown>;
  versions(): NativeVersions;
  /** Stops every running job of this environment (process exit). */
  stopJobs?(): void;
  threads(): { default: number; max: number; logical: number };
  /** The decoder generate() streams through, driven with given token bytes (tests). */
  textStream(pieces: Uint8Array[], stops: string[]): { chunks: string[]; text: string };
  backends(): BackendInfo[];
  /** The backend modules loaded (first call loads them): from where, and the CPU variant chosen. */
  backendModules(): BackendModules;
  /** Adds a directory of GPU backend modules; false once the backends are loaded. */
  addBackendDir(dir: string): boolean;
  systemInfo(): string;
  setVerbose(verbose: boolean): void;
  ggufInspect(path: string): Promise<GgufInfo>;
  ggufWrite(path: string, spec: GgufWriteSpec): Promise<void>;
}
