/**
 * The keydir: for every live key, where its newest record lives. No I/O.
 *
 * An entry names the segment, the record's offset and total length, and its expiry: everything
 * a read needs to fetch and check the record with one positioned read.
 *
 * Why not a Map<string, Entry>: that costs about 100 bytes of JS heap per key, and a million
 * small objects that every full GC must trace (it doubled full-GC pauses when we measured). This
 * table keeps everything in typed arrays, off the JS heap and invisible to the GC:
 *
 *   slots     Int32Array, open addressing with linear probing; slot = record index + 1, 0 = empty
 *   segment   Uint32Array per record: a small index into `segmentIds`
 *   offset    Uint32Array per record (segments are at most 4 GiB)
 *   length    Uint32Array per record
 *   keyAt     Uint32Array per record: where the key's bytes start in `arena`
 *   hash      Uint32Array per record: the key's hash (compared before the key; no rehash on resize)
 *   arena     the keys' UTF-8 bytes, each preceded by its length (1 byte below 128, else 3)
 *   expiry    an ExpiryHeap (expiry.ts) of the records with an expiry, made when the first one
 *             comes: about 8 bytes per such record (12 if their expiries span more than
 *             49 days), and 4 per record once it exists
 *
 * About 20 bytes per record plus the key, plus 4 bytes per slot (at most 70% full).
 * Deleted records' indices are reused (unless an iteration is running); the arena is rebuilt
 * when more than half of it is deleted keys.
 *
 * Made with `{ ordered }` (or after orderKeys()), the keydir also keeps an ordered index
 * (ordered.ts), which reads keys through keyArena/keyOffsets: told of each record that comes as a
 * new key and of each that goes, before its bytes are freed; overwrites do not concern it.
 */

import { randomBytes } from 'crypto';
import { ExpiryHeap, type HeapTimes } from './expiry';
import { mix32 } from './hash';
import { OrderedIndex, RecordDigest, type ByteRange, type OrderedIndexOptions } from './ordered';

/**
 * This process's hash seed, drawn once at load from the OS's random source. FNV-1a with a fixed
 * basis lets whoever chooses the keys (a cache keyed by request URL) pick keys whose hashes
 * collide, turning every probe into a walk of one long cluster; with a secret basis they cannot
 * know which keys collide. A table keeps the seed it was made with: a table loaded from a
 * snapshot adopts the seed the snapshot names (its hashes and slots were made with it).
 */
const PROCESS_SEED = randomBytes(4).readUInt32LE(0);
const FNV_BASIS = 0x811c9dc5;

export class Entry {
  constructor(
    /** Segment id. */
    readonly segmentId: number,
    /** Offset of the record (its CRC field) in the segment file. */
    readonly offset: number,
    /** Total record length: header, key and value. */
    readonly length: number,
    /** Expiry in ms since the epoch; 0 = never. */
    readonly expiresAt: number,
  ) {}
}

const MAX_LOAD = 0.7;
const MIN_SLOTS = 1024;
/** Keys are at most 65535 bytes (format.ts): the scratch buffer holds any of them. */
const SCRATCH_BYTES = 0x10000;

export interface KeyDirOptions {
  /** The seed of the table's hashes (default: this process's). */
  seed?: number;
  /** Keep an ordered index of the keys (ordered.ts) in step with every change; off by default. */
  ordered?: boolean | OrderedIndexOptions;
}

/** ByteRange (ordered.ts) with string bounds. */
export interface KeyRange extends Omit<ByteRange, 'gt' | 'gte' | 'lt' | 'lte' | 'prefix'> {
  gt?: string;
  gte?: string;
  lt?: string;
  lte?: string;
  prefix?: string;
}

