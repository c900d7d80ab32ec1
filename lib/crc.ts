/**
 * CRC-32 (IEEE 802.3, the zlib/PNG polynomial 0xEDB88320, reflected, init and final xor 0xFFFFFFFF).
 *
 * Node's built-in `zlib.crc32` (Node >= 20.15) computes exactly this function natively; the `crc-32`
 * package computes it in JavaScript. We use the built-in where it exists because it is faster for
 * long inputs; a record's CRC (a short range) is computed by crc32Range, in JavaScript below 256
 * bytes (tools/crc-bench.ts measures all three), and spec/crc.spec.ts proves they all give the same
 * bytes on disk.
 */
import * as zlib from 'zlib';
import CRC32 = require('crc-32');

type Crc32 = (data: Uint8Array, value?: number) => number;

/** The pure-JavaScript implementation, always available. Returns an unsigned 32-bit value. */
export function crc32Js(data: Uint8Array, value = 0): number {
  return CRC32.buf(data, value) >>> 0;
}

const native = (zlib as unknown as { crc32?: Crc32 }).crc32;

/**
 * The native CRC, except for empty input: zlib's crc32() given a null data pointer returns its
 * initial value 0 rather than the running value, and Node passes a null pointer for a buffer
 * over an empty ArrayBuffer, so `zlib.crc32(Buffer.from(new ArrayBuffer(0)), crc)` is 0.
 */
function crc32Native(data: Uint8Array, value = 0): number {
  return data.length === 0 ? value >>> 0 : native!(data, value);
}

/** The implementation the engine uses. Returns an unsigned 32-bit value. */
export const crc32: Crc32 = typeof native === 'function' ? crc32Native : crc32Js;

export const crc32Implementation: 'zlib' | 'crc-32' = typeof native === 'function' ? 'zlib' : 'crc-32';

/**
 * From this many bytes on, crc32Range() hands the bytes to crc32() (zlib's where Node has it).
 * Below it, a call into zlib costs more than the CRC itself: measured on Node 20 for records of
 * ~145 bytes (16-byte key, ~100-byte value), zlib.crc32 of a subarray took ~400 ns, the
 * slice-by-8 loop below ~200 ns; they cross near 256 bytes (tools/crc-bench.ts).
 */
export const CRC_RANGE_NATIVE_FROM = 256;

/** Slice-by-8 tables: TABLES[k * 256 + b] is the CRC of byte b followed by k zero bytes. */
const TABLES = ((): Int32Array => {
  const t = new Int32Array(256 * 8);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    let c = t[n];
    for (let k = 1; k < 8; k++) {
      c = t[c & 0xff] ^ (c >>> 8);
      t[k * 256 + n] = c;
    }
  }
  return t;
})();

/**
 * The CRC-32 of `data[start .. end)`, the same value crc32(data.subarray(start, end)) gives,
 * without making the subarray: a short range (a typical record) is computed here in JavaScript,
 * a long one by crc32(). Returns an unsigned 32-bit value.
 */
export function crc32Range(data: Uint8Array, start: number, end: number): number {
  if (end - start >= CRC_RANGE_NATIVE_FROM) return crc32(data.subarray(start, end));
  return crc32Short(data, start, end);
}

/** The slice-by-8 loop of crc32Range(), for any length (exported for the specs). */
export function crc32Short(data: Uint8Array, start: number, end: number): number {
  const t = TABLES;
  let c = -1;
  let i = start;
  for (; i + 8 <= end; i += 8) {
    c ^= data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24);
    const h = data[i + 4] | (data[i + 5] << 8) | (data[i + 6] << 16) | (data[i + 7] << 24);
    c = t[1792 + (c & 0xff)] ^ t[1536 + ((c >>> 8) & 0xff)] ^ t[1280 + ((c >>> 16) & 0xff)] ^ t[1024 + (c >>> 24)] ^
      t[768 + (h & 0xff)] ^ t[512 + ((h >>> 8) & 0xff)] ^ t[256 + ((h >>> 16) & 0xff)] ^ t[h >>> 24];
  }
  for (; i < end; i++) c = t[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}
