/**
 * The log writer: it gives records their place in the log, hands them to the medium in order,
 * and makes them durable when the sync mode says so.
 *
 * How order is kept: write() gives the records their versions (the store-wide counter, one per
 * record), encodes them, gives them offsets at the tail of the active segment, applies them to
 * the index and queues them, all synchronously, before it returns its promise. So calls take
 * effect, and get their versions, in the order they are made, and a read made after a write sees
 * it at once (from the queued bytes if they have not reached the file yet). The writer then hands
 * queued records to the medium in order; with sync 'always' a group of records shares one
 * fdatasync (group commit), and every call of a group shares one promise. When a group's promise
 * resolves (its writes are committed, in the sync mode's sense), the commit hook hears of its
 * records, in log order: the change feed (watch.ts) starts there.
 *
 * Versions are never given back: a write that fails keeps its versions unused, since a reader
 * may have seen them (getEntry() of a queued write) and must never see one again on other bytes.
 *
 * If a write or sync fails, the failed group and everything queued after it are rejected, their
 * index changes are undone newest first, and the files are truncated back, so a rejected call
 * changes nothing. If even that repair fails, or a sync failed (after which what the disk holds is
 * unknown), the writer is poisoned: it refuses further writes (LOGKV_IO) until the store is
 * reopened. docs/durability.md gives the fsyncs and their order.
 *
 * Right before each call that changes the medium's bytes (a write, a file creation, a
 * truncation) the writer asks mayWrite(); if it returns an error, that call is not made and its
 * group, and everything queued after it, reject with that error. The lock makes it a check that
 * this process still owns the directory. Syncs are not asked: an fdatasync changes no bytes, it
 * only makes durable what this process wrote while the lock was its own (and what a new owner has
 * already read), so refusing one would only leave acknowledged writes less safe (lib/medium/gated.ts
 * makes the same choice).
 */
import { ErrorCodes, LogkvError, ioError } from './errors';
import {
  FLAG_BATCH_CONT, KIND_SEGMENT, SEGMENT_HEADER_BYTES, TYPE_DELETE, TYPE_SET, encodeRecord, encodeSegmentHeader,
} from './format';
import { Entry } from './keydir';
import type { KeyIndex } from './keyindex';
import type { Medium } from './medium/types';
import { ResolvedOptions, tombstoneReserveBytes } from './options';
import type { Reader } from './reader';
import type { Segment } from './segment';
import { SegmentSet, isUnborn } from './segments';
import type { PreparedWrite } from './validate';

/** A key and the index entry a queued write replaced (undefined: the key was not there). */
export type UndoEntry = [key: string, previous: Entry | undefined];

interface WriteOp {
  /** The segment the records go to; undefined for a sync request. */
  segment: Segment | undefined;
  offset: number;
  chunks: Buffer[];
  /** Index entries these records replaced, in the order they were applied. */
  undo: UndoEntry[];
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

export interface WriterInit {
  dir: string;
  medium: Medium;
  options: ResolvedOptions;
  segments: SegmentSet;
  index: KeyIndex;
  reader: Reader;
  /** Asked right before every change to the medium; an error refuses it. */
  mayWrite: () => LogkvError | undefined;
  /** The version the first write gets: recovery's count (recovery.ts). */
  nextVersion: number;
}

/**
 * Hears of each committed write: the records of one write() call (one set, or one whole batch),
 * as encoded (version-2 records), in log order, right before the call's promise resolves.
 */
export type CommitHook = (records: readonly Buffer[]) => void;

export class LogWriter {
  readonly #dir: string;
  readonly #medium: Medium;
  readonly #options: ResolvedOptions;
  readonly #segments: SegmentSet;
  readonly #index: KeyIndex;
  readonly #reader: Reader;
  readonly #mayWrite: () => LogkvError | undefined;
  #queue: WriteOp[] = [];
  /** The promise of the writes in #queue. */
  #queued: GroupPromise | undefined;
  /** The group the writer is writing now. */
  #inflight: WriteOp[] = [];
  /** Its promise, until it resolves or its failure's undo takes its changes out of the index. */
  #inflightDone: GroupPromise | undefined;
  #draining = false;
  /** Segments the group being written has handed bytes to (a failed group's repair cuts only those). */
  #touched = new Set<Segment>();
  #idleWaiters: Array<() => void> = [];
  #failure: LogkvError | undefined;
  #timer: NodeJS.Timeout | undefined;
  #afterGroup: () => void = () => undefined;
  #onRestore: ((key: string, previous: Entry) => void) | undefined;
  #onCommit: CommitHook | undefined;
  /** The version the next record gets. */
  #nextVersion: number;

