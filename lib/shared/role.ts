/**
 * Shared access (issue 11): any number of processes and worker threads open one store with
 * `shared: true`. The lock elects the owner: it recovers the store as open() does, appends,
 * compacts, publishes the head file and serves the others over a Unix socket. The others are
 * clients: they read through their own index, which follows the log (follower.ts), and send their
 * writes to the owner (link.ts). docs/sharing.md is the reference; this file is the roles and the
 * moves between them:
 *
 *   open    lock taken -> owner; LOCKED by a shared owner -> client (retried until it answers)
 *   client  the connection breaks -> every call sent and not answered rejects
 *           LOGKV_OUTCOME_UNKNOWN (never sent again); calls not yet sent wait; then either the lock
 *           is taken (takeOver: the index is brought to the last head, only the tail past it is
 *           recovered as open() would, and the waiting calls run here, in order) or the new owner
 *           answers (the waiting calls go to it, in order)
 *   close   a client says bye and closes its files; the owner stops taking calls (new ones are
 *           answered `retry`), answers those it runs, closes without a snapshot if clients remain,
 *           releases the lock and then ends the connections, so a client takes over at once
 *
 * One Sharing object belongs to one Store for its whole life, whatever role it plays.
 */
import { performance } from 'perf_hooks';
import type { Backups } from '../backup';
import type { CompactionResult, Compactions } from '../compactor';
import { ErrorCodes, LogkvError, ioError, isErrno } from '../errors';
import { SEGMENT_HEADER_BYTES } from '../format';
import { currentOwner, DirLock } from '../lock';
import { fileSystem } from '../medium/fs';
import { gateWrites } from '../medium/gated';
import type { Medium } from '../medium/types';
import { HeldLock, OwnerHooks, recoverRooms, writeRooms } from '../open';
import type { ResolvedOptions } from '../options';
import { Reader } from '../reader';
import { RecoveryReport, VersionCount, recoverSegment, removeLeftovers } from '../recovery';
import { Segment, isWriteSegmentId, parseSegmentName } from '../segment';
import { SegmentSet } from '../segments';
import { SNAPSHOT_NAME } from '../snapshot';
import { Rooms, SharedRole, Store, moveRooms, storeOver } from '../store';
import { ChangeFeed } from '../watch';
import type { LogWriter } from '../writer';
import * as path from 'path';
import { Follower, FollowerRooms, recordsOf } from './follower';
import { Head, HeadReader, HeadWriter, newNonce } from './head';
import { OwnerLink } from './link';
import { socketAddress, stripFunctions } from './protocol';
import { OwnerServer } from './server';

/**
 * The Store methods a client may run at the owner: every method that writes. A method added to
 * the Store that writes is added here, and then works in a client with no other change (its
 * arguments and its result travel as they are).
 */
export const REMOTE_METHODS: ReadonlySet<string> = new Set(['set', 'create', 'update', 'delete', 'touch', 'batch', 'clear', 'sync', 'compact', 'backup']);

/** The Sharing of each shared Store, for roleOf(). */
const sharings = new WeakMap<object, Sharing>();

/**
 * @internal Which role a store opened with `shared: true` plays now: 'owner' or 'client'
 * (undefined for a store not opened shared). For the specs, the crash harness and the benchmarks.
 */
export function roleOf(store: Store<unknown>): 'owner' | 'client' | undefined {
  return sharings.get(store)?.role;
}

/** How long a client waits for an owner's answer to its hello before it tries again. */
const HELLO_TIMEOUT_MS = 5000;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Opens the shared store in `dir` (made durable already) as its owner or as a client. */
export async function openShared<V>(dir: string, options: ResolvedOptions): Promise<Store<V>> {
  const address = socketAddress(dir);
  const deadline = performance.now() + options.lockStaleMs;
  for (let attempt = 0; ; attempt++) {
    const lock = await tryLock(dir, options);
    if (lock instanceof DirLock) return (await Sharing.asOwner(dir, options, address, lock)) as Store<V>;
    const holder = currentOwner(dir);
    // The store is held by a process that did not open it shared: it serves nobody.
    if (holder !== undefined && holder.shared !== true) throw lock;
    const client = await Sharing.asClient(dir, options, address);
    if (client !== undefined) return client as Store<V>;
    if (performance.now() > deadline) throw lock;
    await sleep(Math.min(50, 2 + attempt * 2));
  }
}

