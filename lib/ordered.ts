/**
 * The ordered index: the keydir's live records in the order of their keys' UTF-8 bytes (unsigned
 * bytewise, which for UTF-8 is Unicode code point order; JavaScript's `<` on strings is not: it
 * puts astral-plane characters, as surrogate pairs, below U+E000–U+FFFF). No I/O.
 *
 * A B+tree of record indices in typed arrays, off the JS heap. It holds no key bytes: it compares
 * keys where the keydir keeps them (its arena, through `KeySource`). Each entry carries a 4-byte
 * "word" beside its record index: the key's bytes at the node's `skip` offset, big-endian, zero
 * padded past the key's end. Every key in a node shares its first `skip` bytes, so the word is
 * the next 4 bytes that tell the node's keys apart; most comparisons end on the words, in the
 * node's own cache lines, without touching the arena (two cache misses per key: its offset, then
 * its bytes). A fixed leading-bytes cache would not do: keys that share a namespace ("user:...")
 * all have the same first bytes, and 16 random hex characters carry only 16 bits in their first 4.
 *
 *   leaves    entry: Uint32Array, per leaf `capacity` pairs (record, word); count, skip: Uint16Array;
 *             next, prev: Int32Array
 *   inner     entry: pairs (record, word), the record the smallest of the child's subtree (the
 *             separator, kept exact as minima change); child: Int32Array; count, skip: Uint16Array
 *
 * A record sits beside its word, so a search and the shift that makes room after it touch the
 * same cache lines (with separate arrays of records and words, random inserts and removals took
 * about 15% longer at a million keys).
 *
 * Leaves take 8 bytes per entry at their fill: about 80% under random inserts (a full leaf lends
 * entries to a sibling with room before it splits; without that, 69%), near 100% under ascending
 * inserts (a leaf that overflows at its end keeps its keys and starts a new one), 7/8 after a
 * bulk build. With inner nodes and the pools' room to grow, at a million 16-byte keys: 11.1
 * bytes per key after random inserts, 8.6 after ascending ones, 9.6 after a bulk build.
 *
 * Word order agrees with key order: if two words differ, their keys differ in the same direction
 * (zero padding sorts a key before its extensions); equal words fall back to comparing the keys.
 * The invariants, which check() verifies: in every node the keys strictly ascend, all share their
 * first `skip` bytes (so each is at least `skip` long), and each word is the key's word at `skip`;
 * an inner entry's record is the smallest in its child's subtree; leaves are linked in order;
 * only the root may be empty, and only when the index is.
 *
 * Iteration is by key, not by position (see cursor()): a cursor remembers the bytes of the last
 * key it yielded and, when the index has changed since (a modification counter), finds the next
 * key after those bytes instead of trusting a position that an insert, a split or a merge moved.
 */

import { mix32 } from './hash';
import { sortByKey, wordAt } from './keysort';

/** What the ordered index reads keys through: the keydir (keydir.ts). */
export interface KeySource {
  /**
   * The keys' bytes, each preceded by its length: one byte below 128, else three (big-endian, the
   * first with its high bit set). Replaced when it grows or is rebuilt, so it is read again at
   * the start of every operation and never kept.
   */
  readonly keyArena: Uint8Array;
  /** Per record index: where its key's length prefix starts in keyArena. Replaced when it grows. */
  readonly keyOffsets: Uint32Array;
}

/**
 * Bounds of an iteration, as key bytes. The tighter of `gt`/`gte` and of `lt`/`lte` applies; a
 * prefix combines with them. `limit` counts what is yielded (default: no limit).
 */
export interface ByteRange {
  gt?: Uint8Array;
  gte?: Uint8Array;
  lt?: Uint8Array;
  lte?: Uint8Array;
  prefix?: Uint8Array;
  reverse?: boolean;
  limit?: number;
}

/** A position in key order that survives changes to the index between calls (see cursor()). */
export interface OrderedCursor {
  /** The next record in the range, or -1 when there is none (then always -1). */
  next(): number;
}

export interface OrderedIndexOptions {
  /** Entries per node (leaf and inner), 4 to 4096. Small values are for tests: they make deep trees. */
  nodeCapacity?: number;
}

const DEFAULT_CAPACITY = 64;
/** How full a bulk build packs nodes: full enough to save memory, with room for a few inserts. */
const BUILD_FILL = 7 / 8;
/**
 * Deeper than a tree of 2^32 records grows: the root splits only when full, so each new level
 * at least doubles what the tree must have held. (The descent path's arrays are this long.)
 */
const MAX_HEIGHT = 64;
/**
 * Pools grow by an eighth: at most 12.5% of them lies unused, for copying the pools about 8 times
 * over as they grow (about 30 ms in all for a million keys).
 */
const GROWTH = 1.125;
const EMPTY = new Uint8Array(0);

export class OrderedIndex {
  readonly #keys: KeySource;
  readonly #capacity: number;

  /** Per leaf, `capacity` entries of two words: the record, then its key's word. */
  #leafEntry: Uint32Array;
  #leafCount: Uint16Array;
  #leafSkip: Uint16Array;
  #leafNext: Int32Array;
  #leafPrev: Int32Array;
  #leafHigh = 0;
  #leafFree: number[] = [];

  #innerChild: Int32Array;
  /** Per inner node, `capacity` entries of two words: the child's smallest record, then its key's word. */
  #innerEntry: Uint32Array;
  #innerCount: Uint16Array;
  #innerSkip: Uint16Array;
  #innerHigh = 0;
  #innerFree: number[] = [];

  /** A leaf when #height is 0, else an inner node. */
  #root = 0;
  #height = 0;
  #size = 0;
  /** Counts every change, so a cursor knows when its position may have moved. */
  #mod = 0;

  /** The last descent: the inner node at each level (1 = parent of leaves) and the child taken. */
  readonly #pathNode = new Int32Array(MAX_HEIGHT + 1);
  readonly #pathIndex = new Int32Array(MAX_HEIGHT + 1);
  /** How many leading bytes the query shares with every key of the subtree the descent ended in. */
  #known = 0;

  /** The query key: bytes [#queryStart, #queryStart + #queryLength) of #queryBytes. */
  #queryBytes: Uint8Array = EMPTY;
  #queryStart = 0;
  #queryLength = 0;

  /** The keydir's columns, read at the start of each operation. */
  #arena: Uint8Array = EMPTY;
  #offsets: Uint32Array = new Uint32Array(0);

  /** Where the last seek or step landed: a leaf and an index in it (possibly one past either end). */
  #atLeaf = 0;
  #atIndex = 0;

  constructor(keys: KeySource, options: OrderedIndexOptions = {}) {
    const capacity = options.nodeCapacity ?? DEFAULT_CAPACITY;
    if (!Number.isInteger(capacity) || capacity < 4 || capacity > 4096) {
      throw new RangeError(`nodeCapacity must be an integer from 4 to 4096, received ${capacity}`);
    }
    this.#keys = keys;
    this.#capacity = capacity;
    this.#leafEntry = new Uint32Array(8 * capacity);
    this.#leafCount = new Uint16Array(4);
    this.#leafSkip = new Uint16Array(4);
    this.#leafNext = new Int32Array(4);
    this.#leafPrev = new Int32Array(4);
    this.#innerChild = new Int32Array(capacity);
    this.#innerEntry = new Uint32Array(2 * capacity);
    this.#innerCount = new Uint16Array(1);
    this.#innerSkip = new Uint16Array(1);
    this.#root = this.#newLeaf();
  }

  /** Live records in the index. */
  get size(): number {
    return this.#size;
  }

  /** Bytes of typed arrays the index holds (allocated, not only used). */
  get memoryBytes(): number {
    return this.#leafEntry.byteLength + this.#leafCount.byteLength +
      this.#leafSkip.byteLength + this.#leafNext.byteLength + this.#leafPrev.byteLength +
      this.#innerChild.byteLength + this.#innerEntry.byteLength +
      this.#innerCount.byteLength + this.#innerSkip.byteLength;
  }

  /** Levels of inner nodes above the leaves. */
  get height(): number {
    return this.#height;
  }

  // ---------------------------------------------------------------- changes

