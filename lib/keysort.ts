/**
 * Sorting keydir records by their keys' UTF-8 bytes, for the ordered index's bulk build
 * (ordered.ts), and the 4-byte key "words" both compare by. No I/O.
 *
 * A key's word at `skip` is its bytes [skip, skip + 4), big-endian, zero padded past its end.
 * Words order as their keys do wherever they differ (the padding sorts a key before its
 * extensions); where they tie, the keys must be compared further.
 *
 * Keys are read where the keydir keeps them: `arena` and `offsets` are its keyArena and
 * keyOffsets (see KeySource in ordered.ts for the length prefix before each key).
 */

/** Bytes [start + skip, start + skip + 4) of a key of `length` bytes, zero padded, big-endian. */
export function wordAt(bytes: Uint8Array, start: number, length: number, skip: number): number {
  const at = start + skip;
  if (skip + 4 <= length) return ((bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]) >>> 0;
  let word = 0;
  for (let i = 0; i < 4; i++) word = (word << 8) | (skip + i < length ? bytes[at + i] : 0);
  return word >>> 0;
}

/** Records in key order, with the first 8 bytes of each one's key (zero padded) as two words. */
export interface SortedRecords {
  records: Uint32Array;
  head0: Uint32Array;
  head1: Uint32Array;
}

/**
 * `records` sorted by their keys' bytes (new arrays), with their heads. An MSD radix sort on
 * 4-byte words: one pass reads the first 8 bytes of every key in record order (the arena's
 * order, so sequential); the records are sorted by the first word (KeySorter.sortByHeads()),
 * each run of equal first words by the second, and so on, 4 bytes deeper each time, reading the
 * arena again only for runs that still tie. Uint32Array.prototype.sort with a function comparing
 * the keys would be simpler; on Node 20, at a million keys, it takes 4 to 5 times as long.
 */
export function sortByKey(records: Uint32Array, arena: Uint8Array, offsets: Uint32Array): SortedRecords {
  const n = records.length;
  const sorter = new KeySorter(arena, offsets, n);
  sorter.recs.set(records);
  {
    const recs = sorter.recs;
    const words = sorter.words;
    const extra = sorter.extra;
    for (let i = 0; i < n; i++) {
      const at = offsets[recs[i]];
      const first = arena[at];
      const start = first < 0x80 ? at + 1 : at + 3;
      const length = first < 0x80 ? first : ((first & 0x7f) << 16) | (arena[at + 1] << 8) | arena[at + 2];
      words[i] = wordAt(arena, start, length, 0);
      extra[i] = wordAt(arena, start, length, 4);
    }
  }
  sorter.sortByHeads();
  // The sort may have swapped the working arrays: take them only now.
  const sorted = sorter.recs;
  const words = sorter.words;
  const head0 = words.slice();
  const head1 = sorter.extra;
  // Runs that tie on the first word: their second words are loaded already. Sorting a run by
  // them permutes it, so they are copied back to stay beside their records; deeper sorts only
  // permute runs that tie on both, which leaves both heads as they are.
  for (let i = 0; i < n;) {
    let j = i + 1;
    while (j < n && head0[j] === head0[i]) j++;
    if (j - i > 1) {
      for (let k = i; k < j; k++) words[k] = head1[k];
      sorter.sortLevel(i, j, 4);
      for (let k = i; k < j; k++) head1[k] = words[k];
    }
    i = j;
  }
  sorter.drain();
  return { records: sorted, head0, head1 };
}

/** The working state of sortByKey(): records and their current words, with scratch space. */
class KeySorter {
  recs: Uint32Array;
  words: Uint32Array;
  /** The second head word of each record, moved along by the first sort (sortByHeads()). */
  extra: Uint32Array;
  readonly #arena: Uint8Array;
  readonly #offsets: Uint32Array;
  #tmpRecs: Uint32Array;
  #tmpWords: Uint32Array;
  readonly #tmpExtra: Uint32Array;
  #tmpExtra2: Uint32Array;
  readonly #counts = new Uint32Array(2048);
  /** Runs left to sort deeper: triples of (from, to, depth). Explicit, since depth can reach 16k. */
  readonly #work: number[] = [];

