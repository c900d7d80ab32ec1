/**
 * The Store: the facade applications hold. Each method checks the store's status and its
 * arguments at the door (validate.ts), then hands the work to a room:
 *
 *   index     (keyindex.ts)  which record holds each live key, expiry, live-byte counts
 *   reader    (reader.ts)    a record's value, checked: queued bytes, block cache, positioned read
 *   writer    (writer.ts)    the log: offsets in call order, group commit, rotation, undo on failure
 *   segments  (segments.ts)  the segment files, the active one, disk bytes
 *   compactions (compactor.ts, switch.ts)  compaction, one at a time, and its automatic trigger
 *   backups   (backup.ts)    hot backups into other directories
 *
 *   feed      (watch.ts)     the change feed: watch() iterators, fed by the writer as writes commit
 *
 * open() (open.ts) builds the rooms from what recovery found and hands them to the Store with a
 * token only it holds, so a Store cannot be made, or started twice, from outside. A read is
 * synchronous work inside an async method; a write has its place in the log, its version, and is
 * visible to reads, before its method returns. Compare-and-set (ifVersion) is decided there too,
 * against the version in the key's record header: the index keeps no version per key.
 * docs/architecture.md walks a set and a get through the rooms.
 */
import * as path from 'path';
import { BackupOptions, BackupResult, Backups, checkBackupArguments } from './backup';
import { CompactOptions, CompactionResult, Compactions } from './compactor';
import { ErrorCodes, LogkvError } from './errors';
import type { KeyIndex } from './keyindex';
import type { Medium } from './medium/types';
import { ResolvedOptions, describe } from './options';
import type { Reader } from './reader';
import type { RecoveryReport } from './recovery';
import type { SegmentSet } from './segments';
import { writeSnapshot } from './snapshot';
import { RECORD_HEADER_BYTES } from './format';
import type { Entry } from './keydir';
import {
  BatchOperation, DeleteOptions, IterateOptions, KeyRange, PreparedWrite, SetOptions, TouchOptions, WatchOptions, WriteOptions,
  checkCompactOptions, checkKey, checkKeys, checkRange, deletion, noIfVersion, prepareBatch, prepareSet, touchExpiry, watchOptions,
} from './validate';
import type { ChangeEvent, ChangeFeed } from './watch';
import type { LogWriter } from './writer';

export type {
  BatchOperation, DeleteOptions, IfVersion, IterateOptions, SetOptions, TouchOptions, WatchOptions, WriteOptions,
} from './validate';
export type { ChangeEvent } from './watch';

/**
 * clear() deletes in atomic batches of at most this many keys and this many bytes of tombstone
 * records (a quarter of maxSegmentBytes if that is less), so that no batch nears the size a
 * batch may take, and each commit holds the writer for a bounded time.
 */
export const CLEAR_BATCH_KEYS = 10_000;
export const CLEAR_BATCH_BYTES = 1024 * 1024;

/** Where #live() leaves the entry of the key it yields. */
interface Found {
  entry: Entry | undefined;
}
const NO_ENTRY: Found = { entry: undefined };

/** What getEntry() returns for a live key. */
export interface StoreEntry<V> {
  value: V;
  /**
   * The version of the write that made this value: store-wide, strictly increasing, unchanged by
   * compaction and reopening; 0 for a value written before versions existed (a version-1 store).
   */
  version: number;
  /** When the key expires, in ms since the epoch; absent if it never does. */
  expiresAt?: number;
}