export class KeyDir {
  /** The FNV basis of this table's hashes: the standard one xor the table's seed. */
  readonly #basis: number;
  #slots = new Int32Array(MIN_SLOTS);
  #mask = MIN_SLOTS - 1;
  #count = 0;
  /** Record indices handed out so far (live or free). */
  #high = 0;
  /**
   * Freed records, linked through their `offset` column (unused while a record is free) from
   * #freeHead, -1 when there is none. A list that costs no memory and never grows: a purge of a
   * million expired keys frees a million records in a row, and a JS array of them put 8 MB on the
   * JS heap, a typed one stalled the purge each time it doubled (page faults in fresh memory).
   */
  #freeHead = -1;
  #freeCount = 0;
  #segment = new Uint32Array(MIN_SLOTS);
  #offset = new Uint32Array(MIN_SLOTS);
  #length = new Uint32Array(MIN_SLOTS);
  #keyAt = new Uint32Array(MIN_SLOTS);
  /** Each record's key hash: a probe compares it before the key bytes, and a resize needs no rehash. */
  #hash = new Uint32Array(MIN_SLOTS);
  #arena = new Uint8Array(MIN_SLOTS * 16);
  #arenaUsed = 0;
  #arenaGarbage = 0;
  /** The records with an expiry, by expiry; undefined until the first record with one arrives. */
  #expiry: ExpiryHeap | undefined;
  readonly #segmentIds: number[] = [];
  readonly #segmentIndex = new Map<number, number>();
  /** Running iterations; while any runs, freed record indices are not reused (see keys()). */
  #iterations = 0;
  readonly #scratch = Buffer.allocUnsafe(SCRATCH_BYTES);
  /** The keys in order, if asked for (see ordered.ts); told of every key that comes or goes. */
  #ordered: OrderedIndex | undefined;

  /**
   * A table whose hashes use `seed` (by default this process's, drawn at random when it started),
   * keeping its keys in order if `ordered` (a number is the seed alone).
   */
  constructor(options: KeyDirOptions | number = {}) {
    const { seed = PROCESS_SEED, ordered } = typeof options === 'number' ? { seed: options } : options;
    this.#basis = (FNV_BASIS ^ seed) >>> 0;
    if (ordered) this.#ordered = new OrderedIndex(this, ordered === true ? {} : ordered);
  }

