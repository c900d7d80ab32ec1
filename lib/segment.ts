/**
 * One segment file: its id and name, its handle, and how far it has been written and synced.
 */
import { SEGMENT_HEADER_BYTES } from './format';
import type { MediumFile } from './medium/types';

/** Normal segments take ids that are multiples of this; compaction outputs use the ids between. */
export const SEGMENT_ID_STEP = 0x10000;
/** Files being written by compaction carry this suffix until they are complete and synced. */
export const TEMP_SUFFIX = '.tmp';
const NAME_PATTERN = /^([0-9a-f]{12})\.seg$/;

export function segmentName(id: number): string {
  return id.toString(16).padStart(12, '0') + '.seg';
}

/** The id in a segment file name, or undefined if `name` is not one. */
export function parseSegmentName(name: string): number | undefined {
  const match = NAME_PATTERN.exec(name);
  return match === null ? undefined : parseInt(match[1], 16);
}

/** A record that has been given its place in a segment but not yet handed to the OS. */
export interface PendingRecord {
  offset: number;
  bytes: Buffer;
}

export class Segment {
  /** The open handle; undefined until the writer creates the file. */
  file: MediumFile | undefined;
  /** Where the next record goes: everything before it is written, being written, or queued. */
  tail: number;
  /** Bytes handed to the OS; reads below this go to the file. */
  flushed: number;
  /** Bytes known durable. */
  synced: number;
  /** Records at or past `flushed`, in offset order, for reads that arrive before the write. */
  pending: PendingRecord[] = [];

  constructor(readonly id: number, readonly path: string, file: MediumFile | undefined, size: number) {
    this.file = file;
    this.tail = file === undefined ? SEGMENT_HEADER_BYTES : size;
    this.flushed = file === undefined ? 0 : size;
    this.synced = this.flushed;
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
