/**
 * The on-disk byte layout: file headers and records. Encode, decode, check; no I/O.
 * docs/format.md mirrors this file; a change here is a format change and bumps FORMAT_VERSION.
 *
 * All integers are little-endian; a u64 is written as two u32 words, low word first, and never
 * exceeds 2^53 - 1.
 *
 * File header, version 2 (FILE_HEADER_BYTES = 28), at offset 0 of every segment, hint and
 * snapshot file this build writes:
 *
 *   off  size  field
 *   0    4     magic          "LKVS" (0x4C 0x4B 0x56 0x53)
 *   4    2     version        u16, FORMAT_VERSION = 2
 *   6    2     kind           u16, 1 = segment, 2 = hint, 3 = snapshot
 *   8    8     id             u64, the segment id (equals the file name's id; 0 for a snapshot)
 *   16   8     version floor  u64: the store's version counter is at least this after any
 *                             crash (see "Version floor" below)
 *   24   4     header crc     u32, CRC-32 of bytes 0..23
 *
 * Record, version 2 (RECORD_HEADER_BYTES = 28, then the key and the value):
 *
 *   off  size  field
 *   0    4     crc          u32, CRC-32 of bytes 4 .. end of record (header rest, key and value)
 *   4    1     type         u8, 1 = SET, 2 = DELETE
 *   5    1     flags        u8, bit 0 = BATCH_CONT: more records of the same batch follow;
 *                           other bits are zero
 *   6    2     key length   u16, 1..65535
 *   8    4     value length u32, 0 for DELETE
 *   12   8     expires at   u64 ms since the Unix epoch; 0 = never expires
 *   20   8     version      u64, store-wide and strictly increasing in log order; 0 only on a
 *                           record compaction carried over from a version-1 segment
 *   28   k     key          UTF-8
 *   28+k v     value        msgpack (see codec.ts), absent for DELETE
 *
 * Version 1 (still read, never written) has a 20-byte file header (no version floor; the crc of
 * bytes 0..15 at 16) and a 20-byte record header (no version: its records read as version 0).
 *
 * Version floor: a write segment's is the version of its first record (the next version not yet
 * issued when the segment was started); a compaction output's is the highest of its inputs'
 * floors and 1 + every version its inputs held, dropped records included, so a reopen never
 * issues again a version that compaction dropped (ABA); a hint's is its segment's; a snapshot's
 * is the store's next version. Recovery starts the counter at the highest of them all and of
 * 1 + every record version it replays.
 *
 * A batch of n operations is n consecutive records in one segment; all but the last carry
 * BATCH_CONT. The segment walker (walk.ts) hands over a batch's records only when it reaches the
 * last one, so a batch torn by a crash is dropped whole.
 *
 * Zero padding (version 2): where a record would start, bytes that are all zero up to the end of
 * the file end the segment's records (preallocated space). Zeros followed by anything else are
 * damage, as ever.
 *
 * Records are read through a RecordLayout, one per format version: the walker and the reader take
 * the layout a segment's file header names, so a new record header is a new layout object here
 * and no change to them.
 */
import { crc32, crc32Range } from './crc';
import { corruption } from './errors';
import { FORMAT_MAX_KEY_BYTES, FORMAT_MAX_VALUE_BYTES } from './options';

/** The format version this build writes. It reads this one and every older one (1). */
export const FORMAT_VERSION = 2;
export const SEGMENT_MAGIC = 0x53564b4c; // "LKVS" read as a little-endian u32
export const KIND_SEGMENT = 1;
/** Bytes of a file header as this build writes it (version 2). */
export const SEGMENT_HEADER_BYTES = 28;
/** Bytes of a record header as this build writes it (version 2); the key follows. */
export const RECORD_HEADER_BYTES = 28;
/** The version 1 sizes, for reading old stores. */
export const FILE_HEADER_BYTES_V1 = 20;
export const RECORD_HEADER_BYTES_V1 = 20;

export const TYPE_SET = 1;
export const TYPE_DELETE = 2;
export const FLAG_BATCH_CONT = 1;

const U32 = 0x100000000;

