/**
 * The one segment walker: reads a segment's records in order, checking each, for everything that
 * reads whole segments: recovery at open, `logkv check`, compaction's copy step and dump.
 *
 * What it owns, so no caller repeats it:
 * - The record layout. A segment's file header names its format version, and the walker parses
 *   records with that version's RecordLayout (format.ts). A new layout is a new object there.
 * - The checks. A record is good when its header is plausible, it lies wholly inside the file,
 *   and its CRC matches. Anything else is damage, with one of four reasons, except zero padding:
 *   in a layout that allows it (version 2), zero bytes from a record boundary to the end of the
 *   file end the records (preallocated space) and are no damage.
 * - The damage policy. 'stop' ends the walk at the first bad record (recovery, compaction: what
 *   follows cannot be trusted). 'report' tells the caller and resumes at the next good record
 *   (check, which lists every problem): the next offset, byte by byte, where a plausible header
 *   starts a record whose CRC matches.
 * - Batches. A batch is records with BATCH_CONT and a last one without it, in one segment. The
 *   walker hands a batch's records to the visitor only when it has read the batch's last record,
 *   all at once, so no caller can apply part of a batch. A segment that ends inside a batch (or,
 *   with 'stop', is damaged inside one) holds an unfinished batch, which is never visited.
 * - Slices. walk() can stop after a budget of bytes and resume where it stopped (compaction
 *   yields to the event loop between slices).
 *
 * And the rules recovery and check must agree on (docs/recovery.md), as two functions both call:
 * readSegmentStart() decides whether a segment is an interrupted creation, and judgeWalk() whether
 * its damage is a torn tail that open() cuts or corruption that makes open() refuse the store.
 *
 * It is built to replay millions of records at open: one reused read buffer (1 MiB, larger only
 * for a record or batch that needs it), one reused header object, no closure or object per record.
 */
import {
  FLAG_BATCH_CONT, FileHeader, RecordHeader, RecordLayout, SEGMENT_HEADER_BYTES, checkSegmentHeader, emptyRecordHeader,
  fileHeaderIsWhole,
} from './format';
import type { MediumFile } from './medium/types';
import { isWriteSegmentId } from './segment';

/** Bytes read from the file at a time. */
const CHUNK_BYTES = 1024 * 1024;

/** 'stop' at the first bad record, or 'report' it and resume at the next good one. */
export type DamagePolicy = 'stop' | 'report';

export type DamageReason = 'truncated header' | 'implausible header' | 'truncated record' | 'checksum mismatch';

/** A bad record: where it starts and why it is bad. */
export interface Damage {
  offset: number;
  reason: DamageReason;
  /** With 'report': the offset of the next good record, where the walk resumed; undefined if none follows. */
  next?: number;
}

/**
 * Receives each good record: its offset in the file, its header, and its bytes at
 * `buf[pos .. pos + header.totalLength)` (the key starts at `pos + header.headerLength`). `header`
 * and `buf` are reused after the call: copy what you keep.
 */
export type RecordVisitor = (offset: number, header: RecordHeader, buf: Buffer, pos: number) => void;

export interface WalkOptions {
  /** @default 'stop' */
  policy?: DamagePolicy;
  /** Offset of the first record. @default just past the file header (the layout's fileHeaderBytes) */
  start?: number;
  /** Called at each bad record (with 'stop', only the first: the walk ends there). */
  onDamage?: (damage: Damage) => void;
}

/** How a finished walk ended. */
export interface WalkOutcome {
  /**
   * Where the whole part of the segment ends: every record before it was visited, in whole
   * batches. It is the file's size, or the start of the first bad record, or of the batch it
   * broke (or of a batch the file ends inside), whichever comes first. open() cuts a torn tail here.
   */
  cleanEnd: number;
  /** The first bad record, if any. */
  damage?: Damage;
  /** The first record of the batch that was open where the walk ended (its last record never came). */
  unfinishedBatch?: number;
  /**
   * Where zero padding starts: the records end there, and every byte from there to the end of
   * the file is zero (version 2 only). Undefined when the records run to the end of the file.
   */
  paddingFrom?: number;
  /** Records visited. */
  records: number;
}

