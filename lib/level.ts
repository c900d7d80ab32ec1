/**
 * logkv/level: a logkv store as an abstract-level 3 database (`LogkvLevel`), so the Level
 * ecosystem (sublevels, level-read-stream, many-level, encodings) runs over it.
 *
 * Keys. Level keys are byte strings ordered bytewise (a utf8 key by its UTF-8 bytes), and may be
 * empty or not UTF-8 at all (abstract-level's suite stores single bytes 0x80 and 0xC0 and the
 * empty key); logkv keys are non-empty strings ordered by their UTF-8 bytes. No mapping that
 * leaves every UTF-8 key as it is can also place non-UTF-8 bytes in order (between "\x7f…" and
 * "\xc2\x80" no UTF-8 string exists, and the byte 0x80 sorts there), so a Level key is stored as
 * KEY_PREFIX ('~') followed by its bytes read as Latin-1: byte b becomes code point U+00bb, whose
 * UTF-8 sorts exactly as the bytes do. ASCII keys read the same in the store ('user!1' is stored
 * as '~user!1'); other bytes take two. The prefix makes room for the empty key and keeps a
 * LogkvLevel's keys apart from keys the store is given through its own API.
 *
 * Values are kept as strings or as bytes, whichever they came as, and converted on the way out
 * if read in the other format. The private API declares two formats, 'utf8' and 'view', so
 * abstract-level's transcoder hands every encoding to one of them without a lossy step.
 *
 * What `supports` declares, and why:
 *   implicitSnapshots false  an iterator sees writes made after it was created (logkv's
 *                            iterations are consistent, never a snapshot: docs/ordering.md)
 *   explicitSnapshots false  no db.snapshot()
 *   getSync false            reads go through the Store's async API
 *   permanence, seek, has, createIfMissing, errorIfExists, deferredOpen: true
 *
 * Ranges: as abstract-level has them, `gte` overrides `gt` and `lte` overrides `lt` when both
 * are given (logkv's own API applies the tighter of the two). clear() is logkv's: a series of
 * bounded atomic batches, not one.
 *
 * The store is opened in _open() and closed in _close(); `logkv` in the options are logkv's
 * own open() options (OpenOptions).
 */
import { AbstractIterator, AbstractKeyIterator, AbstractLevel, AbstractValueIterator } from 'abstract-level';
import type { AbstractDatabaseOptions, AbstractIteratorOptions, AbstractOpenOptions } from 'abstract-level';
import { ErrorCodes, LogkvError, isErrno } from './errors';
import { fileSystem } from './medium/fs';
import { open } from './open';
import type { OpenOptions } from './options';
import type { Store } from './store';
import type { IterateOptions } from './validate';

/** What a LogkvLevel stores: a string or bytes, as the value came. */
type Stored = string | Uint8Array;
type Format = 'utf8' | 'view';

export interface LogkvLevelOptions<K, V> extends AbstractDatabaseOptions<K, V> {
  /** Options for logkv's open() (sync mode, segment size, medium, ...). */
  logkv?: OpenOptions;
}

export class LogkvLevel<K = string, V = string> extends AbstractLevel<string | Uint8Array, K, V> {
  readonly #location: string;
  readonly #openOptions: OpenOptions | undefined;
  #store: Store<Stored> | undefined;

  constructor(location: string, options: LogkvLevelOptions<K, V> = {}) {
    const { logkv, ...forward } = options;
    super({
      encodings: { utf8: true, view: true },
      implicitSnapshots: false,
      explicitSnapshots: false,
      permanence: true,
      seek: true,
      has: true,
      createIfMissing: true,
      errorIfExists: true,
      deferredOpen: true,
    }, forward);
    if (typeof location !== 'string' || location.length === 0) {
      throw new LogkvError(ErrorCodes.INVALID_ARGUMENT, 'LogkvLevel needs a location: the store\'s directory');
    }
    this.#location = location;
    this.#openOptions = logkv;
  }

  /** The directory of the store. */
  get location(): string {
    return this.#location;
  }

