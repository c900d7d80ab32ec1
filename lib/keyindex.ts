/**
 * The index room: which record holds each live key (the keydir), which keys expire and when, and
 * how many bytes the live keys' records take. No I/O: it learns of records from the writer (as
 * they are queued), from recovery (as they replay) and from the compaction switch (as they move),
 * and it answers the Store's questions (is this key live, where is it, how many keys are there).
 *
 * Expiries live in the keydir, off the JS heap (a heap of expiry times, expiry.ts). An expired key
 * stays in the keydir until something looks at it (live(), an iteration reaching it) or the
 * sweeper removes it in the background, a few ms at a time; counts (size, liveBytes) leave
 * expired keys out at once, at a cost of the number expired and not yet removed.
 *
 * The keys are also kept in order (ordered.ts, a B+tree of keydir records, off the JS heap too)
 * once anything has asked for order: the first range() builds the index with one sort of every
 * key, and from then on the keydir keeps it in step with every key that comes or goes. Until then
 * a store pays nothing for it: measured at a million keys, keeping it costs a fill about a third
 * more CPU per new key (its insert misses cache in a tree the store's other work evicts), beyond
 * the budget of issue 12, while the sort costs about a quarter of a second of CPU, once. A
 * snapshot carries the index once built (snapshot.ts), so a store that iterates opens with it.
 */
import { ExpirySweeper } from './expiry';
import { RECORD_HEADER_BYTES } from './format';
import { Entry, KeyDir } from './keydir';
import type { KeyRange } from './validate';

export class KeyIndex {
  #keydir = new KeyDir();
  /** Bytes of the records the keys in the keydir point at (expired ones included until removed). */
  #liveBytes = 0;
  readonly #clock: () => number;
  /** Removes expired keys in the background, a few ms at a time (expiry.ts); runs between start() and stop(). */
  readonly #sweeper: ExpirySweeper;
  /** Takes a removed record's bytes out of the live count. */
  readonly #forget = (_record: number, length: number): void => { this.#liveBytes -= length; };

