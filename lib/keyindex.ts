/**
 * The index room: which record holds each live key (the keydir), which keys expire and when, and
 * how many bytes the live keys' records take. No I/O: it learns of records from the writer (as
 * they are queued), from recovery (as they replay) and from the compaction switch (as they move),
 * and it answers the Store's questions (is this key live, where is it, how many keys are there).
 *
 * Expiry is lazy: an expired key stays in the keydir until something looks at it (live(), the
 * sweep in size(), an iteration reaching it), and is dropped then. The expiry bookkeeping and the
 * order of key iteration are this room's alone: the expiry structure and an ordered index plug in
 * here (and in keydir.ts), and nothing outside changes.
 */
import { RECORD_HEADER_BYTES } from './format';
import { Entry, KeyDir } from './keydir';

export class KeyIndex {
  #keydir = new KeyDir();
  /** Keys whose entry has an expiry, so expired ones can be found without a full scan. */
  readonly #expiring = new Set<string>();
  /** Bytes of the records the live keys point at (expired ones included until they are dropped). */
  #liveBytes = 0;
  readonly #clock: () => number;

  /** `clock` is the wall clock in ms since the epoch, read only when an entry with an expiry is looked at. */
  constructor(clock: () => number) {
    this.#clock = clock;
  }

  // ---------------------------------------------------------------- building it (recovery)

  /** Makes room for `count` more keys (a hint file's), before they come. */
  reserve(count: number): void {
    this.#keydir.reserve(count);
  }

  /** Replays a record during recovery; the key is UTF-8 bytes, decoded only if it expires. */
  applyBytes(bytes: Buffer, start: number, length: number, entry: Entry | undefined): void {
    const previous = this.#keydir.putBytes(bytes, start, length, entry);
    if (previous !== undefined) this.#liveBytes -= previous.length;
    if (entry !== undefined) this.#liveBytes += entry.length;
    if ((previous !== undefined && previous.expiresAt !== 0) || (entry !== undefined && entry.expiresAt !== 0)) {
      const key = bytes.toString('utf8', start, start + length);
      if (entry !== undefined && entry.expiresAt !== 0) this.#expiring.add(key);
      else this.#expiring.delete(key);
    }
  }

  /** Takes a keydir loaded whole from a snapshot (KeyDir.fromBytes), in place of the replay. */
  load(keydir: KeyDir): void {
    this.#keydir = keydir;
    this.#liveBytes = keydir.loaded!.totalLength;
    this.#expiring.clear();
    keydir.forEachExpiring((key) => this.#expiring.add(key));
  }

  // ---------------------------------------------------------------- questions

  /** The entry of `key`, expired or not. */
  get(key: string): Entry | undefined {
    return this.#keydir.get(key);
  }

  /** The entry of `key` if it is live; an expired entry is dropped from the index. */
  live(key: string): Entry | undefined {
    const entry = this.#keydir.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt !== 0 && entry.expiresAt <= this.#clock()) {
      this.apply(key, undefined);
      return undefined;
    }
    return entry;
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

  /** The number of live keys (expired ones are dropped first). */
  size(): number {
    this.purgeExpired();
    return this.#keydir.size;
  }

  /** Bytes of the records the keys point at. Call size() first to leave expired keys out. */
  get liveBytes(): number {
    return this.#liveBytes;
  }

  /**
   * The keys that may be live, optionally only those starting with `prefix`, in no particular
   * order; keys added after the iteration started are not seen, and none is yielded twice. The
   * iteration spans the caller's awaits, so check each key with live() when it comes: it may
   * have been deleted or expired since.
   */
  *keys(prefix: string | undefined): Generator<string, void, undefined> {
    for (const key of this.#keydir.keys()) {
      if (prefix !== undefined && !key.startsWith(prefix)) continue;
      yield key;
    }
  }

  /** The keydir, for the snapshot close() leaves (snapshot.ts). */
  get keydir(): KeyDir {
    return this.#keydir;
  }

  // ---------------------------------------------------------------- changes

  /**
   * Points `key` at `entry` (or removes it), keeping the byte counts and the expiry set, and
   * returns the entry it replaced. With `record` (the encoded record), the keydir takes the key's
   * bytes from it instead of encoding the key again.
   */
  apply(key: string, entry: Entry | undefined, record?: Buffer): Entry | undefined {
    const previous = record === undefined ? this.#keydir.put(key, entry)
      : this.#keydir.putBytes(record, RECORD_HEADER_BYTES, record.readUInt16LE(6), entry);
    if (previous !== undefined) {
      this.#liveBytes -= previous.length;
      if (previous.expiresAt !== 0 && (entry === undefined || entry.expiresAt === 0)) this.#expiring.delete(key);
    }
    if (entry !== undefined) {
      this.#liveBytes += entry.length;
      if (entry.expiresAt !== 0) this.#expiring.add(key);
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
    for (const key of this.#expiring) {
      const entry = this.#keydir.get(key);
      if (entry !== undefined && segmentIds.has(entry.segmentId)) this.apply(key, undefined);
    }
  }

  /** Drops every expired key, so counts and sizes leave them out. */
  purgeExpired(): void {
    if (this.#expiring.size === 0) return;
    const now = this.#clock();
    for (const key of this.#expiring) {
      const entry = this.#keydir.get(key);
      if (entry === undefined || entry.expiresAt === 0) this.#expiring.delete(key);
      else if (entry.expiresAt <= now) this.apply(key, undefined);
    }
  }
}
