// Shared by the media-index tests: a tiny-a encoder, folders of the fixtures' assets, distinct images.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { libIndex, tmpDir } from './paths.mjs';
import { assets, tinyA } from './fixtures.mjs';

const require = createRequire(import.meta.url);
export const ibl = require(libIndex);

/** tiny-a converted at `type` (f32, f16, …) into a temporary folder. */
export async function tinyEncoder(type = 'f32') {
  const file = path.join(tmpDir('ibl-search-enc-'), `tiny-a-${type}.gguf`);
  await ibl.convertImagebind(path.join(tinyA, 'imagebind.pth'), file, { type, config: path.join(tinyA, 'imagebind.config.json') });
  return file;
}

/** One asset of each kind the index recognises (with a video and two of the same kind). */
export const ASSET_SET = {
  'dog.jpg': 'dog_image.jpg',
  'car.png': 'car_image.png',
  'bird.wav': 'bird_audio_16k.wav',
  'car.ply': 'car.ply',
  'walk.npy': 'imu_walk.npy',
  'clips/short.mp4': 'short_1p2s.mp4',
  'maps/depth.png': 'depth_car.png',
  'notes.txt': null,
};

/** A temporary folder holding copies of ASSET_SET (notes.txt: not media). */
export function assetFolder(set = ASSET_SET) {
  const dir = tmpDir('ibl-media-');
  for (const [name, src] of Object.entries(set)) {
    const dst = path.join(dir, name);
    fs.mkdirSync(path.dirname(dst), { recursive: true });
    if (src) fs.copyFileSync(path.join(assets, src), dst);
    else fs.writeFileSync(dst, 'not media\n');
  }
  return dir;
}

/** An uncompressed 24-bit BMP, w × h, every pixel from `seed` (distinct seeds, distinct files). */
export function bmp(w, h, seed) {
  const row = Math.ceil((w * 3) / 4) * 4;
  const b = Buffer.alloc(54 + row * h);
  b.write('BM', 0, 'latin1');
  b.writeUInt32LE(b.length, 2);
  b.writeUInt32LE(54, 10);
  b.writeUInt32LE(40, 14);
  b.writeInt32LE(w, 18);
  b.writeInt32LE(h, 22);
  b.writeUInt16LE(1, 26);
  b.writeUInt16LE(24, 28);
  b.writeUInt32LE(row * h, 34);
  let s = seed * 2654435761 >>> 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w * 3; x++) {
      s = (s * 1664525 + 1013904223) >>> 0;
      b[54 + y * row + x] = s >>> 24;
    }
  }
  return b;
}

/** Cosine similarity in float64. */
export function cosine(a, b) {
  let d = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    d += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return d / Math.sqrt(na * nb);
}