  /** The logkv Store underneath, while the database is open (for stats(), compact(), ...). */
  get store(): Store<Stored> {
    if (this.#store === undefined) throw new LogkvError(ErrorCodes.CLOSED, 'the database is not open');
    return this.#store;
  }

  async _open(options: AbstractOpenOptions): Promise<void> {
    const medium = this.#openOptions?.medium ?? fileSystem;
    let names: string[] | undefined;
    try {
      names = await medium.list(this.#location);
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
    }
    if (names === undefined && options.createIfMissing === false) {
      throw new Error(`${this.#location} does not exist (createIfMissing is false)`);
    }
    if (names !== undefined && names.length > 0 && options.errorIfExists === true) {
      throw new Error(`${this.#location} exists (errorIfExists is true)`);
    }
    this.#store = await open<Stored>(this.#location, this.#openOptions);
  }

  async _close(): Promise<void> {
    const store = this.#store;
    this.#store = undefined;
    await store?.close();
  }

  async _get(key: string | Uint8Array, options: { valueEncoding: Format }): Promise<string | Uint8Array | undefined> {
    const value = await this.store.get(storedKey(key));
    return value === undefined ? undefined : asFormat(value, options.valueEncoding);
  }

  async _getMany(keys: Array<string | Uint8Array>, options: { valueEncoding: Format }): Promise<Array<string | Uint8Array | undefined>> {
    const values = await this.store.getMany(keys.map(storedKey));
    return values.map((value) => value === undefined ? undefined : asFormat(value, options.valueEncoding));
  }

  async _has(key: string | Uint8Array): Promise<boolean> {
    return this.store.has(storedKey(key));
  }

  async _hasMany(keys: Array<string | Uint8Array>): Promise<boolean[]> {
    const store = this.store;
    return Promise.all(keys.map((key) => store.has(storedKey(key))));
  }

  async _put(key: string | Uint8Array, value: string | Uint8Array): Promise<void> {
    await this.store.set(storedKey(key), value);
  }

  async _del(key: string | Uint8Array): Promise<void> {
    await this.store.delete(storedKey(key));
  }

  async _batch(operations: Array<{ type: 'put' | 'del'; key: string | Uint8Array; value?: string | Uint8Array }>): Promise<void> {
    await this.store.batch(operations.map((op) => op.type === 'put'
      ? { type: 'set' as const, key: storedKey(op.key), value: op.value! }
      : { type: 'delete' as const, key: storedKey(op.key) }));
  }

  async _clear(options: LevelRange): Promise<void> {
    await this.store.clear(rangeOf(options));
  }

  _iterator(options: AbstractIteratorOptions<K, V>): LogkvIterator<K, V> {
    return new LogkvIterator(this, options);
  }

  _keys(options: AbstractIteratorOptions<K, V>): LogkvKeyIterator<K, V> {
    return new LogkvKeyIterator(this, options);
  }

  _values(options: AbstractIteratorOptions<K, V>): LogkvValueIterator<K, V> {
    return new LogkvValueIterator(this, options);
  }
}

/** The range options the private API receives: encoded bounds, `limit` -1 for none. */
interface LevelRange {
  gt?: string | Uint8Array;
  gte?: string | Uint8Array;
  lt?: string | Uint8Array;
  lte?: string | Uint8Array;
  reverse?: boolean;
  limit?: number;
  keyEncoding?: Format;
  valueEncoding?: Format;
}

/** Stored before every Level key in the store (see the file's header). */
export const KEY_PREFIX = '~';
const ASCII = /^[\x00-\x7f]*$/;

/** The store's key for a Level key (a string, taken as its UTF-8 bytes, or bytes). */
export function storedKey(key: string | Uint8Array): string {
  if (typeof key === 'string') {
    if (ASCII.test(key)) return KEY_PREFIX + key;
    key = Buffer.from(key, 'utf8');
  }
  return KEY_PREFIX + Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');
}

/** The Level key of a stored key, in `format`. */
function levelKey(stored: string, format: Format): string | Uint8Array {
  const body = stored.slice(KEY_PREFIX.length);
  if (format === 'view') return Buffer.from(body, 'latin1');
  return ASCII.test(body) ? body : Buffer.from(body, 'latin1').toString('utf8');
}

function asFormat(value: Stored, format: Format): string | Uint8Array {
  if (format === 'utf8') return typeof value === 'string' ? value : Buffer.from(value.buffer, value.byteOffset, value.length).toString('utf8');
  return typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
}

/**
 * The store's IterateOptions for a private-API range: within KEY_PREFIX, `gte` over `gt` and
 * `lte` over `lt` as abstract-level has them. Its limit is abstract-level's to count.
 */
function rangeOf(options: LevelRange): IterateOptions {
  const range: IterateOptions = { prefix: KEY_PREFIX, reverse: options.reverse === true };
  if (options.gte !== undefined) range.gte = storedKey(options.gte);
  else if (options.gt !== undefined) range.gt = storedKey(options.gt);
  if (options.lte !== undefined) range.lte = storedKey(options.lte);
  else if (options.lt !== undefined) range.lt = storedKey(options.lt);
  if (options.limit !== undefined && options.limit >= 0) range.limit = options.limit;
  return range;
}

/**
 * `range` narrowed to keys at or past `target` in its direction (seek()): the store takes both
 * `gte` and `gt` and applies the tighter, so the target joins the range's own bounds.
 */
function seekRange(range: IterateOptions, target: string): IterateOptions {
  const narrowed = { ...range };
  const side = range.reverse === true ? 'lte' : 'gte';
  const current = range[side];
  const order = current === undefined ? 0 : Buffer.compare(Buffer.from(target, 'utf8'), Buffer.from(current, 'utf8'));
  if (current === undefined || (range.reverse === true ? order < 0 : order > 0)) narrowed[side] = target;
  return narrowed;
}

/**
 * What the three iterator classes share: a store iteration of entries, replaced by seek(). The
 * limit is left to abstract-level, which counts across seeks and stops asking at it.
 */
class Cursor {
  readonly #db: LogkvLevel<unknown, unknown>;
  /** The iterator's own range: every seek narrows this one, not the last seek's. */
  readonly #own: IterateOptions;
  #range: IterateOptions;
  #entries: AsyncGenerator<[string, Stored], void, undefined> | undefined;

  constructor(db: LogkvLevel<unknown, unknown>, options: LevelRange) {
    this.#db = db;
    this.#own = rangeOf({ ...options, limit: -1 });
    this.#range = this.#own;
  }

  async next(): Promise<[string, Stored] | undefined> {
    this.#entries ??= this.#db.store.entries(this.#range);
    const next = await this.#entries.next();
    return next.done === true ? undefined : next.value;
  }

  async nextv(size: number): Promise<Array<[string, Stored]>> {
    const out: Array<[string, Stored]> = [];
    while (out.length < size) {
      const entry = await this.next();
      if (entry === undefined) break;
      out.push(entry);
    }
    return out;
  }

  seek(target: string | Uint8Array): void {
    void this.#entries?.return();
    this.#entries = undefined;
    this.#range = seekRange(this.#own, storedKey(target));
  }

  async close(): Promise<void> {
    await this.#entries?.return();
    this.#entries = undefined;
  }
}

type AnyLevel = LogkvLevel<unknown, unknown>;

export class LogkvIterator<K, V> extends AbstractIterator<LogkvLevel<K, V>, K, V> {
  readonly #cursor: Cursor;
  readonly #keyFormat: Format;
  readonly #valueFormat: Format;
  readonly #keys: boolean;
  readonly #values: boolean;

  constructor(db: LogkvLevel<K, V>, options: AbstractIteratorOptions<K, V>) {
    super(db, options);
    const given = options as LevelRange & { keys?: boolean; values?: boolean };
    this.#cursor = new Cursor(db as unknown as AnyLevel, given);
    this.#keyFormat = given.keyEncoding ?? 'utf8';
    this.#valueFormat = given.valueEncoding ?? 'utf8';
    this.#keys = given.keys !== false;
    this.#values = given.values !== false;
  }

  async _next(): Promise<[unknown, unknown] | undefined> {
    const entry = await this.#cursor.next();
    return entry === undefined ? undefined : this.#shape(entry);
  }

  async _nextv(size: number): Promise<Array<[unknown, unknown]>> {
    return (await this.#cursor.nextv(size)).map((entry) => this.#shape(entry));
  }

  _seek(target: string | Uint8Array): void {
    this.#cursor.seek(target);
  }

  async _close(): Promise<void> {
    await this.#cursor.close();
  }

  #shape([key, value]: [string, Stored]): [unknown, unknown] {
    return [this.#keys ? levelKey(key, this.#keyFormat) : undefined, this.#values ? asFormat(value, this.#valueFormat) : undefined];
  }
}

export class LogkvKeyIterator<K, V> extends AbstractKeyIterator<LogkvLevel<K, V>, K> {
  readonly #cursor: Cursor;
  readonly #keyFormat: Format;

  constructor(db: LogkvLevel<K, V>, options: AbstractIteratorOptions<K, V>) {
    super(db, options);
    this.#cursor = new Cursor(db as unknown as AnyLevel, options as LevelRange);
    this.#keyFormat = (options as LevelRange).keyEncoding ?? 'utf8';
  }

  async _next(): Promise<unknown> {
    const entry = await this.#cursor.next();
    return entry === undefined ? undefined : levelKey(entry[0], this.#keyFormat);
  }

  async _nextv(size: number): Promise<unknown[]> {
    return (await this.#cursor.nextv(size)).map(([key]) => levelKey(key, this.#keyFormat));
  }

  _seek(target: string | Uint8Array): void {
    this.#cursor.seek(target);
  }

  async _close(): Promise<void> {
    await this.#cursor.close();
  }
}

export class LogkvValueIterator<K, V> extends AbstractValueIterator<LogkvLevel<K, V>, K, V> {
  readonly #cursor: Cursor;
  readonly #valueFormat: Format;

  constructor(db: LogkvLevel<K, V>, options: AbstractIteratorOptions<K, V>) {
    super(db, options);
    this.#cursor = new Cursor(db as unknown as AnyLevel, options as LevelRange);
    this.#valueFormat = (options as LevelRange).valueEncoding ?? 'utf8';
  }

  async _next(): Promise<unknown> {
    const entry = await this.#cursor.next();
    return entry === undefined ? undefined : asFormat(entry[1], this.#valueFormat);
  }

  async _nextv(size: number): Promise<unknown[]> {
    return (await this.#cursor.nextv(size)).map(([, value]) => asFormat(value, this.#valueFormat));
  }

  _seek(target: string | Uint8Array): void {
    this.#cursor.seek(target);
  }

  async _close(): Promise<void> {
    await this.#cursor.close();
  }
}
