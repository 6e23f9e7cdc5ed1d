// Distinct synthetic images for tests and benchmarks: an uncompressed 24-bit BMP of pseudo-random
// pixels, one per seed (so no two files share content and nothing is reused from a twin).
export function syntheticBmp(w, h, seed) {
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
  let s = (seed * 2654435761) >>> 0;
  for (let i = 54; i < b.length; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    b[i] = s >>> 24;
  }
  return b;
}