export interface StoreStats {
  /** Live keys (expired keys excluded). */
  keys: number;
  /** Segment files. */
  segments: number;
  /** Bytes of the records that hold live keys' newest values. */
  liveBytes: number;
  /** Bytes of records no longer needed: overwritten, deleted, expired, and tombstones. */
  deadBytes: number;
  /**
   * Total size of the files the store keeps in its directory, what maxStoreBytes caps: segments
   * (headers included) and bytes queued for them, hint files, sidecars, compacted files awaiting
   * removal, and what a running compaction has claimed for its outputs.
   */
  diskBytes: number;
  /** Whether a compaction is running now. */
  compacting: boolean;
  /** The last compaction this store finished since it was opened. */
  lastCompaction?: CompactionResult;
  /** The last automatic compaction's failure, if the last one failed. */
  lastAutoCompactionError?: LogkvError;
}

type Status = 'open' | 'closing' | 'closed';

/** The rooms a Store delegates to, built by open(). */
export interface Rooms {
  dir: string;
  medium: Medium;
  options: ResolvedOptions;
  index: KeyIndex;
  segments: SegmentSet;
  reader: Reader;
  writer: LogWriter;
  compactions: Compactions;
  backups: Backups;
  feed: ChangeFeed;
  recovery: RecoveryReport;
  /** Releases the directory's lock. */
  release: () => Promise<void>;
}

/**
 * @internal What a store opened with `shared: true` adds to the facade (lib/shared/role.ts): in a
 * client, reads first bring the index up with the log another process writes, and writes run at
 * the owner; close() leaves the store to the others.
 */
export interface SharedRole {
  /** A client's write path: the Store method `method` run at the owner. Undefined in the owner. */
  readonly remote: { call(method: string, args: unknown[]): Promise<unknown> } | undefined;
  /**
   * Brings the index up with the log before a read of `key` (undefined: of every key). A promise
   * when the read must wait first (this client's writes of the key in flight); with `wait` false
   * (the synchronous size and stats()), never.
   */
  beforeRead(key: string | undefined, wait: boolean): Promise<void> | undefined;
  /**
   * For an iteration reaching `key`: a promise if this client has writes of the key in flight
   * (the key is then read once they settled), else undefined. No I/O.
   */
  ownWrites(key: string): Promise<void> | undefined;
  /** close() of a shared store; `shutdown` is the single-process one, `snapshot` whether it leaves one. */
  close(shutdown: (snapshot: boolean) => Promise<void>, closed: () => void): Promise<void>;
}

/** Held only by this module: a Store is made by storeOver(), which open() calls. */
const CONSTRUCT: unique symbol = Symbol('logkv Store');

/** @internal The Store over rooms open() built; it serves at once. */
export function storeOver<V>(rooms: Rooms, shared?: SharedRole): Store<V> {
  return new Store<V>(CONSTRUCT, rooms, shared);
}

/**
 * @internal Moves a Store onto new rooms: lib/shared/role.ts, when a client's index was built
 * again, and when a client takes the store over and becomes its owner.
 */
export let moveRooms: (store: Store<unknown>, rooms: Partial<Rooms>) => void = () => undefined;

export class Store<V = unknown> {
  readonly #dir: string;
  #medium: Medium;
  readonly #options: ResolvedOptions;
  #index: KeyIndex;
  #segments: SegmentSet;
  #reader: Reader;
  #writer: LogWriter;
  #compactions: Compactions;
  #backups: Backups;
  readonly #feed: ChangeFeed;
  readonly #recovery: RecoveryReport;
  #release: () => Promise<void>;
  readonly #shared: SharedRole | undefined;
  #status: Status = 'open';
  #closing: Promise<void> | undefined;

  static {
    moveRooms = (store, rooms) => {
      if (rooms.medium !== undefined) store.#medium = rooms.medium;
      if (rooms.index !== undefined) store.#index = rooms.index;
      if (rooms.segments !== undefined) store.#segments = rooms.segments;
      if (rooms.reader !== undefined) store.#reader = rooms.reader;
      if (rooms.writer !== undefined) store.#writer = rooms.writer;
      if (rooms.compactions !== undefined) store.#compactions = rooms.compactions;
      if (rooms.backups !== undefined) store.#backups = rooms.backups;
      if (rooms.release !== undefined) store.#release = rooms.release;
    };
  }

