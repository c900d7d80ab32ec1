/**
 * The value codec: one pinned msgpackr instance, and the check that a value round-trips.
 *
 * msgpackr's defaults differ between `new Packr()` and `pack()`, and between versions, so every
 * option that affects the bytes is spelled out here, and spec/fixtures holds golden encodings
 * that fail the build if an upgrade changes them.
 *
 * Plain msgpack is used (no msgpackr "records"), so any msgpack reader can decode a value, with
 * these extensions beyond the msgpack spec:
 *   - timestamp (type -1) for Date (msgpack's standard extension);
 *   - msgpackr's own types for BigInt beyond 64 bits (0x42), Set (0x73), RegExp (0x78) and typed
 *     arrays (0x74);
 *   - ours: type 0x4d ("M") for a JS Map: a tag extension followed by an array of [key, value]
 *     pairs. msgpack maps decode to plain objects, so without it a Map would come back as an object.
 */
import { Packr, addExtension } from 'msgpackr';
import { ErrorCodes, LogkvError } from './errors';
import { describe } from './options';

/** A Map on its way into msgpack: the extension below writes it as its entries. */
class MapBox {
  constructor(readonly entries: unknown[]) {}
}

export const MAP_EXTENSION_TYPE = 0x4d;

addExtension({
  Class: MapBox,
  type: MAP_EXTENSION_TYPE,
  write: (box: MapBox) => box.entries,
  read: (entries: Array<[unknown, unknown]>) => new Map(entries),
});

export const packr = new Packr({
  useRecords: false,      // plain msgpack maps for objects, readable by any msgpack decoder
  mapsAsObjects: true,    // msgpack maps decode to plain objects (Maps travel as extension 0x4d)
  moreTypes: true,        // Set, RegExp, typed arrays round-trip through msgpackr's extensions
  int64AsType: 'bigint',  // 64-bit integers decode as BigInt, so bigint values round-trip exactly
  structuredClone: false, // no shared references or cycles (cycles are rejected below)
  bundleStrings: false,
  useFloat32: 0,          // numbers are always exact float64 or integers
  variableMapSize: false,
  copyBuffers: true,      // decoded Buffers and typed arrays never share memory with what was read
                          // (reads decode straight from the block cache, whose memory is reused)
});

/** Nesting deeper than this is rejected: msgpackr recurses, and a deep value would blow the stack. */
export const MAX_VALUE_DEPTH = 256;

const TYPED_ARRAYS: ReadonlySet<unknown> = new Set([
  Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array,
  Float32Array, Float64Array, BigInt64Array, BigUint64Array,
]);

function invalidValue(why: string, key?: string): LogkvError {
  return new LogkvError(ErrorCodes.INVALID_VALUE, `value ${why}`, key === undefined ? {} : { key });
}

/**
 * Checks that msgpack can carry `value` and give back an equal one, and returns what to pack:
 * `value` itself, or a copy in which Maps are boxed for their extension. Rejects undefined at the
 * top, functions, symbols, cycles, class instances (their prototype would be lost), objects with
 * symbol keys, WeakMaps, Promises, Errors and anything else msgpack would change silently.
 */
export function prepareValue(value: unknown, key?: string): unknown {
  if (value === undefined) throw invalidValue('is undefined (use delete() to remove a key)', key);
  // Most values hold no Map: check them without allocating, and copy only when a Map needs boxing.
  const stack: object[] = [];
  return check(value, 0, stack, key) ? box(value) : value;
}

/**
 * Throws LOGKV_INVALID_VALUE if msgpack cannot round-trip `value`; returns whether it contains a
 * Map (which must be boxed before packing). `stack` holds the containers above, to find cycles.
 */
