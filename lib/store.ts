/**
 * The Store: the facade applications hold. Each method checks the store's status and its
 * arguments at the door (validate.ts), then hands the work to a room:
 *
 *   index     (keyindex.ts)  which record holds each live key, expiry, live-byte counts
 *   reader    (reader.ts)    a record's value, checked: queued bytes, block cache, positioned read
 *   writer    (writer.ts)    the log: offsets in call order, group commit, rotation, undo on failure
 *   segments  (segments.ts)  the segment files, the active one, disk bytes
 *   compactions (compactor.ts, switch.ts)  compaction, one at a time, and its automatic trigger
 *
 * open() (open.ts) builds the rooms from what recovery found and hands them to the Store with a
 * token only it holds, so a Store cannot be made, or started twice, from outside. A read is
 * synchronous work inside an async method; a write has its place in the log, and is visible to
 * reads, before its method returns. docs/architecture.md walks a set and a get through the rooms.
 */
import { CompactOptions, CompactionResult, Compactions } from './compactor';
import { ErrorCodes, LogkvError } from './errors';
import type { KeyIndex } from './keyindex';
import type { Medium } from './medium/types';
import { ResolvedOptions, describe } from './options';
import type { Reader } from './reader';
import type { RecoveryReport } from './recovery';
import type { SegmentSet } from './segments';
import { writeSnapshot } from './snapshot';
import {
  BatchOperation, IterateOptions, WriteOptions, checkCompactOptions, checkKey, deletion, iteratePrefix, prepareBatch,
  prepareSet,
} from './validate';
import type { LogWriter } from './writer';

export type { BatchOperation, IterateOptions, WriteOptions } from './validate';

/** What getEntry() returns for a live key. */
export interface StoreEntry<V> {
  value: V;
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
  /** Total size of the store's segment files, including their headers. */
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
    const entry = this.#index.live(key);
    return entry === undefined ? undefined : (this.#reader.read(key, entry) as V);
  }