/** Largest expiry the format holds exactly: a JS safe integer. */
export const MAX_EXPIRES_AT = Number.MAX_SAFE_INTEGER;
/** Largest version the format holds exactly: a JS safe integer. */
export const MAX_VERSION = Number.MAX_SAFE_INTEGER;
/** The high word of the largest u64 field value (2^53 - 1): a larger one is implausible. */
const MAX_U53_HIGH = Math.floor(Number.MAX_SAFE_INTEGER / U32);

// ---------------------------------------------------------------- file headers

/**
 * Encodes a version-2 file header. `floor` is the version floor (see the top of this file): the
 * first version of a write segment, the floor a compaction output carries, a hint's segment's
 * floor, or a snapshot's next version.
 */
export function encodeSegmentHeader(segmentId: number, kind = KIND_SEGMENT, floor = 0): Buffer {
  const buf = Buffer.alloc(SEGMENT_HEADER_BYTES);
  buf.writeUInt32LE(SEGMENT_MAGIC, 0);
  buf.writeUInt16LE(FORMAT_VERSION, 4);
  buf.writeUInt16LE(kind, 6);
  writeU64(buf, segmentId, 8);
  writeU64(buf, floor, 16);
  buf.writeUInt32LE(crc32(buf.subarray(0, 24)), 24);
  return buf;
}

/** A checked file header. */
export interface FileHeader {
  /** The format version, which names the record layout of a segment. */
  version: number;
  /** Bytes of the header: where a segment's first record starts. */
  bytes: number;
  /** The version floor; 0 in a version-1 header, which has none. */
  floor: number;
  /** How the segment's records are laid out (for a hint or snapshot: the version's record layout). */
  layout: RecordLayout;
}

/** The size of a file header of format `version`, or undefined for a version this build does not read. */
export function fileHeaderBytes(version: number): number | undefined {
  return version === 1 ? FILE_HEADER_BYTES_V1 : version === 2 ? SEGMENT_HEADER_BYTES : undefined;
}

/**
 * Whether `buf` (the first `got` bytes of a file) starts with a whole file header whose CRC
 * matches, of a version this build reads. For telling a torn header from a bad one.
 */
export function fileHeaderIsWhole(buf: Buffer, got: number): boolean {
  if (got < 6) return false;
  const bytes = fileHeaderBytes(buf.readUInt16LE(4));
  return bytes !== undefined && got >= bytes && buf.readUInt32LE(bytes - 4) === crc32(buf.subarray(0, bytes - 4));
}

/**
 * Checks a file header read from `file` (its first bytes, at least a header's worth when the
 * file has them). Throws LOGKV_CORRUPTION for a bad magic, a bad CRC, a wrong kind or id, and
 * for a version this build cannot read (newer, or older without a reader; `details.version`).
 */
export function checkSegmentHeader(buf: Uint8Array, file: string, expectedId: number, kind = KIND_SEGMENT): FileHeader {
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (view.length < FILE_HEADER_BYTES_V1) throw corruption('file header is truncated', file, 0);
  if (view.readUInt32LE(0) !== SEGMENT_MAGIC) throw corruption('not a logkv file: bad magic number', file, 0);
  const version = view.readUInt16LE(4);
  const bytes = fileHeaderBytes(version);
  if (bytes === undefined) {
    throw corruption(`unsupported format version ${version} (this build reads versions 1 to ${FORMAT_VERSION})`, file, 4,
      { version });
  }
  if (view.length < bytes) throw corruption('file header is truncated', file, 0);
  if (view.readUInt32LE(bytes - 4) !== crc32(view.subarray(0, bytes - 4))) throw corruption('file header checksum mismatch', file, 0);
  if (view.readUInt16LE(6) !== kind) throw corruption(`unexpected file kind ${view.readUInt16LE(6)}`, file, 6);
  const id = readU64(view, 8);
  if (id !== expectedId) throw corruption(`header names segment ${id}, file name says ${expectedId}`, file, 8);
  const floor = version === 1 ? 0 : readU64(view, 16);
  if (floor > MAX_VERSION) throw corruption(`implausible version floor ${floor}`, file, 16);
  return { version, bytes, floor, layout: recordLayout(version)! };
}

/**
 * Checks a segment's file header (as checkSegmentHeader) and returns the layout its records are
 * read with. Throws LOGKV_CORRUPTION as checkSegmentHeader does.
 */
