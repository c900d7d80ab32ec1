/**
 * The segment set: every segment of the store by id, which one takes writes (the active one),
 * and how many bytes the store's files take on disk. One owner for that state: the writer,
 * compaction and the reader change or read it only through these methods.
 *
 * Ids: segments the writer starts take multiples of SEGMENT_ID_STEP, in order; compaction
 * outputs take the ids between their newest input's and the next write segment's, so replaying
 * in id order puts them after every input and before every later write (compactor.ts).
 *
 * Disk bytes count every segment that has a file or is about to (the active segment becomes a
 * file with its first record), and what a running compaction has claimed for its outputs. No I/O
 * here: the writer creates and writes files, and tells this set what it did.
 */
import * as path from 'path';
import { FORMAT_VERSION } from './format';
import { SEGMENT_ID_STEP, Segment, isWriteSegmentId, nextWriteSegmentId, segmentName } from './segment';

/** A segment with no file and nothing queued for it: it takes no disk space yet. */
export function isUnborn(segment: Segment): boolean {
  return segment.file === undefined && segment.tail === segment.headerBytes;
}

/** Zero padding a segment's file holds past its tail (preallocated space not yet written over). */
function paddingOf(segment: Segment): number {
  return isUnborn(segment) ? 0 : Math.max(0, segment.allocated - segment.tail);
}

/** What a reader needs of a segment set: the segment an entry names. */
export interface SegmentLookup {
  get(id: number): Segment | undefined;
}

export class SegmentSet implements SegmentLookup {
  readonly #dir: string;
  readonly #segments = new Map<number, Segment>();
  #active: Segment;
  #tailBytes = 0;
  #paddingBytes = 0;
  #hintBytes = 0;
  #claimedBytes = 0;
  #strayBytes = 0;
  #pins = 0;
  #unpinned: Array<() => void> = [];

  /**
   * The set of the segments recovery found (oldest first). The newest takes the writes, unless
   * it is a compaction output (appending to it would make its hint file stale, and the next open
   * scan it), a segment of an older format version (a segment's records all have the layout its
   * header names) or one this process holds read-only (a shared client's, after a takeover): then
   * writes start a segment of their own, as they do in an empty store.
   */
  constructor(dir: string, recovered: Segment[], strayBytes = 0) {
    this.#dir = dir;
    this.#strayBytes = strayBytes;
    for (const segment of recovered) this.#segments.set(segment.id, segment);
    const newest = recovered[recovered.length - 1];
    if (newest !== undefined && isWriteSegmentId(newest.id) && newest.layout.version === FORMAT_VERSION && newest.writable) {
      this.#active = newest;
    } else {
      this.#active = this.#start(newest === undefined ? SEGMENT_ID_STEP : nextWriteSegmentId(newest.id));
    }
    this.recount();
  }

  /** The segment with this id, or undefined (a compaction removed it, or it never was). */
  get(id: number): Segment | undefined {
    return this.#segments.get(id);
  }

  /** The segment that takes writes. */
  get active(): Segment {
    return this.#active;
  }

  /** Every segment, in no particular order. */
  all(): IterableIterator<Segment> {
    return this.#segments.values();
  }

