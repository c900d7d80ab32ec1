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

/** What a reader needs of a segment set: the segment an entry names. */
export interface SegmentLookup {
  get(id: number): Segment | undefined;
}

export class SegmentSet implements SegmentLookup {
  readonly #dir: string;
  readonly #segments = new Map<number, Segment>();
  #active: Segment;
  #diskBytes = 0;
  #pins = 0;
  #unpinned: Array<() => void> = [];

  /**
   * The set of the segments recovery found (oldest first). The newest takes the writes, unless
   * it is a compaction output (appending to it would make its hint file stale, and the next open
   * scan it) or a segment of an older format version (a segment's records all have the layout its
   * header names): then writes start a segment of their own, as they do in an empty store.
   */
  constructor(dir: string, recovered: Segment[]) {
    this.#dir = dir;
    for (const segment of recovered) this.#segments.set(segment.id, segment);
    const newest = recovered[recovered.length - 1];
    if (newest !== undefined && isWriteSegmentId(newest.id) && newest.layout.version === FORMAT_VERSION) {
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

  /** Starts the next write segment (with no file yet) and makes it the active one. */
  rotate(): Segment {
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

  /** Total size of the store's segment files, with those about to exist and what compaction claimed. */
  get diskBytes(): number {
    return this.#diskBytes;
  }

  /** Counts bytes queued for a segment file (and its header, when the first record brings it into being). */
  grow(bytes: number): void {
    this.#diskBytes += bytes;
  }

  /** Claims `bytes` for compaction outputs if that stays within `maxBytes`; whether it did. */
  claim(bytes: number, maxBytes: number): boolean {
    if (this.#diskBytes + bytes > maxBytes) return false;
    this.#diskBytes += bytes;
    return true;
  }

  /** Gives back bytes claimed and not used. */
  release(bytes: number): void {
    this.#diskBytes -= bytes;
  }

  /** Counts the bytes again from the segments' tails: after their set or their tails changed. */
  recount(): void {
    let total = 0;
    for (const segment of this.#segments.values()) if (!isUnborn(segment)) total += segment.tail;
    this.#diskBytes = total;
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
    return this.#diskBytes - headers - liveBytes;
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
