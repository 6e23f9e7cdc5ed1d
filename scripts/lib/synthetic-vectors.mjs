// Synthetic unit vectors for the search benchmark and tests, reproducible from a seed.
//   uniform:   points of the cube [-1, 1]^dim, normalised: no structure at all (random pairs have
//              cosine ~0, the nearest of a million ~0.15) — the worst case for any approximate search.
//   clustered: shaped like real embeddings: a shared mean direction (random pairs have cosine ~0.1),
//              topics of uneven size whose centres live in a 256-d subspace with a decaying spectrum,
//              items scattered round their topic along a few subspace directions, isotropic noise.
//              Queries alternate between held-out items ("more like this") and looser ones, further
//              from every item (as a text query is from the pictures it finds).

/** xorshift32 uniforms and Marsaglia polar normals. */
function rng(seed) {
  let s = (seed >>> 0) || 1;
  const uniform = () => {
    s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
  let spare = null;
  const normal = () => {
    if (spare !== null) {
      const v = spare;
      spare = null;
      return v;
    }
    let a, b, r;
    do {
      a = uniform() * 2 - 1;
      b = uniform() * 2 - 1;
      r = a * a + b * b;
    } while (r >= 1 || r === 0);
    const m = Math.sqrt((-2 * Math.log(r)) / r);
    spare = b * m;
    return a * m;
  };
  return { uniform, normal };
}

function normalise(v) {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  const k = 1 / Math.sqrt(s);
  for (let i = 0; i < v.length; i++) v[i] *= k;
  return v;
}

/** A generator of uniform-cube unit vectors. */
export function uniformVectors(dim, seed) {
  const r = rng(seed);
  return () => normalise(Float32Array.from({ length: dim }, () => r.uniform() * 2 - 1));
}

/**
 * A generator of clustered unit vectors; `model` (same seed ⇒ same topics) is shared by the items
 * and the queries, each drawing from its own stream.
 */
export function clusteredModel(dim, seed, { topics = 2000, rank = 256 } = {}) {
  const r = rng(seed);
  const basis = Array.from({ length: rank }, () => normalise(Float32Array.from({ length: dim }, () => r.normal())));
  const spectrum = Float32Array.from({ length: rank }, (_, i) => 1 / Math.sqrt(1 + i / 8));
  const mean = normalise(Float32Array.from({ length: dim }, () => r.normal()));
  const centres = Array.from({ length: topics }, () => {
    const v = new Float32Array(dim);
    for (let i = 0; i < rank; i++) {
      const c = r.normal() * spectrum[i];
      for (let j = 0; j < dim; j++) v[j] += c * basis[i][j];
    }
    return normalise(v);
  });
  return (streamSeed, { scatter = 0.35, noise = 0.012 } = {}) => {
    const s = rng(streamSeed);
    return () => {
      const centre = centres[Math.floor(Math.pow(s.uniform(), 1.5) * topics)];  // uneven topic sizes
      const v = new Float32Array(dim);
      for (let t = 0; t < 24; t++) {
        const i = Math.floor(s.uniform() * rank);
        const w = 2 * scatter * spectrum[i] * s.normal();
        for (let j = 0; j < dim; j++) v[j] += w * basis[i][j];
      }
      for (let j = 0; j < dim; j++) v[j] += 0.55 * mean[j] + centre[j] + noise * s.normal();
      return normalise(v);
    };
  };
}

/** { items, queries } generators for a named data set. */
export function syntheticSet(name, dim, seed = 12345) {
  if (name === 'uniform') return { items: uniformVectors(dim, seed), queries: uniformVectors(dim, seed + 1) };
  if (name !== 'clustered') throw new Error(`unknown data set ${name} (uniform or clustered)`);
  const model = clusteredModel(dim, seed);
  const near = model(seed + 1), far = model(seed + 2, { scatter: 0.8, noise: 0.03 });
  let i = 0;
  return { items: model(seed), queries: () => (i++ % 2 ? near() : far()) };
}