export function segmentRecordLayout(buf: Uint8Array, file: string, expectedId: number): RecordLayout {
  return checkSegmentHeader(buf, file, expectedId).layout;
}

// ---------------------------------------------------------------- records

/**
 * Encodes one version-2 record. `key` is the key (a string, written as UTF-8, or its UTF-8
 * bytes), `value` the encoded value (undefined for DELETE), `version` its store-wide version. The
 * caller has validated every field.
 */
export function encodeRecord(type: number, flags: number, key: Buffer | string, value: Uint8Array | undefined,
                             expiresAt: number, version: number): Buffer {
  // The hot path of every write: the header's bytes are stored one by one (Buffer's write
  // methods check their arguments on every call) and an ASCII key is copied by a loop (its UTF-8
  // bytes are its char codes), which together halve this function's cost for a small record.
  const valueLength = value === undefined ? 0 : value.length;
  let keyLength = asciiLength(key);
  const ascii = keyLength >= 0;
  if (!ascii) keyLength = typeof key === 'string' ? Buffer.byteLength(key, 'utf8') : key.length;
  const total = RECORD_HEADER_BYTES + keyLength + valueLength;
  const buf = Buffer.allocUnsafe(total);
  buf[4] = type;
  buf[5] = flags;
  buf[6] = keyLength;
  buf[7] = keyLength >>> 8;
  putU32(buf, 8, valueLength);
  writeU64(buf, expiresAt, 12);
  writeU64(buf, version, 20);
  if (ascii) {
    const text = key as string;
    for (let i = 0; i < keyLength; i++) buf[RECORD_HEADER_BYTES + i] = text.charCodeAt(i);
  } else if (typeof key === 'string') {
    buf.write(key, RECORD_HEADER_BYTES, keyLength, 'utf8');
  } else {
    buf.set(key, RECORD_HEADER_BYTES);
  }
  if (value !== undefined) buf.set(value, RECORD_HEADER_BYTES + keyLength);
  putU32(buf, 0, crc32Range(buf, 4, total));
  return buf;
}

/** A string key's length if it is all ASCII (so its UTF-8 bytes are its char codes), else -1. */
function asciiLength(key: Buffer | string): number {
  if (typeof key !== 'string') return -1;
  const n = key.length;
  for (let i = 0; i < n; i++) if (key.charCodeAt(i) > 0x7f) return -1;
  return n;
}

/** The fields of a record header. */
export interface RecordHeader {
  crc: number;
  type: number;
  flags: number;
  keyLength: number;
  valueLength: number;
  expiresAt: number;
  /** The record's version; 0 for a version-1 record (and one compaction carried over from it). */
  version: number;
  /** Bytes of the header itself: the key starts this far into the record. */
  headerLength: number;
  /** headerLength + keyLength + valueLength */
  totalLength: number;
}

/** A header to fill in with RecordLayout.parse(), reused across records. */
export function emptyRecordHeader(): RecordHeader {
  return { crc: 0, type: 0, flags: 0, keyLength: 0, valueLength: 0, expiresAt: 0, version: 0, headerLength: 0, totalLength: 0 };
}

/**
 * How the records of one format version are laid out: the segment walker (walk.ts) and the
 * reader read a segment's records with the layout its file header's version names, so a new
 * record layout is a new object here and no change to them.
 */
