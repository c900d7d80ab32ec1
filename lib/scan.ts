/**
 * Sequential reading of a segment's records, checking each one. Used by recovery at open, and
 * by anything else that reads whole segments (compaction, `logkv check`).
 */
import { RECORD_HEADER_BYTES, RecordHeader, SEGMENT_HEADER_BYTES, parseRecordHeader, recordCrcMatches } from './format';
import type { MediumFile } from './medium/types';

const CHUNK_BYTES = 1024 * 1024;

/** Why a scan stopped before the end of the file. */
export interface ScanStop {
  offset: number;
  reason: 'truncated header' | 'implausible header' | 'truncated record' | 'checksum mismatch';
}

export interface ScanResult {
  /** Offset just past the last good record. */
  end: number;
  /** Set when a bad or incomplete record was found at `stop.offset` (== end). */
  stop?: ScanStop;
}

/**
 * Calls `visit` for each good record from `start` (by default the first record, just past the
 * header) to `size`, in order, with the record's bytes at `buf[pos .. pos + header.totalLength)`.
 * `buf` is reused: copy what you keep. Stops at the first record that is incomplete, implausible or
 * fails its CRC, and says where. With `budgetBytes`, it also returns (with no `stop`) once it has
 * visited about that many bytes, so a caller can yield to the event loop and resume from `end`.
 */
export function scanRecords(file: MediumFile, size: number,
                            visit: (offset: number, header: RecordHeader, buf: Buffer, pos: number) => void,
                            start = SEGMENT_HEADER_BYTES, budgetBytes = Infinity): ScanResult {
  let chunk = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, Math.max(size - start, RECORD_HEADER_BYTES)));
  let chunkStart = 0; // file offset of chunk[0]
  let chunkEnd = 0;   // file offset just past the valid bytes in chunk
  let offset = start;
  const budgetEnd = start + budgetBytes;

  // Makes [offset, offset + length) available in `chunk`; false if the file ends first.
  const ensure = (length: number): boolean => {
    if (offset + length > size) return false;
    if (offset >= chunkStart && offset + length <= chunkEnd) return true;
    if (length > chunk.length) chunk = Buffer.allocUnsafe(length);
    const want = Math.min(chunk.length, size - offset);
    const got = file.readSync(chunk, 0, want, offset);
    chunkStart = offset;
    chunkEnd = offset + got;
    return got >= length;
  };

  while (offset < size) {
    if (offset >= budgetEnd) return { end: offset };
    if (!ensure(RECORD_HEADER_BYTES)) return { end: offset, stop: { offset, reason: 'truncated header' } };
    const header = parseRecordHeader(chunk, offset - chunkStart);
    if (header === null) return { end: offset, stop: { offset, reason: 'implausible header' } };
    if (!ensure(header.totalLength)) return { end: offset, stop: { offset, reason: 'truncated record' } };
    const pos = offset - chunkStart;
    if (!recordCrcMatches(chunk, pos, header)) return { end: offset, stop: { offset, reason: 'checksum mismatch' } };
    visit(offset, header, chunk, pos);
    offset += header.totalLength;
  }
  return { end: offset };
}
