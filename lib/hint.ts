/**
 * Hint files: for a segment written by compaction, the key, record length and expiry of every
 * record in it, so open can rebuild the keydir without reading values. A hint is only ever an
 * optimisation: a missing, torn or corrupt hint, or one that does not match its segment's size,
 * format version or version floor, is ignored and the segment is scanned instead.
 *
 * Layout, version 2 (little-endian), file `<segment id>.hint` beside `<segment id>.seg`:
 *
 *   off  size  field
 *   0    28    file header, as for segments (format.ts) with kind = 2, the segment's id and its
 *              version floor
 *   28   8     segment size u64 (low word first): the exact size of the segment described
 *   36   8     highest version u64: the highest record version in the segment (0 if none)
 *   44   4     entry count u32
 *   48   ...   entries, one per record of the segment, in file order:
 *                2  key length u16
 *                4  record length u32 (header + key + value)
 *                8  expires at u64 (low word first), 0 = never
 *                k  key, UTF-8
 *   end-4 4    crc u32: CRC-32 of bytes 28 .. end-4
 *
 * Version 1 (read, never written; it describes a version-1 segment): a 20-byte file header, then
 * segment size u64 at 20, entry count u32 at 28, entries from 32, crc of bytes 20 .. end-4. It has
 * no highest version: a version-1 segment's records all have version 0.
 *
 * Record offsets are not stored: the first record starts right after the segment header and each
 * next one right after the previous, because compaction writes its outputs densely.
 */
import { crc32 } from './crc';
import { FileHeader, SEGMENT_HEADER_BYTES, checkSegmentHeader, encodeSegmentHeader } from './format';
import { Entry } from './keydir';
import type { MediumFile } from './medium/types';

export const KIND_HINT = 2;
/** Bytes before the first entry of a version-2 hint (what this build writes). */
const FIXED_BYTES = SEGMENT_HEADER_BYTES + 20;
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

/** Bytes of a HintWriter's first chunk, and the most any later chunk takes. */
const FIRST_CHUNK_BYTES = 64 * 1024;
const MAX_CHUNK_BYTES = 1024 * 1024;

/**
 * Builds a hint file entry by entry, in chunks of bytes (no object per record: a compaction of
 * millions of records keeps only these bytes in memory), and walks its entries back. A chunk is
 * never copied to grow: when an entry does not fit in the last one, a new one is started, twice
 * the last's size up to `maxChunkBytes` (or the entry's size, if larger), so the bytes held stay
 * within one chunk of the entries' own. An entry never straddles two chunks.
 */
export class HintWriter {
  readonly #chunks: Buffer[];
  /** Bytes used in each chunk (the first's start with the FIXED_BYTES the header takes). */
  readonly #used: number[] = [FIXED_BYTES];
  readonly #maxChunkBytes: number;
  #count = 0;
  #maxVersion = 0;

  /** The sizes are for specs, which make them small to cross chunk boundaries. */
  constructor(firstChunkBytes = FIRST_CHUNK_BYTES, maxChunkBytes = MAX_CHUNK_BYTES) {
    this.#chunks = [Buffer.allocUnsafe(Math.max(firstChunkBytes, FIXED_BYTES))];
    this.#maxChunkBytes = Math.max(maxChunkBytes, firstChunkBytes);
  }

  get count(): number {
    return this.#count;
  }

  /** Chunks it holds (for specs). */
  get chunks(): number {
    return this.#chunks.length;
  }

