/**
 * Hint files: for a segment written by compaction, the key, record length and expiry of every
 * record in it, so open can rebuild the keydir without reading values. A hint is only ever an
 * optimisation: a missing, torn or corrupt hint, or one that does not match its segment's size,
 * is ignored and the segment is scanned instead.
 *
 * Layout (little-endian), file `<segment id>.hint` beside `<segment id>.seg`:
 *
 *   off  size  field
 *   0    20    file header, as for segments (format.ts) with kind = 2 and the segment's id
 *   20   8     segment size u64 (low word first): the exact size of the segment described
 *   28   4     entry count u32
 *   32   ...   entries, one per record of the segment, in file order:
 *                2  key length u16
 *                4  record length u32 (header + key + value)
 *                8  expires at u64 (low word first), 0 = never
 *                k  key, UTF-8
 *   end-4 4    crc u32: CRC-32 of bytes 20 .. end-4
 *
 * Record offsets are not stored: the first record starts right after the segment header and each
 * next one right after the previous, because compaction writes its outputs densely.
 */
import { crc32 } from './crc';
import { RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES, checkSegmentHeader, encodeSegmentHeader } from './format';
import { Entry } from './keydir';
import type { MediumFile } from './medium/types';

export const KIND_HINT = 2;
const FIXED_BYTES = SEGMENT_HEADER_BYTES + 12;
const ENTRY_FIXED_BYTES = 14;
const U32 = 0x100000000;

/** The bytes of `files` hint files holding `entries` entries in all, whose keys take `keyBytes`. */
export function hintFileBytes(files: number, entries: number, keyBytes: number): number {
  return files * (FIXED_BYTES + 4) + entries * ENTRY_FIXED_BYTES + keyBytes;
}

const HINT_PATTERN = /^([0-9a-f]{12})\.hint$/;

export function hintName(segmentId: number): string {
  return segmentId.toString(16).padStart(12, '0') + '.hint';
}

/** The segment id in a hint file's name, or undefined if `name` is not one. */
export function parseHintName(name: string): number | undefined {
  const match = HINT_PATTERN.exec(name);
  return match === null ? undefined : parseInt(match[1], 16);
}

/**
 * Builds a hint file entry by entry, in one growing buffer (no object per record: a compaction
 * of millions of records keeps only these bytes in memory), and walks its entries back.
 */
export class HintWriter {
  #buf = Buffer.allocUnsafe(64 * 1024);
  #at = FIXED_BYTES;
  #count = 0;

  get count(): number {
    return this.#count;
  }

  /** Adds the entry of a record whose key is `key[start .. start + keyLength)`. */
  add(key: Buffer, start: number, keyLength: number, length: number, expiresAt: number): void {
    const need = this.#at + ENTRY_FIXED_BYTES + keyLength + 4;
    if (need > this.#buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(need, this.#buf.length * 2));
      this.#buf.copy(bigger, 0, 0, this.#at);
      this.#buf = bigger;
    }
    const buf = this.#buf;
    const at = this.#at;
    buf.writeUInt16LE(keyLength, at);
    buf.writeUInt32LE(length, at + 2);
    buf.writeUInt32LE(expiresAt % U32, at + 6);
    buf.writeUInt32LE(Math.floor(expiresAt / U32), at + 10);
    key.copy(buf, at + ENTRY_FIXED_BYTES, start, start + keyLength);
    this.#at = at + ENTRY_FIXED_BYTES + keyLength;
    this.#count++;
  }

