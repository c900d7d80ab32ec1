/**
 * Expiry at scale: the keys that carry an expiry, ordered by it, off the JS heap (ExpiryHeap), and
 * a sweeper that removes expired keys in the background, a few milliseconds at a time
 * (ExpirySweeper). No I/O.
 *
 * Why a heap: the index must answer "when does the next key expire" and "which keys have expired
 * by now" without looking at keys that have not, and must update a key's expiry when the key is
 * overwritten or deleted. A binary min-heap does all three in O(1) or O(log n), and lives in two
 * typed arrays plus a position per record, about 12 bytes per expiring key, invisible to the GC.
 * Stores whose keys carry no expiry never allocate one.
 */
import { MAX_EXPIRES_AT } from './format';

const MIN_CAPACITY = 1024;
const U32_MAX = 0xffffffff;
/** Room a new base leaves below the earliest expiry, so that earlier ones still fit: about 24 days. */
const HALF_RANGE = 2 ** 31;

/** A heap's times: u32 offsets from its base, or the f64 times themselves. */
export type HeapTimes = Uint32Array<ArrayBuffer> | Float64Array<ArrayBuffer>;
/** The deepest a heap of 2^32 entries can be is 32 levels: a walk's stack never holds more. */
const STACK_DEPTH = 64;

/**
 * A binary min-heap of (expiresAt, record), keyed by record: each record is in it at most once,
 * and `#position` finds it there, so a record's expiry can be read, changed or removed without a
 * search. Ties are in no particular order.
 *
 *   #time      heap order: expiry in ms since the epoch (1 .. MAX_EXPIRES_AT) minus #base
 *   #record    Int32Array, heap order: the record the entry belongs to
 *   #position  Int32Array per record: its heap index + 1; 0 = the record has no expiry
 *
 * Entry i's children are 2i+1 and 2i+2; every entry's time is >= its parent's.
 *
 * #time is a Uint32Array of offsets from #base while every expiry is a whole number of ms within
 * 2^32 ms (about 49 days) of it: 4 bytes per entry instead of 8, and the form a snapshot stores,
 * so open reads it into place with no decoding. As time passes, expiries drift past the window;
 * the heap then moves #base (one O(n) pass, about once in 24 days of a steady ttl). When the
 * expiries themselves span more than the window (a key that never expires in practice beside
 * one-hour ttls), #time becomes a Float64Array of the times themselves and #base 0, until the
 * heap is empty again.
 */
export class ExpiryHeap {
  #time: HeapTimes;
  /** Added to an entry of #time gives its expiry; 0 when #time holds the times themselves. */
  #base = 0;
  /** #time is a Float64Array of the times themselves. */
  #wide = false;
  /** Entries added since #base last moved: a move costs O(n), so it must be paid for by n/4 of them. */
  #addedSinceRebase = 0;
  #record: Int32Array<ArrayBuffer>;
  #position: Int32Array<ArrayBuffer>;
  #length = 0;
  /** A walk's pending heap indices (see #walk); reused, since size() may call it often. */
  readonly #stack = new Int32Array(STACK_DEPTH);

  /** A heap for records 0 .. recordCapacity-1 (growRecords() raises it). */
  constructor(recordCapacity: number, heapCapacity = MIN_CAPACITY) {
    this.#time = new Uint32Array(Math.max(MIN_CAPACITY, heapCapacity));
    this.#record = new Int32Array(this.#time.length);
    this.#position = new Int32Array(recordCapacity);
  }

  /** The number of records with an expiry. */
  get length(): number {
    return this.#length;
  }

  /** Whether the times are stored as f64 (8 bytes each) rather than as u32 offsets from a base (4). */
  get wide(): boolean {
    return this.#wide;
  }

  /** Bytes of typed arrays the heap holds. */
  get memoryBytes(): number {
    return this.#time.byteLength + this.#record.byteLength + this.#position.byteLength;
  }