  /** Adds the entry of a record whose key is `key[start .. start + keyLength)`, of version `version`. */
  add(key: Buffer, start: number, keyLength: number, length: number, expiresAt: number, version: number): void {
    if (version > this.#maxVersion) this.#maxVersion = version;
    const entryBytes = ENTRY_FIXED_BYTES + keyLength;
    let last = this.#chunks.length - 1;
    if (this.#used[last] + entryBytes > this.#chunks[last].length) {
      const size = Math.max(entryBytes, Math.min(this.#maxChunkBytes, this.#chunks[last].length * 2));
      this.#chunks.push(Buffer.allocUnsafe(size));
      this.#used.push(0);
      last++;
    }
    const buf = this.#chunks[last];
    const at = this.#used[last];
    buf.writeUInt16LE(keyLength, at);
    buf.writeUInt32LE(length, at + 2);
    buf.writeUInt32LE(expiresAt % U32, at + 6);
    buf.writeUInt32LE(Math.floor(expiresAt / U32), at + 10);
    key.copy(buf, at + ENTRY_FIXED_BYTES, start, start + keyLength);
    this.#used[last] = at + entryBytes;
    this.#count++;
  }

  /**
   * The whole hint file for segment `segmentId` of `segmentSize` bytes, whose version floor is
   * `floor`, as the buffers to write one after the other (views of the chunks, and the CRC).
   */
  finish(segmentId: number, segmentSize: number, floor: number): Buffer[] {
    const first = this.#chunks[0];
    encodeSegmentHeader(segmentId, KIND_HINT, floor).copy(first, 0);
    writeU64(first, segmentSize, SEGMENT_HEADER_BYTES);
    writeU64(first, this.#maxVersion, SEGMENT_HEADER_BYTES + 8);
    first.writeUInt32LE(this.#count, SEGMENT_HEADER_BYTES + 16);
    const parts = this.#chunks.map((chunk, i) => chunk.subarray(0, this.#used[i]));
    let crc = crc32(parts[0].subarray(SEGMENT_HEADER_BYTES));
    for (let i = 1; i < parts.length; i++) crc = crc32(parts[i], crc);
    const tail = Buffer.allocUnsafe(4);
    tail.writeUInt32LE(crc, 0);
    parts.push(tail);
    return parts;
  }

  /**
   * Calls `visit` for entries from `cursor.entry` on, at most `limit` of them, with the key at
   * `buf[keyStart .. keyStart + keyLength)` and the record's offset in its segment; advances the
   * cursor. Returns false once every entry was visited.
   */
  walk(cursor: HintCursor, limit: number,
       visit: (buf: Buffer, keyStart: number, keyLength: number, entry: Entry) => void, segmentId: number): boolean {
    for (let n = 0; n < limit && cursor.entry < this.#count; n++, cursor.entry++) {
      if (cursor.at >= this.#used[cursor.chunk]) {
        cursor.chunk++;
        cursor.at = 0;
      }
      const buf = this.#chunks[cursor.chunk];
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
  /** The chunk the entry is in, and its byte position there. */
  chunk: number;
  at: number;
  /** Offset of its record in the segment. */
  offset: number;
}

export function startOfHints(): HintCursor {
  return { entry: 0, chunk: 0, at: FIXED_BYTES, offset: SEGMENT_HEADER_BYTES };
}

/**
 * Reads a hint file and calls `visit` for each record of its segment; returns the highest record
 * version in the segment, or a reason why the hint cannot be used (then nothing was visited).
 * `segmentSize` is the segment file's size, `segment` its checked file header: the hint must be
 * of the same format version and carry the same version floor.
 */
export function readHint(file: MediumFile, path: string, segmentId: number, segmentSize: number, segment: FileHeader,
                         visit: (bytes: Buffer, start: number, length: number, entry: Entry) => void,
                         reserve?: (count: number) => void): number | string {
  const size = file.sizeSync();
  const buf = Buffer.allocUnsafe(size);
  if (file.readSync(buf, 0, size, 0) !== size) return 'truncated';
  let header: FileHeader;
  try {
    header = checkSegmentHeader(buf, path, segmentId, KIND_HINT);
  } catch (err) {
    return (err as Error).message;
  }
  if (header.version !== segment.version) return `a version ${header.version} hint for a version ${segment.version} segment`;
  if (header.floor !== segment.floor) return `version floor ${header.floor}, the segment says ${segment.floor}`;
  // Version 2 has the highest version between the size and the count; version 1 has none.
  const fixed = header.bytes + (header.version === 1 ? 12 : 20);
  if (size < fixed + 4) return 'truncated';
  if (buf.readUInt32LE(size - 4) !== crc32(buf.subarray(header.bytes, size - 4))) return 'checksum mismatch';
  const describedSize = readU64(buf, header.bytes);
  if (describedSize !== segmentSize) return `describes a segment of ${describedSize} bytes, found ${segmentSize}`;
  const maxVersion = header.version === 1 ? 0 : readU64(buf, header.bytes + 8);
  if (maxVersion > Number.MAX_SAFE_INTEGER) return 'implausible highest version';
  const count = buf.readUInt32LE(fixed - 4);
  // Everything is checked before the keydir is touched (a bad hint must leave no trace), in a
  // first pass that allocates nothing; the second pass reads the same entries again to apply them.
  const recordHeaderBytes = header.layout.headerBytes;
  let at = fixed;
  let offset = header.layout.fileHeaderBytes;
  for (let i = 0; i < count; i++) {
    if (at + ENTRY_FIXED_BYTES > size - 4) return 'entries overrun the file';
    const keyLength = buf.readUInt16LE(at);
    const length = buf.readUInt32LE(at + 2);
    const keyStart = at + ENTRY_FIXED_BYTES;
    if (keyLength === 0 || keyStart + keyLength > size - 4) return 'entries overrun the file';
    if (length < recordHeaderBytes + keyLength) return 'implausible record length';
    if (buf.readUInt32LE(at + 10) > MAX_EXPIRES_HIGH) return 'implausible expiry';
    offset += length;
    at = keyStart + keyLength;
  }
  if (at !== size - 4) return 'trailing bytes';
  if (offset !== segmentSize) return 'record lengths do not add up to the segment size';
  reserve?.(count);
  at = fixed;
  offset = header.layout.fileHeaderBytes;
  for (let i = 0; i < count; i++) {
    const keyLength = buf.readUInt16LE(at);
    const length = buf.readUInt32LE(at + 2);
    const expiresAt = buf.readUInt32LE(at + 6) + buf.readUInt32LE(at + 10) * U32;
    visit(buf, at + ENTRY_FIXED_BYTES, keyLength, new Entry(segmentId, offset, length, expiresAt));
    offset += length;
    at += ENTRY_FIXED_BYTES + keyLength;
  }
  return maxVersion;
}

function readU64(buf: Buffer, at: number): number {
  return buf.readUInt32LE(at) + buf.readUInt32LE(at + 4) * U32;
}

function writeU64(buf: Buffer, value: number, at: number): void {
  buf.writeUInt32LE(value % U32, at);
  buf.writeUInt32LE(Math.floor(value / U32), at + 4);
}

/** The high word of the largest expiry a record may carry (format.ts MAX_EXPIRES_AT). */
const MAX_EXPIRES_HIGH = Math.floor(Number.MAX_SAFE_INTEGER / U32);
