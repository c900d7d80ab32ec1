/**
 * Values as JSON, for the command line (`logkv get`, `set`, `dump`, `load`): a faithful rendering
 * of every value logkv stores, including the msgpack types JSON has no word for.
 *
 * Plain JSON values (strings, finite numbers, booleans, null, arrays, objects) are written as
 * themselves. Everything else becomes a tagged object, an object whose `"$logkv"` member names the
 * type:
 *
 *   undefined (inside arrays/objects)  {"$logkv": "undefined"}
 *   NaN, Infinity, -Infinity           {"$logkv": "NaN"}, {"$logkv": "Infinity"}, {"$logkv": "-Infinity"}
 *   bigint                             {"$logkv": "BigInt", "value": "-12345678901234567890"}
 *   Date                               {"$logkv": "Date", "value": "2024-05-01T12:00:00.000Z"}
 *   RegExp                             {"$logkv": "RegExp", "source": "^a+$", "flags": "gi"}
 *   Buffer                             {"$logkv": "Buffer", "base64": "aGVsbG8="}
 *   typed arrays                       {"$logkv": "Float64Array", "base64": "..."} (the array's bytes,
 *                                      in the machine's byte order, as msgpackr stores them)
 *   Map                                {"$logkv": "Map", "entries": [[key, value], ...]}
 *   Set                                {"$logkv": "Set", "values": [value, ...]}
 *   an object with its own "$logkv"    {"$logkv": "Object", "value": {...the object...}}
 *   member (so user data can never
 *   be mistaken for a tag)
 *
 * Keys, entries and values inside tags are rendered the same way, recursively. fromTaggedJson() is
 * the exact inverse: for every value v that logkv accepts, fromTaggedJson(toTaggedJson(v)) is a
 * value of the same types, equal to v, and JSON.stringify of the rendering is plain JSON that any
 * tool can read. A malformed tag (an unknown type, a missing or extra member, bad base64) is
 * rejected rather than guessed at.
 */
import { ErrorCodes, LogkvError } from './errors';

export const TAG = '$logkv';

/** A JSON value: what toTaggedJson returns and fromTaggedJson takes. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

const TYPED_ARRAYS = {
  Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array,
  Float32Array, Float64Array, BigInt64Array, BigUint64Array,
} as const;
type TypedArrayName = keyof typeof TYPED_ARRAYS;

function isTypedArrayName(name: string): name is TypedArrayName {
  return Object.prototype.hasOwnProperty.call(TYPED_ARRAYS, name);
}

function bad(message: string): LogkvError {
  return new LogkvError(ErrorCodes.INVALID_VALUE, message);
}

/** Renders a stored value as JSON (see the table above). */
export function toTaggedJson(value: unknown): JsonValue {
  switch (typeof value) {
    case 'string': case 'boolean':
      return value;
    case 'number':
      if (Number.isFinite(value)) return value;
      return { [TAG]: Number.isNaN(value) ? 'NaN' : value > 0 ? 'Infinity' : '-Infinity' };
    case 'undefined':
      return { [TAG]: 'undefined' };
    case 'bigint':
      return { [TAG]: 'BigInt', value: value.toString() };
    case 'function': case 'symbol':
      throw bad(`a ${typeof value} has no JSON rendering`);
  }
  if (value === null) return null;
  if (Array.isArray(value)) return value.map(toTaggedJson);
  if (value instanceof Date) return { [TAG]: 'Date', value: value.toISOString() };
  if (value instanceof RegExp) return { [TAG]: 'RegExp', source: value.source, flags: value.flags };
  if (Buffer.isBuffer(value)) return { [TAG]: 'Buffer', base64: value.toString('base64') };
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    const name = value.constructor.name;
    if (!isTypedArrayName(name)) throw bad(`a ${name} has no JSON rendering`);
    const bytes = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    return { [TAG]: name, base64: bytes.toString('base64') };
  }
  if (value instanceof Map) {
    return { [TAG]: 'Map', entries: [...value].map(([k, v]) => [toTaggedJson(k), toTaggedJson(v)]) };
  }
  if (value instanceof Set) return { [TAG]: 'Set', values: [...value].map(toTaggedJson) };
  const record = value as Record<string, unknown>;
  const out: { [key: string]: JsonValue } = {};
  for (const name of Object.keys(record)) defineMember(out, name, toTaggedJson(record[name]));
  return Object.prototype.hasOwnProperty.call(record, TAG) ? { [TAG]: 'Object', value: out } : out;
}

/** The value a rendering stands for; throws LOGKV_INVALID_VALUE for a malformed tag. */
export function fromTaggedJson(json: unknown): unknown {
  if (json === null || typeof json === 'string' || typeof json === 'boolean') return json;
  if (typeof json === 'number') {
    if (!Number.isFinite(json)) throw bad(`${json} is not a JSON number`);
    return json;
  }
  if (Array.isArray(json)) return json.map(fromTaggedJson);
  if (typeof json !== 'object') throw bad(`a ${typeof json} is not JSON`);
  const record = json as Record<string, unknown>;
  if (Object.prototype.hasOwnProperty.call(record, TAG)) return fromTag(record);
  return plainObject(record);
}