  constructor(arena: Uint8Array, offsets: Uint32Array, n: number) {
    this.#arena = arena;
    this.#offsets = offsets;
    this.recs = new Uint32Array(n);
    this.words = new Uint32Array(n);
    this.extra = new Uint32Array(n);
    this.#tmpRecs = new Uint32Array(n);
    this.#tmpWords = new Uint32Array(n);
    this.#tmpExtra = new Uint32Array(n);
    this.#tmpExtra2 = new Uint32Array(n);
  }

  /**
   * Sorts everything by the first word, moving `extra` (the second) along. Above 64Ki records,
   * one scatter on the word's top 11 bits first, then each bucket on its own: three scatters
   * over the whole arrays (an LSD radix sort) miss the cache and the TLB at every write once the
   * arrays are tens of megabytes, where a bucket's passes stay within a few.
   */
  sortByHeads(): void {
    const n = this.recs.length;
    const extra = this.extra;
    if (n <= 0x10000) {
      this.sortRange(0, n, extra);
      return;
    }
    const counts = this.#counts;
    const words = this.words;
    const starts = new Uint32Array(2049);
    let sum = 0;
    counts.fill(0);
    for (let i = 0; i < n; i++) counts[words[i] >>> 21]++;
    for (let d = 0; d < 2048; d++) {
      const c = counts[d];
      starts[d] = sum;
      counts[d] = sum;
      sum += c;
    }
    starts[2048] = n;
    const recs = this.recs;
    const toRecs = this.#tmpRecs;
    const toWords = this.#tmpWords;
    const toExtra = this.#tmpExtra2;
    for (let i = 0; i < n; i++) {
      const word = words[i];
      const at = counts[word >>> 21]++;
      toWords[at] = word;
      toRecs[at] = recs[i];
      toExtra[at] = extra[i];
    }
    // The scattered copies become the working arrays; the old ones, scratch.
    this.#tmpRecs = recs;
    this.#tmpWords = words;
    this.#tmpExtra2 = extra;
    this.recs = toRecs;
    this.words = toWords;
    this.extra = toExtra;
    for (let d = 0; d < 2048; d++) if (starts[d + 1] - starts[d] > 1) this.sortRange(starts[d], starts[d + 1], toExtra);
  }

  /** Sorts [from, to) by word (stable), moving `extra` along if given. */
  sortRange(from: number, to: number, extra?: Uint32Array): void {
    if (to - from <= 24) this.#insertionByWord(from, to, extra);
    else if (to - from <= 2048) this.#quickByWord(from, to, extra);
    else this.#radixByWord(from, to, extra);
  }

  /** Sorts [from, to), whose words are loaded for `depth`, and queues each run that ties deeper. */
  sortLevel(from: number, to: number, depth: number): void {
    this.sortRange(from, to);
    const words = this.words;
    for (let i = from; i < to;) {
      let j = i + 1;
      while (j < to && words[j] === words[i]) j++;
      if (j - i > 1) this.#work.push(i, j, depth + 4);
      i = j;
    }
  }

  /**
   * Sorts the queued runs, each by the word at its depth, read from the arena. A run whose keys
   * all end by its depth ties on every byte they have (zero padded), so its keys differ only in
   * length: the shorter is a prefix of the longer and sorts first.
   */
  drain(): void {
    const work = this.#work;
    const arena = this.#arena;
    const offsets = this.#offsets;
    const recs = this.recs;
    const words = this.words;
    while (work.length > 0) {
      const depth = work.pop()!;
      const to = work.pop()!;
      const from = work.pop()!;
      let longest = 0;
      for (let i = from; i < to; i++) {
        const at = offsets[recs[i]];
        const head = arena[at];
        const length = head < 0x80 ? head : ((head & 0x7f) << 16) | (arena[at + 1] << 8) | arena[at + 2];
        if (length > longest) longest = length;
        words[i] = wordAt(arena, head < 0x80 ? at + 1 : at + 3, length, depth);
      }
      if (longest <= depth) this.#byLength(from, to);
      else this.sortLevel(from, to, depth);
    }
  }

