/**
 * The change feed: store.watch() iterators, and the one place that turns committed records into
 * change events.
 *
 * Where events come from: the log writer calls publish() with the records of each committed
 * write (one set, or one whole batch), in log order, right before the write's promise resolves
 * (writer.ts onCommit). A record is all an event needs: its type, key, expiry and version are in
 * its header and its value in its bytes, so events never depend on the caller's objects (which it
 * may mutate after the call), and a process that follows a log another process writes can feed
 * this same class with the records it reads (shared access).
 *
 * The contract each watcher keeps:
 * - It sees every write committed after it was made, in commit order (which is version order),
 *   and nothing else: a write that fails never reaches publish(), and neither does expiry (it is
 *   not a write) or compaction (it moves records, it changes no key).
 * - A batch's events arrive together: they go into the buffer in one step, whole or not at all.
 * - Its buffer is bounded by maxBuffered events (a batch that arrives while the buffer is empty is
 *   taken whole, however large). An event that does not fit ends the watcher: it gives what it
 *   buffered, then its next() rejects with LOGKV_WATCH_OVERFLOW. Never a silent gap.
 * - return() (what `break` in a for-await loop calls) or throw() unsubscribes it and drops what
 *   it buffered; closeAll() (the store's close()) ends it after what it buffered.
 * - Values are decoded from the record's bytes when the consumer takes the event, and each
 *   watcher decodes its own copy, so one consumer's mutation is never another's surprise.
 */
import { decodeValue } from './codec';
import { ErrorCodes, LogkvError } from './errors';
import { RECORD_LAYOUT_V2, RecordLayout, TYPE_SET, emptyRecordHeader } from './format';

/** One committed change, as a watcher yields it. */
export type ChangeEvent<V> =
  | { type: 'set'; key: string; value: V; expiresAt?: number; version: number }
  | { type: 'delete'; key: string; version: number };

/** What watch() takes, validated (validate.ts watchOptions). */
export interface WatchSettings {
  /** Only keys that start with this; undefined for every key. */
  prefix: string | undefined;
  maxBuffered: number;
}

/** A change as buffered: the value still encoded (a view of the record's bytes). */
interface Change {
  type: 'set' | 'delete';
  key: string;
  version: number;
  expiresAt: number;
  valueBytes: Buffer | undefined;
}

export class ChangeFeed {
  readonly #watchers = new Set<Watcher<unknown>>();
  readonly #onActive: (active: boolean) => void;
  readonly #header = emptyRecordHeader();

  /** `onActive` is told when the first watcher comes and when the last one goes, so publish() costs nothing without one. */
  constructor(onActive: (active: boolean) => void = () => undefined) {
    this.#onActive = onActive;
  }

  /** How many watchers are subscribed. */
  get size(): number {
    return this.#watchers.size;
  }

