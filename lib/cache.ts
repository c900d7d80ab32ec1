/**
 * The block cache: recently read 4 KiB blocks of segment files, so a read of a small record is
 * usually a copy from memory instead of a system call.
 *
 * Frames live in 1 MiB slabs allocated as the cache fills (no per-block allocation, nothing for
 * the GC to trace but the index maps, no memory taken by a small store's cache) and are evicted
 * by the CLOCK algorithm. A cached block remembers how many of its
 * bytes were in the file when it was read; a read that needs more (the tail block of the active
 * segment, which keeps growing) reads the block again. Segments only grow, except when a failed
 * write is truncated away or a compaction removes a segment: Reader.forget() calls drop() then.
 */
import type { MediumFile } from './medium/types';

export const BLOCK_BYTES = 4096;
const FRAMES_PER_SLAB = 256;
const EMPTY = Buffer.alloc(0);
const SLOT_WORDS = 4;

/** Slots for a table that holds `frames` blocks at most half full: a power of two. */
function tableSlotsFor(frames: number): number {
  let slots = 16;
  while (slots < frames * 2) slots *= 2;
  return slots;
}

/** The home slot of a block (before masking): a 32-bit mix of segment id and block number. */
function slotOf(segmentId: number, block: number): number {
  let h = Math.imul(block | 0, 0x9e3779b1) ^ Math.imul((segmentId | 0) ^ ((segmentId / 0x100000000) | 0), 0x85ebca6b);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  h ^= h >>> 12;
  return h >>> 0;
}

export class BlockCache {
  readonly #frames: number;
  readonly #slabs: Buffer[] = [];
  // Per-frame bookkeeping, grown with the slabs (doubling, up to #frames), so a large capacity
  // costs nothing until reads fill it: 2^40 bytes of cache would otherwise be gigabytes of tables.
  #frameSegment: Float64Array<ArrayBuffer>;
  #frameBlock: Float64Array<ArrayBuffer>;
  #frameValid: Uint32Array<ArrayBuffer>;
  #frameReferenced: Uint8Array<ArrayBuffer>;
  /**
   * Which frame holds which block: an open-addressing table (linear probing) of SLOT_WORDS
   * numbers a slot, [segment id + 1 (0: empty), block, frame], kept at most half full and grown
   * with the frames. One lookup touches one slot, where a Map of Maps took several cache misses.
   */
  #table: Float64Array<ArrayBuffer>;
  #mask: number;
  /** Blocks in #table. */
  #blocks = 0;
  #hand = 0;
  /** Frames handed out so far; below #frames, a new frame is taken before any is evicted. */
  #allocated = 0;

