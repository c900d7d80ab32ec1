/**
 * The 32-bit finalizer of MurmurHash3: a bijection on 32-bit integers with good avalanche. The
 * keydir's hash ends with it (FNV-1a leaves the low bits, which pick the slot, poorly mixed), and
 * the ordered index's record digest mixes record indices with it. No I/O, no state.
 */
export function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}