  /** The seed of this table's hashes: toBytes() stores it, and fromBytes() adopts it. */
  get seed(): number {
    return (this.#basis ^ FNV_BASIS) >>> 0;
  }

  get size(): number {
    return this.#count;
  }

  get(key: string): Entry | undefined {
    const slot = this.#findString(key);
    if (slot < 0) return undefined;
    return this.#entry(this.#slots[slot] - 1);
  }

  /**
   * Makes room for `more` new keys (table, record columns; the arena grows as keys come), so a
   * bulk load does not rehash the table again and again as it fills.
   */
  reserve(more: number): void {
    const need = this.#count + more;
    let slots = this.#slots.length;
    while (need > slots * MAX_LOAD) slots *= 2;
    if (slots !== this.#slots.length) this.#resize(slots);
    if (this.#high + more > this.#segment.length) this.#growRecords(this.#high + more);
  }

  /** get() with the key as UTF-8 bytes. */
  getBytes(bytes: Uint8Array, start: number, length: number): Entry | undefined {
    const slot = this.#find(bytes, start, length, hashBytes(this.#basis, bytes, start, length));
    return slot < 0 ? undefined : this.#entry(this.#slots[slot] - 1);
  }

  /** Sets `key` to `entry` (or removes it if `entry` is undefined); returns the previous entry. */
  put(key: string, entry: Entry | undefined): Entry | undefined {
    const length = this.#scratch.write(key, 0, 'utf8');
    return this.putBytes(this.#scratch, 0, length, entry);
  }

  /** put() with the key as UTF-8 bytes (`bytes[start .. start+length)`), as read from a segment. */
  putBytes(bytes: Uint8Array, start: number, length: number, entry: Entry | undefined): Entry | undefined {
    const hash = hashBytes(this.#basis, bytes, start, length);
    const slot = this.#find(bytes, start, length, hash);
    if (slot >= 0) {
      const record = this.#slots[slot] - 1;
      const previous = this.#entry(record);
      if (entry === undefined) this.#remove(slot, record);
      else this.#store(record, entry);
      return previous;
    }
    if (entry === undefined) return undefined;
    if ((this.#count + 1) > this.#slots.length * MAX_LOAD) this.#resize(this.#slots.length * 2);
    const record = this.#allocate(bytes, start, length);
    this.#hash[record] = hash;
    this.#store(record, entry);
    let at = hash & this.#mask;
    while (this.#slots[at] !== 0) at = (at + 1) & this.#mask;
    this.#slots[at] = record + 1;
    this.#count++;
    this.#ordered?.insert(record);
    return undefined;
  }

  /**
   * The live keys, in no particular order. Keys added after the iteration started are not seen;
   * a key is never yielded twice, and a key deleted before the iteration reached it is not
   * yielded. (Freed record indices are not reused while an iteration runs; an iteration that is
   * abandoned without finishing or `return()` keeps them from being reused for good, which costs
   * memory, not correctness.)
   */
  *keys(): Generator<string, void, undefined> {
    const end = this.#high;
    this.#iterations++;
    try {
      for (let record = 0; record < end; record++) {
        if (this.#keyAt[record] === FREE) continue;
        yield this.#keyString(record);
      }
    } finally {
      this.#iterations--;
    }
  }

  // ---------------------------------------------------------------- expiry

  /*
   * A key's expiry comes with its entry (get() and friends); put() with an entry whose expiresAt
   * is not 0 gives the key that expiry, with 0 takes it away. The keydir never drops a key because
   * it expired: it has no clock. These methods let the index find the keys that have expired by a
   * time it gives, without looking at any other key. n is the number of keys with an expiry.
   */

  /** The number of live keys with an expiry. O(1). */
  get expiringCount(): number {
    return this.#expiry?.length ?? 0;
  }

  /** The earliest expiry of any live key, or Infinity if none has one. O(1). */
  nextExpiry(): number {
    return this.#expiry?.earliest() ?? Infinity;
  }

  /**
   * How many live keys expire at or before `now` (0 < expiresAt <= now). O(k) for k such keys,
   * O(1) when there are none: it never looks at a key that has not expired.
   */
  countExpired(now: number): number {
    return this.#expiry?.countBy(now) ?? 0;
  }

  /** The total record length of the keys countExpired(now) counts. O(k). */
  expiredLength(now: number): number {
    let total = 0;
    const lengths = this.#length;
    this.#expiry?.forEachBy(now, (record) => { total += lengths[record]; });
    return total;
  }

  /**
   * Removes up to `limit` keys that expire at or before `now`, earliest first, and returns how
   * many it removed. `visit(record, length)` is called for each just before it is removed (its
   * key and entry are still there); it must not change the keydir. O(limit · log n).
   */
  takeExpired(now: number, limit: number, visit?: (record: number, length: number) => void): number {
    const expiry = this.#expiry;
    if (expiry === undefined) return 0;
    let taken = 0;
    for (; taken < limit; taken++) {
      const record = expiry.earliestRecordBy(now);
      if (record < 0) break;
      visit?.(record, this.#length[record]);
      this.#remove(this.#slotOf(record), record);
    }
    return taken;
  }

  /**
   * Removes every key with an expiry whose record lies in one of `segmentIds`, calling `visit`
   * as takeExpired() does; returns how many it removed. For the end of a compaction switch, where
   * keys still pointing into the inputs are those the copy dropped as expired, whatever the clock
   * says now. O(n) over typed arrays, plus O(log n) per key removed.
   */
  removeExpiringIn(segmentIds: ReadonlySet<number>, visit?: (record: number, length: number) => void): number {
    const expiry = this.#expiry;
    if (expiry === undefined || segmentIds.size === 0) return 0;
    const listed = new Uint8Array(this.#segmentIds.length);
    let any = false;
    this.#segmentIds.forEach((id, index) => {
      if (!segmentIds.has(id)) return;
      listed[index] = 1;
      any = true;
    });
    if (!any) return 0;
    const segment = this.#segment;
    const doomed: number[] = [];
    expiry.forEach((record) => { if (listed[segment[record]] === 1) doomed.push(record); });
    for (const record of doomed) {
      visit?.(record, this.#length[record]);
      this.#remove(this.#slotOf(record), record);
    }
    return doomed.length;
  }

  /** Bytes of JS-invisible memory the table holds (with its ordered index), for stats and benchmarks. */
  get memoryBytes(): number {
    return this.#slots.byteLength + this.#arena.byteLength + this.#segment.byteLength * 5 +
      (this.#expiry?.memoryBytes ?? 0) + (this.#ordered?.memoryBytes ?? 0);
  }

  // ---------------------------------------------------------------- order (ordered.ts)

  /** The ordered index, if the keydir keeps one. */
  get ordered(): OrderedIndex | undefined {
    return this.#ordered;
  }

  /**
   * Starts keeping the keys in order (for a keydir loaded from a snapshot or hints without its
   * ordered index): loads `saved`, the bytes of `ordered.toBytes()` taken with this table's
   * toBytes(), if given, else builds the index from every live key with one sort. Throws if
   * `saved` does not describe this table's live records (OrderedIndex.fromBytes()), leaving the
   * keydir without an ordered index. A no-op if it has one.
   */
  orderKeys(options: OrderedIndexOptions = {}, saved?: Buffer): OrderedIndex {
    if (this.#ordered !== undefined) return this.#ordered;
    if (saved !== undefined) {
      const live = new RecordDigest();
      for (let record = 0; record < this.#high; record++) if (this.#keyAt[record] !== FREE) live.add(record);
      this.#ordered = OrderedIndex.fromBytes(this, saved, live);
      return this.#ordered;
    }
    const live = new Uint32Array(this.#count);
    let n = 0;
    for (let record = 0; record < this.#high; record++) if (this.#keyAt[record] !== FREE) live[n++] = record;
    const ordered = new OrderedIndex(this, options);
    ordered.build(live);
    this.#ordered = ordered;
    return ordered;
  }

  /**
   * The live keys in `range`, in the order of their UTF-8 bytes (see OrderedIndex.cursor() for
   * what holds while the keydir changes between steps). String bounds are taken as UTF-8.
   * Requires the ordered index (constructor option or orderKeys()).
   */
  *range(range: KeyRange = {}): Generator<string, void, undefined> {
    if (this.#ordered === undefined) throw new Error('keydir: range() needs the ordered index');
    const bytes = (key: string | undefined) => key === undefined ? undefined : Buffer.from(key, 'utf8');
    const cursor = this.#ordered.cursor({
      gt: bytes(range.gt), gte: bytes(range.gte), lt: bytes(range.lt), lte: bytes(range.lte),
      prefix: bytes(range.prefix), reverse: range.reverse, limit: range.limit,
    });
    for (let record = cursor.next(); record >= 0; record = cursor.next()) yield this.#keyString(record);
  }

  /** For ordered.ts (KeySource): the arena. Replaced when it grows or is rebuilt; never keep it. */
  get keyArena(): Uint8Array {
    return this.#arena;
  }

  /** For ordered.ts (KeySource): where each record's key starts in the arena. Replaced when it grows. */
  get keyOffsets(): Uint32Array {
    return this.#keyAt;
  }


  // ---------------------------------------------------------------- snapshot

  /**
   * The table as bytes (see snapshot.ts for the layout), so a cleanly closed store opens with a
   * bulk load instead of a replay. Typed arrays are written in the host's byte order, which
   * snapshot.ts only allows when that is little-endian.
   */
  toBytes(): Buffer[] {
    const high = this.#high;
    const fixed = Buffer.alloc(FIXED_BYTES);
    fixed.writeUInt32LE(this.#count, 0);
    fixed.writeUInt32LE(high, 4);
    fixed.writeUInt32LE(this.#slots.length, 8);
    fixed.writeUInt32LE(this.#arenaUsed, 12);
    fixed.writeUInt32LE(this.#arenaGarbage, 16);
    fixed.writeUInt32LE(this.#freeCount, 20);
    fixed.writeUInt32LE(this.#segmentIds.length, 24);
    fixed.writeUInt32LE(this.expiringCount, 28);
    fixed.writeUInt32LE(TABLE_LAYOUT, 32);
    fixed.writeUInt32LE(this.seed, 36);
    const heap = this.#expiry?.toBytes();
    fixed.writeDoubleLE(heap?.base ?? 0, 40);
    const view = (array: ArrayBufferView, bytes: number) => Buffer.from(array.buffer, array.byteOffset, bytes);
    const segmentIds = Buffer.alloc(this.#segmentIds.length * 8);
    this.#segmentIds.forEach((id, i) => segmentIds.writeDoubleLE(id, i * 8));
    return [
      fixed,
      // The expiry heap first: its times then start 8-byte aligned in the file.
      ...(heap === undefined ? [] : [heap.times, heap.records]),
      view(this.#slots, this.#slots.byteLength),
      view(this.#segment, high * 4),
      view(this.#offset, high * 4),
      view(this.#length, high * 4),
      view(this.#keyAt, high * 4),
      view(this.#hash, high * 4),
      view(this.#arena, this.#arenaUsed),
      segmentIds,
    ];
  }

  /**
   * Where a table's expiry heap lies, from the first FIXED_BYTES (48) of its toBytes() output, so
   * that a snapshot reader can read the heap straight into its arrays (ExpiryHeap.arraysFor()) and
   * the rest of the table apart: the heap's bytes (times, then records) follow the fixed part.
   * Throws if the layout is not this one.
   */
  static heapSection(fixed: Uint8Array): { count: number; base: number; timeBytes: number; recordBytes: number } {
    const view = Buffer.from(fixed.buffer, fixed.byteOffset, fixed.length);
    if (view.length < FIXED_BYTES) throw new Error('keydir snapshot: truncated');
    if (view.readUInt32LE(32) !== TABLE_LAYOUT) throw new Error(`keydir snapshot: table layout ${view.readUInt32LE(32)}, expected ${TABLE_LAYOUT}`);
    const count = view.readUInt32LE(28);
    const base = view.readDoubleLE(40);
    return { count, base, timeBytes: count * (base === 0 ? 8 : 4), recordBytes: count * 4 };
  }

  /**
   * A table from toBytes() output; throws if the bytes are inconsistent. With `heap`, the heap's
   * bytes were read into those arrays (see heapSection()) and `buf` is the table without them.
   */
  static fromBytes(buf: Buffer, heap?: { time: HeapTimes; record: Int32Array<ArrayBuffer> }): KeyDir {
    const fail = (why: string): never => { throw new Error(`keydir snapshot: ${why}`); };
    if (buf.length < FIXED_BYTES) fail('truncated');
    // First of all, so that no other byte of a table laid out otherwise is ever read as this one.
    if (buf.readUInt32LE(32) !== TABLE_LAYOUT) fail(`table layout ${buf.readUInt32LE(32)}, expected ${TABLE_LAYOUT}`);
    const count = buf.readUInt32LE(0);
    const high = buf.readUInt32LE(4);
    const slotCount = buf.readUInt32LE(8);
    const arenaUsed = buf.readUInt32LE(12);
    const freeCount = buf.readUInt32LE(20);
    const segmentCount = buf.readUInt32LE(24);
    const expiresCount = buf.readUInt32LE(28);
    const heapBase = buf.readDoubleLE(40);
    const heapBytes = heap !== undefined ? 0 : expiresCount * (heapBase === 0 ? 12 : 8);
    if (slotCount < MIN_SLOTS || (slotCount & (slotCount - 1)) !== 0 || count > slotCount * MAX_LOAD ||
        count + freeCount !== high || (expiresCount === 0 && heapBase !== 0)) fail('inconsistent counts');
    const expected = FIXED_BYTES + heapBytes + slotCount * 4 + high * 20 + arenaUsed + segmentCount * 8;
    if (buf.length !== expected) fail('wrong size');
    // The hash column and the slots were made with the writer's seed: the table keeps using it.
    const keydir = new KeyDir(buf.readUInt32LE(36));
    let at = FIXED_BYTES;
    if (heap === undefined && expiresCount > 0) {
      heap = ExpiryHeap.arraysFor(expiresCount, heapBase);
      const timeBytes = heapBytes - expiresCount * 4;
      new Uint8Array(heap.time.buffer, 0, timeBytes).set(buf.subarray(at, at + timeBytes));
      new Uint8Array(heap.record.buffer, 0, expiresCount * 4).set(buf.subarray(at + timeBytes, at + heapBytes));
    }
    at += heapBytes;
    const take = (bytes: number): Uint8Array<ArrayBuffer> => {
      const copy = new Uint8Array(bytes);
      copy.set(buf.subarray(at, at + bytes));
      at += bytes;
      return copy;
    };
    // 32-bit columns are copied straight from the file's bytes when they are 4-byte aligned (as
    // snapshot.ts lays them out), without an intermediate copy.
    const words = (count: number): Uint32Array => {
      const start = buf.byteOffset + at;
      const source = start % 4 === 0 ? new Uint32Array(buf.buffer, start, count) : new Uint32Array(take(count * 4).buffer);
      if (start % 4 === 0) at += count * 4;
      return source;
    };
    const records = Math.max(MIN_SLOTS, Math.ceil(high * 1.25));
    const column = (): Uint32Array<ArrayBuffer> => {
      const array = new Uint32Array(records);
      array.set(words(high));
      return array;
    };
    const slots = new Int32Array(slotCount);
    slots.set(words(slotCount));
    keydir.#slots = slots;
    keydir.#mask = slotCount - 1;
    keydir.#segment = column();
    keydir.#offset = column();
    keydir.#length = column();
    keydir.#keyAt = column();
    keydir.#hash = column();
    const arena = new Uint8Array(Math.max(MIN_SLOTS * 16, Math.ceil(arenaUsed * 1.25)));
    arena.set(take(arenaUsed));
    keydir.#arena = arena;
    keydir.#arenaUsed = arenaUsed;
    keydir.#arenaGarbage = buf.readUInt32LE(16);
    keydir.#freeCount = freeCount;
    for (let i = 0; i < segmentCount; i++, at += 8) {
      keydir.#segmentIds.push(buf.readDoubleLE(at));
      keydir.#segmentIndex.set(buf.readDoubleLE(at), i);
    }
    keydir.#count = count;
    keydir.#high = high;
    // The snapshot's CRC vouches for its bytes; these checks vouch that the bytes are a table
    // (counts agree, every record and key lies inside it), so a snapshot written by a buggy build
    // fails here rather than serve lookups. The hash slots are not walked: at 2 slots per key that
    // costs more than the rest of the load, and a slot naming a wrong record only makes a lookup
    // miss, since every hit compares the key bytes.
    // One pass over the records checks them, links the free ones (the table does not list them),
    // and gathers what open() needs: the live bytes and the segments in use.
    const keyAt = keydir.#keyAt;
    const segment = keydir.#segment;
    const lengths = keydir.#length;
    const offsets = keydir.#offset;
    const used = new Uint8Array(segmentCount);
    let totalLength = 0;
    let live = 0;
    let freeHead = -1;
    for (let record = high - 1; record >= 0; record--) {
      const at = keyAt[record];
      if (at === FREE) {
        offsets[record] = freeHead < 0 ? FREE : freeHead;
        freeHead = record;
        continue;
      }
      live++;
      if (at >= arenaUsed || segment[record] >= segmentCount) fail('a record points outside the table');
      const first = arena[at];
      const end = first < 0x80 ? at + 1 + first : at + 3 + (((first & 0x7f) << 16) | (arena[at + 1] << 8) | arena[at + 2]);
      if (end > arenaUsed) fail('a key runs past the arena');
      totalLength += lengths[record];
      used[segment[record]] = 1;
    }
    if (live !== count) fail('live record count mismatch');
    keydir.#freeHead = freeHead;
    if (expiresCount > 0) {
      keydir.#expiry = ExpiryHeap.adopt(heap!.time, heap!.record, expiresCount, heapBase, records,
        (record) => record < high && keyAt[record] !== FREE);
    }
    const segmentsInUse = new Set<number>();
    used.forEach((flag, index) => { if (flag === 1) segmentsInUse.add(keydir.#segmentIds[index]); });
    keydir.loaded = { totalLength, segmentsInUse };
    return keydir;
  }

  /** For a table made by fromBytes(): what the check found, as it was at load time. */
  loaded: { totalLength: number; segmentsInUse: Set<number> } | undefined;

  // ---------------------------------------------------------------- internals

  #entry(record: number): Entry {
    const expiry = this.#expiry;
    return new Entry(this.#segmentIds[this.#segment[record]], this.#offset[record], this.#length[record],
      expiry === undefined ? 0 : expiry.get(record));
  }

  #store(record: number, entry: Entry): void {
    let index = this.#segmentIndex.get(entry.segmentId);
    if (index === undefined) {
      index = this.#segmentIds.push(entry.segmentId) - 1;
      this.#segmentIndex.set(entry.segmentId, index);
    }
    this.#segment[record] = index;
    this.#offset[record] = entry.offset;
    this.#length[record] = entry.length;
    if (entry.expiresAt !== 0) (this.#expiry ??= new ExpiryHeap(this.#segment.length)).set(record, entry.expiresAt);
    else this.#expiry?.delete(record);
  }

  /**
   * The slot holding a string key, or -1. ASCII keys (the common case) are hashed and compared
   * straight from the string's char codes, which are their UTF-8 bytes; others are encoded first.
   */
  #findString(key: string): number {
    let hash = this.#basis;
    const length = key.length;
    for (let i = 0; i < length; i++) {
      const code = key.charCodeAt(i);
      if (code >= 0x80 || length >= 0x80) {
        const n = this.#scratch.write(key, 0, 'utf8');
        return this.#find(this.#scratch, 0, n, hashBytes(this.#basis, this.#scratch, 0, n));
      }
      hash = Math.imul(hash ^ code, 0x01000193);
    }
    const slots = this.#slots;
    const mask = this.#mask;
    const arena = this.#arena;
    const hashes = this.#hash;
    const mixed = mix32(hash);
    for (let at = mixed & mask; ; at = (at + 1) & mask) {
      const value = slots[at];
      if (value === 0) return -1;
      if (hashes[value - 1] !== mixed) continue;
      let pos = this.#keyAt[value - 1];
      if (arena[pos] !== length) continue;
      pos++;
      let i = 0;
      while (i < length && arena[pos + i] === key.charCodeAt(i)) i++;
      if (i === length) return at;
    }
  }

  /** The slot holding the key, or -1. */
  #find(bytes: Uint8Array, start: number, length: number, hash: number): number {
    const slots = this.#slots;
    const mask = this.#mask;
    const hashes = this.#hash;
    for (let at = hash & mask; ; at = (at + 1) & mask) {
      const value = slots[at];
      if (value === 0) return -1;
      if (hashes[value - 1] === hash && this.#keyEquals(value - 1, bytes, start, length)) return at;
    }
  }

  #keyEquals(record: number, bytes: Uint8Array, start: number, length: number): boolean {
    const arena = this.#arena;
    let at = this.#keyAt[record];
    let stored = arena[at];
    if (stored < 0x80) at += 1;
    else { stored = ((stored & 0x7f) << 16) | (arena[at + 1] << 8) | arena[at + 2]; at += 3; }
    if (stored !== length) return false;
    for (let i = 0; i < length; i++) if (arena[at + i] !== bytes[start + i]) return false;
    return true;
  }

  #keyBounds(record: number): [number, number] {
    const arena = this.#arena;
    const at = this.#keyAt[record];
    const first = arena[at];
    if (first < 0x80) return [at + 1, first];
    return [at + 3, ((first & 0x7f) << 16) | (arena[at + 1] << 8) | arena[at + 2]];
  }

  #keyString(record: number): string {
    const [start, length] = this.#keyBounds(record);
    return Buffer.from(this.#arena.buffer, this.#arena.byteOffset + start, length).toString('utf8');
  }

  #allocate(bytes: Uint8Array, start: number, length: number): number {
    let record: number;
    if (this.#iterations === 0 && this.#freeHead >= 0) {
      record = this.#freeHead;
      const next = this.#offset[record];
      this.#freeHead = next === FREE ? -1 : next;
      this.#freeCount--;
    } else {
      record = this.#high++;
    }
    if (record >= this.#segment.length) this.#growRecords(this.#segment.length * 2);
    const need = length + (length < 0x80 ? 1 : 3);
    if (this.#arenaUsed + need > this.#arena.length) this.#growArena(need);
    let at = this.#arenaUsed;
    this.#keyAt[record] = at;
    if (length < 0x80) {
      this.#arena[at++] = length;
    } else {
      this.#arena[at++] = 0x80 | (length >>> 16);
      this.#arena[at++] = (length >>> 8) & 0xff;
      this.#arena[at++] = length & 0xff;
    }
    this.#arena.set(bytes.subarray(start, start + length), at);
    this.#arenaUsed = at + length;
    return record;
  }

  /** Removes the record in `slot`, shifting later members of its cluster back (no tombstones). */
  #remove(slot: number, record: number): void {
    // First, while the record's key bytes are still where the ordered index reads them.
    this.#ordered?.remove(record);
    // The key's length, read as #keyBounds() does but without its array: a purge removes a
    // million keys in a row, and a million small arrays are work for the GC mid-purge.
    const arena = this.#arena;
    const at = this.#keyAt[record];
    const first = arena[at];
    const length = first < 0x80 ? first : ((first & 0x7f) << 16) | (arena[at + 1] << 8) | arena[at + 2];
    this.#arenaGarbage += length + (length < 0x80 ? 1 : 3);
    this.#keyAt[record] = FREE;
    this.#expiry?.delete(record);
    this.#offset[record] = this.#freeHead < 0 ? FREE : this.#freeHead;
    this.#freeHead = record;
    this.#freeCount++;
    this.#count--;
    const slots = this.#slots;
    const mask = this.#mask;
    let hole = slot;
    for (let at = (slot + 1) & mask; slots[at] !== 0; at = (at + 1) & mask) {
      const home = this.#home(slots[at] - 1);
      // Move the member back into the hole unless its home lies cyclically in (hole, at].
      const stays = hole <= at ? (hole < home && home <= at) : (hole < home || home <= at);
      if (!stays) {
        slots[hole] = slots[at];
        hole = at;
      }
    }
    slots[hole] = 0;
  }

  /** The slot holding a live record: its probe sequence, comparing record numbers only. */
  #slotOf(record: number): number {
    const slots = this.#slots;
    const mask = this.#mask;
    for (let at = this.#home(record); ; at = (at + 1) & mask) {
      const value = slots[at];
      if (value === record + 1) return at;
      if (value === 0) throw new Error(`keydir: record ${record} is not in the table`);
    }
  }

  #home(record: number): number {
    return this.#hash[record] & this.#mask;
  }

  #resize(capacity: number): void {
    const slots = new Int32Array(capacity);
    this.#slots = slots;
    this.#mask = capacity - 1;
    for (let record = 0; record < this.#high; record++) {
      if (this.#keyAt[record] === FREE) continue;
      let at = this.#home(record);
      while (slots[at] !== 0) at = (at + 1) & this.#mask;
      slots[at] = record + 1;
    }
  }

  #growRecords(capacity: number): void {
    const grow = (from: Uint32Array<ArrayBuffer>): Uint32Array<ArrayBuffer> => {
      const to = new Uint32Array(capacity);
      to.set(from);
      return to;
    };
    this.#segment = grow(this.#segment);
    this.#offset = grow(this.#offset);
    this.#length = grow(this.#length);
    this.#keyAt = grow(this.#keyAt);
    this.#hash = grow(this.#hash);
    this.#expiry?.growRecords(capacity);
  }

  /** Makes room for `need` more bytes: rebuilds without deleted keys if that frees enough, else grows. */
  #growArena(need: number): void {
    const live = this.#arenaUsed - this.#arenaGarbage;
    if (this.#arenaGarbage <= this.#arenaUsed / 2) {
      // Mostly live keys: a bigger arena with the same bytes at the same offsets.
      const arena = new Uint8Array(Math.max(this.#arena.length * 2, this.#arenaUsed + need));
      arena.set(this.#arena.subarray(0, this.#arenaUsed));
      this.#arena = arena;
      return;
    }
    const arena = new Uint8Array(Math.max(this.#arena.length, (live + need) * 2));
    let used = 0;
    for (let record = 0; record < this.#high; record++) {
      if (this.#keyAt[record] === FREE) continue;
      const at = this.#keyAt[record];
      const [start, length] = this.#keyBounds(record);
      const end = start + length;
      arena.set(this.#arena.subarray(at, end), used);
      this.#keyAt[record] = used;
      used += end - at;
    }
    this.#arena = arena;
    this.#arenaUsed = used;
    this.#arenaGarbage = 0;
  }
}

/**
 * The layout of toBytes(), written at byte 32 of its fixed part. 0 (those bytes were zero) was
 * the layout before the expiry heap, with expiries as (record, time) pairs after the segment
 * table; 1 stores the heap; 2 adds the hash seed at byte 36 (layout 1's hashes were unseeded).
 * A table of any other layout is refused, never read.
 */
export const TABLE_LAYOUT = 2;

/**
 * Bytes of counts at the start of toBytes(). 40 in layout 0: a reader of layout 0 computes a
 * different size for a layout-1 table and refuses it too.
 */
export const TABLE_FIXED_BYTES = 48;
const FIXED_BYTES = TABLE_FIXED_BYTES;

/** Marks a free record in keyAt; no key starts there because the arena is never that large. */
const FREE = 0xffffffff;

/**
 * FNV-1a, 32 bits, from a seeded `basis`, then murmur3's finalizer: FNV alone leaves the low bits,
 * which pick the slot, poorly mixed.
 */
function hashBytes(basis: number, bytes: Uint8Array, start: number, length: number): number {
  let hash = basis;
  for (let i = start, end = start + length; i < end; i++) hash = Math.imul(hash ^ bytes[i], 0x01000193);
  return mix32(hash);
}

