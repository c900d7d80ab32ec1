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
   * The live keys, optionally only those with a prefix, in no particular order. Keys added after
   * the iteration started are not seen, and neither are keys deleted before it reached them; a
   * key is never yielded twice, and an expired or deleted key is never yielded.
   */
  async *keys(options: IterateOptions = {}): AsyncGenerator<string, void, undefined> {
    this.#checkOpen();
    for (const key of this.#index.keys(iteratePrefix(options))) {
      this.#checkOpen();
      if (this.#index.live(key) === undefined) continue;
      yield key;
    }
  }

  /** The live [key, value] pairs; the same guarantees as keys(). */
  async *entries(options: IterateOptions = {}): AsyncGenerator<[string, V], void, undefined> {
    this.#checkOpen();
    for (const key of this.#index.keys(iteratePrefix(options))) {
      this.#checkOpen();
      const entry = this.#index.live(key);
      if (entry === undefined) continue;
      yield [key, this.#reader.read(key, entry) as V];
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

  /**
   * Deletes `key`; resolves true if it was live, false if there was nothing to delete. A key that
   * has expired but is still in the index gets a tombstone all the same (and resolves false): its
   * record is still on disk, and a clock stepped back before the next open would make it live
   * again. A key the sweeper already removed gets none (docs/durability.md says why).
   */
  delete(key: string): Promise<boolean> {
    return this.#guard(() => {
      checkKey(key, this.#options.maxKeyBytes);
      const entry = this.#index.get(key);
      if (entry === undefined) return Promise.resolve(false);
      const wasLive = this.#index.live(key) !== undefined;
      return this.#writer.write([deletion(key)]).then(() => wasLive);
    });
  }

  /**
   * Applies the operations in order, atomically: after a crash either all of them are there or
   * none. Every operation is validated first; if any is invalid, nothing is written.
   */
  batch(operations: ReadonlyArray<BatchOperation<V>>): Promise<void> {
    return this.#guard(() => {
      const prepared = prepareBatch(operations, this.#options);
      // A delete of a key that is not in the index (at that point of the batch) writes nothing;
      // one of an expired key still in the index writes its tombstone, as delete() does.
      const present = new Map<string, boolean>();
      const needed = prepared.filter((op) => {
        const wasPresent = present.has(op.key) ? present.get(op.key)! : this.#index.get(op.key) !== undefined;
        present.set(op.key, op.valueBytes !== undefined);
        return op.valueBytes !== undefined || wasPresent;
      });
      return needed.length === 0 ? Promise.resolve() : this.#writer.write(needed);
    });
  }

  /** Resolves when every write made before it is durable (fdatasync), whatever the sync mode. */
  sync(): Promise<void> {
    return this.#guard(() => this.#writer.sync());
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

  /**
   * Leaves the keydir for the next open to load (snapshot.ts). Best effort: a failure costs only
   * open time, and so does a snapshot that would take the store's files past maxStoreBytes, which
   * is not written.
   */
  async #writeSnapshot(): Promise<void> {
    try {
      await writeSnapshot(this.#medium, this.#dir, this.#segments.snapshotList(), this.#index.keydir,
        this.#options.maxStoreBytes - this.#segments.diskBytes);
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