export interface RecordLayout {
  /** The file header version whose records this layout reads. */
  readonly version: number;
  /** Bytes of the file header of a segment of this version: its first record starts here. */
  readonly fileHeaderBytes: number;
  /** Bytes of a record header; the key follows it. */
  readonly headerBytes: number;
  /**
   * Whether zero bytes from a record boundary to the end of the file end the records (version 2:
   * preallocated space) rather than being damage.
   */
  readonly zeroPaddingEnds: boolean;
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

/** The fields both layouts share, bytes 0..19; false if implausible. */
function parseCommon(buf: Buffer, pos: number, out: RecordHeader, headerBytes: number): boolean {
  const type = buf[pos + 4];
  const flags = buf[pos + 5];
  const keyLength = buf.readUInt16LE(pos + 6);
  const valueLength = buf.readUInt32LE(pos + 8);
  const expiresHigh = buf.readUInt32LE(pos + 16);
  if (type !== TYPE_SET && type !== TYPE_DELETE) return false;
  if ((flags & ~FLAG_BATCH_CONT) !== 0) return false;
  if (keyLength === 0 || keyLength > FORMAT_MAX_KEY_BYTES) return false;
  if (valueLength > FORMAT_MAX_VALUE_BYTES || (type === TYPE_DELETE && valueLength !== 0)) return false;
  if (expiresHigh > MAX_U53_HIGH) return false;
  out.crc = buf.readUInt32LE(pos);
  out.type = type;
  out.flags = flags;
  out.keyLength = keyLength;
  out.valueLength = valueLength;
  out.expiresAt = buf.readUInt32LE(pos + 12) + expiresHigh * U32;
  out.headerLength = headerBytes;
  out.totalLength = headerBytes + keyLength + valueLength;
  return true;
}

function crcMatches(buf: Buffer, pos: number, header: RecordHeader): boolean {
  return crc32Range(buf, pos + 4, pos + header.totalLength) === header.crc;
}

/** Version 1: a 20-byte record header, no version field (its records have version 0). */
export const RECORD_LAYOUT_V1: RecordLayout = {
  version: 1,
  fileHeaderBytes: FILE_HEADER_BYTES_V1,
  headerBytes: RECORD_HEADER_BYTES_V1,
  zeroPaddingEnds: false,
  parse(buf: Buffer, pos: number, out: RecordHeader): boolean {
    if (!parseCommon(buf, pos, out, RECORD_HEADER_BYTES_V1)) return false;
    out.version = 0;
    return true;
  },
  crcMatches,
};

/** Version 2: the 28-byte record header drawn at the top of this file. */
export const RECORD_LAYOUT_V2: RecordLayout = {
  version: 2,
  fileHeaderBytes: SEGMENT_HEADER_BYTES,
  headerBytes: RECORD_HEADER_BYTES,
  zeroPaddingEnds: true,
  parse(buf: Buffer, pos: number, out: RecordHeader): boolean {
    const versionHigh = buf.readUInt32LE(pos + 24);
    if (versionHigh > MAX_U53_HIGH || !parseCommon(buf, pos, out, RECORD_HEADER_BYTES)) return false;
    out.version = buf.readUInt32LE(pos + 20) + versionHigh * U32;
    return true;
  },
  crcMatches,
};

/** Every record layout this build reads, by file header version. */
const RECORD_LAYOUTS: ReadonlyMap<number, RecordLayout> = new Map([[1, RECORD_LAYOUT_V1], [2, RECORD_LAYOUT_V2]]);

/** The record layout of file header version `version`, or undefined if this build cannot read it. */
export function recordLayout(version: number): RecordLayout | undefined {
  return RECORD_LAYOUTS.get(version);
}

/**
 * Parses a record header at `pos` of `buf` into a new object, or null when it is not plausible
 * (see RecordLayout.parse). For single reads; walks reuse one header (walk.ts).
 */
export function parseRecordHeader(buf: Buffer, pos: number, layout: RecordLayout = RECORD_LAYOUT_V2): RecordHeader | null {
  const header = emptyRecordHeader();
  return layout.parse(buf, pos, header) ? header : null;
}

/** Whether the record of `header` at `pos` (all of it in `buf`) matches its CRC (any layout). */
export function recordCrcMatches(buf: Buffer, pos: number, header: RecordHeader): boolean {
  return crcMatches(buf, pos, header);
}

/** Reads a u64 written as two u32 words, low first. */
function readU64(buf: Buffer, at: number): number {
  return buf.readUInt32LE(at) + buf.readUInt32LE(at + 4) * U32;
}

/**
 * Writes a u64 as two u32 words, low first. Without Buffer's argument checks (it is on every
 * record's path): `value` is an integer from 0 to 2^53 - 1 that the caller validated.
 */
function writeU64(buf: Buffer, value: number, at: number): void {
  const low = value % U32;
  putU32(buf, at, low);
  putU32(buf, at + 4, (value - low) / U32);
}

/** writeUInt32LE without its argument checks: `value` is a u32 the caller computed. */
function putU32(buf: Buffer, at: number, value: number): void {
  buf[at] = value;
  buf[at + 1] = value >>> 8;
  buf[at + 2] = value >>> 16;
  buf[at + 3] = value >>> 24;
}
