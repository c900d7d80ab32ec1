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
import { decodeValueAt } from './codec';
import { ErrorCodes, LogkvError, corruption, ioError } from './errors';
import { RecordHeader, TYPE_SET, emptyRecordHeader, recordCrcMatches } from './format';
import type { Entry } from './keydir';
import { describe } from './options';
import type { Segment } from './segment';
import type { SegmentLookup } from './segments';

const EMPTY = Buffer.alloc(0);

export class Reader {
  readonly #segments: SegmentLookup;
  readonly #cache: BlockCache;
  /** The header of the record #fetch() checked last; reads are synchronous, so one object serves all. */
  readonly #header: RecordHeader = emptyRecordHeader();
  /** The buffer and offset of the record #fetch() checked last. */
  #buf: Buffer = EMPTY;
  #pos = 0;

  constructor(segments: SegmentLookup, cacheBytes: number) {
    this.#segments = segments;
    this.#cache = new BlockCache(cacheBytes);
  }

  /**
   * The value of `key` in the record `entry` names. Throws LOGKV_CORRUPTION if the record is cut
   * short, fails a check or does not decode, and LOGKV_IO if it cannot be read at all.
   */
  read(key: string, entry: Entry): unknown {
    return this.readAt(key, entry.segmentId, entry.offset, entry.length);
  }

  /**
   * read() of the record at (segmentId, offset, length), as the keydir's columns give it: the
   * get path, which allocates no Entry to find its record.
   */
  readAt(key: string, segmentId: number, offset: number, length: number): unknown {
    this.#fetch(key, segmentId, offset, length);
    return this.#decode(key, segmentId, offset);
  }

  /** The value of `key` and its record's version, from one read; throws as read() does. */
  readEntry(key: string, entry: Entry): { value: unknown; version: number } {
    this.#fetch(key, entry.segmentId, entry.offset, entry.length);
    const version = this.#header.version;
    return { value: this.#decode(key, entry.segmentId, entry.offset), version };
  }

  /**
   * The version of the record `entry` names (0 for a record written before versions existed),
   * checked as read() checks it, without decoding the value. Throws as read() does.
   */
  version(key: string, entry: Entry): number {
    this.#fetch(key, entry.segmentId, entry.offset, entry.length);
    return this.#header.version;
  }

  /** A copy of the encoded value of the record `entry` names, checked as read() checks it. */
  valueBytes(key: string, entry: Entry): Buffer {
    this.#fetch(key, entry.segmentId, entry.offset, entry.length);
    const header = this.#header;
    const pos = this.#pos;
    return Buffer.from(this.#buf.subarray(pos + header.headerLength + header.keyLength, pos + header.totalLength));
  }

  /**
   * Finds the bytes of the record at (segmentId, offset, length) and checks them (header plausible in its
   * segment's layout, length as the entry says, all of it there, a SET, CRC, key). The record is
   * left at #buf[#pos ..] (valid until the next read: it may lie in the block cache) and its
   * header in #header.
   */
  #fetch(key: string, segmentId: number, offset: number, length: number): void {
    const segment = this.#segments.get(segmentId);
    if (segment === undefined) throw new LogkvError(ErrorCodes.IO, `segment ${segmentId} is gone`, { key });
    this.#locate(key, offset, length, segment);
    const bytes = this.#buf;
    const pos = this.#pos;
    const header = this.#header;
    // The record may lie inside a larger buffer (a cache slab), so the header's length is checked
    // against the entry before anything past the header is read, and the end against the buffer.
    if (pos + length > bytes.length || !segment.layout.parse(bytes, pos, header) || header.totalLength !== length ||
        header.type !== TYPE_SET || !recordCrcMatches(bytes, pos, header) ||
        !recordKeyIs(bytes, pos + header.headerLength, header.keyLength, key)) {
      // Forget the cached blocks, so a read after the file is repaired (or was misread) reads it again.
      this.#cache.drop(segment.id, offset);
      throw corruption(`record for key ${describe(key)} fails its checks`, segment.path, offset, { key });
    }
  }

  /** Where the record's bytes are, in #buf and #pos: queued, in a cached block, or read from the file. */
  #locate(key: string, offset: number, length: number, segment: Segment): void {
    if (offset >= segment.flushed) {
      const bytes = segment.findPending(offset);
      if (bytes === undefined) throw new LogkvError(ErrorCodes.IO, 'record not found where the keydir says', { key });
      this.#buf = bytes;
      this.#pos = 0;
      return;
    }
    if (segment.file === undefined) throw new LogkvError(ErrorCodes.IO, 'record not found where the keydir says', { key });
    try {
      // A record within one cached block is checked and decoded where it lies, without a copy
      // or even a view: nothing is allocated to find it.
      const at = this.#cache.locate(segment.id, segment.file, length, offset, segment.flushed);
      if (at >= 0) {
        this.#buf = this.#cache.located;
        this.#pos = at;
        return;
      }
      const bytes = Buffer.allocUnsafe(length);
      const got = this.#cache.read(segment.id, segment.file, bytes, length, offset, segment.flushed);
      if (got !== length) throw corruption('record is cut short', segment.path, offset, { key });
      this.#buf = bytes;
      this.#pos = 0;
    } catch (err) {
      throw ioError(err, `reading key ${describe(key)}`, segment.path);
    }
  }

  #decode(key: string, segmentId: number, offset: number): unknown {
    const header = this.#header;
    const pos = this.#pos;
    try {
      return decodeValueAt(this.#buf, pos + header.headerLength + header.keyLength, pos + header.totalLength);
    } catch (err) {
      const segment = this.#segments.get(segmentId);
      throw corruption(`value of key ${describe(key)} does not decode`, segment?.path ?? '', offset, { key });
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
