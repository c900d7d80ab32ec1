/**
 * The reader room: the value of a record the index points at, checked before it is returned.
 *
 * A read is synchronous: the record is found in the bytes queued for its segment (written to
 * the log's order but not yet handed to the OS), in the block cache, or with one positioned read.
 * Then its header, its CRC and its key are checked against the entry, so damage on disk or an
 * index pointing at the wrong place gives LOGKV_CORRUPTION, never another key's or a torn value.
 *
 * The reader needs no writer: a segment lookup and an index are enough, so a process can read a
 * log another process writes. It owns the block cache; whoever shrinks or removes a segment file
 * (the writer's failure repair, the compaction switch) tells it with forget().
 */
import { BlockCache } from './cache';
import { decodeValue } from './codec';
import { ErrorCodes, LogkvError, corruption, ioError } from './errors';
import { RecordHeader, TYPE_SET, emptyRecordHeader, recordCrcMatches } from './format';
import type { Entry } from './keydir';
import { describe } from './options';
import type { Segment } from './segment';
import type { SegmentLookup } from './segments';

export class Reader {
  readonly #segments: SegmentLookup;
  readonly #cache: BlockCache;
  /** The header of the record #fetch() checked last; reads are synchronous, so one object serves all. */
  readonly #header: RecordHeader = emptyRecordHeader();

  constructor(segments: SegmentLookup, cacheBytes: number) {
    this.#segments = segments;
    this.#cache = new BlockCache(cacheBytes);
  }

  /**
   * The value of `key` in the record `entry` names. Throws LOGKV_CORRUPTION if the record is cut
   * short, fails a check or does not decode, and LOGKV_IO if it cannot be read at all.
   */
  read(key: string, entry: Entry): unknown {
    const bytes = this.#fetch(key, entry);
    return this.#decode(key, entry, bytes);
  }

  /** The value of `key` and its record's version, from one read; throws as read() does. */
  readEntry(key: string, entry: Entry): { value: unknown; version: number } {
    const bytes = this.#fetch(key, entry);
    const version = this.#header.version;
    return { value: this.#decode(key, entry, bytes), version };
  }

  /**
   * The version of the record `entry` names (0 for a record written before versions existed),
   * checked as read() checks it, without decoding the value. Throws as read() does.
   */
  version(key: string, entry: Entry): number {
    this.#fetch(key, entry);
    return this.#header.version;
  }

  /** A copy of the encoded value of the record `entry` names, checked as read() checks it. */
  valueBytes(key: string, entry: Entry): Buffer {
    const bytes = this.#fetch(key, entry);
    const header = this.#header;
    return Buffer.from(bytes.subarray(header.headerLength + header.keyLength, header.totalLength));
  }

  /**
   * The bytes of the record `entry` names, checked (header plausible in its segment's layout,
   * length as the entry says, a SET, CRC, key): a view valid until the next read. Its header is
   * left in #header.
   */
  #fetch(key: string, entry: Entry): Buffer {
    const segment = this.#segments.get(entry.segmentId);
    if (segment === undefined) throw new LogkvError(ErrorCodes.IO, `segment ${entry.segmentId} is gone`, { key });
    const bytes = this.#bytes(key, entry, segment);
    const header = this.#header;
    if (!segment.layout.parse(bytes, 0, header) || header.totalLength !== entry.length || header.type !== TYPE_SET ||
        !recordCrcMatches(bytes, 0, header) || !recordKeyIs(bytes, header.headerLength, header.keyLength, key)) {
      // Forget the cached blocks, so a read after the file is repaired (or was misread) reads it again.
      this.#cache.drop(segment.id, entry.offset);
      throw corruption(`record for key ${describe(key)} fails its checks`, segment.path, entry.offset, { key });
    }
    return bytes;
  }

  /** The record's bytes: queued, in a cached block, or read from the file. */
  #bytes(key: string, entry: Entry, segment: Segment): Buffer {
    let bytes: Buffer | undefined;
    if (entry.offset >= segment.flushed) {
      bytes = segment.findPending(entry.offset);
    } else if (segment.file !== undefined) {
      try {
        // A record within one cached block is checked and decoded where it lies, without a copy.
        bytes = this.#cache.view(segment.id, segment.file, entry.length, entry.offset);
        if (bytes === undefined) {
          bytes = Buffer.allocUnsafe(entry.length);
          const got = this.#cache.read(segment.id, segment.file, bytes, entry.length, entry.offset);
          if (got !== entry.length) throw corruption('record is cut short', segment.path, entry.offset, { key });
        }
      } catch (err) {
        throw ioError(err, `reading key ${describe(key)}`, segment.path);
      }
    }
    if (bytes === undefined) throw new LogkvError(ErrorCodes.IO, 'record not found where the keydir says', { key });
    return bytes;
  }

  #decode(key: string, entry: Entry, bytes: Buffer): unknown {
    const header = this.#header;
    try {
      return decodeValue(bytes.subarray(header.headerLength + header.keyLength, header.totalLength));
    } catch (err) {
      const segment = this.#segments.get(entry.segmentId);
      throw corruption(`value of key ${describe(key)} does not decode`, segment?.path ?? '', entry.offset, { key });
    }
  }

  /**
   * Forgets cached blocks of a segment from `fromOffset` on (all of them without it): the file
   * was truncated there, or is going away.
   */
  forget(segmentId: number, fromOffset?: number): void {
    this.#cache.drop(segmentId, fromOffset);
  }
}

/** Whether the record's key bytes (from `keyStart`) are `key`, compared without making a string when it is ASCII. */
function recordKeyIs(record: Buffer, keyStart: number, keyLength: number, key: string): boolean {
  if (key.length === keyLength) {
    let i = 0;
    for (; i < keyLength; i++) {
      const code = key.charCodeAt(i);
      if (code >= 0x80) break;
      if (record[keyStart + i] !== code) return false;
    }
    if (i === keyLength) return true;
  }
  return record.toString('utf8', keyStart, keyStart + keyLength) === key;
}
