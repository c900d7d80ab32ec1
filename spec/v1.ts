/**
 * Format version 1, written by hand for the specs: logkv reads version-1 stores but never writes
 * one, so the encoder lives here, beside the specs that build old segments byte by byte. It
 * follows docs/format.md's version-1 tables (20-byte file header, 20-byte record header, no
 * version field); spec/format.spec.ts checks it against the committed version-1 golden bytes.
 */
import { crc32 } from '../lib/crc';
import { KIND_SEGMENT, SEGMENT_MAGIC } from '../lib/format';

const U32 = 0x100000000;

/** A version-1 file header (20 bytes) of segment `id`. */
export function encodeSegmentHeaderV1(id: number, kind = KIND_SEGMENT): Buffer {
  const buf = Buffer.alloc(20);
  buf.writeUInt32LE(SEGMENT_MAGIC, 0);
  buf.writeUInt16LE(1, 4);
  buf.writeUInt16LE(kind, 6);
  buf.writeUInt32LE(id % U32, 8);
  buf.writeUInt32LE(Math.floor(id / U32), 12);
  buf.writeUInt32LE(crc32(buf.subarray(0, 16)), 16);
  return buf;
}

/** A version-1 record (20-byte header, then key and value). */
export function encodeRecordV1(type: number, flags: number, key: Buffer | string, value: Uint8Array | undefined,
                               expiresAt: number): Buffer {
  const keyBytes = typeof key === 'string' ? Buffer.from(key, 'utf8') : key;
  const valueLength = value === undefined ? 0 : value.length;
  const buf = Buffer.alloc(20 + keyBytes.length + valueLength);
  buf[4] = type;
  buf[5] = flags;
  buf.writeUInt16LE(keyBytes.length, 6);
  buf.writeUInt32LE(valueLength, 8);
  buf.writeUInt32LE(expiresAt % U32, 12);
  buf.writeUInt32LE(Math.floor(expiresAt / U32), 16);
  keyBytes.copy(buf, 20);
  if (value !== undefined) buf.set(value, 20 + keyBytes.length);
  buf.writeUInt32LE(crc32(buf.subarray(4)), 0);
  return buf;
}
