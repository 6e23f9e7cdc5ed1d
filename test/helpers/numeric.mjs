// Small numeric helpers shared by tests, independent of the code under test.

/** IEEE half bits → float (to check f16 bytes without ggml's own tables). */
export function halfToFloat(h) {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Deterministic test values of varied magnitude. */
export function values(n, seed) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sin(seed + 0.731 * i) * (1 + (i % 7));
  return a;
}