/** The lock, or the LOGKV_LOCKED error saying who holds it. */
async function tryLock(dir: string, options: ResolvedOptions): Promise<DirLock | LogkvError> {
  try {
    return await DirLock.acquire(dir, { staleMs: options.lockStaleMs, shared: true });
  } catch (err) {
    if (err instanceof LogkvError && err.code === ErrorCodes.LOCKED) return err;
    throw ioError(err, `locking ${dir}`, dir);
  }
}

/** A call a client made, from the moment it is made until it settles. */
interface Call {
  id: number;
  method: string;
  /** The arguments as the application gave them (run as they are if this process becomes the owner). */
  args: unknown[];
  /** The arguments as they travel (functions replaced by markers). */
  wire: unknown[];
  functions: Array<[number, string, Function]>;
  /** The keys it writes, for reads that must wait for it; null: any key (a method not known here). */
  keys: string[] | null;
  sent: boolean;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
  /** Settles with the call, never rejects: what a read of one of its keys waits for. */
  settled: Promise<void>;
}

/** The keys a write method changes, or null when the method is not known here (a read then waits for it whatever it reads). */
function keysOf(method: string, args: unknown[]): string[] | null {
  switch (method) {
    case 'sync': case 'compact': case 'backup':
      return [];
    case 'batch':
      return Array.isArray(args[0]) ? args[0].map((op) => (op as { key?: unknown })?.key).filter((k): k is string => typeof k === 'string') : [];
    case 'set': case 'create': case 'update': case 'delete': case 'touch':
      return typeof args[0] === 'string' ? [args[0]] : [];
    default:
      return typeof args[0] === 'string' ? [args[0]] : null;
  }
}

class Sharing implements SharedRole {
  readonly #dir: string;
  readonly #options: ResolvedOptions;
  readonly #address: string;
  #store!: Store<unknown>;
  #role: 'owner' | 'client' = 'client';
  #ready = false;
  #closeRequested = false;
  /** A failure that ends this store's writes for good (a takeover that failed). */
  #failure: LogkvError | undefined;
  /**
   * The change feed watch() serves from, whatever the role: an owner's writer publishes to it as
   * writes commit, a client's follower as it applies the records it reads; a takeover keeps it.
   */
  readonly #feed = new ChangeFeed((active) => this.#watching(active));

  // ---- the owner's
  #lock: DirLock | undefined;
  #segments: SegmentSet | undefined;
  #writer: LogWriter | undefined;
  #nonce = '';
  #head: HeadWriter | undefined;
  #server: OwnerServer | undefined;

  // ---- the client's
  #follower: Follower | undefined;
  #link: OwnerLink | undefined;
  /** Calls made and not settled, sent or not, by id (ids grow in call order). */
  readonly #pending = new Map<number, Call>();
  /** Calls waiting for an owner, in call order. */
  #queue: Call[] = [];
  #nextId = 0;
  #transition: Promise<void> | undefined;
  #lastCompaction: CompactionResult | undefined;

  private constructor(dir: string, options: ResolvedOptions, address: string) {
    this.#dir = dir;
    this.#options = options;
    this.#address = address;
  }

  // ---------------------------------------------------------------- opening