  /** @internal Use open(). */
  constructor(token: typeof CONSTRUCT, rooms: Rooms, shared?: SharedRole) {
    if (token !== CONSTRUCT) throw new LogkvError(ErrorCodes.INVALID_ARGUMENT, 'a Store is made by open()');
    this.#dir = rooms.dir;
    this.#medium = rooms.medium;
    this.#options = rooms.options;
    this.#index = rooms.index;
    this.#segments = rooms.segments;
    this.#reader = rooms.reader;
    this.#writer = rooms.writer;
    this.#compactions = rooms.compactions;
    this.#backups = rooms.backups;
    this.#feed = rooms.feed;
    this.#recovery = rooms.recovery;
    this.#release = rooms.release;
    this.#shared = shared;
  }

  /** The directory this store lives in. */
  get dir(): string {
    return this.#dir;
  }

  /** What open() found and repaired. */
  get recovery(): RecoveryReport {
    return this.#recovery;
  }

  /** The number of live keys. */
  get size(): number {
    this.#checkOpen();
    this.#shared?.beforeRead(undefined, false);
    return this.#index.size();
  }

  get closed(): boolean {
    return this.#status !== 'open';
  }

  // ---------------------------------------------------------------- reads

  /** The value of `key`, or undefined if it is missing or expired. */
  async get(key: string): Promise<V | undefined> {
    this.#checkOpen();
    checkKey(key, this.#options.maxKeyBytes);
    const wait = this.#shared?.beforeRead(key, true);
    if (wait !== undefined) await this.#waited(wait);
    // The record's place straight from the keydir's columns: a get allocates no Entry.
    const record = this.#index.liveRecord(key);
    if (record < 0) return undefined;
    const keydir = this.#index.keydir;
    return this.#reader.readAt(key, keydir.segmentIdOf(record), keydir.offsetOf(record), keydir.lengthOf(record)) as V;
  }

  /** The value of `key` with its version and expiry, or undefined if it is missing or expired. */
  async getEntry(key: string): Promise<StoreEntry<V> | undefined> {
    this.#checkOpen();
    checkKey(key, this.#options.maxKeyBytes);
    const wait = this.#shared?.beforeRead(key, true);
    if (wait !== undefined) await this.#waited(wait);
    const entry = this.#index.live(key);
    if (entry === undefined) return undefined;
    const { value, version } = this.#reader.readEntry(key, entry);
    return entry.expiresAt === 0 ? { value: value as V, version } : { value: value as V, version, expiresAt: entry.expiresAt };
  }

  /** Whether `key` is live. Does not read the value. */
  async has(key: string): Promise<boolean> {
    this.#checkOpen();
    checkKey(key, this.#options.maxKeyBytes);
    const wait = this.#shared?.beforeRead(key, true);
    if (wait !== undefined) await this.#waited(wait);
    return this.#index.live(key) !== undefined;
  }

  /**
   * The values of `keys`, in the order asked: undefined for a key that is missing or expired.
   * The values are those of one moment: no write comes between two of them.
   */
  async getMany(keys: readonly string[]): Promise<Array<V | undefined>> {
    this.#checkOpen();
    checkKeys(keys, this.#options.maxKeyBytes);
    const wait = this.#shared?.beforeRead(undefined, true);
    if (wait !== undefined) await this.#waited(wait);
    return keys.map((key) => {
      const entry = this.#index.live(key);
      return entry === undefined ? undefined : (this.#reader.read(key, entry) as V);
    });
  }

  /**
   * The live keys in the range `options` describe, in the order of their UTF-8 bytes (Unicode
   * code point order), ascending unless `reverse`. Writes, deletes, expiries and compaction may
   * go on while it runs: it stays in order, never yields a key twice, never yields a key that is
   * deleted or expired when it is yielded, and yields every key that is live and in the range
   * throughout. A key set during the iteration is yielded if it lies ahead of the iteration's
   * position, not if it lies behind. It is not a snapshot (see docs/ordering.md).
   */
  async *keys(options: IterateOptions = {}): AsyncGenerator<string, void, undefined> {
    this.#checkOpen();
    const range = checkRange(options, 'keys()');
    await this.#beforeIteration();
    for (const item of this.#live(range, NO_ENTRY)) {
      if (typeof item === 'string') yield item;
      else await this.#waited(item);
    }
  }

  /** The values of the live keys in the range, in key order; the same guarantees as keys(). */
  async *values(options: IterateOptions = {}): AsyncGenerator<V, void, undefined> {
    this.#checkOpen();
    const range = checkRange(options, 'values()');
    await this.#beforeIteration();
    const found: Found = { entry: undefined };
    for (const item of this.#live(range, found)) {
      if (typeof item === 'string') yield this.#reader.read(item, found.entry!) as V;
      else await this.#waited(item);
    }
  }

  /** The live [key, value] pairs in the range, in key order; the same guarantees as keys(). */
  async *entries(options: IterateOptions = {}): AsyncGenerator<[string, V], void, undefined> {
    this.#checkOpen();
    const range = checkRange(options, 'entries()');
    await this.#beforeIteration();
    const found: Found = { entry: undefined };
    for (const item of this.#live(range, found)) {
      if (typeof item === 'string') yield [item, this.#reader.read(item, found.entry!) as V];
      else await this.#waited(item);
    }
  }

  /** In a client of a shared store: catches up with the log, so the iteration sees every resolved write. */
  async #beforeIteration(): Promise<void> {
    const wait = this.#shared?.beforeRead(undefined, true);
    if (wait !== undefined) await this.#waited(wait);
  }

  /**
   * The live keys of an iteration, its limit counted, each with its entry left in `found`. Each
   * key the index yields is looked up again when the caller asks for the next one, after its
   * awaits: it may be gone by then. In a client of a shared store, a key with writes of this
   * process still on their way to the owner first yields the promise of those writes: the caller
   * awaits it and asks again, and only then is the key looked up.
   */
  *#live(range: KeyRange, found: Found): Generator<string | Promise<void>, void, undefined> {
    if (range.limit === 0) return;
    let count = 0;
    for (const key of this.#index.range(range)) {
      this.#checkOpen();
      const own = this.#shared?.ownWrites(key);
      if (own !== undefined) yield own;
      const entry = this.#index.live(key);
      if (entry === undefined) continue;
      found.entry = entry;
      yield key;
      if (++count >= range.limit) return;
    }
  }

  stats(): StoreStats {
    this.#checkOpen();
    this.#shared?.beforeRead(undefined, false);
    const keys = this.#index.size();
    const liveBytes = this.#index.liveBytes;
    const last = this.#compactions.last;
    const autoError = this.#compactions.lastAutoError;
    return {
      keys,
      segments: this.#segments.fileCount(),
      liveBytes,
      deadBytes: this.#segments.deadBytes(liveBytes),
      diskBytes: this.#segments.diskBytes,
      compacting: this.#compactions.running,
      ...(last === undefined ? {} : { lastCompaction: last }),
      ...(autoError === undefined ? {} : { lastAutoCompactionError: autoError }),
    };
  }

  // ---------------------------------------------------------------- writes

  /**
   * Sets `key` to `value`, whether or not it exists; resolves with the version it wrote. With
   * `ifVersion`, only if the key is live with exactly that version (else LOGKV_VERSION_MISMATCH).
   */
  set(key: string, value: V, options?: SetOptions): Promise<number> {
    try {
      this.#checkOpen();
      const set = prepareSet(key, value, options, this.#options);
      const remote = this.#shared?.remote;
      if (remote !== undefined) return remote.call('set', [key, value, options]) as Promise<number>;
      if (set.ifVersion !== undefined) this.#expectVersion(key, set.ifVersion);
      return this.#write(set);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Sets `key` only if it is not live (else LOGKV_KEY_EXISTS); resolves with the version it wrote. */
  create(key: string, value: V, options?: WriteOptions): Promise<number> {
    return this.#guard(() => {
      noIfVersion(options);
      const set = prepareSet(key, value, options, this.#options);
      const remote = this.#shared?.remote;
      if (remote !== undefined) return remote.call('create', [key, value, options]) as Promise<number>;
      if (this.#index.live(key) !== undefined) {
        throw new LogkvError(ErrorCodes.KEY_EXISTS, `key ${describe(key)} already exists`, { key });
      }
      return this.#write(set);
    });
  }

  /**
   * Sets `key` only if it is live (else LOGKV_KEY_NOT_FOUND); resolves with the version it wrote.
   * With `ifVersion`, only if it is live with exactly that version (else LOGKV_VERSION_MISMATCH,
   * also when it is not live at all).
   */
  update(key: string, value: V, options?: SetOptions): Promise<number> {
    return this.#guard(() => {
      const set = prepareSet(key, value, options, this.#options);
      const remote = this.#shared?.remote;
      if (remote !== undefined) return remote.call('update', [key, value, options]) as Promise<number>;
      if (set.ifVersion !== undefined) {
        this.#expectVersion(key, set.ifVersion);
      } else if (this.#index.live(key) === undefined) {
        throw new LogkvError(ErrorCodes.KEY_NOT_FOUND, `key ${describe(key)} does not exist`, { key });
      }
      return this.#write(set);
    });
  }

  /**
   * Deletes `key`; resolves true if it was live, false if there was nothing to delete. With
   * `ifVersion`, only if it is live with exactly that version (else LOGKV_VERSION_MISMATCH). A key
   * that has expired but is still in the index gets a tombstone all the same (and resolves false):
   * its record is still on disk, and a clock stepped back before the next open would make it live
   * again. A key the sweeper already removed gets none (docs/durability.md says why).
   */
  delete(key: string, options?: DeleteOptions): Promise<boolean> {
    return this.#guard(() => {
      checkKey(key, this.#options.maxKeyBytes);
      const deleted = deletion(key, options);
      const remote = this.#shared?.remote;
      if (remote !== undefined) return remote.call('delete', options === undefined ? [key] : [key, options]) as Promise<boolean>;
      if (deleted.ifVersion !== undefined) {
        this.#expectVersion(key, deleted.ifVersion);
        return this.#writer.write([deleted]).then(() => true);
      }
      // Nothing to write, but the answer may rest on a write not yet committed (a delete queued
      // before this one): it is acknowledged no sooner than that write (Writer.settled).
      if (this.#index.get(key) === undefined) return this.#writer.settled().then(() => false);
      const wasLive = this.#index.live(key) !== undefined;
      return this.#writer.write([deleted]).then(() => wasLive);
    });
  }

  /**
   * Gives a live key a new expiry (exactly one of `ttl` or `expiresAt`): a write of the same value
   * with a new version. Resolves true, or false (writing nothing) if the key is not live.
   */
  touch(key: string, options: TouchOptions): Promise<boolean> {
    return this.#guard(() => {
      checkKey(key, this.#options.maxKeyBytes);
      const expiresAt = touchExpiry(options, this.#options.clock);
      const remote = this.#shared?.remote;
      if (remote !== undefined) return remote.call('touch', [key, options]) as Promise<boolean>;
      const entry = this.#index.live(key);
      if (entry === undefined) return this.#writer.settled().then(() => false);
      // The value's bytes as they are: touching never re-encodes (or could change) a value.
      const valueBytes = this.#reader.valueBytes(key, entry);
      return this.#writer.write([{ key, valueBytes, expiresAt }]).then(() => true);
    });
  }

  /**
   * Applies the operations in order, atomically: after a crash either all of them are there or
   * none. Every operation is validated first, and every `ifVersion` checked against the key as
   * it is at that point of the batch; if any fails, nothing is written. Resolves with each
   * operation's version, in order; a delete of a key that is not live (at that point of the
   * batch) writes nothing and gets 0. A batch whose records would not fit in one segment
   * (maxSegmentBytes) is rejected with LOGKV_INVALID_ARGUMENT.
   */
  batch(operations: ReadonlyArray<BatchOperation<V>>): Promise<number[]> {
    return this.#guard(() => {
      const prepared = prepareBatch(operations, this.#options);
      const remote = this.#shared?.remote;
      if (remote !== undefined) return remote.call('batch', [operations]) as Promise<number[]>;
      const { needed, versions } = this.#planBatch(prepared);
      if (needed.length === 0) return this.#writer.settled().then(() => versions);
      return this.#writer.write(needed).then(() => versions);
    });
  }

  /**
   * Which of a batch's operations write (a delete of a key not live at that point writes
   * nothing, unless the key has expired and is still in the index) and the version each gets: the writer gives consecutive versions from its next one,
   * in this order. Throws LOGKV_VERSION_MISMATCH at the first ifVersion that does not hold.
   */
  #planBatch(prepared: PreparedWrite[]): { needed: PreparedWrite[]; versions: number[] } {
    // Each key's version at this point of the batch: undefined when not live, LIVE_UNREAD when
    // live with the record the index names (whose version is read only if an ifVersion asks).
    const at = new Map<string, number | undefined>();
    const needed: PreparedWrite[] = [];
    const versions: number[] = [];
    let next = this.#writer.nextVersion;
    for (const op of prepared) {
      // A key that has expired but is still in the index: a delete of it writes its tombstone, as
      // delete() does, so a clock stepped back before the next open cannot bring it back.
      const expiredInIndex = !at.has(op.key) && this.#index.get(op.key) !== undefined && this.#index.live(op.key) === undefined;
      let current = at.has(op.key) ? at.get(op.key) : (this.#index.live(op.key) === undefined ? undefined : LIVE_UNREAD);
      if (op.ifVersion !== undefined) {
        if (current === LIVE_UNREAD) current = this.#reader.version(op.key, this.#index.live(op.key)!);
        if (current !== op.ifVersion) throw versionMismatch(op.key, op.ifVersion, current);
      }
      if (op.valueBytes === undefined && current === undefined && !expiredInIndex) {
        versions.push(0);
        continue;
      }
      needed.push(op);
      versions.push(next);
      at.set(op.key, op.valueBytes === undefined ? undefined : next);
      next++;
    }
    return { needed, versions };
  }

  /** Writes one set and resolves with its version. */
  #write(set: PreparedWrite): Promise<number> {
    const done = this.#writer.write([set]);
    const version = this.#writer.lastVersion;
    return done.then(() => version);
  }

  /** Throws LOGKV_VERSION_MISMATCH unless `key` is live with exactly `ifVersion` (read from its record). */
  #expectVersion(key: string, ifVersion: number): void {
    const entry = this.#index.live(key);
    const version = entry === undefined ? undefined : this.#reader.version(key, entry);
    if (version !== ifVersion) throw versionMismatch(key, ifVersion, version);
  }

  /**
   * Deletes the live keys in the range `options` describe (every key, given no options), in key
   * order, and resolves with how many it deleted. Not one atomic batch: it deletes in a series of
   * atomic batches of at most CLEAR_BATCH_KEYS keys and CLEAR_BATCH_BYTES bytes of tombstones,
   * each written before the next is gathered, so a crash leaves a clear() partly done (the keys
   * it had reached gone, in key order, the rest there) and a batch never nears the segment size.
   * Keys set in the range while it runs are deleted if they lie ahead of its position (as an
   * iteration would yield them), kept if behind; `limit` counts keys deleted.
   */
  clear(options: IterateOptions = {}): Promise<number> {
    return this.#guard(() => {
      const range = checkRange(options, 'clear()');
      const remote = this.#shared?.remote;
      // A client's clear() runs at the owner, whole: its keys are the owner's to find.
      if (remote !== undefined) return remote.call('clear', [options]) as Promise<number>;
      return this.#clear(range);
    });
  }

