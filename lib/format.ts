/**
 * The on-disk byte layout: segment headers and records. Encode, decode, check; no I/O.
 * docs/format.md mirrors this file; a change here is a format change and bumps FORMAT_VERSION.
 *
 * All integers are little-endian.
 *
 * Segment header (SEGMENT_HEADER_BYTES = 20), at offset 0 of every segment file:
 *
 *   off  size  field
 *   0    4     magic        "LKVS" (0x4C 0x4B 0x56 0x53)
 *   4    2     version      u16, FORMAT_VERSION
 *   6    2     kind         u16, 1 = segment
 *   8    8     segment id   u64 (written as two u32: low word first), equals the file name's id
 *   16   4     header crc   u32, CRC-32 of bytes 0..15
 *
 * Record (RECORD_HEADER_BYTES = 20, then the key and the value), appended after the header:
 *
 *   off  size  field
 *   0    4     crc          u32, CRC-32 of bytes 4 .. end of record (header rest, key and value)
 *   4    1     type         u8, 1 = SET, 2 = DELETE
 *   5    1     flags        u8, bit 0 = BATCH_CONT: more records of the same batch follow;
 *                           other bits are zero
 *   6    2     key length   u16, 1..65535
 *   8    4     value length u32, 0 for DELETE
 *   12   8     expires at   u64 ms since the Unix epoch (low word first); 0 = never expires
 *   20   k     key          UTF-8
 *   20+k v     value        msgpack (see codec.ts), absent for DELETE
 *
 * A batch of n operations is n consecutive records in one segment; all but the last carry
 * BATCH_CONT. The segment walker (walk.ts) hands over a batch's records only when it reaches the
 * last one, so a batch torn by a crash is dropped whole.
 *
 * Records are read through a RecordLayout, one per format version (RECORD_LAYOUT_V1 is the table
 * above): the walker takes the layout that a segment's header version names, so a new record
 * header is a new layout object here and no change to the walker.
 */
import { crc32 } from './crc';
import { corruption } from './errors';
import { FORMAT_MAX_KEY_BYTES, FORMAT_MAX_VALUE_BYTES } from './options';

export const FORMAT_VERSION = 1;
export const SEGMENT_MAGIC = 0x53564b4c; // "LKVS" read as a little-endian u32
export const KIND_SEGMENT = 1;
export const SEGMENT_HEADER_BYTES = 20;
export const RECORD_HEADER_BYTES = 20;

export const TYPE_SET = 1;
export const TYPE_DELETE = 2;
export const FLAG_BATCH_CONT = 1;

const U32 = 0x100000000;

/** Largest expiry the format holds exactly: a JS safe integer. */
export const MAX_EXPIRES_AT = Number.MAX_SAFE_INTEGER;

export function encodeSegmentHeader(segmentId: number, kind = KIND_SEGMENT): Buffer {
  const buf = Buffer.alloc(SEGMENT_HEADER_BYTES);
  buf.writeUInt32LE(SEGMENT_MAGIC, 0);
  buf.writeUInt16LE(FORMAT_VERSION, 4);
  buf.writeUInt16LE(kind, 6);
  buf.writeUInt32LE(segmentId % U32, 8);
  buf.writeUInt32LE(Math.floor(segmentId / U32), 12);
  buf.writeUInt32LE(crc32(buf.subarray(0, 16)), 16);
  return buf;
}

/**
 * Checks a segment header read from `file`. Throws LOGKV_CORRUPTION for a bad magic, a bad CRC
 * or a wrong id, and for a version this build cannot read (newer, or older without a reader).
 * Returns the header's version.
 */
export function checkSegmentHeader(buf: Uint8Array, file: string, expectedId: number, kind = KIND_SEGMENT): number {
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (view.length < SEGMENT_HEADER_BYTES) throw corruption('file header is truncated', file, 0);
  if (view.readUInt32LE(0) !== SEGMENT_MAGIC) throw corruption('not a logkv file: bad magic number', file, 0);
  if (view.readUInt32LE(16) !== crc32(view.subarray(0, 16))) throw corruption('file header checksum mismatch', file, 0);
  const version = view.readUInt16LE(4);
  if (version !== FORMAT_VERSION) {
    throw corruption(`unsupported format version ${version} (this build reads version ${FORMAT_VERSION})`, file, 4,
      { version });
  }
  if (view.readUInt16LE(6) !== kind) throw corruption(`unexpected file kind ${view.readUInt16LE(6)}`, file, 6);
  const id = view.readUInt32LE(8) + view.readUInt32LE(12) * U32;
  if (id !== expectedId) throw corruption(`header names segment ${id}, file name says ${expectedId}`, file, 8);
  return version;
}

/**
 * Checks a segment's file header (as checkSegmentHeader) and returns the layout its records are
 * read with. Throws LOGKV_CORRUPTION as checkSegmentHeader does.
 */
export function segmentRecordLayout(buf: Uint8Array, file: string, expectedId: number): RecordLayout {
  const version = checkSegmentHeader(buf, file, expectedId);
  const layout = recordLayout(version);
  if (layout === undefined) throw corruption(`no record layout for format version ${version}`, file, 4, { version });
  return layout;
}

/**
 * Encodes one record. `key` is the key (a string, written as UTF-8, or its UTF-8 bytes), `value`
 * the encoded value (undefined for DELETE). The caller has validated both lengths.
 */