export class SegmentWalker {
  readonly #file: MediumFile;
  readonly #size: number;
  readonly #layout: RecordLayout;
  readonly #policy: DamagePolicy;
  readonly #onDamage: ((damage: Damage) => void) | undefined;
  readonly #header: RecordHeader = emptyRecordHeader();
  #chunk: Buffer;
  /** File offset of #chunk[0], and just past its valid bytes. */
  #chunkStart = 0;
  #chunkEnd = 0;
  /** The next record to read. */
  #offset: number;
  /** The first record of the batch being read; -1 between batches. */
  #batchStart = -1;
  #cleanEnd = -1;
  #damage: Damage | undefined;
  #unfinishedBatch: number | undefined;
  #paddingFrom: number | undefined;
  #records = 0;
  #done = false;

  /** A walker over `file` (of `size` bytes) whose records have `layout`. */
  constructor(file: MediumFile, size: number, layout: RecordLayout, options: WalkOptions = {}) {
    this.#file = file;
    this.#size = size;
    this.#layout = layout;
    this.#policy = options.policy ?? 'stop';
    this.#onDamage = options.onDamage;
    this.#offset = options.start ?? layout.fileHeaderBytes;
    this.#chunk = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, Math.max(size - this.#offset, layout.headerBytes)));
  }

  /**
   * A walker over segment `id` (open as `file`, at `path`), with the record layout its file
   * header names. Throws LOGKV_CORRUPTION if the header is bad.
   */
  static forSegment(file: MediumFile, path: string, id: number, size: number, options: WalkOptions = {}): SegmentWalker {
    const header = Buffer.alloc(SEGMENT_HEADER_BYTES);
    const got = file.readSync(header, 0, SEGMENT_HEADER_BYTES, 0);
    return new SegmentWalker(file, size, checkSegmentHeader(header.subarray(0, got), path, id).layout, options);
  }

  /** Where the next record will be read: a paused walk resumes here. */
  get offset(): number {
    return this.#offset;
  }

  get done(): boolean {
    return this.#done;
  }