  constructor(capacityBytes: number) {
    this.#frames = Math.floor(capacityBytes / BLOCK_BYTES);
    const initial = Math.min(this.#frames, FRAMES_PER_SLAB);
    this.#frameSegment = new Float64Array(initial).fill(-1);
    this.#frameBlock = new Float64Array(initial);
    this.#frameValid = new Uint32Array(initial);
    this.#frameReferenced = new Uint8Array(initial);
    const slots = tableSlotsFor(initial);
    this.#table = new Float64Array(slots * SLOT_WORDS);
    this.#mask = slots - 1;
  }

  /**
   * Reads `length` bytes at `position` of segment `segmentId` into `out`; returns how many
   * (fewer only at the end of the file, or at `end`). Records larger than a block bypass the cache.
   *
   * `end` is where the segment's records end (its writer's flushed tail): no byte at or past it is
   * read into the cache. A file may hold bytes there that are not records yet (zero padding, or
   * what a repair left) and that an append will overwrite; a block cached with them would serve
   * the old bytes after the append.
   */
  read(segmentId: number, file: MediumFile, out: Buffer, length: number, position: number, end: number): number {
    if (this.#frames < 2 || length > BLOCK_BYTES) return file.readSync(out, 0, Math.min(length, Math.max(0, end - position)), position);
    let done = 0;
    while (done < length) {
      const at = position + done;
      const block = Math.floor(at / BLOCK_BYTES);
      const inBlock = at - block * BLOCK_BYTES;
      const want = Math.min(length - done, BLOCK_BYTES - inBlock);
      const frame = this.#frame(segmentId, file, block, inBlock + want, end);
      const available = Math.min(want, this.#frameValid[frame] - inBlock);
      if (available <= 0) break;
      const start = (frame % FRAMES_PER_SLAB) * BLOCK_BYTES + inBlock;
      this.#slabs[Math.floor(frame / FRAMES_PER_SLAB)].copy(out, done, start, start + available);
      done += available;
      if (available < want) break;
    }
    return done;
  }

  /**
   * The `length` bytes at `position` as a view into the cache, when they lie in one block (the
   * common case for small records), or undefined. The view is valid only until the next cache
   * call: the caller must finish with it first.
   */
  view(segmentId: number, file: MediumFile, length: number, position: number, end: number): Buffer | undefined {
    const start = this.locate(segmentId, file, length, position, end);
    return start < 0 ? undefined : this.located.subarray(start, start + length);
  }

  /**
   * view() without making a view: where the `length` bytes at `position` start in `located` (a
   * slab of the cache), or -1 when they do not lie in one block. `located` and the bytes there
   * are valid only until the next cache call. For the reader's hot path, which checks and
   * decodes a record where it lies and so allocates nothing to find it.
   */
  locate(segmentId: number, file: MediumFile, length: number, position: number, end: number): number {
    if (this.#frames < 2) return -1;
    const block = Math.floor(position / BLOCK_BYTES);
    const inBlock = position - block * BLOCK_BYTES;
    if (inBlock + length > BLOCK_BYTES) return -1;
    const frame = this.#frame(segmentId, file, block, inBlock + length, end);
    if (this.#frameValid[frame] < inBlock + length) return -1;
    this.located = this.#slabs[Math.floor(frame / FRAMES_PER_SLAB)];
    return (frame % FRAMES_PER_SLAB) * BLOCK_BYTES + inBlock;
  }

  /** The slab the last locate() that found its bytes points into. */
  located: Buffer = EMPTY;

  /** Forgets every cached byte of the segment at or past `offset` (0: the whole segment). */
  drop(segmentId: number, offset = 0): void {
    if (this.#blocks === 0) return;
    const first = Math.floor(offset / BLOCK_BYTES);
    // Rare (a repair truncated a file, or a segment goes away): a scan of the frames is fine.
    for (let frame = 0; frame < this.#allocated; frame++) {
      if (this.#frameSegment[frame] !== segmentId || this.#frameBlock[frame] < first) continue;
      this.#remove(segmentId, this.#frameBlock[frame]);
      this.#frameSegment[frame] = -1;
      this.#frameValid[frame] = 0;
    }
  }

  /** The frame holding the block with at least `need` valid bytes (unless the file or `end` is shorter). */
  #frame(segmentId: number, file: MediumFile, block: number, need: number, end: number): number {
    const table = this.#table;
    const mask = this.#mask;
    const tag = segmentId + 1;
    for (let slot = slotOf(segmentId, block) & mask; ; slot = (slot + 1) & mask) {
      const at = slot * SLOT_WORDS;
      const held = table[at];
      if (held === 0) break;
      if (held !== tag || table[at + 1] !== block) continue;
      const cached = table[at + 2];
      this.#frameReferenced[cached] = 1;
      if (this.#frameValid[cached] < need) this.#fill(cached, file, block, end);
      return cached;
    }
    const frame = this.#victim();
    this.#insert(segmentId, block, frame);
    this.#frameSegment[frame] = segmentId;
    this.#frameBlock[frame] = block;
    this.#frameReferenced[frame] = 1;
    this.#fill(frame, file, block, end);
    return frame;
  }

  /** Adds the block to #table (it is not there), growing the table to stay at most half full. */
  #insert(segmentId: number, block: number, frame: number): void {
    if ((this.#blocks + 1) * 2 > this.#mask + 1) this.#rehash((this.#mask + 1) * 2);
    const table = this.#table;
    const mask = this.#mask;
    let slot = slotOf(segmentId, block) & mask;
    while (table[slot * SLOT_WORDS] !== 0) slot = (slot + 1) & mask;
    const at = slot * SLOT_WORDS;
    table[at] = segmentId + 1;
    table[at + 1] = block;
    table[at + 2] = frame;
    this.#blocks++;
  }

  /** Takes the block out of #table if it is there (backward-shift deletion: no tombstones). */
  #remove(segmentId: number, block: number): void {
    const table = this.#table;
    const mask = this.#mask;
    const tag = segmentId + 1;
    let slot = slotOf(segmentId, block) & mask;
    for (;; slot = (slot + 1) & mask) {
      const held = table[slot * SLOT_WORDS];
      if (held === 0) return;
      if (held === tag && table[slot * SLOT_WORDS + 1] === block) break;
    }
    this.#blocks--;
    // Move later entries of the probe run back into the hole when their home allows it.
    let hole = slot;
    for (let next = (hole + 1) & mask; ; next = (next + 1) & mask) {
      const at = next * SLOT_WORDS;
      const held = table[at];
      if (held === 0) break;
      const home = slotOf(held - 1, table[at + 1]) & mask;
      // The entry at `next` may fill the hole if its home is not cyclically in (hole, next].
      if (((next - home) & mask) >= ((next - hole) & mask)) {
        table.copyWithin(hole * SLOT_WORDS, at, at + SLOT_WORDS);
        hole = next;
      }
    }
    table.fill(0, hole * SLOT_WORDS, hole * SLOT_WORDS + SLOT_WORDS);
  }

  /** Rebuilds #table with `slots` slots from the frames' own record of what they hold. */
  #rehash(slots: number): void {
    this.#table = new Float64Array(slots * SLOT_WORDS);
    this.#mask = slots - 1;
    this.#blocks = 0;
    for (let frame = 0; frame < this.#allocated; frame++) {
      if (this.#frameSegment[frame] !== -1) this.#insert(this.#frameSegment[frame], this.#frameBlock[frame], frame);
    }
  }

  /** Reads the block into the frame, up to the end of the file or `end`, whichever comes first. */
  #fill(frame: number, file: MediumFile, block: number, end: number): void {
    this.#frameValid[frame] = 0; // if the read throws, the frame holds nothing
    const slab = this.#slabs[Math.floor(frame / FRAMES_PER_SLAB)];
    const length = Math.max(0, Math.min(BLOCK_BYTES, end - block * BLOCK_BYTES));
    this.#frameValid[frame] = length === 0 ? 0 : file.readSync(slab, (frame % FRAMES_PER_SLAB) * BLOCK_BYTES, length, block * BLOCK_BYTES);
  }

  /** Doubles the per-frame tables (up to the capacity); new frames hold no block. */
  #growTables(): void {
    const length = Math.min(this.#frames, this.#frameSegment.length * 2);
    const grow = <T extends Float64Array<ArrayBuffer> | Uint32Array<ArrayBuffer> | Uint8Array<ArrayBuffer>>(from: T, make: (n: number) => T): T => {
      const to = make(length);
      to.set(from);
      return to;
    };
    const segments = grow(this.#frameSegment, (n) => new Float64Array(n));
    segments.fill(-1, this.#frameSegment.length);
    this.#frameSegment = segments;
    this.#frameBlock = grow(this.#frameBlock, (n) => new Float64Array(n));
    this.#frameValid = grow(this.#frameValid, (n) => new Uint32Array(n));
    this.#frameReferenced = grow(this.#frameReferenced, (n) => new Uint8Array(n));
  }

  /** A free frame, or the first unreferenced one the clock hand finds (clearing bits as it goes). */
  #victim(): number {
    if (this.#allocated < this.#frames) {
      const frame = this.#allocated++;
      if (frame >= this.#frameSegment.length) this.#growTables();
      if (frame % FRAMES_PER_SLAB === 0) {
        this.#slabs.push(Buffer.allocUnsafe(Math.min(FRAMES_PER_SLAB, this.#frames - frame) * BLOCK_BYTES));
      }
      return frame;
    }
    for (;;) {
      const frame = this.#hand;
      this.#hand = (this.#hand + 1) % this.#frames;
      if (this.#frameSegment[frame] === -1) return frame;
      if (this.#frameReferenced[frame] === 1) {
        this.#frameReferenced[frame] = 0;
        continue;
      }
      this.#remove(this.#frameSegment[frame], this.#frameBlock[frame]);
      this.#frameSegment[frame] = -1;
      return frame;
    }
  }
}