function plainObject(record: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(record)) defineMember(out, name, fromTaggedJson(record[name]));
  return out;
}

/** Sets an own member, even one named __proto__, which plain assignment would turn into a prototype. */
function defineMember(target: object, name: string, value: unknown): void {
  Object.defineProperty(target, name, { value, enumerable: true, writable: true, configurable: true });
}

function fromTag(tag: Record<string, unknown>): unknown {
  const type = tag[TAG];
  if (typeof type !== 'string') throw bad(`"${TAG}" must name a type, received ${JSON.stringify(type)}`);
  switch (type) {
    case 'undefined': members(tag, type, []); return undefined;
    case 'NaN': members(tag, type, []); return NaN;
    case 'Infinity': members(tag, type, []); return Infinity;
    case '-Infinity': members(tag, type, []); return -Infinity;
    case 'BigInt': {
      const text = stringMember(tag, type, 'value');
      if (!/^-?(0|[1-9][0-9]*)$/.test(text)) throw bad(`BigInt value ${JSON.stringify(text)} is not an integer`);
      return BigInt(text);
    }
    case 'Date': {
      const text = stringMember(tag, type, 'value');
      const date = new Date(text);
      // Only the exact form toISOString writes, so a date cannot be read in a local time zone by mistake.
      if (Number.isNaN(date.getTime()) || date.toISOString() !== text) {
        throw bad(`Date value ${JSON.stringify(text)} is not an ISO 8601 UTC time such as 2024-05-01T12:00:00.000Z`);
      }
      return date;
    }
    case 'RegExp': {
      members(tag, type, ['source', 'flags']);
      const { source, flags } = tag;
      if (typeof source !== 'string' || typeof flags !== 'string') throw bad('RegExp source and flags must be strings');
      try {
        return new RegExp(source, flags);
      } catch (err) {
        throw bad(`RegExp: ${(err as Error).message}`);
      }
    }
    case 'Buffer': return base64Member(tag, type);
    case 'Map': {
      members(tag, type, ['entries']);
      if (!Array.isArray(tag.entries)) throw bad('Map entries must be an array');
      return new Map(tag.entries.map((pair: unknown) => {
        if (!Array.isArray(pair) || pair.length !== 2) throw bad('each Map entry must be a [key, value] array');
        return [fromTaggedJson(pair[0]), fromTaggedJson(pair[1])];
      }));
    }
    case 'Set': {
      members(tag, type, ['values']);
      if (!Array.isArray(tag.values)) throw bad('Set values must be an array');
      return new Set(tag.values.map(fromTaggedJson));
    }
    case 'Object': {
      members(tag, type, ['value']);
      const inner = tag.value;
      if (typeof inner !== 'object' || inner === null || Array.isArray(inner)) throw bad('Object value must be an object');
      return plainObject(inner as Record<string, unknown>);
    }
  }
  if (isTypedArrayName(type)) {
    const bytes = base64Member(tag, type);
    const Ctor = TYPED_ARRAYS[type];
    if (bytes.length % Ctor.BYTES_PER_ELEMENT !== 0) {
      throw bad(`${type} needs a multiple of ${Ctor.BYTES_PER_ELEMENT} bytes, received ${bytes.length}`);
    }
    const copy = new ArrayBuffer(bytes.length);
    new Uint8Array(copy).set(bytes);
    return new Ctor(copy);
  }
  throw bad(`unknown "${TAG}" type ${JSON.stringify(type)}`);
}

/** Checks that a tag has exactly these members besides "$logkv". */
function members(tag: Record<string, unknown>, type: string, names: string[]): void {
  for (const name of Object.keys(tag)) {
    if (name !== TAG && !names.includes(name)) throw bad(`a ${type} tag has no member "${name}"`);
  }
  for (const name of names) {
    if (!Object.prototype.hasOwnProperty.call(tag, name)) throw bad(`a ${type} tag needs a member "${name}"`);
  }
}

function stringMember(tag: Record<string, unknown>, type: string, name: string): string {
  members(tag, type, [name]);
  const value = tag[name];
  if (typeof value !== 'string') throw bad(`${type} ${name} must be a string`);
  return value;
}

function base64Member(tag: Record<string, unknown>, type: string): Buffer {
  const text = stringMember(tag, type, 'base64');
  const bytes = Buffer.from(text, 'base64');
  // Buffer.from skips characters that are not base64: insist on the canonical form instead.
  if (bytes.toString('base64') !== text) throw bad(`${type} base64 is not canonical base64`);
  return bytes;
}
