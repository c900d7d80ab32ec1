/**
 * The keydir: for every live key, where its newest record lives. No I/O.
 *
 * An entry names the segment, the record's offset and total length, and its expiry, which is
 * everything a read needs to fetch and check the record with one positioned read.
 */

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

/**
 * The index. A Map today; the interface is kept narrow so a compact structure can replace it.
 * Keys are JS strings (well-formed UTF-16, validated at the door).
 */
export class KeyDir {
  readonly #entries = new Map<string, Entry>();

  get size(): number {
    return this.#entries.size;
  }

  get(key: string): Entry | undefined {
    return this.#entries.get(key);
  }

  /** Sets `key` to `entry` (or removes it if `entry` is undefined); returns the previous entry. */
  put(key: string, entry: Entry | undefined): Entry | undefined {
    const previous = this.#entries.get(key);
    if (entry === undefined) this.#entries.delete(key);
    else this.#entries.set(key, entry);
    return previous;
  }

  /**
   * Live iteration in insertion order. Like a Map's iterator, it sees keys added after it started
   * and skips keys deleted before it reached them.
   */
  keys(): IterableIterator<string> {
    return this.#entries.keys();
  }

  entries(): IterableIterator<[string, Entry]> {
    return this.#entries.entries();
  }
}