  async #clear(range: KeyRange): Promise<number> {
    const keys = this.#index.range(range);
    const batchBytes = Math.min(CLEAR_BATCH_BYTES, Math.floor(this.#options.maxSegmentBytes / 4));
    let deleted = 0;
    for (;;) {
      this.#checkOpen();
      // Gathered and handed to the writer with no await in between: every key is live when written.
      const batch: PreparedWrite[] = [];
      let bytes = 0;
      while (deleted + batch.length < range.limit && batch.length < CLEAR_BATCH_KEYS && bytes < batchBytes) {
        const next = keys.next();
        if (next.done === true) break;
        if (this.#index.live(next.value) === undefined) continue;
        batch.push(deletion(next.value));
        bytes += RECORD_HEADER_BYTES + Buffer.byteLength(next.value, 'utf8');
      }
      if (batch.length === 0) {
        // "Nothing left in the range" may rest on deletes not yet committed: see delete().
        await this.#writer.settled();
        return deleted;
      }
      await this.#writer.write(batch);
      deleted += batch.length;
    }
  }

  // ---------------------------------------------------------------- the change feed

  /**
   * An async iterator of the changes committed from now on, in commit order:
   * `{ type: 'set', key, value, expiresAt?, version }` or `{ type: 'delete', key, version }`. A
   * write is committed when its promise resolves (in the store's sync mode); a write that fails
   * never appears, a batch's changes come together and in order, touch() is a 'set'. Expiry and
   * compaction are not changes. A watcher that falls more than `maxBuffered` events behind gets
   * LOGKV_WATCH_OVERFLOW from next() after the events it holds; `break` (return()) unsubscribes;
   * close() ends every watcher after the events it holds.
   */
  watch(options: WatchOptions = {}): AsyncIterableIterator<ChangeEvent<V>> {
    this.#checkOpen();
    const settings = watchOptions(options);
    // A client's feed is fed as its index follows the log: bring it up to the head first, so the
    // writes that resolved before this call are behind the new watcher, not in front of it.
    this.#shared?.beforeRead(undefined, false);
    return this.#feed.watch<V>(settings);
  }

  /** Resolves when every write made before it is durable (fdatasync), whatever the sync mode. */
  sync(): Promise<void> {
    return this.#guard(() => {
      const remote = this.#shared?.remote;
      return remote !== undefined ? remote.call('sync', []) as Promise<void> : this.#writer.sync();
    });
  }