  #byLength(from: number, to: number): void {
    const arena = this.#arena;
    const offsets = this.#offsets;
    const lengthOf = (record: number): number => {
      const at = offsets[record];
      const head = arena[at];
      return head < 0x80 ? head : ((head & 0x7f) << 16) | (arena[at + 1] << 8) | arena[at + 2];
    };
    const sorted = Array.from(this.recs.subarray(from, to)).sort((a, b) => lengthOf(a) - lengthOf(b));
    this.recs.set(sorted, from);
  }

  #insertionByWord(from: number, to: number, extra?: Uint32Array): void {
    const recs = this.recs;
    const words = this.words;
    for (let i = from + 1; i < to; i++) {
      const word = words[i];
      const record = recs[i];
      const carried = extra === undefined ? 0 : extra[i];
      let j = i - 1;
      while (j >= from && words[j] > word) {
        words[j + 1] = words[j];
        recs[j + 1] = recs[j];
        if (extra !== undefined) extra[j + 1] = extra[j];
        j--;
      }
      words[j + 1] = word;
      recs[j + 1] = record;
      if (extra !== undefined) extra[j + 1] = carried;
    }
  }

  /** Quicksort (median of three, insertion sort below 24) by word; not stable, which is fine here. */
  #quickByWord(from: number, to: number, extra?: Uint32Array): void {
    const stack = [from, to];
    while (stack.length > 0) {
      const high = stack.pop()!;
      const low = stack.pop()!;
      if (high - low <= 24) {
        this.#insertionByWord(low, high, extra);
        continue;
      }
      const mid = (low + high) >>> 1;
      if (this.words[mid] < this.words[low]) this.#swap(mid, low, extra);
      if (this.words[high - 1] < this.words[low]) this.#swap(high - 1, low, extra);
      if (this.words[high - 1] < this.words[mid]) this.#swap(high - 1, mid, extra);
      const pivot = this.words[mid];
      // Three-way partition: [low, lt) < pivot, [lt, gt) = pivot, [gt, high) > pivot.
      const words = this.words;
      let lt = low;
      let gt = high;
      let i = low;
      while (i < gt) {
        if (words[i] < pivot) this.#swap(i++, lt++, extra);
        else if (words[i] > pivot) this.#swap(i, --gt, extra);
        else i++;
      }
      stack.push(low, lt, gt, high);
    }
  }

  #swap(a: number, b: number, extra: Uint32Array | undefined): void {
    const words = this.words;
    const recs = this.recs;
    let t = words[a]; words[a] = words[b]; words[b] = t;
    t = recs[a]; recs[a] = recs[b]; recs[b] = t;
    if (extra !== undefined) { t = extra[a]; extra[a] = extra[b]; extra[b] = t; }
  }

  /** LSD radix sort by word in three passes of 11, 11 and 10 bits; a pass where all digits agree is skipped. */
  #radixByWord(from: number, to: number, extra?: Uint32Array): void {
    const counts = this.#counts;
    const extras = extra ?? this.#tmpExtra;
    let recs = this.recs;
    let words = this.words;
    let more = extras;
    let tmpRecs = this.#tmpRecs;
    let tmpWords = this.#tmpWords;
    let tmpMore = extra === undefined ? extras : this.#tmpExtra2;
    let moved = 0;
    for (let shift = 0; shift < 32; shift += 11) {
      counts.fill(0);
      for (let i = from; i < to; i++) counts[(words[i] >>> shift) & 0x7ff]++;
      if (counts[(words[from] >>> shift) & 0x7ff] === to - from) continue;
      let sum = from;
      for (let d = 0; d < 2048; d++) {
        const c = counts[d];
        counts[d] = sum;
        sum += c;
      }
      // Without `extra`, `more` and `tmpMore` are one scratch array, moved along for nothing:
      // only runs that tie deep sort without `extra`, and they are rare and short.
      for (let i = from; i < to; i++) {
        const word = words[i];
        const at = counts[(word >>> shift) & 0x7ff]++;
        tmpWords[at] = word;
        tmpRecs[at] = recs[i];
        tmpMore[at] = more[i];
      }
      let swap = recs; recs = tmpRecs; tmpRecs = swap;
      swap = words; words = tmpWords; tmpWords = swap;
      swap = more; more = tmpMore; tmpMore = swap;
      moved++;
    }
    if (moved % 2 === 1) {
      for (let i = from; i < to; i++) {
        this.recs[i] = recs[i];
        this.words[i] = words[i];
        extras[i] = more[i];
      }
    }
  }
}