  /** `clock` is the wall clock in ms since the epoch, read only when an entry with an expiry is looked at. */
  constructor(clock: () => number) {
    this.#clock = clock;
    this.#sweeper = new ExpirySweeper({
      clock,
      nextExpiry: () => this.#keydir.nextExpiry(),
      purge: (now, limit) => this.#keydir.takeExpired(now, limit, this.#forget),
    });
  }

  /** Starts removing expired keys in the background (once the index is built). */
  start(): void {
    this.#sweeper.start();
  }

  /** Stops the background removal: no slice runs after this returns. */
  stop(): void {
    this.#sweeper.stop();
  }

  // ---------------------------------------------------------------- building it (recovery)

  /** Makes room for `count` more keys (a hint file's), before they come. */
  reserve(count: number): void {
    this.#keydir.reserve(count);
  }

  /** Replays a record during recovery; the key is UTF-8 bytes. */
  applyBytes(bytes: Buffer, start: number, length: number, entry: Entry | undefined): void {
    const previous = this.#keydir.putBytes(bytes, start, length, entry);
    if (previous !== undefined) this.#liveBytes -= previous.length;
    if (entry !== undefined) this.#liveBytes += entry.length;
  }

  /** Takes a keydir loaded whole from a snapshot (KeyDir.fromBytes), in place of the replay. */
  load(keydir: KeyDir): void {
    this.#keydir = keydir;
    this.#liveBytes = keydir.loaded!.totalLength;
  }

  // ---------------------------------------------------------------- questions

  /** The entry of `key`, expired or not. */
  get(key: string): Entry | undefined {
    return this.#keydir.get(key);
  }

  /** The entry of `key` if it is live; an expired entry is dropped from the index. */
  live(key: string): Entry | undefined {
    const record = this.liveRecord(key);
    return record < 0 ? undefined : this.#keydir.entryOf(record);
  }

  /**
   * live() without an Entry, for get(): the keydir record of `key` if it is live, else -1 (an
   * expired one is dropped from the index, as live() drops it). Read its place with
   * keydir.segmentIdOf() and friends at once: the next change may reuse the record.
   */
  liveRecord(key: string): number {
    const keydir = this.#keydir;
    const record = keydir.find(key);
    if (record < 0) return -1;
    const expiresAt = keydir.expiresAtOf(record);
    if (expiresAt !== 0 && expiresAt <= this.#clock()) {
      this.apply(key, undefined);
      return -1;
    }
    return record;
  }

  /**
   * Whether `key` is live and its record is the one at (segmentId, offset): what compaction asks
   * of each record it reads. Drops nothing, since it runs on the compactor's schedule.
   */
  isLiveAt(key: string, segmentId: number, offset: number): boolean {
    const entry = this.#keydir.get(key);
    return entry !== undefined && entry.segmentId === segmentId && entry.offset === offset &&
      (entry.expiresAt === 0 || entry.expiresAt > this.#clock());
  }

  /** The number of live keys: O(1), plus O(k) for k keys expired and not yet removed. */
  size(): number {
    return this.#keydir.size - this.#countExpired(this.#clock());
  }

  /** Bytes of the records the live keys point at (expired ones left out, as in size()). */
  get liveBytes(): number {
    return this.#liveBytes - this.#keydir.expiredLength(this.#clock());
  }

  /**
   * Keys that expired by `now` but are still in the keydir. Finding any wakes the sweeper, should
   * the clock have jumped past expiries its timer does not know have passed.
   */
  #countExpired(now: number): number {
    const expired = this.#keydir.countExpired(now);
    if (expired > 0) this.#sweeper.wake();
    return expired;
  }

  /**
   * The keys in `range` that may be live, in the order of their UTF-8 bytes (`range.limit` is
   * the caller's to count: it counts live keys). The iteration spans the caller's awaits and the
   * index may change in between: it stays in order, yields no key twice, yields every key that
   * is in the range all along, and a key added ahead of it too (one behind it, not); compaction
   * moving records does not disturb it. Check each key with live() when it comes: it may have
   * been deleted or expired since. The first call builds the ordered index (one sort).
   */
  range(range: KeyRange): Generator<string, void, undefined> {
    this.#keydir.orderKeys();
    return this.#keydir.range({
      gt: range.gt, gte: range.gte, lt: range.lt, lte: range.lte, prefix: range.prefix, reverse: range.reverse,
    });
  }

  /** Whether the keys are kept in order yet (the first range() starts keeping them). */
  get ordered(): boolean {
    return this.#keydir.ordered !== undefined;
  }

  /** The keydir, for the snapshot close() leaves (snapshot.ts). */
  get keydir(): KeyDir {
    return this.#keydir;
  }

  // ---------------------------------------------------------------- changes

  /**
   * Points `key` at `entry` (or removes it), keeping the byte counts and the sweeper's timer, and
   * returns the entry it replaced. With `record` (the encoded record), the keydir takes the key's
   * bytes from it instead of encoding the key again.
   */
  apply(key: string, entry: Entry | undefined, record?: Buffer): Entry | undefined {
    const previous = record === undefined ? this.#keydir.put(key, entry)
      : this.#keydir.putBytes(record, RECORD_HEADER_BYTES, record.readUInt16LE(6), entry);
    if (previous !== undefined) this.#liveBytes -= previous.length;
    if (entry !== undefined) {
      this.#liveBytes += entry.length;
      if (entry.expiresAt !== 0) this.#sweeper.note(entry.expiresAt);
    }
    return previous;
  }

  /**
   * Points the key (UTF-8 bytes) at `entry` if it still points at (fromSegment, fromOffset): a
   * record compaction copied, same length and expiry, so no count changes.
   */
  relocate(key: Buffer, keyStart: number, keyLength: number, fromSegment: number, fromOffset: number, entry: Entry): void {
    const current = this.#keydir.getBytes(key, keyStart, keyLength);
    if (current !== undefined && current.segmentId === fromSegment && current.offset === fromOffset) {
      this.#keydir.putBytes(key, keyStart, keyLength, entry);
    }
  }

  /**
   * Drops every key with an expiry whose entry still points into one of `segmentIds`: at the end
   * of a compaction switch those are keys that had expired when their record was copied (so it
   * was not), and their segments are about to go.
   */
  dropExpiringIn(segmentIds: ReadonlySet<number>): void {
    this.#keydir.removeExpiringIn(segmentIds, this.#forget);
  }
}
