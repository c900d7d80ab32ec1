/**
 * A small seeded pseudo-random generator, so every fault and crash state the test media choose
 * can be replayed from the seed a failing run prints. Not for anything that needs real randomness.
 */

export interface Random {
  /** A float in [0, 1). */
  (): number;
  /** The seed this generator started from. */
  readonly seed: number;
  /** An integer in [0, n). */
  int(n: number): number;
  /** An integer in [min, max], both included. */
  between(min: number, max: number): number;
  /** True with probability `p`. */
  chance(p: number): boolean;
  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T;
  /** `n` bytes. */
  bytes(n: number): Buffer;
  /** A new generator seeded from this one, so a sub-task's draws do not shift the parent's. */
  fork(): Random;
}

/**
 * mulberry32: 32 bits of state, a full period of 2^32, and good enough statistics for choosing
 * crash points. The seed is taken modulo 2^32.
 */
export function seededRandom(seed: number): Random {
  if (!Number.isFinite(seed)) throw new TypeError(`a seed must be a finite number, received ${seed}`);
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const random = next as Random;
  Object.defineProperty(random, 'seed', { value: seed >>> 0, enumerable: true });
  random.int = (n) => Math.floor(next() * n);
  random.between = (min, max) => min + Math.floor(next() * (max - min + 1));
  random.chance = (p) => next() < p;
  random.pick = (items) => {
    if (items.length === 0) throw new RangeError('pick() from an empty array');
    return items[Math.floor(next() * items.length)];
  };
  random.bytes = (n) => {
    const buf = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) buf[i] = Math.floor(next() * 256);
    return buf;
  };
  random.fork = () => seededRandom(Math.floor(next() * 4294967296));
  return random;
}

/** A seed for a run that was not given one: from the clock and the process id. */
export function freshSeed(): number {
  return ((Date.now() * 2654435761) ^ (process.pid << 16) ^ Math.floor(Math.random() * 4294967296)) >>> 0;
}
