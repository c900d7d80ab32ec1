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
  return walk(value, 0, [], key);
}

function walk(value: unknown, depth: number, stack: object[], key: string | undefined): unknown {
  switch (typeof value) {
    case 'string':
      // msgpack strings are UTF-8: a lone surrogate would come back as U+FFFD, a different string.
      if (!(value as string).isWellFormed()) throw invalidValue('contains a string with a lone surrogate', key);
      return value;
    case 'number':
      // msgpackr writes -0 as the integer 0, so it would come back as +0.
      if (Object.is(value, -0)) throw invalidValue('contains -0, which msgpack stores as 0', key);
      return value;
    case 'boolean': case 'bigint': case 'undefined':
      return value;
    case 'function': case 'symbol':
      throw invalidValue(`contains ${describe(value)}, which msgpack cannot store`, key);
  }
  if (value === null) return value;
  const object = value as object;
  if (depth >= MAX_VALUE_DEPTH) throw invalidValue(`is nested deeper than ${MAX_VALUE_DEPTH} levels`, key);
  if (stack.includes(object)) throw invalidValue('contains a cycle', key);
  const proto = Object.getPrototypeOf(object);
  if (Array.isArray(object)) {
    if (proto !== Array.prototype) throw invalidValue('contains an Array subclass', key);
    return mapChildren(object, object, depth, stack, key, (items) => items);
  }
  if (proto === Object.prototype) {
    if (Object.getOwnPropertySymbols(object).length > 0) throw invalidValue('has symbol keys', key);
    const record = object as Record<string, unknown>;
    const names = Object.keys(record);
    for (const name of names) {
      // msgpackr renames an own "__proto__" key on decode (against prototype pollution), and a
      // key with a lone surrogate would come back as another key: either would change the value.
      if (name === '__proto__') throw invalidValue('has an own property named __proto__', key);
      if (!name.isWellFormed()) throw invalidValue('has a property name with a lone surrogate', key);
    }
    const values = names.map((name) => record[name]);
    return mapChildren(object, values, depth, stack, key, (items) => {
      const copy: Record<string, unknown> = {};
      names.forEach((name, i) => { copy[name] = items[i]; });
      return copy;
    });
  }
  if (proto === Map.prototype) {
    const flat: unknown[] = [];
    for (const [k, v] of object as Map<unknown, unknown>) flat.push(k, v);
    stack.push(object);
    const walked = flat.map((item) => walk(item, depth + 1, stack, key));
    stack.pop();
    const pairs: unknown[] = [];
    for (let i = 0; i < walked.length; i += 2) pairs.push([walked[i], walked[i + 1]]);
    return new MapBox(pairs);
  }
  if (proto === Set.prototype) {
    return mapChildren(object, [...(object as Set<unknown>)], depth, stack, key, (items) => new Set(items));
  }
  if (proto === Date.prototype) {
    if (Number.isNaN((object as Date).getTime())) throw invalidValue('contains an invalid Date', key);
    return value;
  }
  if (proto === RegExp.prototype) return value;
  if (Buffer.isBuffer(object) && proto === Buffer.prototype) return value;
  if (TYPED_ARRAYS.has(object.constructor) && proto === object.constructor.prototype) return value;
  const name = typeof object.constructor === 'function' && object.constructor.name ? object.constructor.name : 'object';
  throw invalidValue(`contains a ${name}, which msgpack cannot round-trip`, key);
}

/** Walks the children; returns the container itself unless a child had to be replaced. */
function mapChildren(container: object, items: unknown[], depth: number, stack: object[], key: string | undefined,
                     rebuild: (items: unknown[]) => unknown): unknown {
  stack.push(container);
  let changed = false;
  const walked = items.map((item) => {
    const result = walk(item, depth + 1, stack, key);
    if (result !== item) changed = true;
    return result;
  });
  stack.pop();
  return changed ? rebuild(walked) : container;
}

/** Encodes a value that prepareValue accepted. */
export function encodeValue(prepared: unknown): Buffer {
  return packr.pack(prepared);
}

export function decodeValue(bytes: Uint8Array): unknown {
  return packr.unpack(bytes);
}
