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
 *   slots     Int32Array, open addressing with linear probing, 0 = empty. Any size (at most 70%
 *             full): a key's home is hash * size / 2^32 (multiply-shift), so a table sized to
 *             its count wastes nothing to a power of two. A slot packs three fields (SlotBits):
 *               low `recordBits` bits   record index + 1 (recordBits: enough for the record
 *                                       columns' capacity, at least 11)
 *               next `distanceBits`     how far the slot lies past the key's home, DISTANCE_
 *                                       UNKNOWN-saturated (4 bits while they fit, fewer at
 *                                       over 2^24 records)
 *               the rest, at the top    a tag: the low bits of the key's hash (7 bits at 1M
 *                                       records, 17 at 1K), compared before the record is read
 *             so a probe reads no record column until the tag matches, and a removal's cluster
 *             shift knows each member's home from its slot without hashing its key again
 *   segment   per record, an index into `segmentIds`: Uint8Array while there are at most 256
 *             segment ids, Uint16Array to 65536, then Uint32Array (widened as they come)
 *   offset    Uint32Array per record (segments are at most 4 GiB)
 *   length    Uint32Array per record
 *   keyAt     Uint32Array per record: where the key's bytes start in `arena`
 *             The full hash is not kept (it was 4 bytes a key): a resize recomputes it from the
 *             arena (records in order, so the arena is read in order), as does a removal's shift
 *             for the rare member more than 14 slots from its home
 *   arena     the keys' UTF-8 bytes, each preceded by its length (1 byte below 128, else 3)
 *   expiry    an ExpiryColumn (expiry.ts): each record's expiry, with a tree of minima over
 *             them, made when the first record with an expiry comes: 4 bytes per record (8 if
 *             the expiries span more than 49 days), plus 1/8 of a byte for the tree
 *
 * About 13 bytes per record (with up to 256 segments) plus the key and its length byte, plus 4
 * bytes per slot at 1/0.7 slots per key: at 16-byte keys about 36 bytes a key. Everything grows
 * by half when full (a doubling would leave up to half of it unused), and a table loaded from a
 * snapshot has arrays of exactly the sizes it needs: the snapshot is read straight into them
 * (tableHead(), tableArrays(), fromArrays(); snapshot.ts).
 * Deleted records' indices are reused (unless an iteration is running); the arena is rebuilt
 * when more than half of it is deleted keys.
 *
 * Made with `{ ordered }` (or after orderKeys()), the keydir also keeps an ordered index
 * (ordered.ts), which reads keys through keyArena/keyOffsets: told of each record that comes as a
 * new key and of each that goes, before its bytes are freed; overwrites do not concern it.
 */

import { randomBytes } from 'crypto';
import { ExpiryColumn, type ExpiryTimes } from './expiry';
import { mix32 } from './hash';
import { OrderedIndex, RecordDigest, type ByteRange, type OrderedIndexOptions } from './ordered';