  /**
   * Adds `record`, whose key the keydir has just stored and which the index does not hold yet
   * (the keydir calls this for a new key; an overwrite keeps its record and does not call it).
   * Throws if a record with the same key is already in the index.
   */
  insert(record: number): void {
    this.#begin();
    this.#queryRecord(record);
    const leaf = this.#descend();
    const pos = this.#leafSearch(leaf, true);
    const B = this.#capacity;
    // A duplicate would sit just before `pos`, with the same word (when the query shares the
    // leaf's prefix); only then are the keys compared.
    if (pos > 0 && this.#leafEntry[2 * (leaf * B + pos - 1) + 1] === wordAt(this.#queryBytes, this.#queryStart, this.#queryLength, this.#leafSkip[leaf]) &&
        this.#compareQuery(this.#leafEntry[2 * (leaf * B + pos - 1)], 0) === 0) {
      throw new Error(`ordered index: the key of record ${record} is already present`);
    }
    this.#mod++;
    this.#size++;
    const count = this.#leafCount[leaf];
    if (count < B) {
      this.#placeInLeaf(leaf, pos, record, pos > 0 && pos < count);
      if (pos === 0 && this.#height > 0) this.#setLeftmostMin(record);
      return;
    }
    if (this.#height > 0 && this.#lend(leaf, pos, record)) return;
    const right = this.#splitLeaf(leaf, pos);
    const mid = this.#leafCount[leaf];
    if (pos < mid || mid === 0) this.#placeInLeaf(leaf, pos, record, pos > 0 && pos < mid);
    else this.#placeInLeaf(right, pos - mid, record, pos - mid > 0 && pos - mid < this.#leafCount[right]);
    if (pos === 0 && this.#height > 0) this.#setLeftmostMin(record);
    this.#insertChild(1, right, this.#leafEntry[2 * (right * B)]);
  }

  /**
   * Removes `record`, which must be in the index. The keydir calls this before it frees the
   * record, while its key bytes are still in the arena.
   */
  remove(record: number): void {
    this.#begin();
    this.#queryRecord(record);
    const leaf = this.#descend();
    const pos = this.#leafSearch(leaf, false);
    const B = this.#capacity;
    const base = leaf * B;
    const count = this.#leafCount[leaf];
    if (pos >= count || this.#leafEntry[2 * (base + pos)] !== record) {
      throw new Error(`ordered index: record ${record} is not in the index`);
    }
    this.#mod++;
    this.#size--;
    const entries = this.#leafEntry;
    for (let i = base + pos; i < base + count - 1; i++) {
      entries[2 * i] = entries[2 * (i + 1)];
      entries[2 * i + 1] = entries[2 * (i + 1) + 1];
    }
    this.#leafCount[leaf] = count - 1;
    if (count === 1) {
      if (this.#height === 0) this.#leafSkip[leaf] = 0;
      else this.#dropLeaf(leaf);
      return;
    }
    if (pos === 0) this.#propagateMin(1, this.#leafEntry[2 * base]);
    if ((count - 1) * 4 < B) this.#mergeLeaf(leaf);
  }

  /**
   * Replaces the contents with `records` (every live record, in any order): one sort by key, then
   * nodes packed 7/8 full, bottom up. Far cheaper than inserting them one by one.
   */
  build(records: Uint32Array): void {
    this.#begin();
    const { records: sorted, head0, head1 } = sortByKey(records, this.#arena, this.#offsets);
    this.#build(sorted, head0, head1);
  }

  /**
   * Packs sorted records into nodes, bottom up. A node whose skip is at most 4 takes its words
   * from `head0`/`head1` (each key's first 8 bytes, aligned with `sorted`) instead of from the
   * arena, where records in key order lie in random places: two cache misses per key. (Built from
   * an order saved without heads, a million keys took 200 ms of CPU, against 33 for loading the
   * saved tree and 290 for the sort and build, on the shared 2-core machine.)
   */
  #build(sorted: Uint32Array, head0: Uint32Array, head1: Uint32Array): void {
    this.#mod++;
    const n = sorted.length;
    const perNode = Math.max(2, Math.floor(this.#capacity * BUILD_FILL));
    const leaves = Math.max(1, Math.ceil(n / perNode));
    let inner = 0;
    for (let nodes = leaves; nodes > 1; inner += nodes) nodes = Math.ceil(nodes / perNode);
    this.#resetPools(leaves, inner);
    this.#size = n;
    let level = this.#buildLeaves(sorted, leaves, head0, head1);
    let height = 0;
    while (level.nodes.length > 1) level = this.#buildLevel(level, height++, Math.ceil(level.nodes.length / perNode), head0, head1);
    this.#root = level.nodes[0];
    this.#height = height;
  }

  /**
   * The leaves of a bulk build, each with an even share of the records, linked in order; with,
   * for each, where its smallest key is in `sorted` (for that key's heads).
   */
  #buildLeaves(sorted: Uint32Array, leaves: number, head0: Uint32Array, head1: Uint32Array): BuiltLevel {
    const B = this.#capacity;
    const n = sorted.length;
    const nodes = new Int32Array(leaves);
    const firsts = new Int32Array(leaves);
    for (let i = 0, from = 0; i < leaves; i++) {
      const to = Math.round(((i + 1) * n) / leaves);
      const leaf = this.#newLeaf();
      for (let j = from; j < to; j++) this.#leafEntry[2 * (leaf * B + j - from)] = sorted[j];
      this.#leafCount[leaf] = to - from;
      const skip = to === from ? 0 : Math.min(this.#sharedRecords(sorted[from], sorted[to - 1]), 0xffff);
      this.#leafSkip[leaf] = skip;
      const entries = this.#leafEntry;
      const base = leaf * B - from;
      if (skip <= 4) {
        for (let j = from; j < to; j++) entries[2 * (base + j) + 1] = headWord(head0[j], head1[j], skip);
      } else {
        for (let j = from; j < to; j++) entries[2 * (base + j) + 1] = this.#recordWord(sorted[j], skip);
      }
      if (i > 0) {
        this.#leafNext[nodes[i - 1]] = leaf;
        this.#leafPrev[leaf] = nodes[i - 1];
      }
      nodes[i] = leaf;
      firsts[i] = from;
      from = to;
    }
    return { nodes, firsts };
  }

  /** The inner nodes over the nodes of a bulk build's level `height` (0: the leaves), `count` of them. */
  #buildLevel(below: BuiltLevel, height: number, count: number, head0: Uint32Array, head1: Uint32Array): BuiltLevel {
    const B = this.#capacity;
    const nodes = new Int32Array(count);
    const firsts = new Int32Array(count);
    for (let i = 0, from = 0; i < count; i++) {
      const to = Math.round(((i + 1) * below.nodes.length) / count);
      const node = this.#newInner();
      const base = node * B;
      for (let j = from; j < to; j++) {
        this.#innerChild[base + j - from] = below.nodes[j];
        this.#innerEntry[2 * (base + j - from)] = this.#minOf(below.nodes[j], height);
      }
      this.#innerCount[node] = to - from;
      const skip = Math.min(this.#sharedRecords(this.#innerEntry[2 * base], this.#innerEntry[2 * (base + to - from - 1)]), 0xffff);
      this.#innerSkip[node] = skip;
      for (let j = from; j < to; j++) {
        const at = below.firsts[j];
        this.#innerEntry[2 * (base + j - from) + 1] = skip <= 4 ? headWord(head0[at], head1[at], skip) : this.#recordWord(this.#innerEntry[2 * (base + j - from)], skip);
      }
      nodes[i] = node;
      firsts[i] = below.firsts[from];
      from = to;
    }
    return { nodes, firsts };
  }


  // ---------------------------------------------------------------- iteration

  /**
   * A cursor over `range`, ascending unless `range.reverse`. Between calls to next() the index
   * may change in any way: the cursor never yields a key twice, never goes out of order, and
   * yields every key that is in the range for the whole iteration. A key inserted ahead of the
   * cursor is yielded; one behind it is not. A record it yields is live when yielded; what it
   * is afterwards is the caller's business.
   *
   * Re-seeking costs one descent, and only when the index changed since the last call; a cursor
   * over an unchanged index steps along the leaves.
   */
  cursor(range: ByteRange = {}): OrderedCursor {
    const state = new CursorState(range);
    return { next: () => this.#advance(state) };
  }

  /** The records in `range`, in order (cursor() as a generator). */
  *records(range: ByteRange = {}): Generator<number, void, undefined> {
    const cursor = this.cursor(range);
    for (let record = cursor.next(); record >= 0; record = cursor.next()) yield record;
  }

  #advance(c: CursorState): number {
    if (c.done) return -1;
    if (c.yielded >= c.limit) return this.#finish(c);
    this.#begin();
    if (!c.started) {
      c.started = true;
      const bound = c.reverse ? c.upper : c.lower;
      if (bound === undefined) this.#seekEnd(c.reverse);
      else this.#seek(bound.bytes, 0, bound.bytes.length, c.reverse, !bound.inclusive);
    } else if (c.mod !== this.#mod) {
      // The index changed: positions mean nothing now; the last key's bytes still do.
      this.#seek(c.last, 0, c.lastLength, c.reverse, true);
    } else {
      this.#atLeaf = c.leaf;
      this.#atIndex = c.index + (c.reverse ? -1 : 1);
    }
    if (!this.#settle(c.reverse)) return this.#finish(c);
    const record = this.#leafEntry[2 * (this.#atLeaf * this.#capacity + this.#atIndex)];
    const end = c.reverse ? c.lower : c.upper;
    if (end !== undefined) {
      this.#queryBytes = end.bytes;
      this.#queryStart = 0;
      this.#queryLength = end.bytes.length;
      // The query is the bound: positive when the record's key is below it.
      const order = this.#compareQuery(record, 0);
      const beyond = c.reverse ? order > 0 || (order === 0 && !end.inclusive) : order < 0 || (order === 0 && !end.inclusive);
      if (beyond) return this.#finish(c);
    }
    c.remember(this.#arena, this.#offsets[record]);
    c.leaf = this.#atLeaf;
    c.index = this.#atIndex;
    c.mod = this.#mod;
    c.yielded++;
    return record;
  }

  #finish(c: CursorState): number {
    c.done = true;
    c.last = EMPTY;
    return -1;
  }

  /** Positions at the first key (or the last, if `reverse`). */
  #seekEnd(reverse: boolean): void {
    let node = this.#root;
    for (let level = this.#height; level > 0; level--) {
      const last = reverse ? this.#innerCount[node] - 1 : 0;
      node = this.#innerChild[node * this.#capacity + last];
    }
    this.#atLeaf = node;
    this.#atIndex = reverse ? this.#leafCount[node] - 1 : 0;
  }

  /**
   * Positions at the first key above the given bytes (at or above, unless `strict`), or with
   * `reverse` at the last key below them (at or below, unless `strict`). The position may lie
   * one past a leaf's end; #settle() moves it onto a key.
   */
  #seek(bytes: Uint8Array, start: number, length: number, reverse: boolean, strict: boolean): void {
    this.#queryBytes = bytes;
    this.#queryStart = start;
    this.#queryLength = length;
    const leaf = this.#descend();
    this.#atLeaf = leaf;
    // First key > query (strict) or >= query; in reverse, the one before the first key >= query
    // (strict) or > query.
    this.#atIndex = reverse ? this.#leafSearch(leaf, !strict) - 1 : this.#leafSearch(leaf, strict);
  }

  /** Moves a position past a leaf's end onto the next key in the direction; false if none. */
  #settle(reverse: boolean): boolean {
    let leaf = this.#atLeaf;
    let index = this.#atIndex;
    if (reverse) {
      while (index < 0) {
        leaf = this.#leafPrev[leaf];
        if (leaf < 0) return false;
        index = this.#leafCount[leaf] - 1;
      }
    } else {
      while (index >= this.#leafCount[leaf]) {
        leaf = this.#leafNext[leaf];
        if (leaf < 0) return false;
        index = 0;
      }
    }
    this.#atLeaf = leaf;
    this.#atIndex = index;
    return true;
  }

  // ---------------------------------------------------------------- searching

  #begin(): void {
    this.#arena = this.#keys.keyArena;
    this.#offsets = this.#keys.keyOffsets;
  }

  #queryRecord(record: number): void {
    const arena = this.#arena;
    const at = this.#offsets[record];
    const first = arena[at];
    this.#queryBytes = arena;
    if (first < 0x80) {
      this.#queryStart = at + 1;
      this.#queryLength = first;
    } else {
      this.#queryStart = at + 3;
      this.#queryLength = ((first & 0x7f) << 16) | (arena[at + 1] << 8) | arena[at + 2];
    }
  }

  /**
   * Descends from the root to the leaf whose range holds the query: at each inner node, the last
   * child whose smallest key is <= the query (the first child if none is). Records the path.
   */
  #descend(): number {
    const B = this.#capacity;
    const counts = this.#innerCount;
    const skips = this.#innerSkip;
    const entries = this.#innerEntry;
    const childs = this.#innerChild;
    let node = this.#root;
    // The query and every key in the current subtree share this many leading bytes (zero
    // padded): the subtree's keys lie between two separators that share them, and so does the
    // query. A node whose keys share no more than that needs no prefix check against the query.
    let known = 0;
    for (let level = this.#height; level > 0; level--) {
      const base = node * B;
      const count = counts[node];
      const skip = skips[node];
      let i: number;
      const order = skip > known ? this.#prefixOrder(entries[2 * base], known, skip) : 0;
      if (order < 0) i = 0;
      else if (order > 0) i = count - 1;
      else {
        const above = this.#search(entries, base, count, skip, true);
        i = above > 0 ? above - 1 : 0;
        if (above > 0 && i + 1 < count) {
          const shared = skip + sharedBytes(entries[2 * (base + i) + 1], entries[2 * (base + i + 1) + 1]);
          if (shared > known) known = shared;
        }
      }
      this.#pathNode[level] = node;
      this.#pathIndex[level] = i;
      node = childs[base + i];
    }
    this.#known = known;
    return node;
  }

  /**
   * In the leaf the descent reached: the index of the first key above the query (`strict`) or at
   * or above it. 0 and count are both possible.
   */
  #leafSearch(leaf: number, strict: boolean): number {
    const count = this.#leafCount[leaf];
    if (count === 0) return 0;
    const base = leaf * this.#capacity;
    const skip = this.#leafSkip[leaf];
    const order = skip > this.#known ? this.#prefixOrder(this.#leafEntry[2 * base], this.#known, skip) : 0;
    if (order < 0) return 0;
    if (order > 0) return count;
    return this.#search(this.#leafEntry, base, count, skip, strict);
  }

