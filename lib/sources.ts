/**
 * Where each record of a compaction output came from (input segment id and offset), kept off the
 * JS heap: a compaction copies every live record of the store, and two number[] of those (8 bytes
 * a slot, and room to grow) made the heap it needed grow with the keys (~25 B/key; 508 MiB at 20M
 * keys). Here a record costs 4 bytes of typed-array memory, in chunks that are never copied to
 * grow, and the JS heap holds one small object per chunk and per run of one input.
 */

/** Slots of a ChunkedU32 chunk (256 KiB each). */
const CHUNK = 64 * 1024;

/** A list of unsigned 32-bit integers that grows in fixed chunks (none is ever copied to grow). */
export class ChunkedU32 {
  readonly #chunks: Uint32Array[] = [];
  readonly #chunkLength: number;
  #length = 0;

  /** `chunkLength`: slots per chunk (a spec makes it small to cross chunk boundaries). */
  constructor(chunkLength = CHUNK) {
    if (!Number.isInteger(chunkLength) || chunkLength < 1) throw new RangeError(`chunkLength must be a positive integer, received ${chunkLength}`);
    this.#chunkLength = chunkLength;
  }

  get length(): number {
    return this.#length;
  }

  /** Appends `value`, which must be an integer in [0, 2^32). */
  push(value: number): void {
    if (!(value >= 0 && value <= 0xffffffff && Number.isInteger(value))) throw new RangeError(`not an unsigned 32-bit integer: ${value}`);
    const slot = this.#length % this.#chunkLength;
    if (slot === 0) this.#chunks.push(new Uint32Array(this.#chunkLength));
    this.#chunks[this.#chunks.length - 1][slot] = value;
    this.#length++;
  }

  /** The value at `index` (0 <= index < length). */
  at(index: number): number {
    if (!(index >= 0 && index < this.#length && Number.isInteger(index))) throw new RangeError(`index ${index} out of range (length ${this.#length})`);
    return this.#chunks[Math.floor(index / this.#chunkLength)][index % this.#chunkLength];
  }

  /** Bytes of typed-array memory it holds. */
  get bytes(): number {
    return this.#chunks.length * this.#chunkLength * 4;
  }
}

/**
 * The source (input segment id, offset in it) of each record of one output, in output order.
 * An output's records come from the inputs in order, so the segment ids are stored once per run
 * of records from the same input; offsets take 4 bytes each (an offset of 2^32 or more, which
 * the writer never makes, since maxSegmentBytes is below 2^32, is kept in a Map).
 */
export class RecordSources {
  /** Segment id of each run, and the index of its first record. */
  readonly #runSegments: number[] = [];
  readonly #runStarts: number[] = [];
  readonly #offsets: ChunkedU32;
  readonly #wideOffsets = new Map<number, number>();

  constructor(chunkLength = CHUNK) {
    this.#offsets = new ChunkedU32(chunkLength);
  }

  get length(): number {
    return this.#offsets.length;
  }

  /** Runs of records from one input segment (one per input the output holds records of). */
  get runs(): number {
    return this.#runSegments.length;
  }

  push(segmentId: number, offset: number): void {
    const runs = this.#runSegments.length;
    if (runs === 0 || this.#runSegments[runs - 1] !== segmentId) {
      this.#runSegments.push(segmentId);
      this.#runStarts.push(this.#offsets.length);
    }
    if (offset > 0xffffffff) {
      this.#wideOffsets.set(this.#offsets.length, offset);
      this.#offsets.push(0);
    } else {
      this.#offsets.push(offset);
    }
  }

  /** The input segment id of record `index`. */
  segmentAt(index: number): number {
    if (!(index >= 0 && index < this.length && Number.isInteger(index))) throw new RangeError(`index ${index} out of range (length ${this.length})`);
    // The last run whose start is <= index.
    const starts = this.#runStarts;
    let low = 0;
    let high = starts.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >>> 1;
      if (starts[mid] <= index) low = mid;
      else high = mid - 1;
    }
    return this.#runSegments[low];
  }

  /** The offset in its input of record `index`. */
  offsetAt(index: number): number {
    const offset = this.#offsets.at(index);
    return this.#wideOffsets.size === 0 ? offset : this.#wideOffsets.get(index) ?? offset;
  }

  /** Bytes of typed-array memory it holds. */
  get bytes(): number {
    return this.#offsets.bytes;
  }
}
