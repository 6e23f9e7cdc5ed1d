// What the encoder benchmarks feed each runtime, shared by scripts/bench.mjs, ort-profile.mjs and
// type-cosines.mjs so that their figures are of the same inputs and settings.
import fs from 'node:fs';

// A trunk's input as a preprocessed tensor of the ONNX exports' shapes (batch 1; audio 3 clips), for
// `encoder.embed`.
export function trunkInput(trunk) {
  if (trunk === 'text') {
    const ids = new Float32Array(77);
    ids[0] = 49406;
    for (let i = 1; i < 12; i++) ids[i] = 1000 + 37 * i;
    ids[12] = 49407;
    return { kind: 'tensor', modality: 'text', tensor: { data: ids, shape: [77] } };
  }
  const n = trunk === 'vision' ? 3 * 2 * 224 * 224 : 3 * 128 * 204;
  const data = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.001) * 0.5);
  return { kind: 'tensor', modality: trunk, tensor: { data, shape: [n] } };
}

// An .npy input of the ONNX exports (little-endian f32 or i64): its shape, data and onnxruntime type name.
export function readNpy(file) {
  const b = fs.readFileSync(file);
  const hlen = b.readUInt16LE(8);
  const header = b.subarray(10, 10 + hlen).toString('latin1');
  const shape = header.match(/'shape': \(([^)]*)\)/)[1].split(',').filter((s) => s.trim()).map(Number);
  const int64 = /'descr': '<i8'/.test(header);
  const copy = new Uint8Array(b.subarray(10 + hlen)).buffer;
  return { shape, data: int64 ? new BigInt64Array(copy) : new Float32Array(copy), type: int64 ? 'int64' : 'float32' };
}

// onnxruntime-node's session options for `threads` intra-op threads (CPU provider, all graph optimizations).
export const ortSessionOptions = (threads) => ({
  intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential',
});