  /**
   * Binary search over a node's entries for the first above the query (`strict`) or at or above
   * it, for a query that shares the node's first `skip` bytes. Words decide unless equal.
   */
  #search(entries: Uint32Array, base: number, count: number, skip: number, strict: boolean): number {
    const queryWord = wordAt(this.#queryBytes, this.#queryStart, this.#queryLength, skip);
    let low = 0;
    let high = count;
    while (low < high) {
      const mid = (low + high) >>> 1;
      const word = entries[2 * (base + mid) + 1];
      // Positive when the query is above the entry.
      const order = word !== queryWord ? (queryWord > word ? 1 : -1) : this.#compareQuery(entries[2 * (base + mid)], skip + 4);
      if (order > 0 || (order === 0 && strict)) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  /**
   * The query against `record`'s key, bytewise from `from` (the bytes before it are known to be
   * equal, zero padded): negative, zero or positive as the query is below, equal or above. If
   * `from` lies past the end of either, the shorter is a prefix of the longer and sorts first.
   */
  #compareQuery(record: number, from: number): number {
    const arena = this.#arena;
    const at = this.#offsets[record];
    const first = arena[at];
    let start: number;
    let length: number;
    if (first < 0x80) {
      start = at + 1;
      length = first;
    } else {
      start = at + 3;
      length = ((first & 0x7f) << 16) | (arena[at + 1] << 8) | arena[at + 2];
    }
    const query = this.#queryBytes;
    const queryStart = this.#queryStart;
    const queryLength = this.#queryLength;
    const end = queryLength < length ? queryLength : length;
    for (let i = from; i < end; i++) {
      const difference = query[queryStart + i] - arena[start + i];
      if (difference !== 0) return difference;
    }
    return queryLength - length;
  }

  /**
   * The query's bytes [from, to), zero padded, against `record`'s (which has at least `to`):
   * the sign of the first difference, 0 if none.
   */
  #prefixOrder(record: number, from: number, to: number): number {
    const arena = this.#arena;
    const at = this.#offsets[record];
    const start = arena[at] < 0x80 ? at + 1 : at + 3;
    const query = this.#queryBytes;
    const queryStart = this.#queryStart;
    const queryLength = this.#queryLength;
    for (let i = from; i < to; i++) {
      const difference = (i < queryLength ? query[queryStart + i] : 0) - arena[start + i];
      if (difference !== 0) return difference;
    }
    return 0;
  }

