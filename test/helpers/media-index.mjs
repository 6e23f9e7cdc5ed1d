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

export { syntheticBmp as bmp } from '../../scripts/lib/synthetic-bmp.mjs';

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
