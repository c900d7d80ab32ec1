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
import { MAX_EXPIRES_AT, MAX_VERSION } from './format';
import { ResolvedOptions, describe } from './options';
import type { WatchSettings } from './watch';

export interface WriteOptions {
  /** Time to live in ms from now: a positive finite number. */
  ttl?: number;
  /** Absolute expiry in ms since the epoch. Mutually exclusive with `ttl`. */
  expiresAt?: number;
}

/** Compare-and-set: the write happens only if the key is live with exactly this version. */
export interface IfVersion {
  /**
   * The version the key must have (getEntry().version, or what the write that made it resolved
   * with), checked at this call's place in the call order; else the call rejects with
   * LOGKV_VERSION_MISMATCH and writes nothing. 0 matches a record written before versions
   * existed (a version-1 store's).
   */
  ifVersion?: number;
}

/** Options of set() and update(). */
export interface SetOptions extends WriteOptions, IfVersion {}

/** Options of delete(). */
export interface DeleteOptions extends IfVersion {}

/** Options of touch(): a new expiry, given as exactly one of `ttl` or `expiresAt`. */
export interface TouchOptions {
  ttl?: number;
  expiresAt?: number;
}

export type BatchOperation<V> =
  | { type: 'set'; key: string; value: V; ttl?: number; expiresAt?: number; ifVersion?: number }
  | { type: 'delete'; key: string; ifVersion?: number };

export interface WatchOptions {
  /** Only changes of keys that start with this string. */
  prefix?: string;
  /**
   * Most events the watcher holds for its consumer: one that falls further behind gets
   * LOGKV_WATCH_OVERFLOW after the events it holds. A whole batch is taken when the buffer is
   * empty, however large. A positive integer. @default 10000
   */
  maxBuffered?: number;
}

/** The default bound of a watcher's buffer. */
export const DEFAULT_MAX_BUFFERED = 10_000;
const MAX_MAX_BUFFERED = 2 ** 31 - 1;

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
  /** The version the key must have for the write to happen (compare-and-set); undefined: no condition. */
  ifVersion?: number;
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

/** Checks a set's key and options (with ifVersion) and encodes its value, within maxValueBytes. */
export function prepareSet(key: string, value: unknown, options: SetOptions | undefined,
                           limits: ResolvedOptions): PreparedWrite {
  checkKey(key, limits.maxKeyBytes);
  const expiresAt = expiryOf(options, limits.clock);
  const ifVersion = options === undefined ? undefined : checkIfVersion(options.ifVersion);
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
  return ifVersion === undefined ? { key, valueBytes, expiresAt } : { key, valueBytes, expiresAt, ifVersion };
}

/** A delete of a key already checked, with delete()'s options checked. */
export function deletion(key: string, options?: DeleteOptions): PreparedWrite {
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw invalidArgument(`delete options must be an object, received ${describe(options)}`);
  }
  const ifVersion = options === undefined ? undefined : checkIfVersion(options.ifVersion);
  return ifVersion === undefined ? { key, valueBytes: undefined, expiresAt: 0 } : { key, valueBytes: undefined, expiresAt: 0, ifVersion };
}

/** Throws LOGKV_INVALID_ARGUMENT if create() was given an ifVersion (it has a condition of its own). */
export function noIfVersion(options: SetOptions | undefined): void {
  if (typeof options === 'object' && options !== null && options.ifVersion !== undefined) {
    throw invalidArgument('create() takes no ifVersion: it writes only if the key is not live');
  }
}

/** An ifVersion option: undefined, or a version (a non-negative safe integer). */
export function checkIfVersion(ifVersion: unknown): number | undefined {
  if (ifVersion === undefined) return undefined;
  if (typeof ifVersion !== 'number' || !Number.isInteger(ifVersion) || ifVersion < 0 || ifVersion > MAX_VERSION) {
    throw invalidArgument(`ifVersion must be a version (an integer from 0 to 2^53 - 1), received ${describe(ifVersion)}`);
  }
  return ifVersion;
}

/** touch()'s new expiry, in ms since the epoch: exactly one of ttl or expiresAt must be given. */
export function touchExpiry(options: TouchOptions, clock: () => number): number {
  if (typeof options !== 'object' || options === null) {
    throw invalidArgument(`touch() takes { ttl } or { expiresAt }, received ${describe(options)}`);
  }
  if (options.ttl === undefined && options.expiresAt === undefined) {
    throw invalidArgument('touch() needs a new expiry: give ttl or expiresAt');
  }
  return expiryOf({ ttl: options.ttl, expiresAt: options.expiresAt }, clock);
}

/** watch()'s options, checked, with their defaults. */
export function watchOptions(options: WatchOptions): WatchSettings {
  if (typeof options !== 'object' || options === null) throw invalidArgument(`watch options must be an object, received ${describe(options)}`);
  const { prefix, maxBuffered = DEFAULT_MAX_BUFFERED } = options;
  if (prefix !== undefined && typeof prefix !== 'string') throw invalidArgument(`prefix must be a string, received ${describe(prefix)}`);
  if (typeof maxBuffered !== 'number' || !Number.isInteger(maxBuffered) || maxBuffered < 1 || maxBuffered > MAX_MAX_BUFFERED) {
    throw new LogkvError(ErrorCodes.INVALID_ARGUMENT,
      `maxBuffered must be an integer from 1 to ${MAX_MAX_BUFFERED}, received ${describe(maxBuffered)}`, { option: 'maxBuffered' });
  }
  return { prefix: prefix || undefined, maxBuffered };
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
      return deletion(operation.key, { ifVersion: operation.ifVersion });
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
