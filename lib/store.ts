/**
 * The Store: validation at the door, the keydir, the ordered write queue with group commit, and
 * reads that never wait behind writes.
 *
 * How order is kept: every write call validates its arguments, checks its preconditions against
 * the keydir, gives its record(s) a place at the tail of the active segment, and updates the keydir,
 * all synchronously, before it returns its promise. So calls take effect in the order they are
 * made, and a read made after a write sees it at once (from the queued bytes if they have not
 * reached the file yet). The writer then hands queued records to the medium in order; with
 * sync 'always' a group of records shares one fdatasync (group commit).
 *
 * If a write or sync fails, the failed group and everything queued after it are rejected, their
 * keydir changes are undone in reverse, and the file is truncated back, so a rejected call changes
 * nothing. If even that repair fails, the store refuses further writes (LOGKV_IO) until reopened.
 */
import * as path from 'path';
import { BlockCache } from './cache';
import { decodeValue, encodeValue, prepareValue } from './codec';
import { CompactOptions, CompactionHost, CompactionResult, compact } from './compactor';
import { ErrorCodes, LogkvError, corruption, ioError } from './errors';
import { ExpirySweeper } from './expiry';
import {
  FLAG_BATCH_CONT, MAX_EXPIRES_AT, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES, TYPE_DELETE, TYPE_SET,
  encodeRecord, encodeSegmentHeader, parseRecordHeader, recordCrcMatches,
} from './format';
import { Entry, KeyDir } from './keydir';
import type { Medium } from './medium/types';
import { ResolvedOptions, describe, tombstoneReserveBytes } from './options';
import type { RecoveryReport } from './recovery';
import { writeSnapshot } from './snapshot';
import { SEGMENT_ID_STEP, Segment, segmentName } from './segment';

export interface WriteOptions {
  /** Time to live in ms from now: a positive finite number. */
  ttl?: number;
  /** Absolute expiry in ms since the epoch. Mutually exclusive with `ttl`. */
  expiresAt?: number;
}

export type BatchOperation<V> =
  | { type: 'set'; key: string; value: V; ttl?: number; expiresAt?: number }
  | { type: 'delete'; key: string };

/** What getEntry() returns for a live key. */
export interface StoreEntry<V> {
  value: V;
  /** When the key expires, in ms since the epoch; absent if it never does. */
  expiresAt?: number;
}

export interface IterateOptions {
  /** Only keys that start with this string. */
  prefix?: string;
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

interface WriteOp {
  /** The segment the records go to; undefined for a sync request. */
  segment: Segment | undefined;
  offset: number;
  chunks: Buffer[];
  /** Keydir entries these records replaced, in the order they were applied. */
  undo: Array<[string, Entry | undefined]>;
}

/**
 * The promise shared by every write of one group. A group's writes succeed or fail together
 * (a failure rejects the group and everything queued after it), so one promise per group says the
 * same as one per call, and a burst of thousands of calls costs one promise, not thousands.
 */
interface GroupPromise {
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: LogkvError) => void;
}

function groupPromise(): GroupPromise {
  let resolve!: () => void;
  let reject!: (err: LogkvError) => void;
  const promise = new Promise<void>((res, rej) => { resolve = res; reject = rej; });
  return { promise, resolve, reject };
}

/** Closes over what a store needs from open(). */
export interface StoreInit {
  dir: string;
  medium: Medium;
  options: ResolvedOptions;
  release: () => Promise<void>;
  lockCompromised: () => Error | undefined;
}

