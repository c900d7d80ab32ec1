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

export class BlockCache {
  readonly #frames: number;
  readonly #slabs: Buffer[] = [];
  // Per-frame bookkeeping, grown with the slabs (doubling, up to #frames), so a large capacity
  // costs nothing until reads fill it: 2^40 bytes of cache would otherwise be gigabytes of tables.
  #frameSegment: Float64Array<ArrayBuffer>;
  #frameBlock: Float64Array<ArrayBuffer>;
  #frameValid: Uint32Array<ArrayBuffer>;
  #frameReferenced: Uint8Array<ArrayBuffer>;
  readonly #index = new Map<number, Map<number, number>>();
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
    if (this.#frames < 2) return undefined;
    const block = Math.floor(position / BLOCK_BYTES);
    const inBlock = position - block * BLOCK_BYTES;
    if (inBlock + length > BLOCK_BYTES) return undefined;
    const frame = this.#frame(segmentId, file, block, inBlock + length, end);
    if (this.#frameValid[frame] < inBlock + length) return undefined;
    const start = (frame % FRAMES_PER_SLAB) * BLOCK_BYTES + inBlock;
    return this.#slabs[Math.floor(frame / FRAMES_PER_SLAB)].subarray(start, start + length);
  }

  /** Forgets every cached byte of the segment at or past `offset` (0: the whole segment). */
  drop(segmentId: number, offset = 0): void {
    const blocks = this.#index.get(segmentId);
    if (blocks === undefined) return;
    const first = Math.floor(offset / BLOCK_BYTES);
    for (const [block, frame] of blocks) {
      if (block < first) continue;
      blocks.delete(block);
      this.#frameSegment[frame] = -1;
      this.#frameValid[frame] = 0;
    }
    if (blocks.size === 0) this.#index.delete(segmentId);
  }

  /** The frame holding the block with at least `need` valid bytes (unless the file or `end` is shorter). */
  #frame(segmentId: number, file: MediumFile, block: number, need: number, end: number): number {
    let blocks = this.#index.get(segmentId);
    const cached = blocks?.get(block);
    if (cached !== undefined) {
      this.#frameReferenced[cached] = 1;
      if (this.#frameValid[cached] >= need) return cached;
      this.#fill(cached, file, block, end);
      return cached;
    }
    const frame = this.#victim();
    if (blocks === undefined) this.#index.set(segmentId, (blocks = new Map()));
    blocks.set(block, frame);
    this.#frameSegment[frame] = segmentId;
    this.#frameBlock[frame] = block;
    this.#frameReferenced[frame] = 1;
    this.#fill(frame, file, block, end);
    return frame;
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
      this.#index.get(this.#frameSegment[frame])?.delete(this.#frameBlock[frame]);
      if (this.#index.get(this.#frameSegment[frame])?.size === 0) this.#index.delete(this.#frameSegment[frame]);
      this.#frameSegment[frame] = -1;
      return frame;
    }
  }
}
