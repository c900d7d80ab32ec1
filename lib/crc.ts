/**
 * CRC-32 (IEEE 802.3, the zlib/PNG polynomial 0xEDB88320, reflected, init and final xor 0xFFFFFFFF).
 *
 * Node's built-in `zlib.crc32` (Node >= 20.15) computes exactly this function natively; the `crc-32`
 * package computes it in JavaScript. We use the built-in where it exists because it is faster
 * (tools/crc-bench.ts measures both), and spec/crc.spec.ts proves both give the same bytes on disk.
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