  /** Segments with a file and an id below `limit`, oldest first: what a compaction reads. */
  withFilesBelow(limit: number): Segment[] {
    return [...this.#segments.values()].filter((s) => s.id < limit && s.file !== undefined).sort((a, b) => a.id - b.id);
  }

  /**
   * Starts the next write segment (with no file yet) and makes it the active one. The segment it
   * replaces is dropped if it holds nothing (no file, nothing queued).
   */
  rotate(): Segment {
    if (isUnborn(this.#active)) this.#segments.delete(this.#active.id);
    this.#active = this.#start(nextWriteSegmentId(this.#active.id));
    return this.#active;
  }

  /** Adds a segment made elsewhere (a compaction output), readable at once. */
  add(segment: Segment): void {
    this.#segments.set(segment.id, segment);
  }

  /** Forgets a segment (a compaction input); its file is the caller's to close. */
  remove(id: number): void {
    this.#segments.delete(id);
  }

  // ---------------------------------------------------------------- pins

  /**
   * Holds back the removal of segment files (compaction's last step, whenUnpinned) until the
   * returned function is called. A backup pins the set when it takes its cut and unpins it once
   * it holds descriptors of its own to the files of the cut, which takes milliseconds: reads,
   * writes and the rest of a compaction go on meanwhile.
   */
  pin(): () => void {
    this.#pins++;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      if (--this.#pins > 0) return;
      const waiters = this.#unpinned;
      this.#unpinned = [];
      for (const wake of waiters) wake();
    };
  }

  /** Resolves once no pin is held; a compaction awaits it before it removes its inputs. */
  whenUnpinned(): Promise<void> {
    if (this.#pins === 0) return Promise.resolve();
    return new Promise((resolve) => this.#unpinned.push(resolve));
  }

  // ---------------------------------------------------------------- disk bytes

  /*
   * What maxStoreBytes caps is every file the store keeps in its directory, so the count has
   * three parts, each with one way in and one way out:
   *   segment bytes  the segments of the set (their tails, queued bytes included), the zero
   *                  padding preallocated past their tails (it takes disk space as surely as
   *                  records do, so a cap meant to bound disk use counts it), and their hint
   *                  files; recount() computes them again from the set
   *   claimed        space a running compaction has claimed for files it is writing (claim,
   *                  release); never touched by recount(), so a write that fails and recounts
   *                  during a compaction leaves its claim alone
   *   stray          files in the directory that are no segment of the set: cut-bytes sidecars,
   *                  compacted inputs until they are removed, leftovers of a failed compaction
   *                  awaiting removal (addStray, removeStray)
   * The keydir snapshot exists only while the store is closed (close() writes it only if it fits,
   * open() removes it before any write), and the lock's files are not counted (docs/durability.md).
   */

  /** Bytes of every file the store keeps in its directory, with those about to exist and what compaction claimed. */
  get diskBytes(): number {
    return this.#tailBytes + this.#paddingBytes + this.#hintBytes + this.#claimedBytes + this.#strayBytes;
  }

  /** Bytes of the segment set's segment files up to their tails (not their padding nor hints), with those about to exist. */
  get segmentBytes(): number {
    return this.#tailBytes;
  }

  /** Bytes of zero padding preallocated past the segments' tails. */
  get paddingBytes(): number {
    return this.#paddingBytes;
  }

  /**
   * The disk bytes `length` more bytes at the tail of `segment` would add: its header too if they
   * bring its file into being, nothing for the part that lands in preallocated padding.
   */
  growthOf(segment: Segment, length: number): number {
    if (isUnborn(segment)) return segment.headerBytes + length;
    return Math.max(0, segment.tail + length - Math.max(segment.tail, segment.allocated));
  }

  /** Moves a segment's tail (bytes queued for its file) to `tail`, and counts the change. */
  setTail(segment: Segment, tail: number): void {
    this.#uncount(segment);
    segment.tail = tail;
    this.#count(segment);
  }

  /** Records that a segment's file now extends to `allocated` (padding added or cut), and counts the change. */
  setAllocated(segment: Segment, allocated: number): void {
    this.#uncount(segment);
    segment.allocated = allocated;
    this.#count(segment);
  }

  /** Claims `bytes` for compaction outputs if that stays within `maxBytes`; whether it did. */
  claim(bytes: number, maxBytes: number): boolean {
    if (this.diskBytes + bytes > maxBytes) return false;
    this.#claimedBytes += bytes;
    return true;
  }

  /** Gives back bytes claimed: unused, removed, or now counted as segments or strays. */
  release(bytes: number): void {
    this.#claimedBytes -= bytes;
  }

  /** Counts a file in the directory that is no segment of the set (a sidecar, an input awaiting removal). */
  addStray(bytes: number): void {
    this.#strayBytes += bytes;
  }

  /** Stops counting a stray file: it was removed. */
  removeStray(bytes: number): void {
    this.#strayBytes -= bytes;
  }

  /**
   * Forgets a compacted input at the end of a switch. Its files stay in the directory until
   * they are removed, so their bytes move to the strays; returns them (segment, hint).
   */
  retire(id: number): [segmentBytes: number, hintBytes: number] {
    const segment = this.#segments.get(id);
    if (segment === undefined) return [0, 0];
    this.#segments.delete(id);
    const bytes: [number, number] = isUnborn(segment) ? [0, 0] : [segment.tail, segment.hintBytes];
    this.#strayBytes += bytes[0] + bytes[1];
    this.recount();
    return bytes;
  }

  /** Counts the segment bytes again from the segments' tails and hints: after their set or their tails changed. */
  recount(): void {
    let tails = 0;
    let padding = 0;
    let hints = 0;
    for (const segment of this.#segments.values()) {
      if (isUnborn(segment)) continue;
      tails += segment.tail;
      padding += paddingOf(segment);
      hints += segment.hintBytes;
    }
    this.#tailBytes = tails;
    this.#paddingBytes = padding;
    this.#hintBytes = hints;
  }

  #uncount(segment: Segment): void {
    if (isUnborn(segment) || !this.#segments.has(segment.id)) return;
    this.#tailBytes -= segment.tail;
    this.#paddingBytes -= paddingOf(segment);
  }

  #count(segment: Segment): void {
    if (isUnborn(segment) || !this.#segments.has(segment.id)) return;
    this.#tailBytes += segment.tail;
    this.#paddingBytes += paddingOf(segment);
  }

  /** Segment files that exist or are about to (an empty active segment has no file yet). */
  fileCount(): number {
    let count = 0;
    for (const segment of this.#segments.values()) if (!isUnborn(segment)) count++;
    return count;
  }

  /** Bytes of the files that hold no live record: overwritten, deleted, expired, tombstones. */
  deadBytes(liveBytes: number): number {
    let headers = 0;
    for (const segment of this.#segments.values()) if (!isUnborn(segment)) headers += segment.headerBytes;
    return this.#tailBytes - headers - liveBytes;
  }

  /** Each segment with a file and its size, oldest first, for the snapshot close() leaves. */
  snapshotList(): Array<{ id: number; size: number }> {
    return [...this.#segments.values()].filter((s) => s.file !== undefined)
      .sort((a, b) => a.id - b.id).map((s) => ({ id: s.id, size: s.flushed }));
  }

  /** Closes every file; never throws. */
  async closeAll(): Promise<void> {
    await Promise.allSettled([...this.#segments.values()].map((s) => s.file?.close()));
  }

  #start(id: number): Segment {
    const segment = new Segment(id, path.join(this.#dir, segmentName(id)), undefined, 0);
    this.#segments.set(id, segment);
    return segment;
  }
}
