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
 * open() (open.ts) builds the rooms from what recovery found and hands them to the Store with a
 * token only it holds, so a Store cannot be made, or started twice, from outside. A read is
 * synchronous work inside an async method; a write has its place in the log, and is visible to
 * reads, before its method returns. docs/architecture.md walks a set and a get through the rooms.
 */
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
  BatchOperation, IterateOptions, KeyRange, PreparedWrite, WriteOptions, checkCompactOptions, checkKey, checkKeys, checkRange,
  deletion, prepareBatch, prepareSet,
} from './validate';
import type { LogWriter } from './writer';

export type { BatchOperation, IterateOptions, WriteOptions } from './validate';

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
  backups: Backups;
  recovery: RecoveryReport;
  /** Releases the directory's lock. */
  release: () => Promise<void>;
}

/** Held only by this module: a Store is made by storeOver(), which open() calls. */
const CONSTRUCT: unique symbol = Symbol('logkv Store');

/** @internal The Store over rooms open() built; it serves at once. */
export function storeOver<V>(rooms: Rooms): Store<V> {
  return new Store<V>(CONSTRUCT, rooms);
}

export class Store<V = unknown> {
  readonly #dir: string;
  readonly #medium: Medium;
  readonly #options: ResolvedOptions;
  readonly #index: KeyIndex;
  readonly #segments: SegmentSet;
  readonly #reader: Reader;
  readonly #writer: LogWriter;
  readonly #compactions: Compactions;
  readonly #backups: Backups;
  readonly #recovery: RecoveryReport;
  readonly #release: () => Promise<void>;
  #status: Status = 'open';
  #closing: Promise<void> | undefined;

  /** @internal Use open(). */
  constructor(token: typeof CONSTRUCT, rooms: Rooms) {
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
    this.#recovery = rooms.recovery;
    this.#release = rooms.release;
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
    const entry = this.#index.live(key);
    return entry === undefined ? undefined : (this.#reader.read(key, entry) as V);
  }

  /** The value of `key` with its expiry, or undefined if it is missing or expired. */
  async getEntry(key: string): Promise<StoreEntry<V> | undefined> {
    this.#checkOpen();
    checkKey(key, this.#options.maxKeyBytes);
    const entry = this.#index.live(key);
    if (entry === undefined) return undefined;
    const value = this.#reader.read(key, entry) as V;
    return entry.expiresAt === 0 ? { value } : { value, expiresAt: entry.expiresAt };
  }

  /** Whether `key` is live. Does not read the value. */
  async has(key: string): Promise<boolean> {
    this.#checkOpen();
    checkKey(key, this.#options.maxKeyBytes);
    return this.#index.live(key) !== undefined;
  }

  /**
   * The values of `keys`, in the order asked: undefined for a key that is missing or expired.
   * The values are those of one moment: no write comes between two of them.
   */
  async getMany(keys: readonly string[]): Promise<Array<V | undefined>> {
    this.#checkOpen();
    checkKeys(keys, this.#options.maxKeyBytes);
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
    for (const key of this.#live(checkRange(options, 'keys()'), NO_ENTRY)) yield key;
  }

  /** The values of the live keys in the range, in key order; the same guarantees as keys(). */
  async *values(options: IterateOptions = {}): AsyncGenerator<V, void, undefined> {
    this.#checkOpen();
    const found: Found = { entry: undefined };
    for (const key of this.#live(checkRange(options, 'values()'), found)) yield this.#reader.read(key, found.entry!) as V;
  }

  /** The live [key, value] pairs in the range, in key order; the same guarantees as keys(). */
  async *entries(options: IterateOptions = {}): AsyncGenerator<[string, V], void, undefined> {
    this.#checkOpen();
    const found: Found = { entry: undefined };
    for (const key of this.#live(checkRange(options, 'entries()'), found)) yield [key, this.#reader.read(key, found.entry!) as V];
  }

  /**
   * The live keys of an iteration, its limit counted, each with its entry left in `found`. Each
   * key the index yields is looked up again when the caller asks for the next one, after its
   * awaits: it may be gone by then.
   */
  *#live(range: KeyRange, found: Found): Generator<string, void, undefined> {
    if (range.limit === 0) return;
    let count = 0;
    for (const key of this.#index.range(range)) {
      this.#checkOpen();
      const entry = this.#index.live(key);
      if (entry === undefined) continue;
      found.entry = entry;
      yield key;
      if (++count >= range.limit) return;
    }
  }

  stats(): StoreStats {
    this.#checkOpen();
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

  /** Sets `key` to `value`, whether or not it exists. */
  set(key: string, value: V, options?: WriteOptions): Promise<void> {
    try {
      this.#checkOpen();
      return this.#writer.write([prepareSet(key, value, options, this.#options)]);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Sets `key` only if it is not live; rejects with LOGKV_KEY_EXISTS otherwise. */
  create(key: string, value: V, options?: WriteOptions): Promise<void> {
    return this.#guard(() => {
      const set = prepareSet(key, value, options, this.#options);
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
    return this.#guard(() => this.#clear(checkRange(options, 'clear()')));
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
      if (batch.length === 0) return deleted;
      await this.#writer.write(batch);
      deleted += batch.length;
    }
  }

  /** Resolves when every write made before it is durable (fdatasync), whatever the sync mode. */
  sync(): Promise<void> {
    return this.#guard(() => this.#writer.sync());
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
      this.#closing = this.#shutdown();
    }
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
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
      else await this.#writeSnapshot();
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