  /** The value of `key` with its expiry, or undefined if it is missing or expired. */
  async getEntry(key: string): Promise<StoreEntry<V> | undefined> {
    this.#checkOpen();
    checkKey(key, this.#options.maxKeyBytes);
    const wait = this.#shared?.beforeRead(key, true);
    if (wait !== undefined) await this.#waited(wait);
    const entry = this.#index.live(key);
    if (entry === undefined) return undefined;
    const value = this.#reader.read(key, entry) as V;
    return entry.expiresAt === 0 ? { value } : { value, expiresAt: entry.expiresAt };
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
   * The live keys, optionally only those with a prefix, in no particular order. Keys added after
   * the iteration started are not seen, and neither are keys deleted before it reached them; a
   * key is never yielded twice, and an expired or deleted key is never yielded.
   */
  async *keys(options: IterateOptions = {}): AsyncGenerator<string, void, undefined> {
    this.#checkOpen();
    const prefix = iteratePrefix(options);
    const wait = this.#shared?.beforeRead(undefined, true);
    if (wait !== undefined) await this.#waited(wait);
    for (const key of this.#index.keys(prefix)) {
      this.#checkOpen();
      const own = this.#shared?.ownWrites(key);
      if (own !== undefined) await this.#waited(own);
      if (this.#index.live(key) === undefined) continue;
      yield key;
    }
  }

  /** The live [key, value] pairs; the same guarantees as keys(). */
  async *entries(options: IterateOptions = {}): AsyncGenerator<[string, V], void, undefined> {
    this.#checkOpen();
    const prefix = iteratePrefix(options);
    const wait = this.#shared?.beforeRead(undefined, true);
    if (wait !== undefined) await this.#waited(wait);
    for (const key of this.#index.keys(prefix)) {
      this.#checkOpen();
      const own = this.#shared?.ownWrites(key);
      if (own !== undefined) await this.#waited(own);
      const entry = this.#index.live(key);
      if (entry === undefined) continue;
      yield [key, this.#reader.read(key, entry) as V];
    }
  }

  stats(): StoreStats {
    this.#checkOpen();
    this.#shared?.beforeRead(undefined, false);
    const keys = this.#index.size();
    const last = this.#compactions.last;
    const autoError = this.#compactions.lastAutoError;
    return {
      keys,
      segments: this.#segments.fileCount(),
      liveBytes: this.#index.liveBytes,
      deadBytes: this.#segments.deadBytes(this.#index.liveBytes),
      diskBytes: this.#segments.diskBytes,
      compacting: this.#compactions.running,
      ...(last === undefined ? {} : { lastCompaction: last }),
      ...(autoError === undefined ? {} : { lastAutoCompactionError: autoError }),
    };
  }

  // ---------------------------------------------------------------- writes

  /** Sets `key` to `value`, whether or not it exists. */
  set(key: string, value: V, options?: WriteOptions): Promise<void> {
    try {
      this.#checkOpen();
      const prepared = prepareSet(key, value, options, this.#options);
      const remote = this.#shared?.remote;
      if (remote !== undefined) return remote.call('set', [key, value, options]) as Promise<void>;
      return this.#writer.write([prepared]);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Sets `key` only if it is not live; rejects with LOGKV_KEY_EXISTS otherwise. */
  create(key: string, value: V, options?: WriteOptions): Promise<void> {
    return this.#guard(() => {
      const set = prepareSet(key, value, options, this.#options);
      const remote = this.#shared?.remote;
      if (remote !== undefined) return remote.call('create', [key, value, options]) as Promise<void>;
      if (this.#index.live(key) !== undefined) {
        throw new LogkvError(ErrorCodes.KEY_EXISTS, `key ${describe(key)} already exists`, { key });
      }
      return this.#writer.write([set]);
    });
  }

  /** Sets `key` only if it is live; rejects with LOGKV_KEY_NOT_FOUND otherwise. */
  update(key: string, value: V, options?: WriteOptions): Promise<void> {
    return this.#guard(() => {
      const set = prepareSet(key, value, options, this.#options);
      const remote = this.#shared?.remote;
      if (remote !== undefined) return remote.call('update', [key, value, options]) as Promise<void>;
      if (this.#index.live(key) === undefined) {
        throw new LogkvError(ErrorCodes.KEY_NOT_FOUND, `key ${describe(key)} does not exist`, { key });
      }
      return this.#writer.write([set]);
    });
  }

  /** Deletes `key`; resolves true if it was live, false if there was nothing to delete. */
  delete(key: string): Promise<boolean> {
    return this.#guard(() => {
      checkKey(key, this.#options.maxKeyBytes);
      const remote = this.#shared?.remote;
      if (remote !== undefined) return remote.call('delete', [key]) as Promise<boolean>;
      if (this.#index.live(key) === undefined) return Promise.resolve(false);
      return this.#writer.write([deletion(key)]).then(() => true);
    });
  }

  /**
   * Applies the operations in order, atomically: after a crash either all of them are there or
   * none. Every operation is validated first; if any is invalid, nothing is written.
   */
  batch(operations: ReadonlyArray<BatchOperation<V>>): Promise<void> {
    return this.#guard(() => {
      const prepared = prepareBatch(operations, this.#options);
      const remote = this.#shared?.remote;
      if (remote !== undefined) return remote.call('batch', [operations]) as Promise<void>;
      // A delete of a key that is not live (at that point of the batch) writes nothing.
      const live = new Map<string, boolean>();
      const needed = prepared.filter((op) => {
        const wasLive = live.has(op.key) ? live.get(op.key)! : this.#index.live(op.key) !== undefined;
        live.set(op.key, op.valueBytes !== undefined);
        return op.valueBytes !== undefined || wasLive;
      });
      return needed.length === 0 ? Promise.resolve() : this.#writer.write(needed);
    });
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
   * kept. With `dryRun`, reports what it would reclaim and changes nothing. A call while one runs
   * returns the running one.
   */
  compact(options: CompactOptions = {}): Promise<CompactionResult> {
    return this.#guard(() => {
      checkCompactOptions(options);
      const remote = this.#shared?.remote;
      if (remote !== undefined) return remote.call('compact', [options]) as Promise<CompactionResult>;
      return this.#compactions.start(options);
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

  /** The last word to the disk; `snapshot`: leave the keydir for the next open (not while other processes go on). */
  async #shutdown(snapshot: boolean): Promise<void> {
    this.#writer.stopSyncTimer();
    await this.#compactions.stop();
    let failure: unknown;
    try {
      await this.#writer.finish();
      if (this.#writer.failure === undefined && snapshot) await this.#writeSnapshot();
    } catch (err) {
      failure = err;
    } finally {
      await this.#segments.closeAll();
      this.#status = 'closed';
      await this.#release();
    }
    if (failure !== undefined) throw failure;
  }

  /** Leaves the keydir for the next open to load (snapshot.ts). Best effort: a failure costs only open time. */
  async #writeSnapshot(): Promise<void> {
    try {
      await writeSnapshot(this.#medium, this.#dir, this.#segments.snapshotList(), this.#index.keydir);
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
