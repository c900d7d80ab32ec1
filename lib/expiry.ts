/**
 * Expiry at scale: each record's expiry in a column off the JS heap, with a tree of block minima
 * over it (ExpiryColumn), and a sweeper that removes expired keys in the background, a few
 * milliseconds at a time (ExpirySweeper). No I/O.
 *
 * Why a column and a tree of minima: the index must answer "when does the next key expire" and
 * "which keys have expired by now" without looking at keys that have not, and must update a key's
 * expiry when the key is overwritten or deleted. A binary heap does that too, but it needs three
 * arrays (times and records in heap order, and each record's place in the heap), 12 bytes per
 * expiring key, and open had to fill the places in: a store whose keys all carry a ttl opened
 * 1.47x as slowly as one without. The column is 4 bytes per record, read from a snapshot straight
 * into place; the tree over it (one minimum per 64 records) is rebuilt in one sequential pass.
 * Stores whose keys carry no expiry never allocate one.
 */
import { MAX_EXPIRES_AT } from './format';

const U32_MAX = 0xffffffff;
/** A narrow column's "no expiry": no offset is this large, so a minimum passes it over. */
const NONE_U32 = U32_MAX;
/** The largest offset a narrow column holds (one below NONE_U32): a window of 2^32 - 1 ms. */
const MAX_OFFSET = U32_MAX - 1;
/** Room a new base leaves below the earliest expiry, so that earlier ones still fit: about 24 days. */
const HALF_RANGE = 2 ** 31;
/** Records per leaf of the tree of minima (1 << BLOCK_SHIFT): the tree costs 2 entries per 64 records. */
const BLOCK_SHIFT = 6;
const BLOCK = 1 << BLOCK_SHIFT;
/** The deepest the tree of minima can be (2^32 records over 64 per leaf): a walk's stack never holds more. */
const STACK_DEPTH = 64;

/** A column's times: u32 offsets from its base (NONE_U32 = none), or the f64 times themselves (Infinity = none). */
export type ExpiryTimes = Uint32Array<ArrayBuffer> | Float64Array<ArrayBuffer>;

/**
 * Each record's expiry, by record, and the earliest of every 64 records in a complete binary tree
 * of minima over them.
 *
 *   #time   per record: its expiry in ms since the epoch (1 .. MAX_EXPIRES_AT) minus #base, or
 *           #none (the record has no expiry)
 *   #min    the tree: node 1 the root, node i's children 2i and 2i+1, the leaves at #leaves + b
 *           holding the least #time of records 64b .. 64b+63 (#none for none); every node holds
 *           the lesser of its children. Nodes past the last block hold #none.
 *
 * #time is a Uint32Array of offsets from #base while every expiry is a whole number of ms within
 * 2^32 - 1 ms (about 49 days) of it (0xFFFFFFFF means none): 4 bytes per record instead of 8, and
 * the form a snapshot stores, so open reads it into place with no decoding. As time passes,
 * expiries drift past the window; the column then moves #base (one O(records) pass, about once in
 * 24 days of a steady ttl). When the expiries themselves span more than the window (a key that
 * never expires in practice beside one-hour ttls), #time becomes a Float64Array of the times
 * themselves (Infinity means none) and #base 0, until no record has an expiry again.
 *
 * Costs: get O(1); set and delete O(1) when the record's block minimum does not change, else a
 * rescan of its 64 records and O(log n) up the tree; the earliest O(1); finding what expired by a
 * time O(k · 64) for k expired (never more than one pass over the column).
 */
export class ExpiryColumn {
  #time: ExpiryTimes;
  #min: ExpiryTimes;
  /** The first leaf of #min: a power of two, at least the number of blocks. */
  #leaves = 1;
  /** Added to an entry of #time gives its expiry; 0 when #time holds the times themselves. */
  #base = 0;
  /** #time is a Float64Array of the times themselves. */
  #wide = false;
  /** NONE_U32, or Infinity when wide. */
  #none = NONE_U32;
  /** Expiries added since #base last moved: a move costs O(n), so it must be paid for by n/4 of them. */
  #addedSinceRebase = 0;
  #length = 0;
  /** A walk's pending tree nodes (see #walk); reused, since size() may call it often. */
  readonly #stack = new Int32Array(STACK_DEPTH);

  /** A column for records 0 .. recordCapacity-1 (growRecords() raises it). */
  constructor(recordCapacity: number) {
    this.#time = new Uint32Array(recordCapacity).fill(NONE_U32);
    this.#min = this.#tree(recordCapacity);
    this.#build();
  }

  /** The number of records with an expiry. */
  get length(): number {
    return this.#length;
  }