  /** How many leading bytes the query and `record`'s key share, up to `limit`. */
  #sharedWithQuery(record: number, limit: number): number {
    const arena = this.#arena;
    const at = this.#offsets[record];
    const first = arena[at];
    const start = first < 0x80 ? at + 1 : at + 3;
    const length = first < 0x80 ? first : ((first & 0x7f) << 16) | (arena[at + 1] << 8) | arena[at + 2];
    const query = this.#queryBytes;
    const queryStart = this.#queryStart;
    const end = Math.min(limit, length, this.#queryLength);
    let i = 0;
    while (i < end && query[queryStart + i] === arena[start + i]) i++;
    return i;
  }

  #recordWord(record: number, skip: number): number {
    const arena = this.#arena;
    const at = this.#offsets[record];
    const first = arena[at];
    if (first < 0x80) return wordAt(arena, at + 1, first, skip);
    return wordAt(arena, at + 3, ((first & 0x7f) << 16) | (arena[at + 1] << 8) | arena[at + 2], skip);
  }

  /** How many leading bytes two records' keys share. */
  #sharedRecords(a: number, b: number): number {
    this.#queryRecord(a);
    return this.#sharedWithQuery(b, 0xffff);
  }

  // ---------------------------------------------------------------- node contents

  /**
   * Puts the query's record at `pos` of a leaf with room. `shares`: the query is known to share
   * the leaf's first `skip` bytes (it lies strictly between two of its keys); if not known, it
   * is checked, and the leaf's skip shrinks to what all its keys and the query share.
   */
  #placeInLeaf(leaf: number, pos: number, record: number, shares: boolean): void {
    const B = this.#capacity;
    const base = leaf * B;
    const count = this.#leafCount[leaf];
    if (count === 0) this.#leafSkip[leaf] = Math.min(this.#queryLength, 0xffff);
    else if (!shares) this.#adopt(this.#leafEntry, this.#leafSkip, leaf, count, this.#leafEntry[2 * base]);
    const entries = this.#leafEntry;
    for (let i = base + count; i > base + pos; i--) {
      entries[2 * i] = entries[2 * (i - 1)];
      entries[2 * i + 1] = entries[2 * (i - 1) + 1];
    }
    entries[2 * (base + pos)] = record;
    entries[2 * (base + pos) + 1] = wordAt(this.#queryBytes, this.#queryStart, this.#queryLength, this.#leafSkip[leaf]);
    this.#leafCount[leaf] = count + 1;
  }

  /** #placeInLeaf() for an inner node: the query is the key of `minRecord`, `child`'s smallest. */
  #placeInInner(node: number, pos: number, child: number, minRecord: number, shares: boolean): void {
    const B = this.#capacity;
    const base = node * B;
    const count = this.#innerCount[node];
    this.#queryRecord(minRecord);
    if (count === 0) this.#innerSkip[node] = Math.min(this.#queryLength, 0xffff);
    else if (!shares) this.#adopt(this.#innerEntry, this.#innerSkip, node, count, this.#innerEntry[2 * base]);
    const childs = this.#innerChild;
    const entries = this.#innerEntry;
    for (let i = base + count; i > base + pos; i--) {
      childs[i] = childs[i - 1];
      entries[2 * i] = entries[2 * (i - 1)];
      entries[2 * i + 1] = entries[2 * (i - 1) + 1];
    }
    this.#innerChild[base + pos] = child;
    this.#innerEntry[2 * (base + pos)] = minRecord;
    this.#innerEntry[2 * (base + pos) + 1] = wordAt(this.#queryBytes, this.#queryStart, this.#queryLength, this.#innerSkip[node]);
    this.#innerCount[node] = count + 1;
  }

  /**
   * Makes a node's skip fit the query too: shrinks it to the bytes the query shares with
   * `member` (any key of the node; they all share the first `skip` bytes).
   */
  #adopt(entries: Uint32Array, skips: Uint16Array, node: number, count: number, member: number): void {
    const skip = skips[node];
    const shared = this.#sharedWithQuery(member, skip);
    if (shared < skip) this.#shrink(entries, skips, node, count, shared);
  }

  /**
   * Lowers a node's skip to `to`, rewriting its words without reading its keys: the new word is
   * the shared prefix's bytes [to, old skip) followed by the start of the old word.
   */
  #shrink(entries: Uint32Array, skips: Uint16Array, node: number, count: number, to: number): void {
    const base = node * this.#capacity;
    lowerWords(entries, base, base + count, skips[node] - to, this.#recordWord(entries[2 * base], to));
    skips[node] = to;
  }

  /** Sets a freshly filled node's count, its skip (what its first and last keys share) and its words. */
  #fillNode(entries: Uint32Array, counts: Uint16Array, skips: Uint16Array, node: number, count: number): void {
    const base = node * this.#capacity;
    counts[node] = count;
    const skip = count === 0 ? 0 : Math.min(this.#sharedRecords(entries[2 * base], entries[2 * (base + count - 1)]), 0xffff);
    skips[node] = skip;
    for (let i = base; i < base + count; i++) entries[2 * i + 1] = this.#recordWord(entries[2 * i], skip);
  }

  /**
   * After a node's keys changed in bulk (a split, a lend): raises its skip if its keys now share
   * more, and rewrites its words, but only if two of its words tie. Words that all differ order
   * the node's keys already; rewriting them reads every key (two cache misses each), which costs
   * more than the rare query that ties with one.
   */
  #regrow(entries: Uint32Array, counts: Uint16Array, skips: Uint16Array, node: number): void {
    const count = counts[node];
    if (count < 2) return;
    const base = node * this.#capacity;
    let ties = false;
    for (let i = base + 1; i < base + count && !ties; i++) ties = entries[2 * i + 1] === entries[2 * (i - 1) + 1];
    if (!ties) return;
    const skip = Math.min(this.#sharedRecords(entries[2 * base], entries[2 * (base + count - 1)]), 0xffff);
    if (skip > skips[node]) this.#fillNode(entries, counts, skips, node, count);
  }

  /** The smallest record under a node at `level` (0: a leaf). */
  #minOf(node: number, level: number): number {
    const B = this.#capacity;
    return level === 0 ? this.#leafEntry[2 * (node * B)] : this.#innerEntry[2 * (node * B)];
  }

  // ---------------------------------------------------------------- splits

  /**
   * Makes room in a full leaf by moving some of its entries to a sibling under the same parent,
   * if one has room, and puts the query's record in; false if neither sibling has room. Without
   * this, random inserts leave leaves 69% full on average (each split makes two half-full
   * leaves); with it, about 80%, which is what keeps the index within its memory budget.
   */
  #lend(leaf: number, pos: number, record: number): boolean {
    const B = this.#capacity;
    const parent = this.#pathNode[1];
    const i = this.#pathIndex[1];
    // Lend half the sibling's room (at least one entry), keeping a slot there for the query.
    const enough = Math.max(2, B >>> 3);
    const right = i + 1 < this.#innerCount[parent] ? this.#innerChild[parent * B + i + 1] : -1;
    if (right >= 0 && B - this.#leafCount[right] >= enough) {
      const moved = (B - this.#leafCount[right]) >>> 1;
      const query = [this.#queryBytes, this.#queryStart, this.#queryLength] as const;
      this.#moveEntries(leaf, B - moved, right, 0, moved);
      // The right leaf's smallest key is now one that came from this leaf: between this leaf's
      // separator and the right leaf's old one, so it shares the parent's prefix.
      this.#pathIndex[1] = i + 1;
      this.#propagateMin(1, this.#leafEntry[2 * (right * B)]);
      this.#pathIndex[1] = i;
      [this.#queryBytes, this.#queryStart, this.#queryLength] = query;
      const kept = B - moved;
      if (pos <= kept) this.#placeInLeaf(leaf, pos, record, pos > 0 && pos < kept);
      else this.#placeInLeaf(right, pos - kept, record, true);
      if (pos === 0) this.#setLeftmostMin(record);
      return true;
    }
    const left = i > 0 ? this.#innerChild[parent * B + i - 1] : -1;
    if (left >= 0 && B - this.#leafCount[left] >= enough) {
      const moved = (B - this.#leafCount[left]) >>> 1;
      const leftCount = this.#leafCount[left];
      const query = [this.#queryBytes, this.#queryStart, this.#queryLength] as const;
      this.#moveEntries(leaf, 0, left, leftCount, moved);
      this.#propagateMin(1, this.#leafEntry[2 * (leaf * B)]);
      [this.#queryBytes, this.#queryStart, this.#queryLength] = query;
      // A leaf with a left sibling is not the leftmost: pos > 0, and the query goes after the
      // moved entries (to the left leaf's end) or among this leaf's.
      if (pos <= moved) this.#placeInLeaf(left, leftCount + pos, record, pos < moved);
      else this.#placeInLeaf(leaf, pos - moved, record, pos - moved < this.#leafCount[leaf]);
      return true;
    }
    return false;
  }

  /**
   * Moves `count` entries from leaf `from` (starting at `fromIndex`, which is 0 or runs to its
   * end) into leaf `to` at `toIndex` (its start or its end), its neighbour on that side. Both
   * end up at a skip their keys share, raised if they now share more: left low, the words would
   * tie more and more often, and a tie costs a key comparison (two dependent cache misses) on
   * every search, where rewriting the words reads the keys once, with the misses overlapping.
   */
  #moveEntries(from: number, fromIndex: number, to: number, toIndex: number, count: number): void {
    const B = this.#capacity;
    const entries = this.#leafEntry;
    const fromBase = from * B;
    const toBase = to * B;
    const fromCount = this.#leafCount[from];
    const toCount = this.#leafCount[to];
    // The moved keys and the receiving leaf's share what the outermost keys of the two share.
    const outer = toIndex === 0
      ? this.#sharedRecords(entries[2 * (fromBase + fromIndex)], entries[2 * (toBase + toCount - 1)])
      : this.#sharedRecords(entries[2 * toBase], entries[2 * (fromBase + fromIndex + count - 1)]);
    const skip = Math.min(outer, this.#leafSkip[from], this.#leafSkip[to]);
    if (this.#leafSkip[to] > skip) this.#shrink(entries, this.#leafSkip, to, toCount, skip);
    const fromSkip = this.#leafSkip[from];
    if (toIndex === 0) {
      for (let i = toBase + toCount - 1; i >= toBase; i--) {
        entries[2 * (i + count)] = entries[2 * i];
        entries[2 * (i + count) + 1] = entries[2 * i + 1];
      }
    }
    for (let i = 0; i < count; i++) {
      entries[2 * (toBase + toIndex + i)] = entries[2 * (fromBase + fromIndex + i)];
      entries[2 * (toBase + toIndex + i) + 1] = entries[2 * (fromBase + fromIndex + i) + 1];
    }
    if (fromSkip > skip) {
      lowerWords(entries, toBase + toIndex, toBase + toIndex + count, fromSkip - skip, this.#recordWord(entries[2 * fromBase], skip));
    }
    if (fromIndex === 0) {
      for (let i = fromBase; i < fromBase + fromCount - count; i++) {
        entries[2 * i] = entries[2 * (i + count)];
        entries[2 * i + 1] = entries[2 * (i + count) + 1];
      }
    }
    this.#leafCount[from] = fromCount - count;
    this.#leafCount[to] = toCount + count;
    this.#regrow(entries, this.#leafCount, this.#leafSkip, from);
    this.#regrow(entries, this.#leafCount, this.#leafSkip, to);
  }

  /**
   * Splits a full leaf before the query goes in at `pos`; returns the new right leaf. Half the
   * entries move, except at the ends: a key above all goes alone into the new leaf, and a key
   * below all (the leftmost leaf only) stays alone in the old one, so ascending and descending
   * inserts fill leaves instead of leaving them half empty.
   */
  #splitLeaf(leaf: number, pos: number): number {
    const B = this.#capacity;
    const right = this.#newLeaf();
    const mid = pos === B ? B : pos === 0 ? 0 : B >>> 1;
    const base = leaf * B;
    const rightBase = right * B;
    this.#leafEntry.copyWithin(2 * rightBase, 2 * (base + mid), 2 * (base + B));
    this.#leafCount[right] = B - mid;
    this.#leafSkip[right] = this.#leafSkip[leaf];
    this.#leafCount[leaf] = mid;
    if (mid === 0) this.#leafSkip[leaf] = 0;
    const next = this.#leafNext[leaf];
    this.#leafNext[right] = next;
    this.#leafPrev[right] = leaf;
    this.#leafNext[leaf] = right;
    if (next >= 0) this.#leafPrev[next] = right;
    const query = [this.#queryBytes, this.#queryStart, this.#queryLength] as const;
    this.#regrow(this.#leafEntry, this.#leafCount, this.#leafSkip, leaf);
    this.#regrow(this.#leafEntry, this.#leafCount, this.#leafSkip, right);
    [this.#queryBytes, this.#queryStart, this.#queryLength] = query;
    return right;
  }

  /**
   * Puts `child` (with smallest key `minRecord`) into the inner node at `level` of the last
   * descent, after the child the descent took; splits up the tree as nodes fill.
   */
  #insertChild(level: number, child: number, minRecord: number): void {
    const B = this.#capacity;
    if (level > this.#height) {
      if (this.#height === MAX_HEIGHT) throw new Error('ordered index: tree too deep');
      const root = this.#newInner();
      const old = this.#root;
      this.#innerChild[root * B] = old;
      this.#innerEntry[2 * (root * B)] = this.#minOf(old, this.#height);
      this.#innerChild[root * B + 1] = child;
      this.#innerEntry[2 * (root * B + 1)] = minRecord;
      this.#fillNode(this.#innerEntry, this.#innerCount, this.#innerSkip, root, 2);
      this.#root = root;
      this.#height++;
      return;
    }
    const node = this.#pathNode[level];
    const pos = this.#pathIndex[level] + 1;
    const count = this.#innerCount[node];
    if (count < B) {
      this.#placeInInner(node, pos, child, minRecord, pos < count);
      return;
    }
    const right = this.#newInner();
    const mid = pos === B ? B : B >>> 1;
    const base = node * B;
    const rightBase = right * B;
    this.#innerChild.copyWithin(rightBase, base + mid, base + B);
    this.#innerEntry.copyWithin(2 * rightBase, 2 * (base + mid), 2 * (base + B));
    this.#innerCount[right] = B - mid;
    this.#innerSkip[right] = this.#innerSkip[node];
    this.#innerCount[node] = mid;
    if (pos < mid) this.#placeInInner(node, pos, child, minRecord, true);
    else this.#placeInInner(right, pos - mid, child, minRecord, pos - mid > 0 && pos - mid < B - mid);
    this.#regrow(this.#innerEntry, this.#innerCount, this.#innerSkip, node);
    this.#regrow(this.#innerEntry, this.#innerCount, this.#innerSkip, right);
    this.#insertChild(level + 1, right, this.#innerEntry[2 * rightBase]);
  }

  /** A new smallest key (the query, `record`) is the first entry of every node on the leftmost path. */
  #setLeftmostMin(record: number): void {
    const B = this.#capacity;
    let node = this.#root;
    for (let level = this.#height; level > 0; level--) {
      const base = node * B;
      this.#adopt(this.#innerEntry, this.#innerSkip, node, this.#innerCount[node], this.#innerEntry[2 * base]);
      this.#innerEntry[2 * base] = record;
      this.#innerEntry[2 * base + 1] = wordAt(this.#queryBytes, this.#queryStart, this.#queryLength, this.#innerSkip[node]);
      node = this.#innerChild[base];
    }
  }

  // ---------------------------------------------------------------- removals

  /**
   * The smallest key under the child the descent took at `level` is now `record`'s: updates
   * that separator, and the ones above for as long as the child is its parent's first.
   */
  #propagateMin(level: number, record: number): void {
    const B = this.#capacity;
    for (; level <= this.#height; level++) {
      const node = this.#pathNode[level];
      const i = this.#pathIndex[level];
      const base = node * B;
      const count = this.#innerCount[node];
      this.#queryRecord(record);
      // The new smallest key is above the old one; below the next separator, if there is one.
      // Only as the last entry can it fall outside the node's shared prefix.
      if (i === count - 1) {
        const member = count > 1 ? this.#innerEntry[2 * base] : this.#innerEntry[2 * (base + i)];
        this.#adopt(this.#innerEntry, this.#innerSkip, node, count, member);
      }
      this.#innerEntry[2 * (base + i)] = record;
      this.#innerEntry[2 * (base + i) + 1] = wordAt(this.#queryBytes, this.#queryStart, this.#queryLength, this.#innerSkip[node]);
      if (i !== 0) return;
    }
  }

  /** Unlinks and frees an empty leaf (not the root), then removes it from its parent. */
  #dropLeaf(leaf: number): void {
    const next = this.#leafNext[leaf];
    const prev = this.#leafPrev[leaf];
    if (prev >= 0) this.#leafNext[prev] = next;
    if (next >= 0) this.#leafPrev[next] = prev;
    this.#leafFree.push(leaf);
    this.#removeChild(1);
  }

  /** Removes the entry the last descent took at `level`, and mends the tree above. */
  #removeChild(level: number): void {
    const B = this.#capacity;
    const node = this.#pathNode[level];
    const i = this.#pathIndex[level];
    const base = node * B;
    const count = this.#innerCount[node] - 1;
    this.#innerChild.copyWithin(base + i, base + i + 1, base + count + 1);
    this.#innerEntry.copyWithin(2 * (base + i), 2 * (base + i + 1), 2 * (base + count + 1));
    this.#innerCount[node] = count;
    if (count === 0) {
      // Only a non-root node empties: the root collapses when one child is left.
      this.#innerFree.push(node);
      this.#removeChild(level + 1);
      return;
    }
    if (i === 0 && level < this.#height) this.#propagateMin(level + 1, this.#innerEntry[2 * base]);
    if (level === this.#height) {
      while (this.#height > 0 && this.#innerCount[this.#root] === 1) {
        this.#innerFree.push(this.#root);
        this.#root = this.#innerChild[this.#root * B];
        this.#height--;
      }
    } else if (count * 4 < B) {
      this.#mergeInner(level);
    }
  }

  /**
   * Merges an underfull leaf with a sibling under the same parent if both fit in 3/4 of a leaf
   * (so the next inserts do not split it again at once).
   */
  #mergeLeaf(leaf: number): void {
    if (this.#height === 0) return;
    const B = this.#capacity;
    const parent = this.#pathNode[1];
    const i = this.#pathIndex[1];
    const fits = (other: number) => (this.#leafCount[leaf] + this.#leafCount[other]) * 4 <= 3 * B;
    let left: number;
    let right: number;
    if (i + 1 < this.#innerCount[parent] && fits(this.#innerChild[parent * B + i + 1])) {
      left = leaf;
      right = this.#innerChild[parent * B + i + 1];
      this.#pathIndex[1] = i + 1;
    } else if (i > 0 && fits(this.#innerChild[parent * B + i - 1])) {
      left = this.#innerChild[parent * B + i - 1];
      right = leaf;
    } else {
      return;
    }
    this.#concat(this.#leafEntry, this.#leafCount, this.#leafSkip, left, right);
    this.#leafNext[left] = this.#leafNext[right];
    if (this.#leafNext[right] >= 0) this.#leafPrev[this.#leafNext[right]] = left;
    this.#leafFree.push(right);
    this.#removeChild(1);
  }

  /** #mergeLeaf() for the inner node the last descent took at `level` (not the root). */
  #mergeInner(level: number): void {
    const B = this.#capacity;
    const node = this.#pathNode[level];
    const parent = this.#pathNode[level + 1];
    const i = this.#pathIndex[level + 1];
    const fits = (other: number) => (this.#innerCount[node] + this.#innerCount[other]) * 4 <= 3 * B;
    let left: number;
    let right: number;
    if (i + 1 < this.#innerCount[parent] && fits(this.#innerChild[parent * B + i + 1])) {
      left = node;
      right = this.#innerChild[parent * B + i + 1];
      this.#pathIndex[level + 1] = i + 1;
    } else if (i > 0 && fits(this.#innerChild[parent * B + i - 1])) {
      left = this.#innerChild[parent * B + i - 1];
      right = node;
    } else {
      return;
    }
    const leftCount = this.#innerCount[left];
    this.#concat(this.#innerEntry, this.#innerCount, this.#innerSkip, left, right);
    this.#innerChild.copyWithin(left * B + leftCount, right * B, right * B + this.#innerCount[right]);
    this.#innerFree.push(right);
    this.#removeChild(level + 1);
  }

  /** Appends `right`'s entries to `left`'s (its left neighbour), both at the skip they share. */
  #concat(entries: Uint32Array, counts: Uint16Array, skips: Uint16Array, left: number, right: number): void {
    const B = this.#capacity;
    const leftCount = counts[left];
    const rightCount = counts[right];
    // One skip for both: no more than either has (a node's skip may be below what its keys
    // share), nor than the merged keys share.
    const shared = Math.min(this.#sharedRecords(entries[2 * (left * B)], entries[2 * (right * B + rightCount - 1)]), skips[left], skips[right]);
    if (skips[left] > shared) this.#shrink(entries, skips, left, leftCount, shared);
    if (skips[right] > shared) this.#shrink(entries, skips, right, rightCount, shared);
    entries.copyWithin(2 * (left * B + leftCount), 2 * right * B, 2 * (right * B + rightCount));
    counts[left] = leftCount + rightCount;
  }

  // ---------------------------------------------------------------- node pools

  #newLeaf(): number {
    const free = this.#leafFree.pop();
    const leaf = free ?? this.#leafHigh++;
    if (leaf >= this.#leafCount.length) this.#growLeaves(Math.ceil(this.#leafCount.length * GROWTH) + 4);
    this.#leafCount[leaf] = 0;
    this.#leafSkip[leaf] = 0;
    this.#leafNext[leaf] = -1;
    this.#leafPrev[leaf] = -1;
    return leaf;
  }

  #newInner(): number {
    const free = this.#innerFree.pop();
    const node = free ?? this.#innerHigh++;
    if (node >= this.#innerCount.length) this.#growInner(Math.ceil(this.#innerCount.length * GROWTH) + 2);
    this.#innerCount[node] = 0;
    this.#innerSkip[node] = 0;
    return node;
  }

  #growLeaves(leaves: number): void {
    const B = this.#capacity;
    this.#leafEntry = grow(this.#leafEntry, 2 * leaves * B);
    this.#leafCount = grow(this.#leafCount, leaves);
    this.#leafSkip = grow(this.#leafSkip, leaves);
    this.#leafNext = grow(this.#leafNext, leaves);
    this.#leafPrev = grow(this.#leafPrev, leaves);
  }

  #growInner(nodes: number): void {
    const B = this.#capacity;
    this.#innerChild = grow(this.#innerChild, nodes * B);
    this.#innerEntry = grow(this.#innerEntry, 2 * nodes * B);
    this.#innerCount = grow(this.#innerCount, nodes);
    this.#innerSkip = grow(this.#innerSkip, nodes);
  }

  /** Empties the pools, sized for a bulk build of `leaves` leaves and `inner` inner nodes. */
  #resetPools(leaves: number, inner: number): void {
    const B = this.#capacity;
    this.#leafEntry = new Uint32Array(2 * leaves * B);
    this.#leafCount = new Uint16Array(leaves);
    this.#leafSkip = new Uint16Array(leaves);
    this.#leafNext = new Int32Array(leaves);
    this.#leafPrev = new Int32Array(leaves);
    this.#leafHigh = 0;
    this.#leafFree = [];
    this.#innerChild = new Int32Array(inner * B);
    this.#innerEntry = new Uint32Array(2 * inner * B);
    this.#innerCount = new Uint16Array(inner);
    this.#innerSkip = new Uint16Array(inner);
    this.#innerHigh = 0;
    this.#innerFree = [];
  }

  // ---------------------------------------------------------------- bytes

  /**
   * The index as bytes, so a snapshot can carry it beside the keydir and an open skip the sort
   * (see fromBytes()). Arrays are written in the host's byte order, as the keydir's are (the
   * snapshot allows only little-endian hosts). Only handed-out nodes are written; free ones are
   * listed so the pools keep their numbering.
   *
   *   header   8 × u32: capacity, height, root, size, leaves handed out (L), inner nodes (I),
   *            free leaves, free inner nodes
   *   leaves   entries (record, word): L × capacity × 2 × u32; next, prev: L × i32;
   *            count | skip << 16: L × u32
   *   inner    child: I × capacity × i32; entries (record, word): I × capacity × 2 × u32;
   *            count | skip << 16: I × u32
   *   free     leaf ids, inner ids: u32 each
   */
  toBytes(): Buffer[] {
    const B = this.#capacity;
    const leaves = this.#leafHigh;
    const inner = this.#innerHigh;
    const header = Buffer.alloc(32);
    [B, this.#height, this.#root, this.#size, leaves, inner, this.#leafFree.length, this.#innerFree.length]
      .forEach((value, i) => header.writeUInt32LE(value, i * 4));
    const view = (array: Uint32Array | Int32Array, length: number) => Buffer.from(array.buffer, array.byteOffset, length * 4);
    const meta = (counts: Uint16Array, skips: Uint16Array, n: number) => {
      const packed = new Uint32Array(n);
      for (let i = 0; i < n; i++) packed[i] = (counts[i] | (skips[i] << 16)) >>> 0;
      return view(packed, n);
    };
    return [
      header,
      view(this.#leafEntry, 2 * leaves * B),
      view(this.#leafNext, leaves), view(this.#leafPrev, leaves), meta(this.#leafCount, this.#leafSkip, leaves),
      view(this.#innerChild, inner * B), view(this.#innerEntry, 2 * inner * B),
      meta(this.#innerCount, this.#innerSkip, inner),
      view(Uint32Array.from(this.#leafFree), this.#leafFree.length),
      view(Uint32Array.from(this.#innerFree), this.#innerFree.length),
    ];
  }

  /**
   * An index from toBytes() output, over `keys`, whose live records `live` digests. Throws if
   * the bytes are not a tree of exactly those records: every node reachable once, counts and ids
   * in range, the leaves holding the same records as `live` (by count and two order-free hash
   * sums: a lost, doubled or foreign record would have to leave both unchanged), separators equal
   * to their children's smallest records, the leaf chain in tree order, words ascending within
   * each node. What it does not check is that the words and the order agree with the keys: that
   * reads every key at random, which is what loading instead of sorting saves; the snapshot's
   * CRC and these checks vouch for bytes a correct build wrote.
   */
  static fromBytes(keys: KeySource, buf: Buffer, live: RecordDigest): OrderedIndex {
    const fail = (why: string): never => { throw new Error(`ordered index bytes: ${why}`); };
    if (buf.length < 32) fail('truncated');
    const [B, height, root, size, leaves, inner, leafFrees, innerFrees] = Array.from({ length: 8 }, (_, i) => buf.readUInt32LE(i * 4));
    if (B < 4 || B > 4096 || height > MAX_HEIGHT || size !== live.count || leaves < 1) fail('inconsistent header');
    if (buf.length !== 32 + leaves * (B * 8 + 12) + inner * (B * 12 + 4) + (leafFrees + innerFrees) * 4) fail('wrong size');
    const index = new OrderedIndex(keys, { nodeCapacity: B });
    let at = 32;
    // Each column is copied into an array with room to grow; straight from the file's bytes when
    // they are 4-byte aligned, else through a byte copy.
    const words = <T extends Uint32Array | Int32Array>(type: { new (n: number): T; new (buffer: ArrayBufferLike, offset: number, n: number): T },
      n: number, room: number): T => {
      const array = new type(Math.max(room, 1));
      const start = buf.byteOffset + at;
      const source = start % 4 === 0 ? new type(buf.buffer, start, n) : new type(Uint8Array.prototype.slice.call(buf, at, at + n * 4).buffer, 0, n);
      array.set(source);
      at += n * 4;
      return array;
    };
    // Room to grow by an eighth before the first copy.
    const leafRoom = Math.ceil(leaves * GROWTH) + 4;
    const innerRoom = Math.ceil(inner * GROWTH) + 2;
    index.#leafEntry = words(Uint32Array, 2 * leaves * B, 2 * leafRoom * B);
    index.#leafNext = words(Int32Array, leaves, leafRoom);
    index.#leafPrev = words(Int32Array, leaves, leafRoom);
    [index.#leafCount, index.#leafSkip] = unpackMeta(words(Uint32Array, leaves, leaves), leafRoom);
    index.#innerChild = words(Int32Array, inner * B, innerRoom * B);
    index.#innerEntry = words(Uint32Array, 2 * inner * B, 2 * innerRoom * B);
    [index.#innerCount, index.#innerSkip] = unpackMeta(words(Uint32Array, inner, inner), innerRoom);
    index.#leafFree = Array.from(words(Uint32Array, leafFrees, leafFrees).subarray(0, leafFrees));
    index.#innerFree = Array.from(words(Uint32Array, innerFrees, innerFrees).subarray(0, innerFrees));
    index.#leafHigh = leaves;
    index.#innerHigh = inner;
    index.#root = root;
    index.#height = height;
    index.#size = size;
    const held = index.#verifyShape(fail);
    if (held.count !== live.count || held.sum1 !== live.sum1 || held.sum2 !== live.sum2) fail('the leaves do not hold the live records');
    return index;
  }

  /**
   * fromBytes()'s checks of the tree's shape, by a walk from the root: O(nodes + records), with
   * no key bytes read and no access by record index (at 20M keys, a bitmap of records seen cost
   * two seconds of cache misses). Returns the digest of the records the leaves hold.
   */
  #verifyShape(fail: (why: string) => never): RecordDigest {
    const B = this.#capacity;
    const seenLeaf = new Uint8Array(this.#leafHigh);
    const seenInner = new Uint8Array(this.#innerHigh);
    for (const leaf of this.#leafFree) if (leaf >= this.#leafHigh || seenLeaf[leaf]++ > 0) fail('bad free leaf');
    for (const node of this.#innerFree) if (node >= this.#innerHigh || seenInner[node]++ > 0) fail('bad free inner node');
    const held = new RecordDigest();
    let previousLeaf = -1;
    let total = 0;
    // Returns the node's smallest record.
    const visit = (node: number, level: number): number => {
      const isLeaf = level === 0;
      const seen = isLeaf ? seenLeaf : seenInner;
      if (node < 0 || node >= seen.length || seen[node]++ > 0) fail(`node ${node} out of range, free or reached twice`);
      const count = isLeaf ? this.#leafCount[node] : this.#innerCount[node];
      if (count > B || (count === 0 && !(isLeaf && node === this.#root && this.#size === 0))) fail(`node ${node} count ${count}`);
      const entries = isLeaf ? this.#leafEntry : this.#innerEntry;
      for (let i = node * B + 1; i < node * B + count; i++) if (entries[2 * i + 1] < entries[2 * (i - 1) + 1]) fail(`node ${node} words descend`);
      if (isLeaf) {
        if (this.#leafPrev[node] !== previousLeaf || (previousLeaf >= 0 && this.#leafNext[previousLeaf] !== node)) fail(`leaf ${node} links`);
        previousLeaf = node;
        for (let i = node * B; i < node * B + count; i++) held.add(entries[2 * i]);
        total += count;
      } else {
        for (let i = node * B; i < node * B + count; i++) {
          if (visit(this.#innerChild[i], level - 1) !== entries[2 * i]) fail(`node ${node} separator ${i - node * B}`);
        }
      }
      return entries[2 * (node * B)];
    };
    visit(this.#root, this.#height);
    if (previousLeaf >= 0 && this.#leafNext[previousLeaf] !== -1) fail('last leaf links on');
    if (total !== this.#size) fail(`holds ${total} records, not ${this.#size}`);
    if (this.#height > 0 && this.#innerCount[this.#root] < 2) fail('root has a single child');
    return held;
  }

  // ---------------------------------------------------------------- checking

  /**
   * Verifies every invariant (see the file's header) and that the index holds exactly the
   * records `live` lists; throws an Error naming the first violation. O(n): for specs and tools.
   */
  check(live?: Iterable<number>): void {
    this.#begin();
    const fail = (why: string): never => { throw new Error(`ordered index: ${why}`); };
    const leaves: number[] = [];
    const visit = (node: number, level: number): number => {
      const B = this.#capacity;
      const base = node * B;
      const isLeaf = level === 0;
      const count = isLeaf ? this.#leafCount[node] : this.#innerCount[node];
      const skip = isLeaf ? this.#leafSkip[node] : this.#innerSkip[node];
      const entries = isLeaf ? this.#leafEntry : this.#innerEntry;
      if (count === 0 && !(isLeaf && node === this.#root)) fail(`empty node ${node} at level ${level}`);
      if (count > B) fail(`node ${node} overfull`);
      for (let i = 0; i < count; i++) {
        const record = entries[2 * (base + i)];
        this.#queryRecord(record);
        if (this.#queryLength < skip) fail(`key of record ${record} is shorter than its node's skip ${skip}`);
        if (i > 0 && this.#sharedWithQuery(entries[2 * base], skip) < skip) fail(`node ${node} keys do not share ${skip} bytes`);
        if (entries[2 * (base + i) + 1] !== this.#recordWord(record, skip)) fail(`stale word at node ${node} (level ${level}, count ${count}, skip ${skip}) entry ${i}: ${entries[2 * (base + i) + 1].toString(16)} vs ${this.#recordWord(record, skip).toString(16)}`);
        if (i > 0 && this.#compareQuery(entries[2 * (base + i - 1)], 0) <= 0) fail(`node ${node} keys out of order at ${i}`);
        if (!isLeaf) {
          const childMin = visit(this.#innerChild[base + i], level - 1);
          if (childMin !== record) fail(`separator ${i} of node ${node} is not its child's smallest key`);
        }
      }
      if (isLeaf) leaves.push(node);
      return entries[2 * base];
    };
    visit(this.#root, this.#height);
    if (this.#height > 0 && this.#innerCount[this.#root] < 2) fail('root has a single child');
    let total = 0;
    let prev = -1;
    for (let i = 0; i < leaves.length; i++) {
      const leaf = leaves[i];
      if (this.#leafPrev[leaf] !== prev) fail(`leaf ${leaf} prev link`);
      if (this.#leafNext[leaf] !== (i + 1 < leaves.length ? leaves[i + 1] : -1)) fail(`leaf ${leaf} next link`);
      if (prev >= 0 && this.#leafCount[prev] > 0) {
        this.#queryRecord(this.#leafEntry[2 * (leaf * this.#capacity)]);
        if (this.#compareQuery(this.#leafEntry[2 * (prev * this.#capacity + this.#leafCount[prev] - 1)], 0) <= 0) fail(`leaf ${leaf} out of order`);
      }
      total += this.#leafCount[leaf];
      prev = leaf;
    }
    if (total !== this.#size) fail(`size ${this.#size} but ${total} entries`);
    if (live !== undefined) {
      const expected = new Set(live);
      if (expected.size !== total) fail(`holds ${total} records, expected ${expected.size}`);
      for (const leaf of leaves) {
        for (let i = 0; i < this.#leafCount[leaf]; i++) {
          if (!expected.has(this.#leafEntry[2 * (leaf * this.#capacity + i)])) fail(`holds record ${this.#leafEntry[2 * (leaf * this.#capacity + i)]}, which is not live`);
        }
      }
    }
  }
}

/**
 * A digest of a set of record indices that does not depend on their order: their count and two
 * sums, modulo 2^32, of independent 32-bit mixes of each. fromBytes() compares the records a
 * saved tree holds with the keydir's live ones through it, in two sequential passes.
 */
export class RecordDigest {
  count = 0;
  sum1 = 0;
  sum2 = 0;

  add(record: number): void {
    this.count++;
    this.sum1 = (this.sum1 + mixRecord(record, 0x9e3779b9)) >>> 0;
    this.sum2 = (this.sum2 + mixRecord(record, 0x85ebca6b)) >>> 0;
  }
}

/** murmur3's finalizer over the record index xor a seed: a bijection, so distinct records differ. */
function mixRecord(record: number, seed: number): number {
  return mix32((record ^ seed) >>> 0);
}

/** One level of a bulk build: its nodes in order, and where each one's smallest key is in the sorted records. */
interface BuiltLevel {
  nodes: Int32Array;
  firsts: Int32Array;
}

/** The state of one cursor: its bounds, where it stands, and the bytes of the last key it yielded. */
class CursorState {
  readonly lower: Bound | undefined;
  readonly upper: Bound | undefined;
  readonly reverse: boolean;
  readonly limit: number;
  started = false;
  done = false;
  yielded = 0;
  leaf = 0;
  index = 0;
  mod = 0;
  last: Uint8Array = new Uint8Array(32);
  lastLength = 0;

  constructor(range: ByteRange) {
    let lower = tighterLower(bound(range.gt, false), bound(range.gte, true));
    let upper = tighterUpper(bound(range.lt, false), bound(range.lte, true));
    if (range.prefix !== undefined && range.prefix.length > 0) {
      // Keys with a prefix are those at or above it and below its successor (the prefix with its
      // trailing 0xff bytes dropped and the last byte left incremented); all-0xff: no successor.
      lower = tighterLower(lower, bound(range.prefix, true));
      let end = range.prefix.length;
      while (end > 0 && range.prefix[end - 1] === 0xff) end--;
      if (end > 0) {
        const successor = Uint8Array.from(range.prefix.subarray(0, end));
        successor[end - 1]++;
        upper = tighterUpper(upper, { bytes: successor, inclusive: false });
      }
    }
    this.lower = lower;
    this.upper = upper;
    this.reverse = range.reverse === true;
    this.limit = range.limit ?? Infinity;
  }

  /** Copies the key at arena[at] (length-prefixed) as the last one yielded. */
  remember(arena: Uint8Array, at: number): void {
    const first = arena[at];
    const start = first < 0x80 ? at + 1 : at + 3;
    const length = first < 0x80 ? first : ((first & 0x7f) << 16) | (arena[at + 1] << 8) | arena[at + 2];
    if (length > this.last.length) this.last = new Uint8Array(Math.max(length, this.last.length * 2));
    // A loop, not set(subarray()): this runs once per key yielded, and most keys are short.
    const last = this.last;
    for (let i = 0; i < length; i++) last[i] = arena[start + i];
    this.lastLength = length;
  }
}

interface Bound {
  bytes: Uint8Array;
  inclusive: boolean;
}

/** A bound with its own copy of the bytes (Buffer's slice() would share them, Uint8Array.from does not). */
function bound(bytes: Uint8Array | undefined, inclusive: boolean): Bound | undefined {
  return bytes === undefined ? undefined : { bytes: Uint8Array.from(bytes), inclusive };
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}

function tighterLower(a: Bound | undefined, b: Bound | undefined): Bound | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  const order = compareBytes(a.bytes, b.bytes);
  if (order !== 0) return order > 0 ? a : b;
  return a.inclusive ? b : a;
}

function tighterUpper(a: Bound | undefined, b: Bound | undefined): Bound | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  const order = compareBytes(a.bytes, b.bytes);
  if (order !== 0) return order < 0 ? a : b;
  return a.inclusive ? b : a;
}


/**
 * Rewrites the words of entries [from, to) (two array elements each) of keys that share a prefix, from the word at some skip to the word
 * at `drop` bytes less: the prefix's bytes, then the start of the old word. `prefixWord` is the
 * word of any of these keys at the new skip (its first `drop` bytes are the prefix's).
 */
function lowerWords(entries: Uint32Array, from: number, to: number, drop: number, prefixWord: number): void {
  if (drop <= 0) return;
  if (drop >= 4) {
    for (let i = from; i < to; i++) entries[2 * i + 1] = prefixWord;
    return;
  }
  const bits = drop * 8;
  const high = prefixWord & (0xffffffff << (32 - bits));
  for (let i = from; i < to; i++) entries[2 * i + 1] = (high | (entries[2 * i + 1] >>> bits)) >>> 0;
}

/** The word at `skip` (0 to 4) of a key whose first 8 bytes are the words `head0`, `head1`. */
function headWord(head0: number, head1: number, skip: number): number {
  if (skip === 0) return head0;
  if (skip === 4) return head1;
  return ((head0 << (skip * 8)) | (head1 >>> (32 - skip * 8))) >>> 0;
}

/** Counts and skips from their packed form (count | skip << 16), in arrays of `room` nodes. */
function unpackMeta(packed: Uint32Array, room: number): [Uint16Array, Uint16Array] {
  const counts = new Uint16Array(room);
  const skips = new Uint16Array(room);
  for (let i = 0; i < packed.length; i++) {
    counts[i] = packed[i] & 0xffff;
    skips[i] = packed[i] >>> 16;
  }
  return [counts, skips];
}

/** How many leading bytes two words share (4 if equal). */
function sharedBytes(a: number, b: number): number {
  return a === b ? 4 : Math.clz32(a ^ b) >>> 3;
}

function grow<T extends Uint32Array | Int32Array | Uint16Array>(from: T, length: number): T {
  const to = new (from.constructor as new (length: number) => T)(length);
  to.set(from);
  return to;
}