  static async asOwner(dir: string, options: ResolvedOptions, address: string, lock: DirLock): Promise<Store<unknown>> {
    const sharing = new Sharing(dir, options, address);
    const { medium, held } = gated(lock);
    const rooms = await recoverRooms(medium, dir, options, held, sharing.#hooks());
    const store = storeOver<unknown>(rooms, sharing);
    sharing.#store = store;
    sharings.set(store, sharing);
    sharing.#ready = true;
    try {
      sharing.#becomeOwner(lock, rooms);
      await sharing.#listen();
    } catch (err) {
      await store.close().catch(() => undefined);
      throw ioError(err, `serving ${dir}`, dir);
    }
    return store;
  }

  /** A client of the owner that holds the lock; undefined if it does not answer (yet). */
  static async asClient(dir: string, options: ResolvedOptions, address: string): Promise<Store<unknown> | undefined> {
    let headReader: HeadReader;
    try {
      headReader = new HeadReader(dir);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined; // the first owner has not published it yet
      throw new LogkvError(ErrorCodes.LOCKED, `store ${dir} is shared, but its head file cannot be read: ` +
        `${(err as Error).message} (its clients must run as the owner's user)`, { file: dir }, err);
    }
    const sharing = new Sharing(dir, options, address);
    let link: OwnerLink | undefined;
    try {
      const head = headReader.read();
      if (head === undefined) throw new LogkvError(ErrorCodes.LOCKED, 'no head yet');
      link = await OwnerLink.connect(address, head.nonce, HELLO_TIMEOUT_MS, sharing.#events());
      // The head must be this owner's: it writes it before it listens.
      if (link.epoch !== head.epoch) throw new LogkvError(ErrorCodes.LOCKED, 'the head file is an earlier owner\'s');
      const follower = await Follower.open(dir, options, headReader, (rooms) => sharing.#rebuilt(rooms));
      if (link.closed) {
        follower.stop();
        follower.rooms.index.stop();
        await follower.rooms.segments.closeAll();
        return undefined;
      }
      sharing.#follower = follower;
      sharing.#link = link;
      const { index, segments, reader } = follower.rooms;
      const rooms: Rooms = {
        dir, medium: fileSystem, options, index, segments, reader, writer: NO_WRITER, compactions: sharing.#clientCompactions(),
        backups: NO_BACKUPS, feed: sharing.#feed, recovery: follower.report, release: async () => undefined,
      };
      sharing.#store = storeOver<unknown>(rooms, sharing);
      sharings.set(sharing.#store, sharing);
      sharing.#ready = true;
      return sharing.#store;
    } catch (err) {
      link?.close();
      if (sharing.#follower === undefined) headReader.close();
      if (err instanceof LogkvError && err.code !== ErrorCodes.LOCKED && err.code !== ErrorCodes.CLOSED) throw err;
      if (!(err instanceof LogkvError) && !isErrno(err, 'ECONNREFUSED') && !isErrno(err, 'ENOENT') &&
          !isErrno(err, 'ECONNRESET') && !isErrno(err, 'EPIPE')) throw err;
      return undefined;
    }
  }

  get role(): 'owner' | 'client' {
    return this.#role;
  }

  // ---------------------------------------------------------------- SharedRole

  get remote(): SharedRole['remote'] {
    return this.#role === 'client' ? this : undefined;
  }

  beforeRead(key: string | undefined, wait: boolean): Promise<void> | undefined {
    if (this.#role === 'owner') return undefined;
    const own = wait ? this.ownWrites(key) : undefined;
    if (own !== undefined) return own;
    const caught = this.#follower!.catchUp();
    return wait ? caught : undefined;
  }

  ownWrites(key: string | undefined): Promise<void> | undefined {
    if (this.#role === 'owner' || this.#pending.size === 0) return undefined;
    const waits: Array<Promise<void>> = [];
    for (const call of this.#pending.values()) {
      if (call.keys === null || (call.keys.length > 0 && (key === undefined || call.keys.includes(key)))) waits.push(call.settled);
    }
    if (waits.length === 0) return undefined;
    // Settled means answered, and an answer brings the index up to the head first.
    return Promise.all(waits).then(() => this.beforeRead(key, false));
  }

  /** Runs `method` at the owner (or here, once this process is the owner); resolves or rejects as it does there. */
  call(method: string, args: unknown[]): Promise<unknown> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (this.#role === 'owner') return this.#run(method, args);
    const { args: wire, functions } = stripFunctions(args);
    let resolve!: (value: unknown) => void;
    let reject!: (err: unknown) => void;
    const promise = new Promise<unknown>((res, rej) => { resolve = res; reject = rej; });
    const call: Call = {
      id: ++this.#nextId, method, args, wire, functions, keys: keysOf(method, args), sent: false, resolve, reject,
      settled: promise.then(() => undefined, () => undefined),
    };
    this.#pending.set(call.id, call);
    if (this.#link !== undefined && !this.#link.leaving && this.#queue.length === 0) this.#send(call);
    else this.#queue.push(call);
    return promise;
  }

  async close(shutdown: (snapshot: boolean) => Promise<void>, closed: () => void): Promise<void> {
    // A close in progress keeps the process alive, whatever sockets it waits on.
    const alive = setInterval(() => undefined, 1000);
    try {
      await this.#close(shutdown, closed);
    } finally {
      clearInterval(alive);
    }
  }

  async #close(shutdown: (snapshot: boolean) => Promise<void>, closed: () => void): Promise<void> {
    this.#closeRequested = true;
    // Calls already made finish first, here or at an owner, whatever happens to the owner meanwhile.
    for (;;) {
      await this.#transition;
      if (this.#role === 'owner') break;
      await Promise.all([...this.#pending.values()].map((call) => call.settled));
      if (this.#transition === undefined && this.#pending.size === 0) break;
    }
    if (this.#role === 'owner') {
      await this.#server?.drain();
      const others = (this.#server?.clients ?? 0) > 0;
      try {
        await shutdown(!others);
      } finally {
        await this.#server?.close().catch(() => undefined);
        this.#head?.close();
      }
      return;
    }
    this.#link?.close();
    const follower = this.#follower!;
    follower.stop();
    follower.rooms.index.stop();
    this.#feed.closeAll();
    await follower.rooms.segments.closeAll();
    closed();
  }

  /** The follower built its rooms again: the store reads through them; watchers missed what it could not follow. */
  #rebuilt(rooms: FollowerRooms): void {
    moveRooms(this.#store, rooms);
    this.#feed.interruptAll();
  }

  /** Someone watches the store's changes (or the last watcher left): tell whoever feeds them. */
  #watching(active: boolean): void {
    if (this.#role === 'owner') {
      this.#writer?.onCommit(active ? (records) => this.#feed.publish(records) : undefined);
    } else {
      this.#follower?.watch(active ? (records, layout) => this.#feed.publish(records, layout) : undefined);
    }
  }

  // ---------------------------------------------------------------- the owner

  /** What the owner's rooms tell it: each group written and each compaction switch move the head. */
  #hooks(): OwnerHooks {
    const publish = (): void => this.#publish();
    return { afterGroup: publish, afterSwitch: publish, feed: this.#feed };
  }

  /** The head as the owner's rooms stand now. */
  #currentHead(): Head {
    const segments = this.#segments!;
    let floor = Infinity;
    let newest: Segment | undefined;
    for (const segment of segments.all()) {
      if (segment.id < floor) floor = segment.id;
      if (isWriteSegmentId(segment.id) && segment.file !== undefined && (newest === undefined || segment.id > newest.id)) newest = segment;
    }
    return {
      epoch: this.#lock!.generation, floor, nonce: this.#nonce,
      segment: newest?.id ?? segments.active.id, end: newest?.flushed ?? 0,
    };
  }

  #publish(): void {
    // A store that lost its lock says nothing more: the new owner writes the head.
    if (this.#head === undefined || this.#lock?.mayWrite() !== undefined) return;
    this.#head.publish(this.#currentHead());
  }

  /** Makes this process the owner over `rooms`: the head first, so no answer can precede it. */
  #becomeOwner(lock: DirLock, rooms: Rooms): void {
    this.#lock = lock;
    this.#segments = rooms.segments;
    this.#writer = rooms.writer;
    this.#nonce = newNonce();
    this.#head = new HeadWriter(this.#dir, this.#currentHead());
    this.#role = 'owner';
    // Watchers subscribed while this process was a client go on, fed by its writer from now on.
    if (this.#feed.size > 0) this.#watching(true);
  }

  /** Serves clients at the address. */
  async #listen(): Promise<void> {
    this.#server = new OwnerServer(this.#address, this.#nonce, this.#lock!.generation, (method, args) => this.#run(method, args));
    await this.#server.listen();
  }

  /** Runs a write method of the Store here, as a user of this process would. */
  #run(method: string, args: unknown[]): Promise<unknown> {
    if (!REMOTE_METHODS.has(method)) {
      return Promise.reject(new LogkvError(ErrorCodes.INVALID_ARGUMENT, `${JSON.stringify(method)} is not a method a client may call`));
    }
    const store = this.#store as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
    return store[method](...args);
  }

  // ---------------------------------------------------------------- the client

  #send(call: Call): void {
    try {
      this.#link!.call(call.id, call.method, call.wire);
    } catch (err) {
      this.#settle(call);
      call.reject(err);
      return;
    }
    call.sent = true;
    this.#link!.hold(true);
  }

  #settle(call: Call): void {
    this.#pending.delete(call.id);
    if (this.#pending.size === 0) this.#link?.hold(false);
  }

  #events(): Parameters<typeof OwnerLink.connect>[3] {
    return {
      arrived: () => this.#follower?.forgetHead(),
      done: (id, result) => {
        const call = this.#pending.get(id);
        if (call === undefined) return;
        this.#settle(call);
        if (call.method === 'compact' && typeof result === 'object' && result !== null && !(result as CompactionResult).dryRun) {
          this.#lastCompaction = result as CompactionResult;
        }
        // The write is in the log, up to the head the owner published before it answered (read
        // afresh once per chunk of answers: arrived()): read up to there before the caller hears
        // of it, so its next read sees it.
        let caught: Promise<void> | undefined;
        try {
          caught = this.#follower!.catchUp();
        } catch {
          // The next read reports what failed.
        }
        if (caught === undefined) call.resolve(result);
        else caught.then(() => call.resolve(result), () => call.resolve(result));
      },
      failed: (id, err) => {
        const call = this.#pending.get(id);
        if (call === undefined) return;
        this.#settle(call);
        call.reject(err);
      },
      retry: (id) => {
        const call = this.#pending.get(id);
        if (call === undefined) return;
        // Not applied: it goes to the next owner, before every call made after it.
        call.sent = false;
        this.#queue.push(call);
        this.#queue.sort((a, b) => a.id - b.id);
      },
      callback: (id, where, args) => {
        const fn = this.#pending.get(id)?.functions.find(([i, name]) => i === where[0] && name === where[1])?.[2];
        try {
          fn?.(...(Array.isArray(args) ? args : []));
        } catch {
          // An application's progress callback that throws does not fail the call.
        }
      },
      leaving: () => undefined,
      closed: () => {
        if (this.#ready) this.#ownerGone();
      },
    };
  }

  /** The connection to the owner broke: settle what cannot be known, then find the next owner. */
  #ownerGone(): void {
    const pid = this.#link?.ownerPid;
    this.#link = undefined;
    for (const call of [...this.#pending.values()]) {
      if (!call.sent) continue;
      this.#settle(call);
      call.reject(new LogkvError(ErrorCodes.OUTCOME_UNKNOWN,
        `the owner of ${this.#dir}${pid === undefined ? '' : ` (process ${pid})`} went away before it answered ${call.method}(); ` +
        'it may or may not have been applied, and was not sent again',
        { method: call.method, ...(call.keys !== null && call.keys.length === 1 ? { key: call.keys[0] } : {}), pid }));
    }
    if (this.#role === 'client') this.#failover();
  }

  #failover(): void {
    if (this.#transition !== undefined) return;
    // Calls waiting for an owner keep the process alive, as calls in flight do (link.hold).
    const alive = setInterval(() => undefined, 1000);
    this.#transition = this.#findOwner()
      .catch((err: unknown) => this.#fail(err))
      .finally(() => {
        clearInterval(alive);
        this.#transition = undefined;
      });
  }

  /** Takes the lock, or connects to whoever took it; keeps trying until one succeeds. */
  async #findOwner(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      if (this.#closeRequested && this.#pending.size === 0) return;
      const lock = await tryLock(this.#dir, this.#options);
      if (lock instanceof DirLock) {
        await this.#takeOver(lock);
        return;
      }
      if (await this.#reconnect()) return;
      await sleep(Math.min(20, 1 + attempt));
    }
  }

  /** Connects to the current owner; false if it does not answer. */
  async #reconnect(): Promise<boolean> {
    const follower = this.#follower!;
    follower.forgetHead();
    let head: Head;
    try {
      head = follower.head();
    } catch {
      return false;
    }
    let link: OwnerLink;
    try {
      link = await OwnerLink.connect(this.#address, head.nonce, HELLO_TIMEOUT_MS, this.#events());
    } catch {
      return false;
    }
    if (link.epoch !== head.epoch) {
      link.close();
      return false;
    }
    this.#link = link;
    const queued = this.#queue;
    this.#queue = [];
    for (const call of queued) this.#send(call);
    return true;
  }

  /**
   * This client took the lock: it becomes the owner. Its index is brought to the last head the
   * dead owner published (everything that owner acknowledged is before it), then only the tail
   * past it is recovered, as open() recovers a torn tail; when the directory holds anything the
   * index does not know of (a compaction the owner died in), the whole store is recovered instead.
   * The calls waiting for an owner then run here, in order, before any later call.
   */
  async #takeOver(lock: DirLock): Promise<void> {
    const follower = this.#follower!;
    const { medium, held } = gated(lock);
    let rooms: Rooms;
    try {
      await follower.settle();
      rooms = await this.#recoverTail(medium, held) ?? await this.#recoverAll(medium, held);
    } catch (err) {
      await lock.release().catch(() => undefined);
      throw err;
    }
    follower.stop();
    moveRooms(this.#store, rooms);
    this.#becomeOwner(lock, rooms);
    const queued = this.#queue;
    this.#queue = [];
    for (const call of queued) {
      this.#settle(call);
      // Settled through then(), as a call made here is, so calls settle in the order they were made.
      this.#run(call.method, call.args).then(call.resolve, call.reject);
    }
    await this.#listen();
  }

  /** The rooms over the follower's index, with only the tail past its head recovered; undefined if the files say otherwise. */
  async #recoverTail(medium: Medium, held: HeldLock): Promise<Rooms | undefined> {
    const follower = this.#follower!;
    const { index, segments: known } = follower.rooms;
    const at = follower.position;
    const names = await fileSystem.list(this.#dir);
    const ids = names.map(parseSegmentName).filter((id): id is number => id !== undefined).sort((a, b) => a - b);
    const knownIds = new Set<number>();
    for (const segment of known.all()) if (segment.file !== undefined) knownIds.add(segment.id);
    const listed = new Set(ids);
    for (const id of knownIds) if (!listed.has(id)) return undefined;
    const chain: number[] = [];
    if (knownIds.has(at.tailId)) chain.push(at.tailId);
    for (const id of ids) {
      if (knownIds.has(id)) continue;
      if (!isWriteSegmentId(id) || id <= at.tailId) return undefined;
      chain.push(id);
    }
    const report: RecoveryReport = { segments: ids.length, records: 0, hinted: 0, hintsIgnored: [], removed: [], snapshot: false };
    await removeLeftovers(medium, this.#dir, names, listed, report);
    if (names.includes(SNAPSHOT_NAME)) {
      // Written by an owner that closed alone a moment before this process joined: it will be stale.
      await medium.remove(path.join(this.#dir, SNAPSHOT_NAME));
      await medium.syncDir(this.#dir);
    }
    const newest = ids[ids.length - 1];
    const apply = (bytes: Buffer, start: number, length: number, entry: Parameters<typeof index.applyBytes>[3]): void =>
      index.applyBytes(bytes, start, length, entry);
    const recovered = new Map<number, Segment>();
    const versions: VersionCount = { next: follower.nextVersion };
    for (const id of chain) {
      const from = id === at.tailId ? Math.max(at.tailEnd, SEGMENT_HEADER_BYTES) : undefined;
      // The room a sidecar of cut bytes may take: the cap less this segment (the other files are
      // not counted here, so a takeover's sidecar may pass the cap by the other files' bytes).
      const room = (): number => this.#options.maxStoreBytes;
      const segment = await recoverSegment(medium, this.#dir, id, id === newest, apply, report, versions, room, from);
      recovered.set(id, segment);
      // The dead owner's writes past the last head are in the store now (their callers were told
      // their outcome is unknown): watchers see them as they would have.
      if (this.#feed.size > 0) {
        const { records, layout } = recordsOf(segment, from ?? segment.layout.fileHeaderBytes);
        if (records.length > 0) this.#feed.publish(records, layout);
      }
    }
    const list: Segment[] = [];
    for (const segment of known.all()) {
      if (segment.file === undefined) continue;
      // A segment not recovered here stays read-only (the follower's): the writer never writes
      // to it nor cuts it (segment.ts), and it is counted as the follower last measured it.
      if (recovered.has(segment.id)) void segment.file.close().catch(() => undefined);
      else list.push(segment);
    }
    list.push(...recovered.values());
    list.sort((a, b) => a.id - b.id);
    const segments = new SegmentSet(this.#dir, list);
    const reader = new Reader(segments, this.#options.cacheBytes);
    return writeRooms(medium, this.#dir, this.#options, held,
      { index, segments, reader, recovery: report, nextVersion: versions.next }, this.#hooks());
  }

  /** The rooms over a recovery of the whole store, as open() makes it. */
  async #recoverAll(medium: Medium, held: HeldLock): Promise<Rooms> {
    await this.#follower!.rooms.segments.closeAll();
    // recoverRooms releases the lock if it fails; so does the caller, which does no harm.
    return recoverRooms(medium, this.#dir, this.#options, held, this.#hooks());
  }

  /** Writes cannot go on (a takeover failed): every waiting call and every later one rejects with `err`. */
  #fail(err: unknown): void {
    this.#failure = ioError(err, `taking over ${this.#dir}`, this.#dir);
    const queued = this.#queue;
    this.#queue = [];
    for (const call of queued) {
      this.#settle(call);
      call.reject(this.#failure);
    }
  }

  /** A client's stand-in for the compaction room: stats() shows the last compact() it called. */
  #clientCompactions(): Compactions {
    const sharing = this;
    return {
      get running(): boolean { return false; },
      get last(): CompactionResult | undefined { return sharing.#lastCompaction; },
      get lastAutoError(): LogkvError | undefined { return undefined; },
    } as unknown as Compactions;
  }
}

/** The file system with every change gated by `lock`, and the lock as the rooms want it. */
function gated(lock: DirLock): { medium: Medium; held: HeldLock } {
  const mayWrite = (): LogkvError | undefined => lock.mayWrite();
  return { medium: gateWrites(fileSystem, mayWrite), held: { release: () => lock.release(), mayWrite } };
}

/** A client takes no backups itself (the owner does): only close() could reach this, and a client's close() does not. */
const NO_BACKUPS = { stop: () => Promise.resolve() } as unknown as Backups;

/** A client has no writer: its writes go to the owner. Nothing reaches this. */
const NO_WRITER = {
  get failure(): undefined { return undefined; },
} as unknown as LogWriter;