  /** Whether the times are stored as f64 (8 bytes each) rather than as u32 offsets from a base (4). */
  get wide(): boolean {
    return this.#wide;
  }

  /** Bytes of typed arrays the column holds. */
  get memoryBytes(): number {
    return this.#time.byteLength + this.#min.byteLength;
  }

  /** Lets records up to `capacity` - 1 take an expiry. Never shrinks. */
  growRecords(capacity: number): void {
    if (capacity <= this.#time.length) return;
    const time = this.#wide ? new Float64Array(capacity).fill(Infinity) : new Uint32Array(capacity).fill(NONE_U32);
    time.set(this.#time);
    this.#time = time;
    this.#min = this.#tree(capacity);
    this.#build();
  }

  /** The record's expiry, or 0 if it has none. O(1). */
  get(record: number): number {
    const stored = this.#time[record];
    return stored === this.#none ? 0 : this.#base + stored;
  }

  /** Gives the record an expiry (0 removes it). O(1), or O(log n) when its block's earliest changes. */
  set(record: number, expiresAt: number): void {
    if (expiresAt === 0) {
      this.delete(record);
      return;
    }
    const stored = this.#stored(expiresAt);
    const time = this.#time;
    const old = time[record];
    if (old === this.#none) {
      this.#length++;
      this.#addedSinceRebase++;
    }
    time[record] = stored;
    if (stored < old) this.#lower(record >>> BLOCK_SHIFT, stored);
    else if (stored > old && old === this.#min[this.#leaves + (record >>> BLOCK_SHIFT)]) this.#rescan(record >>> BLOCK_SHIFT);
  }

  /** Removes the record's expiry, if it has one. O(1), or O(log n) when its block's earliest changes. */
  delete(record: number): void {
    const time = this.#time;
    const old = time[record];
    if (old === this.#none) return;
    time[record] = this.#none;
    this.#length--;
    if (old === this.#min[this.#leaves + (record >>> BLOCK_SHIFT)]) this.#rescan(record >>> BLOCK_SHIFT);
  }

  /** The earliest expiry, or Infinity if no record has one. O(1). */
  earliest(): number {
    return this.#length === 0 ? Infinity : this.#base + this.#min[1];
  }

  /** A record whose expiry is the earliest and is <= `now`, or -1. O(log n + 64). */
  earliestRecordBy(now: number): number {
    const min = this.#min;
    const least = min[1];
    if (this.#length === 0 || least > now - this.#base) return -1;
    const leaves = this.#leaves;
    let node = 1;
    while (node < leaves) node = min[2 * node] === least ? 2 * node : 2 * node + 1;
    const time = this.#time;
    const first = (node - leaves) << BLOCK_SHIFT;
    const end = Math.min(time.length, first + BLOCK);
    for (let record = first; record < end; record++) if (time[record] === least) return record;
    throw new Error('expiry column: the tree names a block without its minimum');
  }

  /**
   * How many records expire at or before `now`: O(k · 64) for k such records, O(1) when there
   * are none; never more than about one pass over the column.
   */
  countBy(now: number): number {
    let count = 0;
    this.#walk(now, () => { count++; });
    return count;
  }

  /** Calls `visit` for each record that expires at or before `now`, in record order. O(k · 64). */
  forEachBy(now: number, visit: (record: number) => void): void {
    this.#walk(now, visit);
  }

  /** Calls `visit` for every record with an expiry, in record order. O(records). `visit` must not change the column. */
  forEach(visit: (record: number, expiresAt: number) => void): void {
    const time = this.#time;
    const none = this.#none;
    for (let record = 0; record < time.length; record++) if (time[record] !== none) visit(record, this.#base + time[record]);
  }

  /**
   * The expiries of records 0 .. `records`-1 (every record with one must be below it) as bytes in
   * host order: u32 offsets from `base` (0xFFFFFFFF = none) as they sit in memory; or, if the
   * column is wide, f64 (Infinity = none) with `base` 0, unless they fit 2^32 - 1 ms from the
   * earliest after all (the far ones may have gone): then offsets from it. O(1), or O(records)
   * for a wide column.
   */
  toBytes(records: number): { base: number; times: Buffer } {
    const time = this.#time;
    if (!this.#wide) return { base: this.#base, times: Buffer.from(time.buffer, 0, records * 4) };
    const base = this.#min[1];
    let fits = this.#length > 0 && base >= 1 && Number.isInteger(base);
    for (let record = 0; record < records && fits; record++) {
      const t = time[record];
      fits = t === Infinity || (Number.isInteger(t) && t - base <= MAX_OFFSET);
    }
    if (!fits) return { base: 0, times: Buffer.from(time.buffer, 0, records * 8) };
    const offsets = new Uint32Array(records);
    for (let record = 0; record < records; record++) offsets[record] = time[record] === Infinity ? NONE_U32 : time[record] - base;
    return { base, times: Buffer.from(offsets.buffer) };
  }

  /**
   * The column array for `records` records whose times are offsets from `base` (f64 times if it
   * is 0), of exactly that size, for a snapshot reader to read toBytes() output straight into
   * (see adopt()).
   */
  static arrayFor(records: number, base: number): ExpiryTimes {
    return base === 0 ? new Float64Array(records) : new Uint32Array(records);
  }

  /** A column from toBytes() output (`count` records with an expiry): copies it, then as adopt(). */
  static fromBytes(times: Uint8Array, count: number, base: number, live: (record: number) => boolean): ExpiryColumn {
    const width = base === 0 ? 8 : 4;
    if (times.length % width !== 0) throw new Error('expiry column: wrong size');
    const time = ExpiryColumn.arrayFor(times.length / width, base);
    new Uint8Array(time.buffer).set(times);
    return ExpiryColumn.adopt(time, count, base, live);
  }

  /**
   * A column made of an array from arrayFor() that holds toBytes() output, and keeps it. Checks
   * that exactly `count` records have an expiry, each valid and each live (`live(record)` says
   * which records exist); throws otherwise. One pass over the column, which also builds the tree:
   * a snapshot's column is read once, into the memory that keeps it.
   */
  static adopt(time: ExpiryTimes, count: number, base: number, live: (record: number) => boolean): ExpiryColumn {
    const fail = (why: string): never => { throw new Error(`expiry column: ${why}`); };
    if (base !== 0 && !(Number.isInteger(base) && base >= 1 && base <= MAX_EXPIRES_AT)) fail('a bad base time');
    if ((base === 0) !== time instanceof Float64Array) fail('wrong array');
    const column = new ExpiryColumn(0);
    const none = base === 0 ? Infinity : NONE_U32;
    // Offsets up to this many ms keep within MAX_EXPIRES_AT (and below NONE_U32).
    const highest = base === 0 ? MAX_EXPIRES_AT : Math.min(MAX_OFFSET, MAX_EXPIRES_AT - base);
    const lowest = base === 0 ? 1 : 0;
    column.#wide = base === 0;
    column.#none = none;
    const min = column.#min = column.#tree(time.length);
    const leaves = column.#leaves;
    // One pass checks every time and fills the tree's leaves (as #build() would).
    let found = 0;
    for (let block = 0; block << BLOCK_SHIFT < time.length; block++) {
      let least = none;
      const end = Math.min(time.length, (block + 1) << BLOCK_SHIFT);
      for (let record = block << BLOCK_SHIFT; record < end; record++) {
        const t = time[record];
        if (t === none) continue;
        // Negated, so that NaN fails too.
        if (!(t >= lowest && t <= highest)) fail('a bad time');
        if (!live(record)) fail('an expiry for no live record');
        found++;
        if (t < least) least = t;
      }
      min[leaves + block] = least;
    }
    if (found !== count) fail('expiry count mismatch');
    for (let node = leaves - 1; node >= 1; node--) min[node] = Math.min(min[2 * node], min[2 * node + 1]);
    column.#time = time;
    column.#base = base;
    column.#length = count;
    return column;
  }

  // ---------------------------------------------------------------- internals

  /** A tree of minima for `records` records, every node #none; sets #leaves. */
  #tree(records: number): ExpiryTimes {
    let leaves = 1;
    while (leaves * BLOCK < records) leaves *= 2;
    this.#leaves = leaves;
    return this.#wide ? new Float64Array(2 * leaves).fill(Infinity) : new Uint32Array(2 * leaves).fill(NONE_U32);
  }

  /** Fills the tree from the column: each block's least time, then each node's lesser child. O(records). */
  #build(): void {
    const time = this.#time;
    const min = this.#min;
    const leaves = this.#leaves;
    const none = this.#none;
    for (let block = 0; block << BLOCK_SHIFT < time.length; block++) {
      let least = none;
      const end = Math.min(time.length, (block + 1) << BLOCK_SHIFT);
      for (let record = block << BLOCK_SHIFT; record < end; record++) if (time[record] < least) least = time[record];
      min[leaves + block] = least;
    }
    for (let node = leaves - 1; node >= 1; node--) min[node] = Math.min(min[2 * node], min[2 * node + 1]);
  }

  /** A time in `block` fell to `stored`: lowers its leaf and the nodes above it, while they are later. */
  #lower(block: number, stored: number): void {
    const min = this.#min;
    for (let node = this.#leaves + block; node >= 1 && min[node] > stored; node >>>= 1) min[node] = stored;
  }

  /** The time that was `block`'s least rose or went: its least again, and the nodes above it while they change. */
  #rescan(block: number): void {
    const time = this.#time;
    const min = this.#min;
    let least = this.#none;
    const end = Math.min(time.length, (block + 1) << BLOCK_SHIFT);
    for (let record = block << BLOCK_SHIFT; record < end; record++) if (time[record] < least) least = time[record];
    let node = this.#leaves + block;
    if (min[node] === least) return;
    min[node] = least;
    for (node >>>= 1; node >= 1; node >>>= 1) {
      const lesser = Math.min(min[2 * node], min[2 * node + 1]);
      if (min[node] === lesser) return;
      min[node] = lesser;
    }
  }

  /**
   * Calls `visit(record)` for every record whose time is <= `now`, in record order. A subtree
   * whose minimum is later than `now` is skipped whole, so the walk looks at O(k) nodes and
   * blocks, not O(n). Depth-first with an explicit stack: a node's right child waits on the stack
   * while its left subtree is walked, so the stack holds at most one entry per level.
   */
  #walk(now: number, visit: (record: number) => void): void {
    const min = this.#min;
    const time = this.#time;
    const leaves = this.#leaves;
    const stack = this.#stack;
    // Never as late as #none: a record without an expiry has not expired by any time.
    const by = Math.min(now - this.#base, this.#wide ? Number.MAX_VALUE : MAX_OFFSET);
    if (this.#length === 0 || min[1] > by) return;
    let depth = 0;
    let node = 1;
    for (;;) {
      if (node >= leaves) {
        const first = (node - leaves) << BLOCK_SHIFT;
        const end = Math.min(time.length, first + BLOCK);
        for (let record = first; record < end; record++) if (time[record] <= by) visit(record);
        if (depth === 0) return;
        node = stack[--depth];
        continue;
      }
      const left = 2 * node;
      const goLeft = min[left] <= by;
      const goRight = min[left + 1] <= by;
      if (goLeft) {
        if (goRight) stack[depth++] = left + 1;
        node = left;
      } else if (goRight) {
        node = left + 1;
      } else if (depth > 0) {
        node = stack[--depth];
      } else {
        return;
      }
    }
  }

  /** `expiresAt` as #time holds it; first moves #base, or widens #time, if it does not fit. */
  #stored(expiresAt: number): number {
    if (this.#length === 0) this.#restart(expiresAt);
    if (this.#wide) return expiresAt;
    const offset = expiresAt - this.#base;
    if (offset >= 0 && offset <= MAX_OFFSET && Number.isInteger(offset)) return offset;
    this.#refit(expiresAt);
    return this.#wide ? expiresAt : expiresAt - this.#base;
  }

  /** An empty column starts narrow again, its base about 24 days before its first expiry. */
  #restart(expiresAt: number): void {
    if (this.#wide) {
      this.#wide = false;
      this.#none = NONE_U32;
      this.#time = new Uint32Array(this.#time.length).fill(NONE_U32);
      this.#min = this.#tree(this.#time.length);
    }
    this.#base = Math.max(1, Math.floor(expiresAt) - HALF_RANGE);
    this.#addedSinceRebase = 0;
  }

  /**
   * Makes room for `expiresAt`, which does not fit the window of 2^32 - 1 ms from #base: moves
   * #base if every expiry and this one fit in such a window, keeping as much room below the
   * earliest as the window leaves (up to HALF_RANGE); else stores the times themselves. Both are
   * one O(records) pass. A column whose base moved fewer than n/4 additions ago widens instead,
   * so that expiries chosen to straddle the window cannot make every addition cost O(n).
   */
  #refit(expiresAt: number): void {
    const time = this.#time;
    const base = this.#base;
    const none = this.#none;
    let lo = expiresAt;
    let hi = expiresAt;
    for (let record = 0; record < time.length; record++) {
      if (time[record] === none) continue;
      const t = base + time[record];
      if (t < lo) lo = t;
      if (t > hi) hi = t;
    }
    if (Number.isInteger(expiresAt) && hi - lo <= MAX_OFFSET && this.#addedSinceRebase >= this.#length / 4) {
      const moved = Math.max(1, lo - Math.min(HALF_RANGE, MAX_OFFSET - (hi - lo)));
      const shift = base - moved;
      for (let record = 0; record < time.length; record++) if (time[record] !== none) time[record] += shift;
      this.#base = moved;
      this.#addedSinceRebase = 0;
      this.#build();
      return;
    }
    const wide = new Float64Array(time.length);
    for (let record = 0; record < time.length; record++) wide[record] = time[record] === none ? Infinity : base + time[record];
    this.#time = wide;
    this.#base = 0;
    this.#wide = true;
    this.#none = Infinity;
    this.#min = this.#tree(time.length);
    this.#build();
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