  constructor(init: WriterInit) {
    this.#dir = init.dir;
    this.#medium = init.medium;
    this.#options = init.options;
    this.#segments = init.segments;
    this.#index = init.index;
    this.#reader = init.reader;
    this.#mayWrite = init.mayWrite;
    this.#nextVersion = init.nextVersion;
  }

  /** The version the next record will get. */
  get nextVersion(): number {
    return this.#nextVersion;
  }

  /** The version write() gave the last record it took (0 before any). */
  get lastVersion(): number {
    return this.#nextVersion - 1;
  }

  /** Set once the writer refuses writes for good (a failure it could not undo); the error it rejects with. */
  get failure(): LogkvError | undefined {
    return this.#failure;
  }

  // ---------------------------------------------------------------- taking writes

  /**
   * Gives the prepared writes their versions (consecutive, from nextVersion: lastVersion is the
   * last one's once this returns) and their place in the log (one batch: consecutive records of
   * one segment, all or nothing after a crash), applies them to the index and queues them;
   * resolves when their group is written (and synced, in 'always' mode). Throws, having changed
   * nothing, if the writer is poisoned, mayWrite() refuses, the store would exceed
   * maxStoreBytes, or a batch of several records would not fit in one segment (LOGKV_INVALID_ARGUMENT).
   */
  write(writes: PreparedWrite[]): Promise<void> {
    if (this.#failure !== undefined) throw this.#failure;
    this.#allowed();
    const first = this.#nextVersion;
    const chunks: Buffer[] = new Array(writes.length);
    let length = 0;
    let onlyDeletes = true;
    for (let i = 0; i < writes.length; i++) {
      const w = writes[i];
      if (w.valueBytes !== undefined) onlyDeletes = false;
      const chunk = encodeRecord(w.valueBytes === undefined ? TYPE_DELETE : TYPE_SET,
        i < writes.length - 1 ? FLAG_BATCH_CONT : 0, w.key, w.valueBytes, w.expiresAt, first + i);
      chunks[i] = chunk;
      length += chunk.length;
    }
    // A batch never spans segments, and the index holds offsets in 32 bits: a batch larger than a
    // segment may be would wrap them (a single record larger than that gets a segment of its own).
    if (writes.length > 1 && length > this.#options.maxSegmentBytes) {
      throw new LogkvError(ErrorCodes.INVALID_ARGUMENT,
        `the batch's records take ${length} bytes; a batch must fit in one segment (maxSegmentBytes ${this.#options.maxSegmentBytes})`,
        { option: 'maxSegmentBytes', bytes: length });
    }

    // A batch never spans segments: start a new one if this would overflow a non-empty segment.
    const active = this.#segments.active;
    const rotate = active.tail + length > this.#options.maxSegmentBytes && active.tail > SEGMENT_HEADER_BYTES;
    // The first record of a segment brings its file, and the file's header, into being.
    const limit = this.#options.maxStoreBytes - (onlyDeletes ? 0 : tombstoneReserveBytes(this.#options.maxStoreBytes));
    // Bytes that land in preallocated padding take no more disk: they were counted already.
    const growth = rotate ? SEGMENT_HEADER_BYTES + length : this.#segments.growthOf(active, length);
    if (this.#segments.diskBytes + growth > limit) {
      throw new LogkvError(ErrorCodes.STORE_FULL,
        `the store would exceed maxStoreBytes (${this.#options.maxStoreBytes})`, { key: writes[0].key });
    }
    const segment = rotate ? this.#segments.rotate() : active;
    // A segment's floor is the version of its first record: every record in it has one as high.
    if (isUnborn(segment)) segment.floor = first;
    this.#nextVersion = first + writes.length;
    const offset = segment.tail;
    const undo: UndoEntry[] = [];
    let at = offset;
    for (let i = 0; i < writes.length; i++) {
      const w = writes[i];
      const chunk = chunks[i];
      segment.pending.push({ offset: at, bytes: chunk });
      const entry = w.valueBytes === undefined ? undefined : new Entry(segment.id, at, chunk.length, w.expiresAt);
      undo.push([w.key, this.#index.apply(w.key, entry, chunk)]);
      at += chunk.length;
    }
    this.#segments.setTail(segment, at);
    return this.#enqueue(segment, offset, chunks, undo);
  }

  /**
   * Resolves once every write taken so far is committed, in the sync mode's sense (at once if
   * none is pending); rejects as they do if they fail. A call that answers from the index without
   * writing (a delete of a key that is not there) waits on it before it resolves: the index shows
   * writes before they are committed, and an answer that rests on one must not be acknowledged
   * before it is, or a crash could take back what the answer said (a deleted key back again).
   */
  settled(): Promise<void> {
    const newest = this.#queued ?? this.#inflightDone;
    return newest === undefined ? Promise.resolve() : newest.promise;
  }

  /** Resolves when every write queued before it is durable (fdatasync), whatever the sync mode. */
  sync(): Promise<void> {
    return this.#enqueue(undefined, 0, [], []);
  }

  /**
   * The active segment takes no more writes: the next write starts a new one. An active segment
   * that holds nothing yet has no file, and is dropped (its id is never used).
   */
  seal(): void {
    this.#segments.rotate();
  }

  /** Resolves once nothing is queued or being written. */
  whenIdle(): Promise<void> {
    if (!this.#draining) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Calls `hook` after each group is written and its calls resolved (automatic compaction looks then). */
  afterEachGroup(hook: () => void): void {
    this.#afterGroup = hook;
  }

  /**
   * While set, `hook` hears of every committed write's records, in log order, right before its
   * promise resolves (the change feed). A write that fails is never heard of.
   */
  onCommit(hook: CommitHook | undefined): void {
    this.#onCommit = hook;
  }

  // ---------------------------------------------------------------- what the compaction switch needs

  /** Calls `visit` with the entry each queued or in-flight write would restore if it failed. */
  forEachUndo(visit: (previous: Entry) => void): void {
    for (const op of this.#inflight.concat(this.#queue)) {
      for (const [, previous] of op.undo) if (previous !== undefined) visit(previous);
    }
  }

  /** Replaces the entry each queued or in-flight write would restore with `remap(entry)`. */
  remapUndo(remap: (previous: Entry) => Entry | undefined): void {
    for (const op of this.#inflight.concat(this.#queue)) {
      for (const pair of op.undo) if (pair[1] !== undefined) pair[1] = remap(pair[1]);
    }
  }

  /** While set, `watch` hears of every entry a failed write puts back into the index. */
  watchRestores(watch: ((key: string, previous: Entry) => void) | undefined): void {
    this.#onRestore = watch;
  }

  // ---------------------------------------------------------------- interval sync and close

  /** In 'interval' mode, starts the timer that syncs every syncIntervalMs; otherwise does nothing. */
  startSyncTimer(): void {
    if (this.#options.sync !== 'interval') return;
    this.#timer = setInterval(() => this.#syncInBackground(), this.#options.syncIntervalMs);
    this.#timer.unref();
  }

  stopSyncTimer(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /**
   * Waits for the queue to empty, then (unless poisoned) syncs every segment: close()'s last
   * word to the disk. Throws the sync's failure.
   */
  async finish(): Promise<void> {
    await this.whenIdle();
    if (this.#failure !== undefined) return;
    try {
      // The padding goes: a closed store's files hold their records and nothing else, so they
      // are what the snapshot lists, and a closed store takes no disk it does not use.
      await this.#syncAll(() => true);
    } catch (err) {
      throw ioError(err instanceof SyncFailed ? err.cause : err, 'final sync on close', this.#segments.active.path);
    }
  }

  // ---------------------------------------------------------------- the queue

  #enqueue(segment: Segment | undefined, offset: number, chunks: Buffer[], undo: UndoEntry[]): Promise<void> {
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

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const group = this.#queue;
      const done = this.#queued!;
      this.#queue = [];
      this.#queued = undefined;
      this.#inflight = group;
      this.#inflightDone = done;
      try {
        // Calls made while an earlier group's repair was under way were queued before that
        // repair could poison the writer; a poisoned writer must not write (or acknowledge) them.
        if (this.#failure !== undefined) throw this.#failure;
        await this.#writeGroup(group);
      } catch (err) {
        this.#inflight = [];
        await this.#failGroup(group, done, err);
        continue;
      }
      this.#inflight = [];
      this.#inflightDone = undefined;
      this.#committed(group);
      done.resolve();
      this.#afterGroup();
    }
    this.#draining = false;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const wake of waiters) wake();
  }

  /** Tells the commit hook, if any, of a written group's writes, in order. */
  #committed(group: WriteOp[]): void {
    const hook = this.#onCommit;
    if (hook === undefined) return;
    for (const op of group) {
      if (op.segment === undefined) continue;
      try {
        hook(op.chunks);
      } catch {
        // The hook is the change feed's, which does not throw; a bug there must not stall the log.
      }
    }
  }

  /** Writes a group's records in order, one writev per segment, then syncs if it must. */
  async #writeGroup(group: WriteOp[]): Promise<void> {
    let mustSync = this.#options.sync === 'always';
    this.#touched.clear();
    for (let i = 0; i < group.length;) {
      const segment = group[i].segment;
      if (segment === undefined) { mustSync = true; i++; continue; }
      const chunks: Buffer[] = [];
      const offset = group[i].offset;
      while (i < group.length && group[i].segment === segment) {
        for (const chunk of group[i].chunks) chunks.push(chunk);
        i++;
      }
      let end = offset;
      for (const chunk of chunks) end += chunk.length;
      if (segment.file === undefined) await this.#createSegmentFile(segment);
      const padTo = this.#preallocateTo(segment, end);
      if (padTo > end) chunks.push(zeros(padTo - end));
      this.#allowed();
      this.#touched.add(segment);
      // Counted before the write, so that calls made while it runs see the space taken.
      if (padTo > end) this.#segments.setAllocated(segment, padTo);
      await segment.file!.write(chunks, offset);
      segment.flushed = end;
      segment.dropFlushed();
    }
    if (mustSync) await this.#syncAll((segment) => segment !== this.#segments.active);
  }

  /**
   * Where the file of `segment` should end once records up to `end` are written: past `end` by
   * PREALLOCATE_BYTES of zero padding when they would pass the space preallocated so far, or just
   * `end`. Only in 'always' mode, where every group's fdatasync would otherwise commit a new file
   * size to the file system's journal too (docs/durability.md); and only for the active segment,
   * never past maxSegmentBytes, and never into the room maxStoreBytes leaves (padding counts
   * under the cap, and must not take the room kept for tombstones).
   */
  #preallocateTo(segment: Segment, end: number): number {
    if (this.#options.sync !== 'always' || segment !== this.#segments.active || end <= segment.allocated) return end;
    const room = this.#options.maxStoreBytes - tombstoneReserveBytes(this.#options.maxStoreBytes) - this.#segments.diskBytes;
    const footprint = Math.max(segment.tail, segment.allocated);
    const target = Math.min(end + PREALLOCATE_BYTES, this.#options.maxSegmentBytes, footprint + Math.max(0, room));
    // No room for space beyond what queued records will fill: write just the records.
    return target > footprint ? target : end;
  }

  /**
   * Syncs every segment with unsynced bytes (normally just the active one), first cutting the
   * zero padding off those `trim` names: segments no longer active (a sealed segment's records
   * are all it holds) and, at close, every one.
   */
  async #syncAll(trim: (segment: Segment) => boolean): Promise<void> {
    for (const segment of this.#segments.all()) await this.#syncSegment(segment, trim(segment));
  }

  /**
   * Syncs a segment's file if it holds bytes not yet known durable; with `trim`, cuts its zero
   * padding first, so that one fdatasync makes both durable. The cut is skipped when mayWrite()
   * refuses it, and for a file this process holds read-only (a shared client's, after a takeover:
   * whatever `allocated` says, that file is not ours to change, docs/durability.md bug 12): padding
   * is valid in any segment (docs/format.md), so leaving it costs only space.
   */
  async #syncSegment(segment: Segment, trim: boolean): Promise<void> {
    if (segment.file === undefined) return;
    const cut = trim && segment.writable && segment.allocated > segment.flushed && this.#mayWrite() === undefined;
    if (!cut && segment.synced >= segment.flushed) return;
    const flushed = segment.flushed;
    if (cut) {
      await segment.file.truncate(flushed);
      this.#segments.setAllocated(segment, flushed);
    }
    await syncOrTag(segment.file.sync());
    segment.synced = flushed;
  }

  /**
   * Creates a segment's file: first the previous segment is synced, so only the newest segment
   * can ever have a torn tail; then the new file gets its header, synced, and its directory entry,
   * synced, before any record goes in.
   */
  async #createSegmentFile(segment: Segment): Promise<void> {
    for (const other of this.#segments.all()) {
      if (other !== segment) await this.#syncSegment(other, true);
    }
    this.#allowed();
    const file = await this.#medium.open(segment.path, { create: true });
    try {
      this.#allowed();
      await file.truncate(0); // a leftover from a failed attempt holds nothing acknowledged
      this.#allowed();
      // The header alone: recovery tells an interrupted creation by a torn header in a file no
      // longer than one (walk.ts readSegmentStart), so the first records bring the padding.
      await file.write([encodeSegmentHeader(segment.id, KIND_SEGMENT, segment.floor)], 0);
      await syncOrTag(file.sync());
      await syncOrTag(this.#medium.syncDir(this.#dir));
    } catch (err) {
      await file.close().catch(() => undefined);
      // The file must not stay behind without a sound header: a later group may go on to a later
      // id, and then it would be a sealed write segment with a bad header, which recovery calls
      // corruption. If it cannot be removed, the writer is poisoned (nothing is written after it,
      // so it stays the newest segment, which recovery resets as an interrupted creation).
      if (!(err instanceof SyncFailed)) {
        try {
          this.#allowed();
          await this.#medium.remove(segment.path);
          await this.#medium.syncDir(this.#dir);
        } catch {
          throw new SyncFailed(err);
        }
      }
      throw err;
    }
    segment.file = file;
    segment.flushed = segment.synced = SEGMENT_HEADER_BYTES;
    this.#segments.setAllocated(segment, SEGMENT_HEADER_BYTES);
  }

  // ---------------------------------------------------------------- failure

  /**
   * Rejects a failed group and everything queued after it (their offsets assumed the group's
   * bytes), undoes their index changes newest first, and truncates the files back.
   */
  async #failGroup(group: WriteOp[], done: GroupPromise, err: unknown): Promise<void> {
    const failed = group.concat(this.#queue);
    const queuedDone = this.#queued;
    this.#queue = [];
    this.#queued = undefined;
    const syncFailed = err instanceof SyncFailed;
    if (syncFailed) err = (err as SyncFailed).cause;
    const error = ioError(err, 'write', this.#segments.active.path);
    const truncateTo = this.#undo(failed);
    // The index no longer shows them: an answer taken from it from now on rests on none of them.
    this.#inflightDone = undefined;
    try {
      for (const [segment, offset] of truncateTo) {
        // A segment the group never handed bytes to holds what it held: its records, then any
        // padding, which stays (cutting it would be a change the failure did not call for).
        if (segment.file === undefined || !this.#touched.has(segment)) continue;
        const cut = Math.max(offset, SEGMENT_HEADER_BYTES);
        if (segment.file.sizeSync() > cut) {
          this.#allowed();
          await segment.file.truncate(cut);
          this.#allowed();
          await segment.file.sync();
        }
        segment.allocated = cut; // the cut took the padding too
      }
    } catch (repairErr) {
      this.#poison(repairErr);
    }
    this.#segments.recount();
    // After a failed sync the page cache may have dropped writes it could not persist, including
    // acknowledged ones: what the disk holds is unknown until recovery reads it again.
    if (syncFailed) this.#poison(err);
    done.reject(error);
    queuedDone?.reject(error);
  }

  /**
   * Undoes the failed writes' index changes, newest first, and moves their segments' tails back;
   * returns where each segment's file must be cut.
   */
  #undo(failed: WriteOp[]): Map<Segment, number> {
    const truncateTo = new Map<Segment, number>();
    for (let i = failed.length - 1; i >= 0; i--) {
      const op = failed[i];
      for (let j = op.undo.length - 1; j >= 0; j--) {
        const [key, previous] = op.undo[j];
        this.#index.apply(key, previous);
        // Put back into a compaction input whose keys may have moved already: the switch's end handles it.
        if (previous !== undefined && this.#onRestore !== undefined) this.#onRestore(key, previous);
      }
      if (op.segment !== undefined) truncateTo.set(op.segment, op.offset);
    }
    for (const [segment, offset] of truncateTo) {
      this.#reader.forget(segment.id, offset);
      segment.tail = offset;
      segment.pending = segment.pending.filter((p) => p.offset < offset);
      if (segment.flushed > offset) segment.flushed = offset;
      if (segment.synced > offset) segment.synced = offset;
    }
    this.#segments.recount();
    return truncateTo;
  }

  /** After a failure we cannot undo, refuse writes until the store is reopened. */
  #poison(err: unknown): void {
    if (this.#failure !== undefined) return;
    const file = this.#segments.active.path;
    const cause = ioError(err, 'repair after a failed write', file);
    this.#failure = new LogkvError(ErrorCodes.IO,
      `the store cannot take writes until it is reopened: ${cause.message}`, { file }, cause);
  }

  /** Throws what mayWrite() returns, if anything: the medium call that follows must not be made. */
  #allowed(): void {
    const refused = this.#mayWrite();
    if (refused !== undefined) throw refused;
  }

  #syncInBackground(): void {
    const segment = this.#segments.active;
    if (this.#failure !== undefined) return;
    if (segment.file === undefined || segment.synced >= segment.flushed) return;
    this.sync().catch(() => undefined); // a failure poisons the store
  }
}

/**
 * How far ahead of the records the active segment's file is extended with zeros in 'always' mode.
 * Each extension costs one larger write and one fdatasync that commits a new file size, once per
 * this many bytes of records, instead of once per group.
 */
const PREALLOCATE_BYTES = 1024 * 1024;
const ZEROS = Buffer.alloc(PREALLOCATE_BYTES);

/** `length` zero bytes (at most PREALLOCATE_BYTES), never written to: one buffer serves every padding. */
function zeros(length: number): Buffer {
  return ZEROS.subarray(0, length);
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