  /** A new watcher, subscribed now: it sees every write published from here on. */
  watch<V>(settings: WatchSettings): AsyncIterableIterator<ChangeEvent<V>> {
    const watcher = new Watcher<V>(settings, (w) => this.#unsubscribe(w));
    this.#watchers.add(watcher as Watcher<unknown>);
    if (this.#watchers.size === 1) this.#onActive(true);
    return watcher;
  }

  /**
   * Publishes the records of one committed write (a set, or a whole batch), in order, each a
   * whole record of `layout` (what the writer writes, unless said otherwise).
   */
  publish(records: readonly Buffer[], layout: RecordLayout = RECORD_LAYOUT_V2): void {
    if (this.#watchers.size === 0) return;
    const header = this.#header;
    const changes: Change[] = [];
    for (const record of records) {
      if (!layout.parse(record, 0, header)) continue; // the writer's own bytes: cannot happen
      const keyStart = header.headerLength;
      const valueStart = keyStart + header.keyLength;
      const set = header.type === TYPE_SET;
      changes.push({
        type: set ? 'set' : 'delete',
        key: record.toString('utf8', keyStart, valueStart),
        version: header.version,
        expiresAt: header.expiresAt,
        valueBytes: set ? record.subarray(valueStart, header.totalLength) : undefined,
      });
    }
    for (const watcher of [...this.#watchers]) watcher.offer(changes);
  }

  /** Ends every watcher: each gives what it buffered, then is done. */
  closeAll(): void {
    for (const watcher of [...this.#watchers]) watcher.end();
  }

  /**
   * Ends every watcher as an overflow does: each gives what it buffered, then rejects
   * LOGKV_WATCH_OVERFLOW. For changes that cannot be given (a shared store's client that had to
   * build its index again from the files, lib/shared/follower.ts): never a silent gap.
   */
  interruptAll(): void {
    for (const watcher of [...this.#watchers]) watcher.interrupt();
  }

  #unsubscribe(watcher: Watcher<unknown>): void {
    if (this.#watchers.delete(watcher) && this.#watchers.size === 0) this.#onActive(false);
  }
}

type State = 'open' | 'overflowed' | 'ended';

interface Waiter<V> {
  resolve: (result: IteratorResult<ChangeEvent<V>, undefined>) => void;
  reject: (err: unknown) => void;
}

/** One store.watch() iterator. */
class Watcher<V> implements AsyncIterableIterator<ChangeEvent<V>> {
  readonly #prefix: string | undefined;
  readonly #maxBuffered: number;
  readonly #unsubscribe: (watcher: Watcher<unknown>) => void;
  /** Buffered changes from #head on (a queue without shifting). */
  #buffer: Change[] = [];
  #head = 0;
  /** next() calls waiting for a change; only ever waiting while the buffer is empty. */
  #waiters: Array<Waiter<V>> = [];
  #state: State = 'open';

  constructor(settings: WatchSettings, unsubscribe: (watcher: Watcher<unknown>) => void) {
    this.#prefix = settings.prefix;
    this.#maxBuffered = settings.maxBuffered;
    this.#unsubscribe = unsubscribe;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<ChangeEvent<V>> {
    return this;
  }

  /** Takes the changes of one committed write that match this watcher, whole, or overflows. */
  offer(changes: readonly Change[]): void {
    if (this.#state !== 'open') return;
    const prefix = this.#prefix;
    const matching = prefix === undefined ? changes : changes.filter((c) => c.key.startsWith(prefix));
    if (matching.length === 0) return;
    const buffered = this.#buffer.length - this.#head;
    if (buffered > 0 && buffered + matching.length > this.#maxBuffered) {
      // It fell behind: what it holds is still given, then the overflow, never a gap.
      this.#state = 'overflowed';
      this.#unsubscribe(this as Watcher<unknown>);
      return;
    }
    for (const change of matching) this.#buffer.push(change);
    while (this.#waiters.length > 0 && this.#head < this.#buffer.length) {
      const waiter = this.#waiters.shift()!;
      try {
        waiter.resolve(this.#take());
      } catch (err) {
        waiter.reject(err);
      }
    }
  }

  /** Overflows now (ChangeFeed.interruptAll): what it buffered, then LOGKV_WATCH_OVERFLOW. */
  interrupt(): void {
    if (this.#state !== 'open') return;
    this.#state = 'overflowed';
    this.#unsubscribe(this as Watcher<unknown>);
    // Waiting next() calls exist only while the buffer is empty: they get the overflow.
    for (const waiter of this.#waiters.splice(0)) this.next().then(waiter.resolve, waiter.reject);
  }

  /** Ends the watcher after what it buffered (the store closed). */
  end(): void {
    if (this.#state === 'open') this.#state = 'ended';
    this.#unsubscribe(this as Watcher<unknown>);
    for (const waiter of this.#waiters.splice(0)) waiter.resolve({ value: undefined, done: true });
  }

  next(): Promise<IteratorResult<ChangeEvent<V>, undefined>> {
    if (this.#head < this.#buffer.length) {
      try {
        return Promise.resolve(this.#take());
      } catch (err) {
        return Promise.reject(err);
      }
    }
    if (this.#state === 'overflowed') {
      this.#state = 'ended';
      return Promise.reject(new LogkvError(ErrorCodes.WATCH_OVERFLOW,
        `a watcher fell more than maxBuffered (${this.#maxBuffered}) events behind; events after these were not kept`,
        { maxBuffered: this.#maxBuffered }));
    }
    if (this.#state === 'ended') return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** Unsubscribes and drops what was buffered: what `break` out of a for-await loop calls. */
  return(): Promise<IteratorResult<ChangeEvent<V>, undefined>> {
    this.#state = 'ended';
    this.#buffer = [];
    this.#head = 0;
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  /** As return(). */
  throw(): Promise<IteratorResult<ChangeEvent<V>, undefined>> {
    return this.return();
  }

  /** The next buffered change as an event, its value decoded now. */
  #take(): IteratorResult<ChangeEvent<V>, undefined> {
    const change = this.#buffer[this.#head];
    this.#buffer[this.#head++] = undefined as unknown as Change; // let the record's bytes go
    if (this.#head === this.#buffer.length) {
      this.#buffer = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#buffer.length) {
      this.#buffer = this.#buffer.slice(this.#head);
      this.#head = 0;
    }
    return { value: toEvent<V>(change), done: false };
  }
}

function toEvent<V>(change: Change): ChangeEvent<V> {
  if (change.type === 'delete') return { type: 'delete', key: change.key, version: change.version };
  const value = decodeValue(change.valueBytes!) as V;
  return change.expiresAt === 0
    ? { type: 'set', key: change.key, value, version: change.version }
    : { type: 'set', key: change.key, value, expiresAt: change.expiresAt, version: change.version };
}
