/**
 * lethe's one seeded generator and one seed hash: every reproducible draw (train/test splits,
 * replay mixing, bootstrap resampling, the miniature world, dropout seeds) goes through these, so
 * the same seed gives the same numbers on every platform. The bottom layer: imports nothing of
 * lethe's.
 *
 * References: mulberry32 (Tommy Ettinger, public domain), a 32-bit state generator with period
 * 2^32, good for shuffles and bootstrap, not for cryptography; FNV-1a 32-bit (Fowler, Noll, Vo;
 * IETF draft-eastlake-fnv, offset basis 0x811c9dc5, prime 0x01000193).
 */

/** FNV-1a 32-bit over bytes; a string is hashed as its UTF-8 bytes. */
export function fnv1a(data: string | Uint8Array): number {
  const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  let h = 0x811c9dc5;
  for (const c of bytes) h = Math.imul(h ^ c, 0x01000193) >>> 0;
  return h;
}

/** A 32-bit seed from its parts (FNV-1a over their JSON): one stream per (seed, stage, step, …). */
export function seedOf(...parts: (string | number)[]): number {
  return fnv1a(JSON.stringify(parts));
}

/** mulberry32 seeded with the low 32 bits of `seed`: a stream of floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
