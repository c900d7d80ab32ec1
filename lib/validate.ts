/**
 * Validation at the door: every argument a Store method takes is checked here, before anything
 * changes, so a call that throws has changed nothing. No I/O, no state: each check takes the
 * limits it needs (ResolvedOptions) and returns what the rooms behind the door work with (a key
 * known to be good, a PreparedWrite whose value is already encoded).
 *
 * Errors are LOGKV_INVALID_KEY, LOGKV_INVALID_VALUE or LOGKV_INVALID_ARGUMENT; messages name what
 * was received (describe()), never the whole value.
 */
import { encodeValue, prepareValue } from './codec';
import { ErrorCodes, LogkvError } from './errors';
import { MAX_EXPIRES_AT } from './format';
import { ResolvedOptions, describe } from './options';

export interface WriteOptions {
  /** Time to live in ms from now: a positive finite number. */
  ttl?: number;
  /** Absolute expiry in ms since the epoch. Mutually exclusive with `ttl`. */
  expiresAt?: number;
}

export type BatchOperation<V> =
  | { type: 'set'; key: string; value: V; ttl?: number; expiresAt?: number }
  | { type: 'delete'; key: string };

export interface IterateOptions {
  /** Only keys that start with this string. */
  prefix?: string;
}

/** A validated write: a set (its value encoded) or a delete (`valueBytes` undefined). */
export interface PreparedWrite {
  key: string;
  /** The msgpack-encoded value; undefined for a delete. */
  valueBytes: Buffer | undefined;
  /** Expiry in ms since the epoch; 0 = never. */
  expiresAt: number;
}

/** Throws LOGKV_INVALID_KEY unless `key` is a non-empty, well-formed string of at most maxKeyBytes in UTF-8. */
export function checkKey(key: unknown, maxKeyBytes: number): asserts key is string {
  if (typeof key !== 'string') throw invalidKey(`a key must be a string, received ${describe(key)}`, undefined);
  if (key.length === 0) throw invalidKey('a key must not be empty', key);
  if (!key.isWellFormed()) throw invalidKey('a key must be well-formed UTF-16 (it holds a lone surrogate)', key);
  // A UTF-16 code unit takes at most 3 UTF-8 bytes, so short keys need no count.
  if (key.length * 3 > maxKeyBytes && Buffer.byteLength(key, 'utf8') > maxKeyBytes) {
    throw invalidKey(`a key must be at most ${maxKeyBytes} bytes in UTF-8`, key);
  }
}

/** The expiry a write's options ask for, in ms since the epoch (0 = never); `clock` is read only for a ttl. */
export function expiryOf(options: WriteOptions | undefined, clock: () => number): number {
  if (options === undefined) return 0;
  if (typeof options !== 'object' || options === null) throw invalidArgument(`write options must be an object, received ${describe(options)}`);
  const { ttl, expiresAt } = options;
  if (ttl !== undefined && expiresAt !== undefined) throw invalidArgument('give ttl or expiresAt, not both');
  if (ttl !== undefined) {
    if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl <= 0) {
      throw invalidArgument(`ttl must be a positive finite number of ms, received ${describe(ttl)}`);
    }
    return Math.min(Math.ceil(clock() + ttl), MAX_EXPIRES_AT);
  }
  if (expiresAt !== undefined) {
    if (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt) || expiresAt <= 0 || expiresAt > MAX_EXPIRES_AT) {
      throw invalidArgument(`expiresAt must be a positive finite time in ms since the epoch, received ${describe(expiresAt)}`);
    }
    return Math.ceil(expiresAt);
  }
  return 0;
}

/** Checks a set's key and options and encodes its value, within maxValueBytes. */
export function prepareSet(key: string, value: unknown, options: WriteOptions | undefined,
                           limits: ResolvedOptions): PreparedWrite {
  checkKey(key, limits.maxKeyBytes);
  const expiresAt = expiryOf(options, limits.clock);
  let valueBytes: Buffer;
  const prepared = prepareValue(value, key);
  try {
    valueBytes = encodeValue(prepared);
  } catch (err) {
    throw new LogkvError(ErrorCodes.INVALID_VALUE, `value cannot be encoded: ${(err as Error).message}`, { key }, err);
  }
  if (valueBytes.length > limits.maxValueBytes) {
    throw new LogkvError(ErrorCodes.INVALID_VALUE,
      `value is ${valueBytes.length} bytes encoded; maxValueBytes is ${limits.maxValueBytes}`, { key });
  }
  return { key, valueBytes, expiresAt };
}

/** A delete of a key already checked. */
export function deletion(key: string): PreparedWrite {
  return { key, valueBytes: undefined, expiresAt: 0 };
}

/**
 * Every operation of a batch, checked and prepared in order; throws at the first bad one, so an
 * invalid batch writes nothing.
 */
export function prepareBatch(operations: unknown, limits: ResolvedOptions): PreparedWrite[] {
  if (!Array.isArray(operations)) throw invalidArgument(`batch() takes an array, received ${describe(operations)}`);
  return operations.map((op: unknown, i) => {
    if (typeof op !== 'object' || op === null) throw invalidArgument(`batch operation ${i} is ${describe(op)}`);
    const operation = op as BatchOperation<unknown>;
    if (operation.type === 'set') return prepareSet(operation.key, operation.value, operation, limits);
    if (operation.type === 'delete') {
      checkKey(operation.key, limits.maxKeyBytes);
      return deletion(operation.key);
    }
    throw invalidArgument(`batch operation ${i} has type ${describe((op as { type?: unknown }).type)}; expected 'set' or 'delete'`);
  });
}

/** The prefix of keys()/entries() options, or undefined for every key. */
export function iteratePrefix(options: IterateOptions): string | undefined {
  if (typeof options !== 'object' || options === null) throw invalidArgument(`iteration options must be an object, received ${describe(options)}`);
  if (options.prefix !== undefined && typeof options.prefix !== 'string') {
    throw invalidArgument(`prefix must be a string, received ${describe(options.prefix)}`);
  }
  return options.prefix || undefined;
}

/** Checks compact()'s options: an object, with onProgress a function if given. */
export function checkCompactOptions(options: { onProgress?: unknown }): void {
  if (typeof options !== 'object' || options === null) throw invalidArgument(`compact() options must be an object, received ${describe(options)}`);
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') {
    throw invalidArgument(`onProgress must be a function, received ${describe(options.onProgress)}`);
  }
}

function invalidKey(message: string, key: string | undefined): LogkvError {
  return new LogkvError(ErrorCodes.INVALID_KEY, message, key === undefined ? {} : { key });
}

function invalidArgument(message: string): LogkvError {
  return new LogkvError(ErrorCodes.INVALID_ARGUMENT, message);
}