export class Store<V = unknown> {
  readonly #dir: string;
  readonly #medium: Medium;
  readonly #options: ResolvedOptions;
  readonly #release: () => Promise<void>;
  readonly #lockCompromised: () => Error | undefined;
  #keydir = new KeyDir();
  readonly #cache: BlockCache;
  /** Removes expired keys in the background, a few ms at a time (expiry.ts). */
  readonly #sweeper = new ExpirySweeper({
    clock: () => this.#options.clock(),
    nextExpiry: () => this.#keydir.nextExpiry(),
    purge: (now, limit) => this.#keydir.takeExpired(now, limit, this.#forget),
  });
  /** Takes a removed record's bytes out of the live count. */
  readonly #forget = (_record: number, length: number): void => { this.#liveBytes -= length; };
  readonly #segments = new Map<number, Segment>();
  #active!: Segment;
  #status: Status = 'open';
  #liveBytes = 0;
  #diskBytes = 0;
  #queue: WriteOp[] = [];
  /** The promise of the writes in #queue. */
  #queued: GroupPromise | undefined;
  /** The group the writer is writing now. */
  #inflight: WriteOp[] = [];
  #draining = false;
  #compacting: Promise<CompactionResult> | undefined;
  #compactionAborted = false;
  /** Set while a compaction moves the keydir from its inputs to its outputs. */
  #switching: { inputs: Segment[]; inputIds: Set<number>; restored: Set<string> } | undefined;
  #lastCompaction: CompactionResult | undefined;
  #autoCompactionError: LogkvError | undefined;
  /** Files an earlier compaction could not remove; the next one removes them first. */
  readonly #garbage: string[] = [];
  #idleWaiters: Array<() => void> = [];
  #failure: LogkvError | undefined;
  #closing: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #recovery: RecoveryReport = { segments: 0, records: 0, hinted: 0, hintsIgnored: [], removed: [], snapshot: false };

  /** @internal Use open(). */
  constructor(init: StoreInit) {
    this.#dir = init.dir;
    this.#medium = init.medium;
    this.#options = init.options;
    this.#release = init.release;
    this.#lockCompromised = init.lockCompromised;
    this.#cache = new BlockCache(init.options.cacheBytes);
  }

  /** @internal Makes room in the keydir for `count` more keys (a hint file's), before they come. */
  reserveRecovered(count: number): void {
    this.#keydir.reserve(count);
  }

  /** @internal Replays a record during recovery; the key is UTF-8 bytes. */
  applyRecovered(bytes: Buffer, start: number, length: number, entry: Entry | undefined): void {
    const previous = this.#keydir.putBytes(bytes, start, length, entry);
    if (previous !== undefined) this.#liveBytes -= previous.length;
    if (entry !== undefined) this.#liveBytes += entry.length;
  }

  /** @internal Installs the recovered segments (and keydir, if loaded from a snapshot) and starts serving. */
  start(segments: Segment[], report: RecoveryReport, keydir?: KeyDir): void {
    if (keydir !== undefined) {
      this.#keydir = keydir;
      this.#liveBytes = keydir.loaded!.totalLength;
    }
    for (const segment of segments) this.#segments.set(segment.id, segment);
    const newest = segments[segments.length - 1];
    if (newest !== undefined && newest.id % SEGMENT_ID_STEP === 0) {
      this.#active = newest;
    } else if (newest !== undefined) {
      // The newest segment is a compaction output: appending to it would make its hint file
      // stale (and the next open scan it). Writes start a segment of their own instead.
      const id = (Math.floor(newest.id / SEGMENT_ID_STEP) + 1) * SEGMENT_ID_STEP;
      this.#active = new Segment(id, path.join(this.#dir, segmentName(id)), undefined, 0);
      this.#segments.set(id, this.#active);
    } else {
      const id = SEGMENT_ID_STEP;
      this.#active = new Segment(id, path.join(this.#dir, segmentName(id)), undefined, 0);
      this.#segments.set(id, this.#active);
    }
    this.#diskBytes = this.#sumTails();
    this.#recovery = report;
    this.#sweeper.start();
    if (this.#options.sync === 'interval') {
      this.#timer = setInterval(() => this.#syncInBackground(), this.#options.syncIntervalMs);
      this.#timer.unref();
    }
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
    return this.#keydir.size - this.#countExpired(this.#options.clock());
  }

  get closed(): boolean {
    return this.#status !== 'open';
  }

  // ---------------------------------------------------------------- reads

  /** The value of `key`, or undefined if it is missing or expired. */
  async get(key: string): Promise<V | undefined> {
    this.#checkOpen();
    this.#checkKey(key);
    const entry = this.#liveEntry(key);
    return entry === undefined ? undefined : (this.#readValue(key, entry) as V);
  }

  /** The value of `key` with its expiry, or undefined if it is missing or expired. */
  async getEntry(key: string): Promise<StoreEntry<V> | undefined> {
    this.#checkOpen();
    this.#checkKey(key);
    const entry = this.#liveEntry(key);
    if (entry === undefined) return undefined;
    const value = this.#readValue(key, entry) as V;
    return entry.expiresAt === 0 ? { value } : { value, expiresAt: entry.expiresAt };
  }

  /** Whether `key` is live. Does not read the value. */
  async has(key: string): Promise<boolean> {
    this.#checkOpen();
    this.#checkKey(key);
    return this.#liveEntry(key) !== undefined;
  }

  /**
   * The live keys, optionally only those with a prefix, in no particular order. Keys added after
   * the iteration started are not seen, and neither are keys deleted before it reached them; a
   * key is never yielded twice, and an expired or deleted key is never yielded.
   */
  async *keys(options: IterateOptions = {}): AsyncGenerator<string, void, undefined> {
    const prefix = this.#checkIterate(options);
    for (const key of this.#keydir.keys()) {
      this.#checkOpen();
      if (prefix !== undefined && !key.startsWith(prefix)) continue;
      if (this.#liveEntry(key) === undefined) continue;
      yield key;
    }
  }

  /** The live [key, value] pairs; the same guarantees as keys(). */
  async *entries(options: IterateOptions = {}): AsyncGenerator<[string, V], void, undefined> {
    const prefix = this.#checkIterate(options);
    for (const key of this.#keydir.keys()) {
      this.#checkOpen();
      if (prefix !== undefined && !key.startsWith(prefix)) continue;
      const entry = this.#liveEntry(key);
      if (entry === undefined) continue;
      yield [key, this.#readValue(key, entry) as V];
    }
  }

  stats(): StoreStats {
    this.#checkOpen();
    const now = this.#options.clock();
    const segments = this.#segmentFiles();
    const liveBytes = this.#liveBytes - this.#keydir.expiredLength(now);
    return {
      keys: this.#keydir.size - this.#countExpired(now),
      segments,
      liveBytes,
      deadBytes: this.#diskBytes - segments * SEGMENT_HEADER_BYTES - liveBytes,
      diskBytes: this.#diskBytes,
      compacting: this.#compacting !== undefined,
      ...(this.#lastCompaction === undefined ? {} : { lastCompaction: this.#lastCompaction }),
      ...(this.#autoCompactionError === undefined ? {} : { lastAutoCompactionError: this.#autoCompactionError }),
    };
  }

  // ---------------------------------------------------------------- compaction

  /**
   * Rewrites the sealed segments (the active one is sealed first) into new ones that hold only
   * live records, online: reads and writes go on meanwhile, and every write made during it is
   * kept. With `dryRun`, reports what it would reclaim and changes nothing. A call while one runs
   * returns the running one.
   */
  compact(options: CompactOptions = {}): Promise<CompactionResult> {
    return this.#guard(() => {
      if (typeof options !== 'object' || options === null) throw invalidArgument(`compact() options must be an object, received ${describe(options)}`);
      if (options.onProgress !== undefined && typeof options.onProgress !== 'function') {
        throw invalidArgument(`onProgress must be a function, received ${describe(options.onProgress)}`);
      }
      if (this.#compacting !== undefined) return this.#compacting;
      if (this.#failure !== undefined) throw this.#failure;
      const running = compact(this.#compactionHost(options.dryRun === true), options)
        .then((result) => {
          if (!result.dryRun) this.#lastCompaction = result;
          return result;
        })
        .finally(() => { this.#compacting = undefined; });
      this.#compacting = running;
      return running;
    });
  }

  #compactionHost(dryRun: boolean): CompactionHost {
    return {
      dir: this.#dir,
      medium: this.#medium,
      maxSegmentBytes: this.#options.maxSegmentBytes,
      garbage: this.#garbage,
      now: () => this.#options.clock(),
      aborted: () => this.#compactionAborted,
      sync: () => this.#enqueue(undefined, 0, [], []),
      seal: async () => {
        if (!dryRun && this.#active.tail > SEGMENT_HEADER_BYTES) this.#rotate();
        // The inputs are the segments sealed now. Taken after the sync below, a segment that
        // writes made meanwhile filled and rotated would be one too, though it holds writes
        // newer than the seal (and queued ones, whose undo the copy keeps): see the regression
        // spec in spec/faults/compaction.spec.ts.
        const limit = dryRun ? Infinity : this.#active.id;
        await this.#enqueue(undefined, 0, [], []); // every write so far, durable
        return [...this.#segments.values()].filter((s) => s.id < limit && s.file !== undefined).sort((a, b) => a.id - b.id);
      },
      mustKeep: (key, segmentId, offset, undoRefs) => {
        if (undoRefs.has(offset)) return true;
        const entry = this.#keydir.get(key);
        return entry !== undefined && entry.segmentId === segmentId && entry.offset === offset &&
          (entry.expiresAt === 0 || entry.expiresAt > this.#options.clock());
      },
      undoRefs: (segmentId) => {
        const refs = new Set<number>();
        for (const op of this.#inflight.concat(this.#queue)) {
          for (const [, previous] of op.undo) if (previous?.segmentId === segmentId) refs.add(previous.offset);
        }
        return refs;
      },
      reserve: (bytes) => {
        if (this.#diskBytes + bytes > this.#options.maxStoreBytes) {
          throw new LogkvError(ErrorCodes.STORE_FULL,
            `compaction needs more room than maxStoreBytes (${this.#options.maxStoreBytes}) leaves`);
        }
        this.#diskBytes += bytes;
      },
      release: (bytes) => { this.#diskBytes -= bytes; },
      segmentCount: () => this.#segmentFiles(),
      diskBytes: () => this.#diskBytes,
      beginSwitch: (inputs, outputs) => {
        for (const output of outputs) this.#segments.set(output.id, output);
        this.#switching = { inputs, inputIds: new Set(inputs.map((s) => s.id)), restored: new Set() };
        this.#diskBytes = this.#sumTails();
      },
      relocate: (key, keyStart, keyLength, fromSegment, fromOffset, entry) => {
        const current = this.#keydir.getBytes(key, keyStart, keyLength);
        if (current !== undefined && current.segmentId === fromSegment && current.offset === fromOffset) {
          this.#keydir.putBytes(key, keyStart, keyLength, entry); // same length and expiry: no counts change
        }
      },
      strayRefs: () => this.#strayRefs(),
      finishSwitch: (found) => this.#finishSwitch(found),
    };
  }

  /**
   * Input locations that must survive the switch: the undo entries of queued and in-flight writes,
   * and keydir entries that a write failing during the switch put back after their key moved.
   */
  #strayRefs(): Map<number, Set<number>> {
    const refs = new Map<number, Set<number>>();
    const switching = this.#switching!;
    const add = (entry: Entry | undefined): void => {
      if (entry === undefined || !switching.inputIds.has(entry.segmentId)) return;
      let offsets = refs.get(entry.segmentId);
      if (offsets === undefined) refs.set(entry.segmentId, (offsets = new Set()));
      offsets.add(entry.offset);
    };
    for (const op of this.#inflight.concat(this.#queue)) for (const [, previous] of op.undo) add(previous);
    for (const key of switching.restored) add(this.#keydir.get(key));
    return refs;
  }

  /**
   * The end of the switch, synchronous so no read or write sees it half done: stray references
   * move to their copies, what still points into an input was expired when copied (so it was
   * not) and is dropped, and the inputs are forgotten.
   */
  #finishSwitch(found: Map<number, Map<number, Entry>>): void {
    const switching = this.#switching!;
    const relocate = (entry: Entry | undefined): Entry | undefined =>
      entry === undefined || !switching.inputIds.has(entry.segmentId) ? entry : found.get(entry.segmentId)?.get(entry.offset);
    for (const op of this.#inflight.concat(this.#queue)) {
      for (const pair of op.undo) pair[1] = relocate(pair[1]);
    }
    for (const key of switching.restored) {
      const entry = this.#keydir.get(key);
      if (entry !== undefined && switching.inputIds.has(entry.segmentId)) this.#apply(key, relocate(entry));
    }
    this.#keydir.removeExpiringIn(switching.inputIds, this.#forget);
    for (const input of switching.inputs) {
      this.#segments.delete(input.id);
      this.#cache.drop(input.id);
    }
    this.#switching = undefined;
    this.#diskBytes = this.#sumTails();
  }

  #maybeAutoCompact(): void {
    const auto = this.#options.autoCompact;
    if (auto === false || this.#compacting !== undefined || this.#status !== 'open' || this.#failure !== undefined) return;
    const dead = this.#diskBytes - this.#segmentFiles() * SEGMENT_HEADER_BYTES - this.#liveBytes;
    if (dead < auto.minDeadBytes || dead < auto.minDeadRatio * this.#diskBytes) return;
    this.compact().then(
      () => { this.#autoCompactionError = undefined; },
      (err: unknown) => { this.#autoCompactionError = ioError(err, 'automatic compaction', this.#dir); },
    );
  }

  // ---------------------------------------------------------------- writes

  /** Sets `key` to `value`, whether or not it exists. */
  set(key: string, value: V, options?: WriteOptions): Promise<void> {
    try {
      this.#checkOpen();
      return this.#enqueueSets([this.#prepareSet(key, value, options)]);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Sets `key` only if it is not live; rejects with LOGKV_KEY_EXISTS otherwise. */
  create(key: string, value: V, options?: WriteOptions): Promise<void> {
    return this.#guard(() => {
      const set = this.#prepareSet(key, value, options);
      if (this.#liveEntry(key) !== undefined) {
        throw new LogkvError(ErrorCodes.KEY_EXISTS, `key ${describe(key)} already exists`, { key });
      }
      return this.#enqueueSets([set]);
    });
  }

  /** Sets `key` only if it is live; rejects with LOGKV_KEY_NOT_FOUND otherwise. */
  update(key: string, value: V, options?: WriteOptions): Promise<void> {
    return this.#guard(() => {
      const set = this.#prepareSet(key, value, options);
      if (this.#liveEntry(key) === undefined) {
        throw new LogkvError(ErrorCodes.KEY_NOT_FOUND, `key ${describe(key)} does not exist`, { key });
      }
      return this.#enqueueSets([set]);
    });
  }

  /** Deletes `key`; resolves true if it was live, false if there was nothing to delete. */
  delete(key: string): Promise<boolean> {
    return this.#guard(() => {
      this.#checkKey(key);
      if (this.#liveEntry(key) === undefined) return Promise.resolve(false);
      return this.#enqueueSets([{ key, valueBytes: undefined, expiresAt: 0 }])
        .then(() => true);
    });
  }

  /**
   * Applies the operations in order, atomically: after a crash either all of them are there or
   * none. Every operation is validated first; if any is invalid, nothing is written.
   */
  batch(operations: ReadonlyArray<BatchOperation<V>>): Promise<void> {
    return this.#guard(() => {
      if (!Array.isArray(operations)) throw invalidArgument(`batch() takes an array, received ${describe(operations)}`);
      const prepared = operations.map((op, i) => {
        if (typeof op !== 'object' || op === null) throw invalidArgument(`batch operation ${i} is ${describe(op)}`);
        if (op.type === 'set') return this.#prepareSet(op.key, op.value, op);
        if (op.type === 'delete') {
          this.#checkKey(op.key);
          return { key: op.key, valueBytes: undefined, expiresAt: 0 };
        }
        throw invalidArgument(`batch operation ${i} has type ${describe((op as { type?: unknown }).type)}; expected 'set' or 'delete'`);
      });
      // A delete of a key that is not live (at that point of the batch) writes nothing.
      const live = new Map<string, boolean>();
      const needed = prepared.filter((op) => {
        const wasLive = live.has(op.key) ? live.get(op.key)! : this.#liveEntry(op.key) !== undefined;
        live.set(op.key, op.valueBytes !== undefined);
        return op.valueBytes !== undefined || wasLive;
      });
      return needed.length === 0 ? Promise.resolve() : this.#enqueueSets(needed);
    });
  }

  /** Resolves when every write made before it is durable (fdatasync), whatever the sync mode. */
  sync(): Promise<void> {
    return this.#guard(() => this.#enqueue(undefined, 0, [], []));
  }

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
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#sweeper.stop();
    this.#compactionAborted = true;
    await this.#compacting?.catch(() => undefined);
    await this.#whenIdle();
    let failure: LogkvError | undefined;
    try {
      if (this.#failure === undefined) {
        await this.#syncAll();
        await this.#writeSnapshot();
      }
    } catch (err) {
      failure = ioError(err instanceof SyncFailed ? err.cause : err, 'final sync on close', this.#active.path);
    } finally {
      await Promise.allSettled([...this.#segments.values()].map((s) => s.file?.close()));
      this.#status = 'closed';
      await this.#release();
    }
    if (failure !== undefined) throw failure;
  }

  /** Leaves the keydir for the next open to load (snapshot.ts). Best effort: a failure costs only open time. */
  async #writeSnapshot(): Promise<void> {
    const segments = [...this.#segments.values()].filter((s) => s.file !== undefined)
      .sort((a, b) => a.id - b.id).map((s) => ({ id: s.id, size: s.flushed }));
    try {
      await writeSnapshot(this.#medium, this.#dir, segments, this.#keydir);
    } catch {
      // The next open replays the log instead.
    }
  }

  // ---------------------------------------------------------------- validation

  #checkOpen(): void {
    if (this.#status !== 'open') throw new LogkvError(ErrorCodes.CLOSED, 'the store is closed');
  }

  /** Runs a write's synchronous part; turns a throw into a rejected promise. */
  #guard<T>(body: () => Promise<T>): Promise<T> {
    try {
      this.#checkOpen();
      return body();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #checkKey(key: unknown): asserts key is string {
    if (typeof key !== 'string') throw invalidKey(`a key must be a string, received ${describe(key)}`, undefined);
    if (key.length === 0) throw invalidKey('a key must not be empty', key);
    if (!key.isWellFormed()) throw invalidKey('a key must be well-formed UTF-16 (it holds a lone surrogate)', key);
    // A UTF-16 code unit takes at most 3 UTF-8 bytes, so short keys need no count.
    if (key.length * 3 > this.#options.maxKeyBytes && Buffer.byteLength(key, 'utf8') > this.#options.maxKeyBytes) {
      throw invalidKey(`a key must be at most ${this.#options.maxKeyBytes} bytes in UTF-8`, key);
    }
  }

  #checkIterate(options: IterateOptions): string | undefined {
    this.#checkOpen();
    if (typeof options !== 'object' || options === null) throw invalidArgument(`iteration options must be an object, received ${describe(options)}`);
    if (options.prefix !== undefined && typeof options.prefix !== 'string') {
      throw invalidArgument(`prefix must be a string, received ${describe(options.prefix)}`);
    }
    return options.prefix || undefined;
  }

  #expiresAt(options: WriteOptions | undefined): number {
    if (options === undefined) return 0;
    if (typeof options !== 'object' || options === null) throw invalidArgument(`write options must be an object, received ${describe(options)}`);
    const { ttl, expiresAt } = options;
    if (ttl !== undefined && expiresAt !== undefined) throw invalidArgument('give ttl or expiresAt, not both');
    if (ttl !== undefined) {
      if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl <= 0) {
        throw invalidArgument(`ttl must be a positive finite number of ms, received ${describe(ttl)}`);
      }
      return Math.min(Math.ceil(this.#options.clock() + ttl), MAX_EXPIRES_AT);
    }
    if (expiresAt !== undefined) {
      if (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt) || expiresAt <= 0 || expiresAt > MAX_EXPIRES_AT) {
        throw invalidArgument(`expiresAt must be a positive finite time in ms since the epoch, received ${describe(expiresAt)}`);
      }
      return Math.ceil(expiresAt);
    }
    return 0;
  }

  #prepareSet(key: string, value: V, options: WriteOptions | undefined): PreparedWrite {
    this.#checkKey(key);
    const expiresAt = this.#expiresAt(options);
    let valueBytes: Buffer;
    const prepared = prepareValue(value, key);
    try {
      valueBytes = encodeValue(prepared);
    } catch (err) {
      throw new LogkvError(ErrorCodes.INVALID_VALUE, `value cannot be encoded: ${(err as Error).message}`, { key }, err);
    }
    if (valueBytes.length > this.#options.maxValueBytes) {
      throw new LogkvError(ErrorCodes.INVALID_VALUE,
        `value is ${valueBytes.length} bytes encoded; maxValueBytes is ${this.#options.maxValueBytes}`, { key });
    }
    return { key, valueBytes, expiresAt };
  }

  // ---------------------------------------------------------------- the keydir

  /** The entry of `key` if it is live; an expired entry is dropped from the keydir. */
  #liveEntry(key: string): Entry | undefined {
    const entry = this.#keydir.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt !== 0 && entry.expiresAt <= this.#options.clock()) {
      this.#apply(key, undefined);
      return undefined;
    }
    return entry;
  }

  /**
   * Keys that expired by `now` but are still in the keydir: O(their number). Finding any wakes the
   * sweeper, should the clock have jumped past expiries its timer does not know have passed.
   */
  #countExpired(now: number): number {
    const expired = this.#keydir.countExpired(now);
    if (expired > 0) this.#sweeper.wake();
    return expired;
  }

  /**
   * Points `key` at `entry` (or removes it), keeping the byte counts and the sweeper's timer. With
   * `record`, the keydir takes the key's bytes from the encoded record instead of encoding it again.
   */
  #apply(key: string, entry: Entry | undefined, record?: Buffer): Entry | undefined {
    const previous = record === undefined ? this.#keydir.put(key, entry)
      : this.#keydir.putBytes(record, RECORD_HEADER_BYTES, record.readUInt16LE(6), entry);
    if (previous !== undefined) this.#liveBytes -= previous.length;
    if (entry !== undefined) {
      this.#liveBytes += entry.length;
      if (entry.expiresAt !== 0) this.#sweeper.note(entry.expiresAt);
    }
    return previous;
  }

  // ---------------------------------------------------------------- reading records

  #readValue(key: string, entry: Entry): unknown {
    const segment = this.#segments.get(entry.segmentId);
    if (segment === undefined) throw new LogkvError(ErrorCodes.IO, `segment ${entry.segmentId} is gone`, { key });
    let bytes: Buffer | undefined;
    if (entry.offset >= segment.flushed) {
      bytes = segment.findPending(entry.offset);
    } else if (segment.file !== undefined) {
      try {
        // A record within one cached block is checked and decoded where it lies, without a copy.
        bytes = this.#cache.view(segment.id, segment.file, entry.length, entry.offset);
        if (bytes === undefined) {
          bytes = Buffer.allocUnsafe(entry.length);
          const got = this.#cache.read(segment.id, segment.file, bytes, entry.length, entry.offset);
          if (got !== entry.length) throw corruption('record is cut short', segment.path, entry.offset, { key });
        }
      } catch (err) {
        throw ioError(err, `reading key ${describe(key)}`, segment.path);
      }
    }
    if (bytes === undefined) throw new LogkvError(ErrorCodes.IO, 'record not found where the keydir says', { key });
    const header = parseRecordHeader(bytes, 0);
    if (header === null || header.totalLength !== entry.length || header.type !== TYPE_SET ||
        !recordCrcMatches(bytes, 0, header) || !recordKeyIs(bytes, header.keyLength, key)) {
      // Forget the cached blocks, so a read after the file is repaired (or was misread) reads it again.
      this.#cache.drop(segment.id, entry.offset);
      throw corruption(`record for key ${describe(key)} fails its checks`, segment.path, entry.offset, { key });
    }
    try {
      return decodeValue(bytes.subarray(RECORD_HEADER_BYTES + header.keyLength));
    } catch (err) {
      throw corruption(`value of key ${describe(key)} does not decode`, segment.path, entry.offset, { key });
    }
  }

  // ---------------------------------------------------------------- the write queue

  /** Gives the prepared writes their place in the log, applies them to the keydir, queues them. */
  #enqueueSets(writes: PreparedWrite[]): Promise<void> {
    if (this.#failure !== undefined) throw this.#failure;
    const compromised = this.#lockCompromised();
    if (compromised !== undefined) {
      throw new LogkvError(ErrorCodes.LOCKED, `the store's lock was taken by someone else: ${compromised.message}`);
    }
    const chunks = writes.map((w, i) => encodeRecord(
      w.valueBytes === undefined ? TYPE_DELETE : TYPE_SET,
      i < writes.length - 1 ? FLAG_BATCH_CONT : 0,
      w.key, w.valueBytes, w.expiresAt));
    let length = 0;
    for (const chunk of chunks) length += chunk.length;

    // A batch never spans segments: start a new one if this would overflow a non-empty segment.
    const rotate = this.#active.tail + length > this.#options.maxSegmentBytes && this.#active.tail > SEGMENT_HEADER_BYTES;
    // The first record of a segment brings its file, and the file's header, into being.
    const newFile = rotate || isUnborn(this.#active);
    const onlyDeletes = writes.every((w) => w.valueBytes === undefined);
    const limit = this.#options.maxStoreBytes - (onlyDeletes ? 0 : tombstoneReserveBytes(this.#options.maxStoreBytes));
    if (this.#diskBytes + length + (newFile ? SEGMENT_HEADER_BYTES : 0) > limit) {
      throw new LogkvError(ErrorCodes.STORE_FULL,
        `the store would exceed maxStoreBytes (${this.#options.maxStoreBytes})`, { key: writes[0].key });
    }
    if (rotate) this.#rotate();

    const segment = this.#active;
    const offset = segment.tail;
    const undo: Array<[string, Entry | undefined]> = [];
    let at = offset;
    for (let i = 0; i < writes.length; i++) {
      const w = writes[i];
      const chunk = chunks[i];
      segment.pending.push({ offset: at, bytes: chunk });
      const entry = w.valueBytes === undefined ? undefined : new Entry(segment.id, at, chunk.length, w.expiresAt);
      undo.push([w.key, this.#apply(w.key, entry, chunk)]);
      at += chunk.length;
    }
    segment.tail = at;
    this.#diskBytes += length + (newFile ? SEGMENT_HEADER_BYTES : 0);
    return this.#enqueue(segment, offset, chunks, undo);
  }

  #enqueue(segment: Segment | undefined, offset: number, chunks: Buffer[], undo: WriteOp['undo']): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    this.#queue.push({ segment, offset, chunks, undo });
    const queued = this.#queued ?? (this.#queued = groupPromise());
    if (!this.#draining) {
      this.#draining = true;
      // Start after the caller's synchronous code, so a burst of calls forms one group.
      queueMicrotask(() => void this.#drain());
    }
    return queued.promise;
  }

  #rotate(): void {
    const id = (Math.floor(this.#active.id / SEGMENT_ID_STEP) + 1) * SEGMENT_ID_STEP;
    const segment = new Segment(id, path.join(this.#dir, segmentName(id)), undefined, 0);
    this.#segments.set(id, segment);
    this.#active = segment;
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const group = this.#queue;
      const done = this.#queued!;
      this.#queue = [];
      this.#queued = undefined;
      this.#inflight = group;
      try {
        await this.#writeGroup(group);
      } catch (err) {
        this.#inflight = [];
        await this.#failGroup(group, done, err);
        continue;
      }
      this.#inflight = [];
      done.resolve();
      this.#maybeAutoCompact();
    }
    this.#draining = false;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const wake of waiters) wake();
  }

  #whenIdle(): Promise<void> {
    if (!this.#draining) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Writes a group's records in order, one writev per segment, then syncs if it must. */
  async #writeGroup(group: WriteOp[]): Promise<void> {
    let mustSync = this.#options.sync === 'always';
    for (let i = 0; i < group.length;) {
      const segment = group[i].segment;
      if (segment === undefined) { mustSync = true; i++; continue; }
      const chunks: Buffer[] = [];
      const offset = group[i].offset;
      while (i < group.length && group[i].segment === segment) {
        for (const chunk of group[i].chunks) chunks.push(chunk);
        i++;
      }
      if (segment.file === undefined) await this.#createSegmentFile(segment);
      await segment.file!.write(chunks, offset);
      let end = offset;
      for (const chunk of chunks) end += chunk.length;
      segment.flushed = end;
      segment.dropFlushed();
    }
    if (mustSync) await this.#syncAll();
  }

  /** Syncs every segment with unsynced bytes: normally just the active one. */
  async #syncAll(): Promise<void> {
    for (const segment of this.#segments.values()) await syncSegment(segment);
  }

  /**
   * Creates a segment's file: first the previous segment is synced, so only the newest segment
   * can ever have a torn tail; then the new file gets its header, synced, and its directory entry,
   * synced, before any record goes in.
   */
  async #createSegmentFile(segment: Segment): Promise<void> {
    for (const other of this.#segments.values()) {
      if (other !== segment) await syncSegment(other);
    }
    const file = await this.#medium.open(segment.path, { create: true });
    try {
      await file.truncate(0); // a leftover from a failed attempt holds nothing acknowledged
      await file.write([encodeSegmentHeader(segment.id)], 0);
      await syncOrTag(file.sync());
      await syncOrTag(this.#medium.syncDir(this.#dir));
    } catch (err) {
      await file.close().catch(() => undefined);
      throw err;
    }
    segment.file = file;
    segment.flushed = segment.synced = SEGMENT_HEADER_BYTES;
  }

  /**
   * Rejects a failed group and everything queued after it (their offsets assumed the group's
   * bytes), undoes their keydir changes newest first, and truncates the files back.
   */
  async #failGroup(group: WriteOp[], done: GroupPromise, err: unknown): Promise<void> {
    const failed = group.concat(this.#queue);
    const queuedDone = this.#queued;
    this.#queue = [];
    this.#queued = undefined;
    const syncFailed = err instanceof SyncFailed;
    if (syncFailed) err = (err as SyncFailed).cause;
    const error = ioError(err, 'write', this.#active.path);
    const truncateTo = new Map<Segment, number>();
    for (let i = failed.length - 1; i >= 0; i--) {
      const op = failed[i];
      for (let j = op.undo.length - 1; j >= 0; j--) {
        const [key, previous] = op.undo[j];
        this.#apply(key, previous);
        // Put back into an input whose keys may have moved already: the switch's end handles it.
        if (previous !== undefined && this.#switching?.inputIds.has(previous.segmentId)) this.#switching.restored.add(key);
      }
      if (op.segment !== undefined) truncateTo.set(op.segment, op.offset);
    }
    for (const [segment, offset] of truncateTo) {
      this.#cache.drop(segment.id, offset);
      segment.tail = offset;
      segment.pending = segment.pending.filter((p) => p.offset < offset);
      if (segment.flushed > offset) segment.flushed = offset;
      if (segment.synced > offset) segment.synced = offset;
    }
    this.#diskBytes = this.#sumTails();
    try {
      for (const [segment, offset] of truncateTo) {
        if (segment.file === undefined || segment.file.sizeSync() <= Math.max(offset, SEGMENT_HEADER_BYTES)) continue;
        await segment.file.truncate(Math.max(offset, SEGMENT_HEADER_BYTES));
        await segment.file.sync();
      }
    } catch (repairErr) {
      this.#poison(repairErr);
    }
    // After a failed sync the page cache may have dropped writes it could not persist, including
    // acknowledged ones: what the disk holds is unknown until recovery reads it again.
    if (syncFailed) this.#poison(err);
    done.reject(error);
    queuedDone?.reject(error);
  }

  /** After a failure we cannot undo, refuse writes until the store is reopened. */
  #poison(err: unknown): void {
    if (this.#failure !== undefined) return;
    const cause = ioError(err, 'repair after a failed write', this.#active.path);
    this.#failure = new LogkvError(ErrorCodes.IO,
      `the store cannot take writes until it is reopened: ${cause.message}`, { file: this.#active.path }, cause);
  }

  #syncInBackground(): void {
    const segment = this.#active;
    if (this.#status !== 'open' || this.#failure !== undefined) return;
    if (segment.file === undefined || segment.synced >= segment.flushed) return;
    this.#enqueue(undefined, 0, [], []).catch(() => undefined); // a failure poisons the store
  }

  #sumTails(): number {
    let total = 0;
    for (const segment of this.#segments.values()) if (!isUnborn(segment)) total += segment.tail;
    return total;
  }

  /** Segment files that exist or are about to (an empty active segment has no file yet). */
  #segmentFiles(): number {
    let count = 0;
    for (const segment of this.#segments.values()) if (!isUnborn(segment)) count++;
    return count;
  }
}

interface PreparedWrite {
  key: string;
  /** undefined for a delete */
  valueBytes: Buffer | undefined;
  expiresAt: number;
}

/** Whether the record's key bytes are `key`, compared without making a string when it is ASCII. */
function recordKeyIs(record: Buffer, keyLength: number, key: string): boolean {
  if (key.length === keyLength) {
    let i = 0;
    for (; i < keyLength; i++) {
      const code = key.charCodeAt(i);
      if (code >= 0x80) break;
      if (record[RECORD_HEADER_BYTES + i] !== code) return false;
    }
    if (i === keyLength) return true;
  }
  return record.toString('utf8', RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + keyLength) === key;
}

/** A segment with no file and nothing queued for it: it takes no disk space yet. */
function isUnborn(segment: Segment): boolean {
  return segment.file === undefined && segment.tail === SEGMENT_HEADER_BYTES;
}

function invalidKey(message: string, key: string | undefined): LogkvError {
  return new LogkvError(ErrorCodes.INVALID_KEY, message, key === undefined ? {} : { key });
}

function invalidArgument(message: string): LogkvError {
  return new LogkvError(ErrorCodes.INVALID_ARGUMENT, message);
}

/** Marks a failed sync, after which what the disk holds is unknown. */
class SyncFailed {
  constructor(readonly cause: unknown) {}
}

async function syncOrTag(sync: Promise<void>): Promise<void> {
  try {
    await sync;
  } catch (err) {
    throw new SyncFailed(err);
  }
}

/** Syncs a segment's file if it holds bytes not yet known durable. */
async function syncSegment(segment: Segment): Promise<void> {
  if (segment.file === undefined || segment.synced >= segment.flushed) return;
  const flushed = segment.flushed;
  await syncOrTag(segment.file.sync());
  segment.synced = flushed;
}
