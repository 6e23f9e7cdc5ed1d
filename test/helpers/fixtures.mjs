// Reading the fixtures: manifest cases, .npy arrays, and comparison with the stated tolerances.
import fs from 'node:fs';
import path from 'node:path';
import { fixtures } from './paths.mjs';

export const tinyA = path.join(fixtures, 'tiny-a');
export const assets = path.join(fixtures, 'assets');
export const manifest = JSON.parse(fs.readFileSync(path.join(tinyA, 'manifest.json'), 'utf8'));
export const tolerances = manifest.tolerances;

export function caseByName(name) {
  const c = manifest.imagebind_cases.find((x) => x.name === name);
  if (!c) throw new Error(`no fixture case ${name}`);
  return c;
}

/** Resolves a manifest path (relative to tiny-a, or @shared/ relative to fixtures/). */
export function fixturePath(p) {
  return p.startsWith('@shared/') ? path.join(fixtures, p.slice(8)) : path.join(tinyA, p);
}

/** Minimal .npy reader (little endian, C order): { shape, data } with float32 / BigInt64 / Int32 arrays. */
export function readNpy(file) {
  const b = fs.readFileSync(file);
  const major = b[6];
  const hlen = major === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const hstart = major === 1 ? 10 : 12;
  const header = b.subarray(hstart, hstart + hlen).toString('latin1');
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const raw = b.subarray(hstart + hlen);
  const buf = raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength);
  const ctor = { '<f4': Float32Array, '<i8': BigInt64Array, '<i4': Int32Array, '<f8': Float64Array }[descr];
  if (!ctor) throw new Error(`${file}: unsupported dtype ${descr}`);
  return { shape, data: new ctor(buf) };
}

export function compare(got, exp) {
  let maxExp = 0, maxDiff = 0, dot = 0, ng = 0, ne = 0;
  for (let i = 0; i < exp.length; i++) {
    const g = Number(got[i]), e = Number(exp[i]);
    maxExp = Math.max(maxExp, Math.abs(e));
    maxDiff = Math.max(maxDiff, Math.abs(g - e));
    dot += g * e; ng += g * g; ne += e * e;
  }
  return { cosine: dot / Math.sqrt(ng * ne), maxDiff, relDiff: maxDiff / maxExp, n: exp.length, sameLength: got.length === exp.length };
}

/**
 * Asserts the fixture tolerance `name` ('f32' | 'decoder' | {cosine, rel?}: rel bounds the max
 * difference relative to the max |expected|) and returns the figures.
 */
export function assertClose(t, got, exp, tol, what) {
  const c = compare(got, exp);
  t.true(c.sameLength, `${what}: length ${got.length} vs ${exp.length}`);
  if (typeof tol === 'object' && tol.rel !== undefined) t.true(c.relDiff <= tol.rel, `${what}: max diff ${c.relDiff} of max > ${tol.rel}`);
  if (tol === 'f32') {
    t.true(c.relDiff <= tolerances.f32.max_abs_diff_rel_to_max_abs, `${what}: max diff ${c.relDiff} of max`);
    t.true(c.cosine >= tolerances.f32.cosine_min, `${what}: cosine ${c.cosine}`);
  } else {
    const min = tol === 'decoder' ? tolerances.decoder.cosine_min : tol.cosine;
    t.true(c.cosine >= min, `${what}: cosine ${c.cosine} < ${min}`);
  }
  return c;
}

/** An image input [1, C, H, W] as the vision model's 2-frame clip (the frame repeated, as upstream). */
export function imageToClip(data, shape) {
  const [, C, H, W] = shape;
  const out = new Float32Array(C * 2 * H * W);
  for (let ch = 0; ch < C; ch++) for (let f = 0; f < 2; f++) out.set(data.subarray(ch * H * W, (ch + 1) * H * W), (ch * 2 + f) * H * W);
  return out;
}

/** The fixtures' encoded source files: [input kind, file in assets/, the imagebind case it must match]. */
export const MEDIA_SOURCES = [
  ['image', 'dog_image.jpg', 'vision_dog_image'],
  ['image', 'car_image.jpg', 'vision_car_image'],
  ['image', 'bird_image.jpg', 'vision_bird_image'],
  ['audio', 'dog_audio.wav', 'audio_dog_audio'],
  ['audio', 'car_audio.wav', 'audio_car_audio'],
  ['audio', 'bird_audio.wav', 'audio_bird_audio'],
  ['video', 'photos_5s.mp4', 'video_photos_5s'],
  ['video', 'short_1p2s.mp4', 'video_short_1p2s'],
  ['point', 'airplane.ply', 'point_airplane'],
  ['depth', 'depth_car.png', 'depth_car'],
  ['thermal', 'thermal_dog.png', 'thermal_dog'],
  ['imu', 'imu_walk.npy', 'imu_walk'],
];