  /** Lets records up to `capacity` - 1 take an expiry. Never shrinks. */
  growRecords(capacity: number): void {
    if (capacity <= this.#position.length) return;
    const position = new Int32Array(capacity);
    position.set(this.#position);
    this.#position = position;
  }

  /** The record's expiry, or 0 if it has none. O(1). */
  get(record: number): number {
    const at = this.#position[record];
    return at === 0 ? 0 : this.#base + this.#time[at - 1];
  }

  /** Gives the record an expiry (0 removes it). O(log n); O(1) when the expiry does not change. */
  set(record: number, expiresAt: number): void {
    if (expiresAt === 0) {
      this.delete(record);
      return;
    }
    const stored = this.#stored(expiresAt);
    const at = this.#position[record];
    if (at === 0) {
      if (this.#length === this.#time.length) this.#grow();
      this.#up(this.#length++, stored, record);
      this.#addedSinceRebase++;
      return;
    }
    const old = this.#time[at - 1];
    if (stored < old) this.#up(at - 1, stored, record);
    else if (stored > old) this.#down(at - 1, stored, record);
  }

  /** Removes the record's expiry, if it has one. O(log n). */
  delete(record: number): void {
    const at = this.#position[record];
    if (at === 0) return;
    this.#position[record] = 0;
    const last = --this.#length;
    if (at - 1 === last) return;
    // The last entry fills the hole, moving up or down to where it belongs.
    const time = this.#time[last];
    const moved = this.#record[last];
    if (at - 1 > 0 && time < this.#time[(at - 2) >> 1]) this.#up(at - 1, time, moved);
    else this.#down(at - 1, time, moved);
  }

  /** The earliest expiry, or Infinity if no record has one. O(1). */
  earliest(): number {
    return this.#length === 0 ? Infinity : this.#base + this.#time[0];
  }

  /** A record whose expiry is the earliest and is <= `now`, or -1. O(1). */
  earliestRecordBy(now: number): number {
    return this.#length > 0 && this.#time[0] <= now - this.#base ? this.#record[0] : -1;
  }

  /**
   * How many records expire at or before `now`: O(k) for k such records, O(1) when there are
   * none. A walk visits only those entries (and at most two children of each, to stop there);
   * once it passes n/16 of them, a straight scan of the times is cheaper (see #scan).
   */
  countBy(now: number): number {
    const counted = this.#walk(now, undefined, this.#length >>> 4);
    if (counted >= 0) return counted;
    // The scan of #scan(), without a call per entry.
    const times = this.#time;
    const length = this.#length;
    const by = now - this.#base;
    let count = 0;
    for (let at = 0; at < length; at++) if (times[at] <= by) count++;
    return count;
  }

  /** Calls `visit` for each record that expires at or before `now`, in no particular order. O(k). */
  forEachBy(now: number, visit: (record: number) => void): void {
    const records = this.#record;
    const counted = this.#walk(now, undefined, this.#length >>> 4);
    if (counted > 0) this.#walk(now, (at) => visit(records[at]), Infinity);
    else if (counted < 0) this.#scan(now, (at) => visit(records[at]));
  }

  /** Calls `visit` for every record with an expiry, in heap order. O(n). `visit` must not change the heap. */
  forEach(visit: (record: number, expiresAt: number) => void): void {
    for (let at = 0; at < this.#length; at++) visit(this.#record[at], this.#base + this.#time[at]);
  }

  /**
   * The heap's entries in heap order, as two arrays in host byte order: the times, then the
   * records (i32 each). The times are u32 offsets from `base` as they sit in memory; or, if the
   * heap is wide, f64 with `base` 0, unless they fit in 2^32 ms of the earliest after all (the
   * wide ones may have gone): then offsets from it. O(1), or O(n) for a wide heap.
   */
  toBytes(): { base: number; times: Buffer; records: Buffer } {
    const length = this.#length;
    const records = Buffer.from(this.#record.buffer, 0, length * 4);
    if (length === 0) return { base: 0, times: Buffer.alloc(0), records };
    const time = this.#time;
    if (!this.#wide) return { base: this.#base, times: Buffer.from(time.buffer, 0, length * 4), records };
    const base = time[0];
    let fits = base >= 1 && Number.isInteger(base);
    for (let at = 0; at < length && fits; at++) fits = Number.isInteger(time[at]) && time[at] - base <= U32_MAX;
    if (!fits) return { base: 0, times: Buffer.from(time.buffer, 0, length * 8), records };
    const offsets = new Uint32Array(length);
    for (let at = 0; at < length; at++) offsets[at] = time[at] - base;
    return { base, times: Buffer.from(offsets.buffer), records };
  }


  /**
   * Arrays for a heap of `count` entries whose times are offsets from `base` (f64 times if it is
   * 0), with room to grow, for a snapshot reader to read the heap's bytes straight into (see
   * adopt()): the times at the start of `time`, the records at the start of `record`.
   */
  static arraysFor(count: number, base: number): { time: HeapTimes; record: Int32Array<ArrayBuffer> } {
    const capacity = Math.max(MIN_CAPACITY, Math.ceil(count * 1.25));
    return { time: base === 0 ? new Float64Array(capacity) : new Uint32Array(capacity), record: new Int32Array(capacity) };
  }

  /** A heap from toBytes() output (`count` entries in `times` and in `records`): copies them, then as adopt(). */
  static fromBytes(times: Uint8Array, records: Uint8Array, count: number, base: number, recordCapacity: number,
    live: (record: number) => boolean): ExpiryHeap {
    if (times.length !== count * (base === 0 ? 8 : 4) || records.length !== count * 4) throw new Error('expiry heap: wrong size');
    const arrays = ExpiryHeap.arraysFor(count, base);
    new Uint8Array(arrays.time.buffer, 0, times.length).set(times);
    new Uint8Array(arrays.record.buffer, 0, records.length).set(records);
    return ExpiryHeap.adopt(arrays.time, arrays.record, count, base, recordCapacity, live);
  }

  /**
   * A heap made of arrays from arraysFor(count, base) that hold toBytes() output at their starts.
   * Checks that it is a heap of distinct live records with valid expiries (`live(record)` says
   * which records exist, all below `recordCapacity`); throws otherwise. O(count), no sorting, and
   * no copy: a snapshot's heap is read once, into the memory that keeps it.
   */
  static adopt(time: HeapTimes, record: Int32Array<ArrayBuffer>, count: number, base: number,
    recordCapacity: number, live: (record: number) => boolean): ExpiryHeap {
    const fail = (why: string): never => { throw new Error(`expiry heap: ${why}`); };
    if (time.length < count || record.length !== time.length || (base === 0) !== time instanceof Float64Array) fail('wrong arrays');
    if (base !== 0 && !(Number.isInteger(base) && base >= 1 && base <= MAX_EXPIRES_AT)) fail('a bad base time');
    const heap = new ExpiryHeap(recordCapacity, 0);
    const position = heap.#position;
    for (let at = 0; at < count; at++) {
      const t = base + time[at];
      const r = record[at];
      if (!(t >= 1 && t <= MAX_EXPIRES_AT) || (at > 0 && time[at] < time[(at - 1) >> 1])) fail('not a heap of expiries');
      if (r < 0 || r >= recordCapacity || !live(r)) fail('an entry names no live record');
      if (position[r] !== 0) fail('a record appears twice');
      position[r] = at + 1;
    }
    heap.#time = time;
    heap.#base = base;
    heap.#wide = base === 0;
    heap.#record = record;
    heap.#length = count;
    return heap;
  }



  // ---------------------------------------------------------------- internals

  /**
   * Puts (time, record) at index `at` or above it: parents later than `time` move down into the
   * hole. A new expiry later than every other (a ttl fill) stops at once.
   */
  #up(at: number, time: number, record: number): void {
    const times = this.#time;
    const records = this.#record;
    const position = this.#position;
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (times[parent] <= time) break;
      times[at] = times[parent];
      records[at] = records[parent];
      position[records[at]] = at + 1;
      at = parent;
    }
    times[at] = time;
    records[at] = record;
    position[record] = at + 1;
  }

  /** Puts (time, record) at index `at` or below it: the earlier child moves up into the hole. */
  #down(at: number, time: number, record: number): void {
    const times = this.#time;
    const records = this.#record;
    const position = this.#position;
    const length = this.#length;
    for (;;) {
      let child = 2 * at + 1;
      if (child >= length) break;
      if (child + 1 < length && times[child + 1] < times[child]) child++;
      if (times[child] >= time) break;
      times[at] = times[child];
      records[at] = records[child];
      position[records[at]] = at + 1;
      at = child;
    }
    times[at] = time;
    records[at] = record;
    position[record] = at + 1;
  }

  /**
   * Calls `visit(index)` for every heap index whose time is <= `now`. A subtree whose root is
   * later than `now` is skipped whole (heap order), so the walk costs O(k), not O(n). Depth-first
   * with an explicit stack: a node's right child waits on the stack while its left subtree is
   * walked, so the stack holds at most one entry per level. Returns how many it visited, or -1
   * as soon as that would exceed `budget` (visit may have been called for some of them).
   */
  #walk(now: number, visit: ((index: number) => void) | undefined, budget: number): number {
    const times = this.#time;
    const length = this.#length;
    const stack = this.#stack;
    const by = now - this.#base;
    if (length === 0 || times[0] > by) return 0;
    let count = 0;
    let depth = 0;
    let at = 0;
    for (;;) {
      if (++count > budget) return -1;
      if (visit !== undefined) visit(at);
      const left = 2 * at + 1;
      const right = left + 1;
      const goLeft = left < length && times[left] <= by;
      const goRight = right < length && times[right] <= by;
      if (goLeft) {
        if (goRight) stack[depth++] = right;
        at = left;
      } else if (goRight) {
        at = right;
      } else if (depth > 0) {
        at = stack[--depth];
      } else {
        return count;
      }
    }
  }

  /**
   * Calls `visit(index)` for every heap index whose time is <= `now`, in index order, looking at
   * every entry. The walk costs several times as much per entry as this scan (it jumps about the
   * arrays): countBy() and forEachBy() scan instead once the walk finds more than a sixteenth of
   * the heap expired, which keeps them O(k). A million keys expiring at once then take a few
   * milliseconds to count rather than tens.
   */
  #scan(now: number, visit: (index: number) => void): void {
    const times = this.#time;
    const length = this.#length;
    const by = now - this.#base;
    for (let at = 0; at < length; at++) if (times[at] <= by) visit(at);
  }

  /** `expiresAt` as #time holds it; first moves #base, or widens #time, if it does not fit. */
  #stored(expiresAt: number): number {
    if (this.#length === 0) this.#restart(expiresAt);
    if (this.#wide) return expiresAt;
    const offset = expiresAt - this.#base;
    if (offset >= 0 && offset <= U32_MAX && Number.isInteger(offset)) return offset;
    this.#refit(expiresAt);
    return this.#wide ? expiresAt : expiresAt - this.#base;
  }

  /** An empty heap starts narrow again, its base about 24 days before its first expiry. */
  #restart(expiresAt: number): void {
    if (this.#wide) this.#time = new Uint32Array(this.#time.length);
    this.#wide = false;
    this.#base = Math.max(1, Math.floor(expiresAt) - HALF_RANGE);
    this.#addedSinceRebase = 0;
  }

  /**
   * Makes room for `expiresAt`, which does not fit the window of 2^32 ms from #base: moves #base
   * if every expiry and this one fit in such a window, keeping as much room below the earliest as
   * the window leaves (up to HALF_RANGE); else stores the times themselves. Both are one O(n)
   * pass. A heap whose base moved fewer than n/4 additions ago widens instead, so that expiries
   * chosen to straddle the window cannot make every addition cost O(n).
   */
  #refit(expiresAt: number): void {
    const time = this.#time;
    const base = this.#base;
    const length = this.#length;
    let lo = expiresAt;
    let hi = expiresAt;
    for (let at = 0; at < length; at++) {
      const t = base + time[at];
      if (t < lo) lo = t;
      if (t > hi) hi = t;
    }
    if (Number.isInteger(expiresAt) && hi - lo <= U32_MAX && this.#addedSinceRebase >= length / 4) {
      const moved = Math.max(1, lo - Math.min(HALF_RANGE, U32_MAX - (hi - lo)));
      const shift = base - moved;
      for (let at = 0; at < length; at++) time[at] += shift;
      this.#base = moved;
      this.#addedSinceRebase = 0;
      return;
    }
    const wide = new Float64Array(time.length);
    for (let at = 0; at < length; at++) wide[at] = base + time[at];
    this.#time = wide;
    this.#base = 0;
    this.#wide = true;
  }

  #grow(): void {
    const time = this.#wide ? new Float64Array(this.#time.length * 2) : new Uint32Array(this.#time.length * 2);
    time.set(this.#time);
    const record = new Int32Array(time.length);
    record.set(this.#record);
    this.#time = time;
    this.#record = record;
  }
}

/** What the sweeper needs from the index it sweeps. */
export interface SweepTarget {
  /** The store's clock, in ms since the epoch. */
  clock(): number;
  /** The earliest expiry of any key, or Infinity. */
  nextExpiry(): number;
  /** Removes up to `limit` keys that expired at or before `now`; returns how many it removed. */
  purge(now: number, limit: number): number;
}

export interface SweepOptions {
  /** The longest one slice of purging runs before it yields to the event loop. */
  sliceMs: number;
  /** Keys removed between two looks at the time (each takes about a microsecond). */
  batch: number;
  /** The least time between the end of one sweep and the start of the next, so keys expiring one by one are purged in groups. */
  minIntervalMs: number;
}

const SWEEP_DEFAULTS: SweepOptions = { sliceMs: 4, batch: 256, minIntervalMs: 100 };
/**
 * The longest the timer waits before it looks at the clock again. Timers run on a monotonic clock
 * while the store's clock is wall time, which jumps (NTP steps, a suspended VM or laptop waking
 * up): a timer armed for "in a day" must not sleep through a day that passed at once. (Also,
 * setTimeout fires at once for delays above 2^31 - 1 ms.)
 */
const MAX_TIMER_MS = 60 * 1000;

/**
 * Removes expired keys in the background, so that expired keys do not pile up in memory and a
 * count of them (for `size`) stays small. A timer fires at the earliest expiry (no sooner than
 * `minIntervalMs` after the previous sweep ended); the sweep then removes what has expired in
 * slices of at most about `sliceMs`, yielding to the event loop (setImmediate) between slices,
 * so no sweep blocks the loop for long, however many keys expired at once.
 *
 * What it promises: while started, every key that has expired is removed eventually: within
 * about `minIntervalMs` plus the time the slices take once the event loop is free; when the
 * clock jumped ahead, within MAX_TIMER_MS (a minute), or sooner if wake() is called. What it does
 * not: that a key is removed the moment it expires (readers check the expiry themselves), or any
 * order among keys that expire together. Its timer is unref'd: a sweeper waiting for the next
 * expiry never keeps a process alive (a sweep under way does, until it ends).
 */
export class ExpirySweeper {
  readonly #target: SweepTarget;
  readonly #options: SweepOptions;
  #running = false;
  #timer: NodeJS.Timeout | undefined;
  /** The expiry the armed timer is for; Infinity when none is armed. */
  #armedFor = Infinity;
  /** performance.now() when the armed timer fires. */
  #fireAtMs = Infinity;
  /** A sweep is under way (its next slice is queued): it arms the timer again when it ends. */
  #sweeping = false;
  /** performance.now() when the last sweep ended. */
  #lastSweepEnd = -Infinity;

  constructor(target: SweepTarget, options: Partial<SweepOptions> = {}) {
    this.#target = target;
    this.#options = { ...SWEEP_DEFAULTS, ...options };
  }

  /** Starts sweeping: arms the timer for the earliest expiry (at once if keys have expired). */
  start(): void {
    this.#running = true;
    this.#arm();
  }

  /** Stops: no slice runs after this returns. start() may be called again. */
  stop(): void {
    this.#running = false;
    this.#disarm();
  }

  /**
   * Tells the sweeper that a key now expires at `expiresAt`. O(1) unless it is earlier than the
   * expiry the timer is armed for; then the timer is armed again.
   */
  note(expiresAt: number): void {
    if (expiresAt < this.#armedFor && this.#running && !this.#sweeping) this.#arm();
  }

  /**
   * Tells the sweeper that expired keys were found: it sweeps within about `minIntervalMs`,
   * though its timer waits longer (the clock jumped past the expiry it was armed for). O(1).
   */
  wake(): void {
    if (!this.#running || this.#sweeping) return;
    if (this.#timer !== undefined && this.#fireAtMs - performance.now() <= this.#options.minIntervalMs) return;
    this.#disarm();
    this.#arm();
  }

  #arm(): void {
    if (!this.#running || this.#sweeping) return;
    const next = this.#target.nextExpiry();
    if (next >= this.#armedFor) return;
    this.#disarm();
    if (next === Infinity) return;
    const untilNext = next - this.#target.clock();
    const sinceLast = performance.now() - this.#lastSweepEnd;
    const delay = Math.min(Math.max(untilNext, this.#options.minIntervalMs - sinceLast, 0), MAX_TIMER_MS);
    this.#armedFor = next;
    this.#fireAtMs = performance.now() + delay;
    this.#timer = setTimeout(() => this.#sweep(), Math.ceil(delay));
    this.#timer.unref();
  }

  #disarm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedFor = Infinity;
  }

  #sweep(): void {
    this.#timer = undefined;
    this.#armedFor = Infinity;
    this.#sweeping = true;
    this.#slice();
  }

  /** One slice: purges in batches until nothing has expired or the slice's time is up. */
  #slice(): void {
    if (!this.#running) {
      this.#sweeping = false;
      return;
    }
    const { sliceMs, batch } = this.#options;
    const started = performance.now();
    const now = this.#target.clock();
    while (this.#target.purge(now, batch) === batch) {
      if (performance.now() - started >= sliceMs) {
        // Not unref'd: with only unref'd immediates pending, the event loop blocks in poll until
        // other work wakes it, and an idle process would run one slice per wake-up. A sweep is
        // finite, so keeping a process alive until it ends costs at most its length.
        setImmediate(() => this.#slice());
        return;
      }
    }
    this.#sweeping = false;
    this.#lastSweepEnd = performance.now();
    this.#arm();
  }
}