/**
 * This process's hash seed, drawn once at load from the OS's random source. FNV-1a with a fixed
 * basis lets whoever chooses the keys (a cache keyed by request URL) pick keys whose hashes
 * collide, turning every probe into a walk of one long cluster; with a secret basis they cannot
 * know which keys collide. A table keeps the seed it was made with: a table loaded from a
 * snapshot adopts the seed the snapshot names (its tags and slots were made with it).
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

/** A table is at most 70% full (count * 10 <= slots * 7, in integers). */
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
  /** #slots.length: a key's home slot is its hash times this, over 2^32 (no power of two needed). */
  #size = MIN_SLOTS;
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
  /** Indices into #segmentIds, as narrow as their count allows (1, 2 or 4 bytes; see #segmentIndexFor). */
  #segment: SegmentColumn = new Uint8Array(MIN_SLOTS);
  #offset = new Uint32Array(MIN_SLOTS);
  #length = new Uint32Array(MIN_SLOTS);
  #keyAt = new Uint32Array(MIN_SLOTS);
  /** How the slots pack record, distance and tag (see the file's head); widened with the record columns. */
  #bits = slotBits(MIN_SLOTS);
  #arena = new Uint8Array(MIN_SLOTS * 16);
  #arenaUsed = 0;
  #arenaGarbage = 0;
  /** The records with an expiry, by expiry; undefined until the first record with one arrives. */
  #expiry: ExpiryColumn | undefined;
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

  /** How many slots, records and arena bytes the arrays hold room for (not how many are used), and the segment index's width in bytes: for specs and stats. */
  get capacities(): { slots: number; records: number; arena: number; segmentWidth: number } {
    return { slots: this.#size, records: this.#offset.length, arena: this.#arena.length, segmentWidth: this.#segment.BYTES_PER_ELEMENT };
  }

  /** How many bits of a slot name its record (the rest hold its distance from home and a tag): for specs. */
  get recordBits(): number {
    return this.#bits.recordBits;
  }

  /** How many slots hold a record so far from its home that the slot cannot say how far: for specs. */
  get farSlots(): number {
    const { recordBits, distanceMax } = this.#bits;
    let far = 0;
    for (const value of this.#slots) if (value !== 0 && ((value >>> recordBits) & distanceMax) === distanceMax) far++;
    return far;
  }

  get(key: string): Entry | undefined {
    const record = this.find(key);
    return record < 0 ? undefined : this.#entry(record);
  }

  /** The Entry of a live record (find()), for a caller that found it without one. */
  entryOf(record: number): Entry {
    return this.#entry(record);
  }

  /**
   * The record of `key`, or -1: get() without an Entry, for the read path (a get allocates
   * nothing to find its record). Read its fields with segmentIdOf() and friends before the
   * keydir changes: a removed record's number is reused.
   */
  find(key: string): number {
    const slot = this.#findString(key);
    return slot < 0 ? -1 : (this.#slots[slot] & this.#bits.recordMask) - 1;
  }

  /** The segment id of a live record (find()). */
  segmentIdOf(record: number): number {
    return this.#segmentIds[this.#segment[record]];
  }

  /** The offset of a live record (find()) in its segment. */
  offsetOf(record: number): number {
    return this.#offset[record];
  }

  /** The total length of a live record (find()). */
  lengthOf(record: number): number {
    return this.#length[record];
  }

  /** The expiry of a live record (find()), 0 for none. */
  expiresAtOf(record: number): number {
    const expiry = this.#expiry;
    return expiry === undefined ? 0 : expiry.get(record);
  }

  /**
   * Makes room for `more` new keys (table, record columns; the arena grows as keys come), so a
   * bulk load does not rehash the table again and again as it fills.
   */
  reserve(more: number): void {
    const need = this.#count + more;
    if (need * 10 > this.#size * 7) this.#resize(Math.max(slotsFor(need), grown(this.#size)));
    if (this.#high + more > this.#offset.length) this.#growRecords(this.#high + more);
  }

  /** get() with the key as UTF-8 bytes. */
  getBytes(bytes: Uint8Array, start: number, length: number): Entry | undefined {
    const slot = this.#find(bytes, start, length, hashBytes(this.#basis, bytes, start, length));
    return slot < 0 ? undefined : this.#entry((this.#slots[slot] & this.#bits.recordMask) - 1);
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
      const record = (this.#slots[slot] & this.#bits.recordMask) - 1;
      const previous = this.#entry(record);
      if (entry === undefined) this.#remove(slot, record);
      else this.#store(record, entry);
      return previous;
    }
    if (entry === undefined) return undefined;
    if ((this.#count + 1) * 10 > this.#size * 7) this.#resize(grown(this.#size));
    const record = this.#allocate(bytes, start, length);
    this.#store(record, entry);
    this.#place(this.#slots, this.#size, record, hash);
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
    return this.#slots.byteLength + this.#arena.byteLength + this.#segment.byteLength + this.#offset.byteLength * 3 +
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
   * bulk load instead of a replay: the fixed part (TABLE_FIXED_BYTES of counts), then each array
   * in the order of tableSections(). Typed arrays are written in the host's byte order, which
   * snapshot.ts only allows when that is little-endian.
   */
  toBytes(): Buffer[] {
    const high = this.#high;
    const fixed = Buffer.alloc(FIXED_BYTES);
    fixed.writeUInt32LE(this.#count, 0);
    fixed.writeUInt32LE(high, 4);
    fixed.writeUInt32LE(this.#size, 8);
    fixed.writeUInt32LE(this.#arenaUsed, 12);
    fixed.writeUInt32LE(this.#arenaGarbage, 16);
    fixed.writeUInt32LE(this.#freeCount, 20);
    fixed.writeUInt32LE(this.#segmentIds.length, 24);
    fixed.writeUInt32LE(this.expiringCount, 28);
    fixed.writeUInt16LE(TABLE_LAYOUT, 32);
    fixed.writeUInt8(this.#bits.recordBits, 34);
    fixed.writeUInt32LE(this.seed, 36);
    const expiry = this.expiringCount > 0 ? this.#expiry!.toBytes(high) : undefined;
    fixed.writeDoubleLE(expiry?.base ?? 0, 40);
    const view = (array: ArrayBufferView, bytes: number) => Buffer.from(array.buffer, array.byteOffset, bytes);
    const segmentIds = Buffer.from(Float64Array.from(this.#segmentIds).buffer);
    return [
      fixed,
      // The expiry column first: its times then start 8-byte aligned in the file.
      ...(expiry === undefined ? [] : [expiry.times]),
      view(this.#slots, this.#slots.byteLength),
      view(this.#segment, high * this.#segment.BYTES_PER_ELEMENT),
      view(this.#offset, high * 4),
      view(this.#length, high * 4),
      view(this.#keyAt, high * 4),
      view(this.#arena, this.#arenaUsed),
      segmentIds,
    ];
  }

  /**
   * What a table's first TABLE_FIXED_BYTES of toBytes() say: its counts and its total size in
   * bytes, so that a reader can allocate its arrays (tableArrays()) and read each straight into
   * them. Throws if the layout is not this one or the counts do not agree; reads nothing beyond
   * the layout number unless it is this one.
   */
  static tableHead(fixed: Uint8Array): TableHead {
    const fail = (why: string): never => { throw new Error(`keydir snapshot: ${why}`); };
    if (fixed.length < FIXED_BYTES) fail('truncated');
    const view = Buffer.from(fixed.buffer, fixed.byteOffset, FIXED_BYTES);
    // First of all, so that no other byte of a table laid out otherwise is ever read as this one
    // (layouts up to 3 kept the number in all four bytes, so byte 34 was 0 there).
    if (view.readUInt16LE(32) !== TABLE_LAYOUT) fail(`table layout ${view.readUInt16LE(32)}, expected ${TABLE_LAYOUT}`);
    const head: TableHead = {
      count: view.readUInt32LE(0), high: view.readUInt32LE(4), slots: view.readUInt32LE(8),
      arenaUsed: view.readUInt32LE(12), arenaGarbage: view.readUInt32LE(16), freeCount: view.readUInt32LE(20),
      segmentCount: view.readUInt32LE(24), expiresCount: view.readUInt32LE(28), seed: view.readUInt32LE(36),
      heapBase: view.readDoubleLE(40), recordBits: view.readUInt8(34), bytes: 0,
    };
    const { count, high, slots, freeCount, expiresCount, heapBase, recordBits } = head;
    // The slots' record fields must hold every record: a corrupt width would misread them all.
    if (view.readUInt8(35) !== 0 || recordBits < MIN_RECORD_BITS || recordBits > 31 || high >= 2 ** recordBits) fail('bad slot record bits');
    if (slots < MIN_SLOTS || count * 10 > slots * 7 || count + freeCount !== high ||
        expiresCount > count || (expiresCount === 0 && heapBase !== 0) || head.arenaGarbage > head.arenaUsed) fail('inconsistent counts');
    head.bytes = FIXED_BYTES + (expiresCount === 0 ? 0 : high * (heapBase === 0 ? 8 : 4)) + slots * 4 +
      high * (segmentWidth(head.segmentCount) + 12) + head.arenaUsed + head.segmentCount * 8;
    return head;
  }

  /**
   * The arrays a table with `head` keeps, each of exactly the size it needs, and views of their
   * bytes in the order toBytes() lays them out after the fixed part: a snapshot reader reads the
   * file straight into them (no intermediate buffer, no copy), then hands them to fromArrays().
   */
  static tableArrays(head: TableHead): TableArrays {
    const width = segmentWidth(head.segmentCount);
    const expiry = head.expiresCount > 0 ? ExpiryColumn.arrayFor(head.high, head.heapBase) : undefined;
    const arrays: Omit<TableArrays, 'sections'> = {
      expiry,
      slots: new Int32Array(head.slots),
      segment: width === 1 ? new Uint8Array(head.high) : width === 2 ? new Uint16Array(head.high) : new Uint32Array(head.high),
      offset: new Uint32Array(head.high),
      length: new Uint32Array(head.high),
      keyAt: new Uint32Array(head.high),
      arena: new Uint8Array(head.arenaUsed),
      segmentIds: new Float64Array(head.segmentCount),
    };
    const bytes = (array: ArrayBufferView, length = array.byteLength) => new Uint8Array(array.buffer, array.byteOffset, length);
    const sections = [...(expiry === undefined ? [] : [bytes(expiry)]), bytes(arrays.slots), bytes(arrays.segment), bytes(arrays.offset), bytes(arrays.length),
      bytes(arrays.keyAt), bytes(arrays.arena), bytes(arrays.segmentIds)];
    return { ...arrays, sections };
  }

  /** A table from toBytes() output (concatenated); throws if the bytes are inconsistent. */
  static fromBytes(buf: Buffer): KeyDir {
    const head = KeyDir.tableHead(buf);
    if (buf.length !== head.bytes) throw new Error('keydir snapshot: wrong size');
    const arrays = KeyDir.tableArrays(head);
    let at = FIXED_BYTES;
    for (const section of arrays.sections) {
      section.set(buf.subarray(at, at + section.length));
      at += section.length;
    }
    return KeyDir.fromArrays(head, arrays);
  }

  /**
   * The table whose head is `head` and whose bytes have been read into `arrays` (tableArrays()):
   * keeps those very arrays. Throws if they do not describe a table.
   */
  static fromArrays(head: TableHead, arrays: TableArrays): KeyDir {
    const fail = (why: string): never => { throw new Error(`keydir snapshot: ${why}`); };
    const { count, high, arenaUsed, freeCount, segmentCount, expiresCount } = head;
    // The slots' tags and homes were made with the writer's seed: the table keeps using it.
    const keydir = new KeyDir(head.seed);
    keydir.#slots = arrays.slots;
    keydir.#size = arrays.slots.length;
    keydir.#segment = arrays.segment;
    keydir.#offset = arrays.offset;
    keydir.#length = arrays.length;
    keydir.#keyAt = arrays.keyAt;
    keydir.#bits = slotBitsOf(head.recordBits);
    const arena = keydir.#arena = arrays.arena;
    keydir.#arenaUsed = arenaUsed;
    keydir.#arenaGarbage = head.arenaGarbage;
    keydir.#freeCount = freeCount;
    for (let i = 0; i < segmentCount; i++) {
      const id = arrays.segmentIds[i];
      if (!Number.isSafeInteger(id) || id < 0 || keydir.#segmentIndex.has(id)) fail('a bad segment id');
      keydir.#segmentIds.push(id);
      keydir.#segmentIndex.set(id, i);
    }
    keydir.#count = count;
    keydir.#high = high;
    // The snapshot's CRC vouches for its bytes; these checks vouch that the bytes are a table
    // (counts agree, every record and key lies inside it), so a snapshot written by a buggy build
    // fails here rather than serve lookups. The hash slots are not walked: at 1.4 slots per key
    // that costs more than the rest of the load, and a slot naming a wrong record only makes a
    // lookup miss, since every hit compares the key bytes.
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
      keydir.#expiry = ExpiryColumn.adopt(arrays.expiry!, expiresCount, head.heapBase, (record) => keyAt[record] !== FREE);
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
      // A wider segment column once the indices outgrow this one (the 257th and 65537th segment).
      if (segmentWidth(index + 1) !== this.#segment.BYTES_PER_ELEMENT) {
        const wider = segmentWidth(index + 1) === 2 ? new Uint16Array(this.#segment.length) : new Uint32Array(this.#segment.length);
        wider.set(this.#segment);
        this.#segment = wider;
      }
    }
    this.#segment[record] = index;
    this.#offset[record] = entry.offset;
    this.#length[record] = entry.length;
    if (entry.expiresAt !== 0) (this.#expiry ??= new ExpiryColumn(this.#offset.length)).set(record, entry.expiresAt);
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
    const size = this.#size;
    const arena = this.#arena;
    const keyAt = this.#keyAt;
    const { recordMask, tagShift, tagMask } = this.#bits;
    const mixed = mix32(hash);
    const tag = mixed & tagMask;
    for (let at = home(mixed, size); ; at = at + 1 === size ? 0 : at + 1) {
      const value = slots[at];
      if (value === 0) return -1;
      if (value >>> tagShift !== tag) continue;
      let pos = keyAt[(value & recordMask) - 1];
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
    const size = this.#size;
    const { recordMask, tagShift, tagMask } = this.#bits;
    const tag = hash & tagMask;
    for (let at = home(hash, size); ; at = at + 1 === size ? 0 : at + 1) {
      const value = slots[at];
      if (value === 0) return -1;
      if (value >>> tagShift === tag && this.#keyEquals((value & recordMask) - 1, bytes, start, length)) return at;
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
    if (record >= this.#offset.length) this.#growRecords(grown(this.#offset.length));
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
    // A loop, not set(subarray()): a key is a few bytes, and a view per insert costs more than it copies.
    const arena = this.#arena;
    for (let i = 0; i < length; i++) arena[at + i] = bytes[start + i];
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
    const size = this.#size;
    const { recordBits, recordMask, distanceMax } = this.#bits;
    let hole = slot;
    for (let at = slot + 1 === size ? 0 : slot + 1; slots[at] !== 0; at = at + 1 === size ? 0 : at + 1) {
      const value = slots[at];
      // The member's distance from its home, from its slot; only one saturated there (14 slots
      // or more from home, rare at 70% load) costs a hash of its key.
      let distance = (value >>> recordBits) & distanceMax;
      if (distance === distanceMax) distance = cyclic(at - this.#home((value & recordMask) - 1), size);
      // Move the member back into the hole unless its home lies cyclically in (hole, at]: unless
      // it lies no farther from home than from the hole.
      const gap = cyclic(at - hole, size);
      if (distance >= gap) {
        const moved = Math.min(distance - gap, distanceMax);
        slots[hole] = (value & ~(distanceMax << recordBits)) | (moved << recordBits);
        hole = at;
      }
    }
    slots[hole] = 0;
  }

  /** The slot holding a live record: its probe sequence, comparing record numbers only. */
  #slotOf(record: number): number {
    const slots = this.#slots;
    const size = this.#size;
    const recordMask = this.#bits.recordMask;
    for (let at = this.#home(record); ; at = at + 1 === size ? 0 : at + 1) {
      const value = slots[at];
      if ((value & recordMask) === record + 1) return at;
      if (value === 0) throw new Error(`keydir: record ${record} is not in the table`);
    }
  }

  /** A live record's home slot: its key's hash, recomputed from the arena (the table keeps only a tag). */
  #home(record: number): number {
    const arena = this.#arena;
    const at = this.#keyAt[record];
    const first = arena[at];
    const hash = first < 0x80 ? hashBytes(this.#basis, arena, at + 1, first)
      : hashBytes(this.#basis, arena, at + 3, ((first & 0x7f) << 16) | (arena[at + 1] << 8) | arena[at + 2]);
    return home(hash, this.#size);
  }

  /**
   * A table of `capacity` slots with every live record, each hash recomputed from the arena. The
   * slots grow by half, as the columns do: a doubling rehashes each key about once on the way to
   * n rather than twice, but the snapshot keeps the slots as they are, so at 1M keys it took the
   * open store from 37.2 to 39.5 B/key (up to 5.7 more at other counts; tools/bench-ttl.ts).
   */
  #resize(capacity: number): void {
    const slots = new Int32Array(capacity);
    this.#slots = slots;
    this.#size = capacity;
    const arena = this.#arena;
    const keyAt = this.#keyAt;
    const basis = this.#basis;
    for (let record = 0; record < this.#high; record++) {
      const at = keyAt[record];
      if (at === FREE) continue;
      const first = arena[at];
      const hash = first < 0x80 ? hashBytes(basis, arena, at + 1, first)
        : hashBytes(basis, arena, at + 3, ((first & 0x7f) << 16) | (arena[at + 1] << 8) | arena[at + 2]);
      this.#place(slots, capacity, record, hash);
    }
  }

  /** Puts a record whose key has `hash` in the first free slot from its home, with its distance and tag. */
  #place(slots: Int32Array, size: number, record: number, hash: number): void {
    const { recordBits, distanceMax, tagShift, tagMask } = this.#bits;
    let at = home(hash, size);
    let distance = 0;
    while (slots[at] !== 0) {
      if (++at === size) at = 0;
      distance++;
    }
    slots[at] = ((hash & tagMask) << tagShift) | (Math.min(distance, distanceMax) << recordBits) | (record + 1);
  }

  /**
   * Re-packs every slot for record fields `recordBits` wide (more records than the fields held):
   * each tag loses its top bits, each distance saturates if the narrower field cannot hold it.
   * No key is hashed again: the tags are low bits of the hash, so fewer of them are still its low bits.
   */
  #widenRecordBits(recordBits: number): void {
    const from = this.#bits;
    const to = slotBitsOf(recordBits);
    const slots = this.#slots;
    for (let at = 0; at < slots.length; at++) {
      const value = slots[at];
      if (value === 0) continue;
      const distance = Math.min((value >>> from.recordBits) & from.distanceMax, to.distanceMax);
      const tag = (value >>> from.tagShift) & to.tagMask;
      slots[at] = (tag << to.tagShift) | (distance << to.recordBits) | (value & from.recordMask);
    }
    this.#bits = to;
  }

  #growRecords(capacity: number): void {
    const grow = <T extends SegmentColumn>(from: T): T => {
      const to = new (from.constructor as new (length: number) => T)(capacity);
      to.set(from);
      return to;
    };
    this.#segment = grow(this.#segment);
    this.#offset = grow(this.#offset);
    this.#length = grow(this.#length);
    this.#keyAt = grow(this.#keyAt);
    this.#expiry?.growRecords(capacity);
    // Record numbers up to `capacity` - 1 must fit in a slot's record field (as number + 1).
    if (capacity >= 2 ** this.#bits.recordBits) this.#widenRecordBits(bitLength(capacity));
  }

  /** Makes room for `need` more bytes: rebuilds without deleted keys if that frees enough, else grows. */
  #growArena(need: number): void {
    const live = this.#arenaUsed - this.#arenaGarbage;
    if (this.#arenaGarbage <= this.#arenaUsed / 2) {
      // Mostly live keys: a bigger arena (by half) with the same bytes at the same offsets.
      const arena = new Uint8Array(Math.max(grown(this.#arena.length), this.#arenaUsed + need));
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

/** The record columns' element types for segment indices: as narrow as the number of segments allows. */
type SegmentColumn = Uint8Array<ArrayBuffer> | Uint16Array<ArrayBuffer> | Uint32Array<ArrayBuffer>;

/** Bytes per segment index for a table of `segments` segments. */
function segmentWidth(segments: number): 1 | 2 | 4 {
  return segments <= 0x100 ? 1 : segments <= 0x10000 ? 2 : 4;
}

/** The slots for `count` keys at the most load the table allows (70%). */
function slotsFor(count: number): number {
  return Math.max(MIN_SLOTS, Math.ceil((count * 10) / 7));
}

/** The next capacity of a column or table: half again as large (a doubling overshoots by up to 2x). */
function grown(capacity: number): number {
  return Math.max(MIN_SLOTS, Math.ceil(capacity * 1.5));
}

/**
 * The home slot of `hash` in a table of `size` slots: hash * size / 2^32 (Lemire's multiply-shift
 * range reduction), which needs no power-of-two size. Exact enough: the product is below 2^63 and
 * at least `size` short of size * 2^32, more than its rounding error, so the result is below size.
 */
function home(hash: number, size: number): number {
  return Math.floor(hash * size * 2.3283064365386963e-10);
}

/** `difference` (in (-size, size)) taken cyclically into [0, size). */
function cyclic(difference: number, size: number): number {
  return difference < 0 ? difference + size : difference;
}

/** The fewest bits that hold `value` (a positive integer below 2^32). */
function bitLength(value: number): number {
  return 32 - Math.clz32(value);
}

/**
 * How a slot packs its fields (see the head of the file), from the low bit up: record number + 1
 * (`recordBits`), distance from home (`distanceBits`, at most 4: 0..14 exact, DISTANCE_UNKNOWN
 * saturated), tag (the low bits of the key's hash, all bits left). The record field widens as the
 * record columns grow (#widenRecordBits), taking its bits from the distance and the tag.
 */
interface SlotBits {
  recordBits: number;
  recordMask: number;
  /** The distance field's largest value, which means "this far or farther: hash the key". */
  distanceMax: number;
  tagShift: number;
  tagMask: number;
}

/** The narrowest record field: MIN_SLOTS records need 11 bits. */
const MIN_RECORD_BITS = 11;

/** SlotBits for the record columns' `capacity`. */
function slotBits(capacity: number): SlotBits {
  return slotBitsOf(Math.max(MIN_RECORD_BITS, bitLength(capacity)));
}

/** SlotBits with a record field `recordBits` (11 to 31) wide. */
function slotBitsOf(recordBits: number): SlotBits {
  const spare = 32 - recordBits;
  const distanceBits = Math.min(4, spare >> 1);
  const tagBits = spare - distanceBits;
  return {
    recordBits,
    // `| 0`: small integers, so V8 keeps these fields untagged ints the probe loops read as such.
    recordMask: (2 ** recordBits - 1) | 0,
    distanceMax: (1 << distanceBits) - 1,
    tagShift: recordBits + distanceBits,
    tagMask: (2 ** tagBits - 1) | 0,
  };
}

/** A table's fixed part (tableHead()): its counts, and its total size in bytes. */
export interface TableHead {
  count: number;
  high: number;
  slots: number;
  arenaUsed: number;
  arenaGarbage: number;
  freeCount: number;
  segmentCount: number;
  expiresCount: number;
  seed: number;
  heapBase: number;
  /** How many low bits of a slot name its record (SlotBits). */
  recordBits: number;
  /** The whole table's bytes, fixed part included. */
  bytes: number;
}

/** The arrays of a table (tableArrays()), and views of their bytes in the table's order. */
export interface TableArrays {
  /** Each record's expiry (ExpiryColumn), if any record has one. */
  expiry: ExpiryTimes | undefined;
  slots: Int32Array<ArrayBuffer>;
  segment: SegmentColumn;
  offset: Uint32Array<ArrayBuffer>;
  length: Uint32Array<ArrayBuffer>;
  keyAt: Uint32Array<ArrayBuffer>;
  arena: Uint8Array<ArrayBuffer>;
  segmentIds: Float64Array<ArrayBuffer>;
  sections: Uint8Array[];
}

/**
 * The layout of toBytes(), written at byte 32 of its fixed part. 0 (those bytes were zero) was
 * the layout before the expiry heap, with expiries as (record, time) pairs after the segment
 * table; 1 stores the heap; 2 adds the hash seed at byte 36 (layout 1's hashes were unseeded);
 * 3 keeps a 1-byte tag instead of the 32-bit hash per record, segment indices as narrow as the
 * segment count allows, slots of any size with a multiply-shift home (layout 2: a power of two,
 * hash & mask), and each record's expiry in a column (ExpiryColumn) instead of the heap; 4 drops
 * the tag column and packs the record, its distance from home and a tag into each slot (SlotBits),
 * the record field's width in byte 34 (the layout number takes bytes 32-33). A table of any other
 * layout is refused, never read: the snapshot is a cache, and the store replays the log instead.
 */
export const TABLE_LAYOUT = 4;

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