function check(value: unknown, depth: number, stack: object[], key: string | undefined): boolean {
  switch (typeof value) {
    case 'string':
      // msgpack strings are UTF-8: a lone surrogate would come back as U+FFFD, a different string.
      if (!(value as string).isWellFormed()) throw invalidValue('contains a string with a lone surrogate', key);
      return false;
    case 'number':
      // msgpackr writes -0 as the integer 0, so it would come back as +0.
      if (value === 0 && 1 / (value as number) < 0) throw invalidValue('contains -0, which msgpack stores as 0', key);
      return false;
    case 'boolean': case 'bigint': case 'undefined':
      return false;
    case 'function': case 'symbol':
      throw invalidValue(`contains ${describe(value)}, which msgpack cannot store`, key);
  }
  if (value === null) return false;
  const object = value as object;
  if (depth >= MAX_VALUE_DEPTH) throw invalidValue(`is nested deeper than ${MAX_VALUE_DEPTH} levels`, key);
  if (stack.includes(object)) throw invalidValue('contains a cycle', key);
  const proto = Object.getPrototypeOf(object);
  let hasMap = false;
  if (proto === Object.prototype) {
    if (Object.getOwnPropertySymbols(object).length > 0) throw invalidValue('has symbol keys', key);
    stack.push(object);
    const record = object as Record<string, unknown>;
    for (const name in record) {
      if (!Object.prototype.hasOwnProperty.call(record, name)) continue;
      // msgpackr renames an own "__proto__" key on decode (against prototype pollution), and a
      // key with a lone surrogate would come back as another key: either would change the value.
      if (name === '__proto__') throw invalidValue('has an own property named __proto__', key);
      if (!name.isWellFormed()) throw invalidValue('has a property name with a lone surrogate', key);
      if (check(record[name], depth + 1, stack, key)) hasMap = true;
    }
    stack.pop();
    return hasMap;
  }
  if (Array.isArray(object)) {
    if (proto !== Array.prototype) throw invalidValue('contains an Array subclass', key);
    stack.push(object);
    for (let i = 0; i < object.length; i++) if (check(object[i], depth + 1, stack, key)) hasMap = true;
    stack.pop();
    return hasMap;
  }
  if (proto === Map.prototype || proto === Set.prototype) {
    stack.push(object);
    if (proto === Map.prototype) {
      for (const [k, v] of object as Map<unknown, unknown>) {
        check(k, depth + 1, stack, key);
        check(v, depth + 1, stack, key);
      }
    } else {
      for (const item of object as Set<unknown>) if (check(item, depth + 1, stack, key)) hasMap = true;
    }
    stack.pop();
    return proto === Map.prototype || hasMap;
  }
  if (proto === Date.prototype) {
    if (Number.isNaN((object as Date).getTime())) throw invalidValue('contains an invalid Date', key);
    return false;
  }
  if (proto === RegExp.prototype) return false;
  if (Buffer.isBuffer(object) && proto === Buffer.prototype) return false;
  if (TYPED_ARRAYS.has(object.constructor) && proto === object.constructor.prototype) return false;
  const name = typeof object.constructor === 'function' && object.constructor.name ? object.constructor.name : 'object';
  throw invalidValue(`contains a ${name}, which msgpack cannot round-trip`, key);
}

/** A copy of a checked value in which every Map is boxed for its extension. */
function box(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  const proto = Object.getPrototypeOf(value);
  if (proto === Object.prototype) {
    const copy: Record<string, unknown> = {};
    for (const name of Object.keys(value)) copy[name] = box((value as Record<string, unknown>)[name]);
    return copy;
  }
  if (Array.isArray(value)) return value.map(box);
  if (proto === Map.prototype) return new MapBox([...(value as Map<unknown, unknown>)].map(([k, v]) => [box(k), box(v)]));
  if (proto === Set.prototype) return new Set([...(value as Set<unknown>)].map(box));
  return value;
}

/** Encodes a value that prepareValue accepted. */
export function encodeValue(prepared: unknown): Buffer {
  return packr.pack(prepared);
}

export function decodeValue(bytes: Uint8Array): unknown {
  return packr.unpack(bytes);
}

/**
 * Values up to this many bytes are decoded from a copy in `scratch`, which msgpackr reads from
 * its start: it reads a buffer it has seen before without allocating (it keeps the DataView it
 * made on the buffer), and it decodes the strings of a small value in JavaScript only when the
 * value ends less than 140 bytes into its buffer (past that it calls its native extractor, which
 * costs more than it saves on a ~100-byte value). A larger value is decoded from a view.
 */
const SCRATCH_BYTES = 4096;
const scratch = Buffer.allocUnsafeSlow(SCRATCH_BYTES);

/**
 * decodeValue() of `bytes[start .. end)`, for a record that lies inside a larger buffer (a block
 * cache slab): allocates no view for a small value. Throws if the value does not end exactly at
 * `end`.
 */
export function decodeValueAt(bytes: Buffer, start: number, end: number): unknown {
  const length = end - start;
  if (length > SCRATCH_BYTES) return packr.unpack(bytes.subarray(start, end));
  // A loop beats Buffer#copy (which makes a view of the source) at these lengths.
  for (let i = 0; i < length; i++) scratch[i] = bytes[start + i];
  return packr.unpack(scratch, length);
}