  /** The whole hint file for segment `segmentId` of `segmentSize` bytes. */
  finish(segmentId: number, segmentSize: number): Buffer {
    const buf = this.#buf;
    encodeSegmentHeader(segmentId, KIND_HINT).copy(buf, 0);
    buf.writeUInt32LE(segmentSize % U32, 20);
    buf.writeUInt32LE(Math.floor(segmentSize / U32), 24);
    buf.writeUInt32LE(this.#count, 28);
    buf.writeUInt32LE(crc32(buf.subarray(SEGMENT_HEADER_BYTES, this.#at)), this.#at);
    return buf.subarray(0, this.#at + 4);
  }

  /**
   * Calls `visit` for entries from `cursor.entry` on, at most `limit` of them, with the key at
   * `buf[keyStart .. keyStart + keyLength)` and the record's offset in its segment; advances the
   * cursor. Returns false once every entry was visited.
   */
  walk(cursor: HintCursor, limit: number,
       visit: (buf: Buffer, keyStart: number, keyLength: number, entry: Entry) => void, segmentId: number): boolean {
    const buf = this.#buf;
    for (let n = 0; n < limit && cursor.entry < this.#count; n++, cursor.entry++) {
      const keyLength = buf.readUInt16LE(cursor.at);
      const length = buf.readUInt32LE(cursor.at + 2);
      const expiresAt = buf.readUInt32LE(cursor.at + 6) + buf.readUInt32LE(cursor.at + 10) * U32;
      visit(buf, cursor.at + ENTRY_FIXED_BYTES, keyLength, new Entry(segmentId, cursor.offset, length, expiresAt));
      cursor.at += ENTRY_FIXED_BYTES + keyLength;
      cursor.offset += length;
    }
    return cursor.entry < this.#count;
  }
}

/** Where a walk over a HintWriter's entries stands. */
export interface HintCursor {
  entry: number;
  /** Byte position of the entry in the hint buffer. */
  at: number;
  /** Offset of its record in the segment. */
  offset: number;
}

export function startOfHints(): HintCursor {
  return { entry: 0, at: FIXED_BYTES, offset: SEGMENT_HEADER_BYTES };
}

/**
 * Reads a hint file and calls `visit` for each record of its segment, or returns a reason why
 * the hint cannot be used (then nothing was visited). `segmentSize` is the segment file's size.
 */
export function readHint(file: MediumFile, path: string, segmentId: number, segmentSize: number,
                         visit: (bytes: Buffer, start: number, length: number, entry: Entry) => void,
                         reserve?: (count: number) => void): string | undefined {
  const size = file.sizeSync();
  if (size < FIXED_BYTES + 4) return 'truncated';
  const buf = Buffer.allocUnsafe(size);
  if (file.readSync(buf, 0, size, 0) !== size) return 'truncated';
  try {
    checkSegmentHeader(buf, path, segmentId, KIND_HINT);
  } catch (err) {
    return (err as Error).message;
  }
  if (buf.readUInt32LE(size - 4) !== crc32(buf.subarray(SEGMENT_HEADER_BYTES, size - 4))) return 'checksum mismatch';
  const describedSize = buf.readUInt32LE(20) + buf.readUInt32LE(24) * U32;
  if (describedSize !== segmentSize) return `describes a segment of ${describedSize} bytes, found ${segmentSize}`;
  const count = buf.readUInt32LE(28);
  // Everything is checked before the keydir is touched (a bad hint must leave no trace), in a
  // first pass that allocates nothing; the second pass reads the same entries again to apply them.
  let at = FIXED_BYTES;
  let offset = SEGMENT_HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    if (at + ENTRY_FIXED_BYTES > size - 4) return 'entries overrun the file';
    const keyLength = buf.readUInt16LE(at);
    const length = buf.readUInt32LE(at + 2);
    const keyStart = at + ENTRY_FIXED_BYTES;
    if (keyLength === 0 || keyStart + keyLength > size - 4) return 'entries overrun the file';
    if (length < RECORD_HEADER_BYTES + keyLength) return 'implausible record length';
    if (buf.readUInt32LE(at + 10) > MAX_EXPIRES_HIGH) return 'implausible expiry';
    offset += length;
    at = keyStart + keyLength;
  }
  if (at !== size - 4) return 'trailing bytes';
  if (offset !== segmentSize) return 'record lengths do not add up to the segment size';
  reserve?.(count);
  at = FIXED_BYTES;
  offset = SEGMENT_HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    const keyLength = buf.readUInt16LE(at);
    const length = buf.readUInt32LE(at + 2);
    const expiresAt = buf.readUInt32LE(at + 6) + buf.readUInt32LE(at + 10) * U32;
    visit(buf, at + ENTRY_FIXED_BYTES, keyLength, new Entry(segmentId, offset, length, expiresAt));
    offset += length;
    at += ENTRY_FIXED_BYTES + keyLength;
  }
  return undefined;
}

/** The high word of the largest expiry a record may carry (format.ts MAX_EXPIRES_AT). */
const MAX_EXPIRES_HIGH = Math.floor(Number.MAX_SAFE_INTEGER / U32);
