/**
 * One segment file: its id and name, its handle, and how far it has been written and synced; and
 * the names of the files that belong to a segment (its own, and the sidecar of bytes recovery cut
 * off it).
 */
import { RECORD_LAYOUT_V2, RecordLayout } from './format';
import type { MediumFile } from './medium/types';

/**
 * Segments that take writes have ids that are multiples of this (write segments); compaction
 * outputs use the ids between, just above the newest segment they replace.
 */
export const SEGMENT_ID_STEP = 0x10000;
/** Files being written (by compaction, a snapshot, a sidecar) carry this suffix until they are complete and synced. */
export const TEMP_SUFFIX = '.tmp';
/** Sidecar files: bytes recovery cut off a segment, kept rather than destroyed (docs/recovery.md). */
export const CUT_SUFFIX = '.cut';
const NAME_PATTERN = /^([0-9a-f]{12})\.seg$/;
const CUT_PATTERN = /^([0-9a-f]{12})-([0-9a-f]{8,13})\.cut$/;

/**
 * Whether segment `id` is one that takes writes. Only such a segment, and only the newest, can
 * end in a torn tail: every other segment was complete and synced before a later one existed.
 */
export function isWriteSegmentId(id: number): boolean {
  return id % SEGMENT_ID_STEP === 0;
}

/** The id of the next write segment after segment `id` (a write segment or a compaction output). */
export function nextWriteSegmentId(id: number): number {
  return (Math.floor(id / SEGMENT_ID_STEP) + 1) * SEGMENT_ID_STEP;
}

export function segmentName(id: number): string {
  return id.toString(16).padStart(12, '0') + '.seg';
}

/** The id in a segment file name, or undefined if `name` is not one. */
export function parseSegmentName(name: string): number | undefined {
  const match = NAME_PATTERN.exec(name);
  return match === null ? undefined : parseInt(match[1], 16);
}

/**
 * The name of the sidecar holding the bytes cut off segment `segmentId` at `offset`: the segment's
 * 12 hex digits, a dash, the offset in at least 8 hex digits, ".cut". It cannot be mistaken for a
 * segment, a hint or a temporary file, so recovery and compaction leave it alone.
 */
export function cutName(segmentId: number, offset: number): string {
  return `${segmentId.toString(16).padStart(12, '0')}-${offset.toString(16).padStart(8, '0')}${CUT_SUFFIX}`;
}

/** The segment id and offset in a sidecar's name, or undefined if `name` is not one. */
export function parseCutName(name: string): { segmentId: number; offset: number } | undefined {
  const match = CUT_PATTERN.exec(name);
  return match === null ? undefined : { segmentId: parseInt(match[1], 16), offset: parseInt(match[2], 16) };
}

/** A record that has been given its place in a segment but not yet handed to the OS. */
export interface PendingRecord {
  offset: number;
  bytes: Buffer;
}

/**
 * Whether this process may change a segment's file: 'read-only' for a file a shared client's
 * follower opened (lib/shared/follower.ts), whose handle refuses writes and truncations (its
 * sync() is still a real fdatasync).
 */
export type SegmentAccess = 'read-write' | 'read-only';

export class Segment {
  /** The open handle; undefined until the writer creates the file. */
  file: MediumFile | undefined;
  /** Where the next record goes: everything before it is written, being written, or queued. */
  tail: number;
  /** Bytes handed to the OS; reads below this go to the file. */
  flushed: number;
  /** Bytes known durable. */
  synced: number;
  /**
   * How far the file extends: its records, then zero padding (space preallocated ahead of the
   * appends, docs/format.md) when this is past `flushed`. 0 while the segment has no file.
   */
  allocated: number;
  /** Records at or past `flushed`, in offset order, for reads that arrive before the write. */
  pending: PendingRecord[] = [];
  /**
   * The version floor its file header carries (format.ts). For a segment the writer starts, set
   * when its first record is given a version; for one read from disk, what its header says.
   */
  floor: number;
  /** Bytes of this segment's hint file (a compaction output's), 0 if it has none: counted under maxStoreBytes. */
  hintBytes = 0;

  /**
   * A segment of `size` bytes (where its records end; a file may hold zero padding after them)
   * whose records have `layout` (the version its file header names; new segments are version 2).
   * With `access` 'read-only' this process never writes to its file nor cuts it, whatever
   * `allocated` says (the writer asks `writable`), and it never takes writes (the segment set then
   * starts a write segment of its own, as it does after a compaction output).
   */
  constructor(readonly id: number, readonly path: string, file: MediumFile | undefined, size: number,
              readonly layout: RecordLayout = RECORD_LAYOUT_V2, floor = 0, readonly access: SegmentAccess = 'read-write') {
    this.file = file;
    this.tail = file === undefined ? layout.fileHeaderBytes : size;
    this.flushed = file === undefined ? 0 : size;
    this.synced = this.flushed;
    this.allocated = this.flushed;
    this.floor = floor;
  }

  /** Whether this process may write to, or cut, the segment's file. */
  get writable(): boolean {
    return this.access === 'read-write';
  }

  /** Bytes of its file header: where its first record starts. */
  get headerBytes(): number {
    return this.layout.fileHeaderBytes;
  }

  /** The queued record at `offset`, or undefined. */
  findPending(offset: number): Buffer | undefined {
    const pending = this.pending;
    let lo = 0;
    let hi = pending.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const at = pending[mid].offset;
      if (at === offset) return pending[mid].bytes;
      if (at < offset) lo = mid + 1;
      else hi = mid - 1;
    }
    return undefined;
  }

  /** Forgets queued records below `flushed`, now that the file holds them. */
  dropFlushed(): void {
    let n = 0;
    while (n < this.pending.length && this.pending[n].offset < this.flushed) n++;
    if (n > 0) this.pending.splice(0, n);
  }
}