  /** How the walk ended; undefined until it is done. */
  get outcome(): WalkOutcome | undefined {
    if (!this.#done) return undefined;
    const outcome: WalkOutcome = {
      cleanEnd: this.#cleanEnd, damage: this.#damage, unfinishedBatch: this.#unfinishedBatch, records: this.#records,
    };
    if (this.#paddingFrom !== undefined) outcome.paddingFrom = this.#paddingFrom;
    return outcome;
  }

  /**
   * Visits good records in order until the walk is done (true) or it has read `budgetBytes` of
   * the file since this call began (false: call again to go on). A batch is visited whole once
   * its last record is read, so a call may visit more than its budget.
   */
  walk(visit: RecordVisitor, budgetBytes = Infinity): boolean {
    if (this.#done) return true;
    const size = this.#size;
    const layout = this.#layout;
    const headerBytes = layout.headerBytes;
    const header = this.#header;
    const budgetEnd = this.#offset + budgetBytes;
    let offset = this.#offset;
    let records = 0;
    // The chunk and where it lies, in locals for the loop; reloaded after #ensure refills it.
    // Only the end needs checking: the walk moves forward, and a refill starts at or before offset.
    let chunk = this.#chunk;
    let chunkStart = this.#chunkStart;
    let chunkEnd = this.#chunkEnd;
    while (offset < size) {
      if (offset >= budgetEnd) break;
      let reason: DamageReason | undefined;
      if (offset + headerBytes > chunkEnd && !this.#ensure(offset, headerBytes)) {
        reason = 'truncated header';
      } else {
        chunk = this.#chunk;
        chunkStart = this.#chunkStart;
        chunkEnd = this.#chunkEnd;
        if (!layout.parse(chunk, offset - chunkStart, header)) {
          reason = 'implausible header';
        } else if (offset + header.totalLength > chunkEnd && !this.#ensure(offset, header.totalLength)) {
          reason = 'truncated record';
        } else {
          chunk = this.#chunk;
          chunkStart = this.#chunkStart;
          chunkEnd = this.#chunkEnd;
          if (!layout.crcMatches(chunk, offset - chunkStart, header)) reason = 'checksum mismatch';
        }
      }
      if (reason !== undefined) {
        if (reason !== 'truncated record' && reason !== 'checksum mismatch' && layout.zeroPaddingEnds &&
            isAllZero(this.#file, offset, size)) {
          // Preallocated space: the records end here, as if the file did.
          this.#records += records;
          this.#paddingFrom = offset;
          this.#finish(offset, offset);
          return true;
        }
        const next = this.#damaged(offset, reason);
        if (next === undefined) {
          // With 'stop' the walk ends at the bad record; with 'report', nothing good follows it.
          if (this.#policy === 'report') offset = size;
          this.#records += records;
          this.#finish(offset);
          return true;
        }
        offset = next;
        continue;
      }
      const length = header.totalLength;
      if ((header.flags & FLAG_BATCH_CONT) !== 0) {
        if (this.#batchStart < 0) this.#batchStart = offset;
      } else if (this.#batchStart >= 0) {
        this.#records += records;
        records = 0;
        this.#visitBatch(offset + length, visit);
      } else {
        records++;
        visit(offset, header, chunk, offset - chunkStart);
      }
      offset += length;
    }
    this.#records += records;
    this.#offset = offset;
    if (offset < size) return false;
    this.#finish(offset);
    return true;
  }

  /** Visits the records of the batch from #batchStart to `end` (all in the chunk: #ensure kept them). */
  #visitBatch(end: number, visit: RecordVisitor): void {
    const header = this.#header;
    const chunk = this.#chunk;
    for (let at = this.#batchStart; at < end; at += header.totalLength) {
      this.#layout.parse(chunk, at - this.#chunkStart, header); // checked when first read
      this.#records++;
      visit(at, header, chunk, at - this.#chunkStart);
    }
    this.#batchStart = -1;
  }

  /**
   * Makes file bytes [offset, offset + length) available in the chunk; false if the file ends
   * first. While a batch is open the chunk keeps every byte from the batch's first record, so
   * the batch can be visited from it once it is complete.
   */
  #ensure(offset: number, length: number): boolean {
    if (offset + length > this.#size) return false;
    if (offset >= this.#chunkStart && offset + length <= this.#chunkEnd) return true;
    const from = this.#batchStart >= 0 ? this.#batchStart : offset;
    const need = offset + length - from;
    if (need > this.#chunk.length) this.#chunk = Buffer.allocUnsafe(Math.max(need, this.#chunk.length * 2));
    const want = Math.min(this.#chunk.length, this.#size - from);
    const got = this.#file.readSync(this.#chunk, 0, want, from);
    this.#chunkStart = from;
    this.#chunkEnd = from + got;
    return got >= need;
  }

  /** Records a bad record at `offset`; returns where to resume, or undefined to end the walk. */
  #damaged(offset: number, reason: DamageReason): number | undefined {
    const damage: Damage = { offset, reason };
    if (this.#damage === undefined) {
      this.#damage = damage;
      this.#cleanEnd = this.#batchStart >= 0 ? this.#batchStart : offset;
    }
    if (this.#policy === 'stop') {
      if (this.#batchStart >= 0) this.#unfinishedBatch = this.#batchStart;
      this.#onDamage?.(damage);
      return undefined;
    }
    // The bad record may have been the batch's last: the batch is broken, and none of it is visited.
    this.#batchStart = -1;
    damage.next = findNextRecord(this.#file, this.#layout, offset + 1, this.#size);
    this.#onDamage?.(damage);
    return damage.next;
  }

  /** Ends the walk at `offset`; `end` is where the records end (the file's size, or where zero padding starts). */
  #finish(offset: number, end = this.#size): void {
    if (this.#batchStart >= 0 && this.#unfinishedBatch === undefined) this.#unfinishedBatch = this.#batchStart;
    if (this.#cleanEnd < 0) this.#cleanEnd = this.#batchStart >= 0 ? this.#batchStart : end;
    this.#batchStart = -1;
    this.#offset = offset;
    this.#done = true;
  }

  /** Walks to the end with no budget; returns the outcome. */
  walkAll(visit: RecordVisitor): WalkOutcome {
    this.walk(visit);
    return this.outcome!;
  }
}

/**
 * The offset of the first good record (plausible header, within the file, matching CRC) at or
 * after `from`, or undefined. Reads a window at a time; used only past damage, so it is not fast.
 */
export function findNextRecord(file: MediumFile, layout: RecordLayout, from: number, size: number): number | undefined {
  const WINDOW_BYTES = 1024 * 1024;
  const window = Buffer.allocUnsafe(WINDOW_BYTES + layout.headerBytes);
  const header = emptyRecordHeader();
  for (let base = from; base + layout.headerBytes <= size; base += WINDOW_BYTES) {
    const got = file.readSync(window, 0, Math.min(window.length, size - base), base);
    for (let pos = 0; pos < WINDOW_BYTES && pos + layout.headerBytes <= got; pos++) {
      if (!layout.parse(window, pos, header) || base + pos + header.totalLength > size) continue;
      let bytes = window;
      let at = pos;
      if (pos + header.totalLength > got) {
        bytes = Buffer.allocUnsafe(header.totalLength);
        if (file.readSync(bytes, 0, header.totalLength, base + pos) !== header.totalLength) continue;
        at = 0;
      }
      if (layout.crcMatches(bytes, at, header)) return base + pos;
    }
  }
  return undefined;
}

/** Whether bytes [from, to) of `file` are all zero. Reads until the first byte that is not. */
export function isAllZero(file: MediumFile, from: number, to: number): boolean {
  const buf = Buffer.allocUnsafe(Math.min(Math.max(to - from, 0), 64 * 1024));
  for (let at = from; at < to; at += buf.length) {
    const n = file.readSync(buf, 0, Math.min(buf.length, to - at), at);
    for (let i = 0; i < n; i++) if (buf[i] !== 0) return false;
  }
  return true;
}

/**
 * Whether segment `id` may end in a torn tail (or be an interrupted creation): only the newest
 * segment, and only if it takes writes. A segment is synced before a later one is created, and a
 * compaction output is synced before it is renamed into place, so damage anywhere else did not
 * come from a crash (docs/recovery.md). The newest segment is a compaction output when no write
 * came after the compaction: its damage is corruption too, not a tail to cut.
 */
export function mayBeTorn(id: number, newest: boolean): boolean {
  return newest && isWriteSegmentId(id);
}

/**
 * How a segment begins: a sound file header (its version names the layout of its records, and it
 * carries the version floor), or an interrupted creation.
 */
export type SegmentStart = { kind: 'records'; header: FileHeader; layout: RecordLayout } | { kind: 'interrupted' };

/**
 * Reads and checks segment `id`'s file header. When the segment may be torn (mayBeTorn), an
 * interrupted creation is recognised: a file no longer than a (version 2) header without a whole
 * header whose CRC matches, or all zeros. A segment's header is synced before any record is
 * written to it, so such a file holds nothing that was ever acknowledged. Throws LOGKV_CORRUPTION
 * for any other bad header.
 */
export function readSegmentStart(file: MediumFile, path: string, id: number, size: number, torn: boolean): SegmentStart {
  const buf = Buffer.alloc(SEGMENT_HEADER_BYTES);
  const got = file.readSync(buf, 0, SEGMENT_HEADER_BYTES, 0);
  if (torn) {
    const tornHeader = size <= SEGMENT_HEADER_BYTES && !fileHeaderIsWhole(buf, got);
    if (tornHeader || isAllZero(file, 0, size)) return { kind: 'interrupted' };
  }
  const header = checkSegmentHeader(buf.subarray(0, got), path, id);
  return { kind: 'records', header, layout: header.layout };
}

/** What open() does with a segment it walked: keep it whole, cut a torn tail, or refuse the store. */
export type Verdict =
  | { action: 'keep' }
  | { action: 'cut'; offset: number; reason: string }
  | { action: 'refuse'; offset: number; reason: string };

/**
 * The rule for a walked segment of `size` bytes. A segment that may be torn is cut where its
 * whole part ends (at a bad record, or at the start of the batch it broke or that never ended).
 * Any other segment with damage, or that ends inside a batch, is corruption: at the bad record,
 * or at the start of the unfinished batch. Zero padding after the records is kept: the segment's
 * records end where it starts (outcome.paddingFrom).
 */
export function judgeWalk(outcome: WalkOutcome, size: number, torn: boolean): Verdict {
  if (outcome.cleanEnd >= (outcome.paddingFrom ?? size)) return { action: 'keep' };
  const reason = outcome.damage?.reason ?? 'unfinished batch';
  if (torn) return { action: 'cut', offset: outcome.cleanEnd, reason };
  return { action: 'refuse', offset: outcome.damage?.offset ?? outcome.cleanEnd, reason };
}
