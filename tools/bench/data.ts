/**
 * The data every store is fed: 16-byte keys, ~100-byte object values, and seeded random orders.
 * Everything here is deterministic in (index, seed) so that every store, rep and process sees
 * exactly the same keys, values and orders.
 */
import { mix32 } from '../../lib/hash';

// The keys' and values' mixing is the library's own MurmurHash3 finaliser (a bijection on 32-bit
// integers); tools/bench-ordered.ts takes it from here too.
export { mix32 };

/** The object every store stores. Encoded by msgpack (~100 bytes) or by the store's own codec. */
export interface BenchValue {
  id: number;
  name: string;
  email: string;
  tags: string[];
  score: number;
  ts: number;
}

const TAGS = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel'];

/**
 * The key of record `index`: 16 lowercase hex characters (16 bytes in UTF-8). The first 8 are a
 * bijection of the index, so keys are unique for every index below 2^32, and they look random, so
 * that sorted stores (B-trees, LSM trees) see random inserts rather than appends.
 */
export function keyOf(index: number, seed: number): string {
  const high = mix32((index ^ seed) >>> 0);
  const low = mix32((index + 0x9e3779b9 + seed) >>> 0);
  return high.toString(16).padStart(8, '0') + low.toString(16).padStart(8, '0');
}

/**
 * The value of record `index` at write `revision` (0 for the first write, 1 for an overwrite).
 * About 100 bytes as msgpack: the revision changes `score` and `ts`, not the size.
 */
export function valueOf(index: number, revision: number): BenchValue {
  const h = mix32(index * 31 + revision);
  return {
    id: index,
    name: 'user-' + index.toString().padStart(8, '0'),
    email: 'u' + index.toString(36) + '@example.org',
    tags: [TAGS[h & 7], TAGS[(h >>> 3) & 7], TAGS[(h >>> 6) & 7]],
    score: (h % 100000) / 100,
    ts: 1_700_000_000_000 + index * 1000 + revision,
  };
}

/** Mulberry32: a small, fast, seeded PRNG returning floats in [0, 1). */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The indexes 0..count-1 in a seeded random order (Fisher-Yates). */
export function shuffledIndexes(count: number, seed: number): Uint32Array {
  const order = new Uint32Array(count);
  for (let i = 0; i < count; i++) order[i] = i;
  const random = prng(seed);
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const swap = order[i];
    order[i] = order[j];
    order[j] = swap;
  }
  return order;
}