export function encodeRecord(type: number, flags: number, key: Buffer | string, value: Uint8Array | undefined,
                             expiresAt: number): Buffer {
  const valueLength = value === undefined ? 0 : value.length;
  const keyLength = typeof key === 'string' ? Buffer.byteLength(key, 'utf8') : key.length;
  const buf = Buffer.allocUnsafe(RECORD_HEADER_BYTES + keyLength + valueLength);
  buf[4] = type;
  buf[5] = flags;
  buf.writeUInt16LE(keyLength, 6);
  buf.writeUInt32LE(valueLength, 8);
  buf.writeUInt32LE(expiresAt % U32, 12);
  buf.writeUInt32LE(Math.floor(expiresAt / U32), 16);
  if (typeof key === 'string') buf.write(key, RECORD_HEADER_BYTES, keyLength, 'utf8');
  else key.copy(buf, RECORD_HEADER_BYTES);
  if (value !== undefined) buf.set(value, RECORD_HEADER_BYTES + keyLength);
  buf.writeUInt32LE(crc32(buf.subarray(4)), 0);
  return buf;
}

/** The fields of a record header. */
export interface RecordHeader {
  crc: number;
  type: number;
  flags: number;
  keyLength: number;
  valueLength: number;
  expiresAt: number;
  /** Bytes of the header itself: the key starts this far into the record. */
  headerLength: number;
  /** headerLength + keyLength + valueLength */
  totalLength: number;
}

/** A header to fill in with RecordLayout.parse(), reused across records. */
export function emptyRecordHeader(): RecordHeader {
  return { crc: 0, type: 0, flags: 0, keyLength: 0, valueLength: 0, expiresAt: 0, headerLength: 0, totalLength: 0 };
}

/**
 * How the records of one format version are laid out: the segment walker (walk.ts) reads a
 * segment's records with the layout its file header's version names, so a new record layout is
 * a new object here and no change to the walker.
 */
export interface RecordLayout {
  /** The file header version whose records this layout reads. */
  readonly version: number;
  /** Bytes of a record header; the key follows it. */
  readonly headerBytes: number;
  /**
   * Fills `out` from the record header at `buf[pos .. pos + headerBytes)`. Returns false when the
   * header is not plausible (then `out` holds garbage). The bounds matter: they cap what a
   * corrupt length can make a reader allocate or read. A plausible header can still belong to a
   * corrupt record; only the CRC says.
   */
  parse(buf: Buffer, pos: number, out: RecordHeader): boolean;
  /** Whether the record of `header` at `pos` (all of it in `buf`) matches its CRC. */
  crcMatches(buf: Buffer, pos: number, header: RecordHeader): boolean;
}

/** The high word of the largest expiry a record may carry. */
const MAX_EXPIRES_HIGH = Math.floor(MAX_EXPIRES_AT / U32);

/** Version 1: the 20-byte record header drawn at the top of this file. */
export const RECORD_LAYOUT_V1: RecordLayout = {
  version: 1,
  headerBytes: RECORD_HEADER_BYTES,
  parse(buf: Buffer, pos: number, out: RecordHeader): boolean {
    const type = buf[pos + 4];
    const flags = buf[pos + 5];
    const keyLength = buf.readUInt16LE(pos + 6);
    const valueLength = buf.readUInt32LE(pos + 8);
    const expiresHigh = buf.readUInt32LE(pos + 16);
    if (type !== TYPE_SET && type !== TYPE_DELETE) return false;
    if ((flags & ~FLAG_BATCH_CONT) !== 0) return false;
    if (keyLength === 0 || keyLength > FORMAT_MAX_KEY_BYTES) return false;
    if (valueLength > FORMAT_MAX_VALUE_BYTES || (type === TYPE_DELETE && valueLength !== 0)) return false;
    if (expiresHigh > MAX_EXPIRES_HIGH) return false;
    out.crc = buf.readUInt32LE(pos);
    out.type = type;
    out.flags = flags;
    out.keyLength = keyLength;
    out.valueLength = valueLength;
    out.expiresAt = buf.readUInt32LE(pos + 12) + expiresHigh * U32;
    out.headerLength = RECORD_HEADER_BYTES;
    out.totalLength = RECORD_HEADER_BYTES + keyLength + valueLength;
    return true;
  },
  crcMatches(buf: Buffer, pos: number, header: RecordHeader): boolean {
    return crc32(buf.subarray(pos + 4, pos + header.totalLength)) === header.crc;
  },
};

/** Every record layout this build reads, by file header version. */
const RECORD_LAYOUTS: ReadonlyMap<number, RecordLayout> = new Map([[1, RECORD_LAYOUT_V1]]);

/** The record layout of file header version `version`, or undefined if this build cannot read it. */
export function recordLayout(version: number): RecordLayout | undefined {
  return RECORD_LAYOUTS.get(version);
}

/**
 * Parses a version-1 record header at `pos` of `buf` into a new object, or null when it is not
 * plausible (see RecordLayout.parse). For single reads; walks reuse one header (walk.ts).
 */
export function parseRecordHeader(buf: Buffer, pos: number): RecordHeader | null {
  const header = emptyRecordHeader();
  return RECORD_LAYOUT_V1.parse(buf, pos, header) ? header : null;
}

/** Whether the record of `header` at `pos` (all of it in `buf`) matches its CRC. */
export function recordCrcMatches(buf: Buffer, pos: number, header: RecordHeader): boolean {
  return RECORD_LAYOUT_V1.crcMatches(buf, pos, header);
}