  /**
   * Rewrites the sealed segments (the active one is sealed first) into new ones that hold only
   * live records, online: reads and writes go on meanwhile, and every write made during it is
   * kept. With `dryRun`, reports what it would reclaim and changes nothing. Each call gets what it
   * asked for: a real call while a real compaction runs (or waits) shares it; a dry run during a
   * real one waits and then measures; a real call during a dry run waits and then compacts.
   */
  compact(options: CompactOptions = {}): Promise<CompactionResult> {
    return this.#guard(() => {
      checkCompactOptions(options);
      const remote = this.#shared?.remote;
      if (remote !== undefined) return remote.call('compact', [options]) as Promise<CompactionResult>;
      return this.#compactions.start(options);
    });
  }

  /**
   * Copies the store into `destDir` while it goes on serving: a consistent copy of the store as
   * it is at this call (every write resolved before it is in the copy; none made after it is),
   * which opens as an ordinary store once the promise resolves. Sealed files are hard-linked
   * when `destDir` is on the same file system, copied otherwise. Backing up again into the same
   * directory transfers only what changed. An interrupted backup leaves `destDir` marked
   * incomplete: open() refuses it (LOGKV_INCOMPLETE_BACKUP) until a backup into it completes.
   */
  backup(destDir: string, options: BackupOptions = {}): Promise<BackupResult> {
    return this.#guard(() => {
      checkBackupArguments(destDir, options);
      const remote = this.#shared?.remote;
      // The owner copies its files; the destination is named as this process sees it.
      if (remote !== undefined) return remote.call('backup', [path.resolve(destDir), options]) as Promise<BackupResult>;
      return this.#backups.start(destDir, options);
    });
  }

  // ---------------------------------------------------------------- lifecycle

  /**
   * Finishes queued writes, syncs, releases the files and the lock. Idempotent: every call returns
   * the same promise. Any other call after close() rejects with LOGKV_CLOSED.
   */
  close(): Promise<void> {
    if (this.#closing === undefined) {
      this.#status = 'closing';
      this.#closing = this.#shared === undefined ? this.#shutdown(true)
        : this.#shared.close((snapshot) => this.#shutdown(snapshot), () => { this.#status = 'closed'; });
    }
    return this.#closing;
  }

  /** close(), for `await using store = await open(dir)`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** The last word to the disk; `snapshot`: leave the keydir for the next open (not while other processes go on). */
  async #shutdown(snapshot: boolean): Promise<void> {
    this.#writer.stopSyncTimer();
    this.#index.stop();
    await this.#backups.stop();
    await this.#compactions.stop();
    let failure: unknown;
    try {
      await this.#writer.finish();
      // A writer that refused writes after a failure cannot say what the disk holds: close()
      // must not resolve as if everything acknowledged were durable.
      if (this.#writer.failure !== undefined) failure = this.#writer.failure;
      else if (snapshot) await this.#writeSnapshot();
    } catch (err) {
      failure = err;
    } finally {
      // Every write queued before close() has committed (and been published) or failed by now.
      this.#feed.closeAll();
      await this.#segments.closeAll();
      this.#status = 'closed';
      await this.#release();
    }
    if (failure !== undefined) throw failure;
  }

  /**
   * Leaves the keydir for the next open to load (snapshot.ts). Best effort: a failure costs only
   * open time, and so does a snapshot that would take the store's files past maxStoreBytes, which
   * is not written.
   */
  async #writeSnapshot(): Promise<void> {
    try {
      await writeSnapshot(this.#medium, this.#dir, this.#segments.snapshotList(), this.#index.keydir, this.#writer.nextVersion,
        this.#options.maxStoreBytes - this.#segments.diskBytes);
    } catch {
      // The next open replays the log instead.
    }
  }

  /** A read of a shared store that had to wait for the log: the store may have closed meanwhile. */
  async #waited(wait: Promise<void>): Promise<void> {
    await wait;
    this.#checkOpen();
  }

  #checkOpen(): void {
    if (this.#status !== 'open') throw new LogkvError(ErrorCodes.CLOSED, 'the store is closed');
  }

  /** Runs a call's synchronous part; turns a throw into a rejected promise. */
  #guard<T>(body: () => Promise<T>): Promise<T> {
    try {
      this.#checkOpen();
      return body();
    } catch (err) {
      return Promise.reject(err);
    }
  }
}

/** A key live with the record the index names, its version not read yet (versions are never negative). */
const LIVE_UNREAD = -1;

function versionMismatch(key: string, ifVersion: number, version: number | undefined): LogkvError {
  const found = version === undefined ? 'it is not live' : `it has version ${version}`;
  return new LogkvError(ErrorCodes.VERSION_MISMATCH, `key ${describe(key)}: ifVersion ${ifVersion}, but ${found}`,
    version === undefined ? { key, ifVersion } : { key, ifVersion, version });
}
