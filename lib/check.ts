/**
 * checkStore(): read every segment and hint file of a store, verify every header, record CRC and
 * value, and report each problem with its file and offset. Behind `logkv check`.
 *
 * It changes nothing: where open() would cut a torn tail or remove a leftover, check only reports
 * it. It holds the store's lock while it reads, so no writer changes the files underneath it.
 *
 * How problems are classed:
 * - 'corruption': a bad record or header that open() refuses (in a sealed segment), or a bad
 *   record in the newest segment that has good records after it, so open()'s torn-tail cut
 *   would drop them. Data is at risk.
 * - 'hint': a hint file that fails its checks or disagrees with its segment. open() ignores it and
 *   scans the segment instead, so no data is at risk, but the file is damaged.
 * - 'notice': what open() handles on its own, with nothing lost: a torn tail of the newest segment
 *   (a crash mid-write), an interrupted segment creation, leftovers of an interrupted compaction,
 *   a stale hint (its segment was appended to after compaction wrote it).
 * A store is healthy (`ok`) when there is no 'corruption' and no 'hint' problem.
 */
import * as path from 'path';
import { decodeValue } from './codec';
import { LogkvError, ioError } from './errors';
import {
  FLAG_BATCH_CONT, RECORD_HEADER_BYTES, RecordHeader, SEGMENT_HEADER_BYTES, TYPE_SET, checkSegmentHeader,
  parseRecordHeader, recordCrcMatches,
} from './format';
import { hintName, readHint } from './hint';
import { DirLock } from './lock';
import { fileSystem } from './medium/fs';
import type { Medium, MediumFile } from './medium/types';
import { scanRecords } from './scan';
import { TEMP_SUFFIX, parseSegmentName, segmentName } from './segment';

export type CheckSeverity = 'corruption' | 'hint' | 'notice';

export interface CheckProblem {
  severity: CheckSeverity;
  /** The file's path. */
  file: string;
  /** Byte offset in the file where the problem starts. */
  offset: number;
  /** What is wrong, and what open() does about it. */
  problem: string;
}

export interface CheckReport {
  dir: string;
  segments: number;
  hints: number;
  /** Good records read. */
  records: number;
  /** Bytes of segment files read. */
  bytes: number;
  problems: CheckProblem[];
  /** No 'corruption' and no 'hint' problem. */
  ok: boolean;
}

export interface CheckOptions {
  /** The storage medium. @default the real file system */
  medium?: Medium;
  /** Called as segment bytes are read. */
  onProgress?: (bytesDone: number, bytesTotal: number) => void;
}

/** A record as the segment scan saw it, to compare with the segment's hint. */
interface SeenRecord {
  offset: number;
  key: string;
  length: number;
  expiresAt: number;
}

/** Reads and verifies the whole store in `dir`. Rejects with LOGKV_LOCKED if it is open elsewhere. */
export async function checkStore(dir: string, options: CheckOptions = {}): Promise<CheckReport> {
  const medium = options.medium ?? fileSystem;
  const where = path.resolve(dir);
  let names: string[];
  try {
    names = await medium.list(where);
  } catch (err) {
    throw ioError(err, `listing ${where}`, where);
  }
  const lock = medium.isFileSystem ? await DirLock.acquire(where) : undefined;
  try {
    return await checkFiles(medium, where, names, options.onProgress);
  } finally {
    await lock?.release();
  }
}

async function checkFiles(medium: Medium, dir: string, names: string[],
                          onProgress: CheckOptions['onProgress']): Promise<CheckReport> {
  const ids = names.map(parseSegmentName).filter((id): id is number => id !== undefined).sort((a, b) => a - b);
  const report: CheckReport = { dir, segments: ids.length, hints: 0, records: 0, bytes: 0, problems: [], ok: true };
  const sizes = new Map<number, number>();
  let total = 0;
  for (const id of ids) {
    const size = await fileSize(medium, path.join(dir, segmentName(id)));
    sizes.set(id, size);
    total += size;
  }
  const hintIds = new Set(names.filter((n) => n.endsWith('.hint'))
    .map((n) => parseSegmentName(n.slice(0, -'.hint'.length) + '.seg')).filter((id): id is number => id !== undefined));

  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    const seen = await checkSegment(medium, dir, id, i === ids.length - 1, hintIds.has(id), report);
    report.bytes += sizes.get(id)!;
    onProgress?.(report.bytes, total);
    if (seen !== undefined) await checkHint(medium, dir, id, sizes.get(id)!, seen, report);
  }
  for (const name of names) {
    const file = path.join(dir, name);
    if (name.endsWith(TEMP_SUFFIX)) {
      report.problems.push({ severity: 'notice', file, offset: 0,
        problem: 'leftover of an interrupted compaction; open() removes it' });
    }
    const hintId = name.endsWith('.hint') ? parseSegmentName(name.slice(0, -'.hint'.length) + '.seg') : undefined;
    if (hintId !== undefined) {
      report.hints++;
      if (!sizes.has(hintId)) {
        report.problems.push({ severity: 'notice', file, offset: 0, problem: 'hint file without its segment; open() removes it' });
      }
    }
  }
  report.ok = report.problems.every((p) => p.severity === 'notice');
  return report;
}

async function fileSize(medium: Medium, file: string): Promise<number> {
  const handle = await medium.open(file, { readOnly: true });
  try {
    return handle.sizeSync();
  } finally {
    await handle.close();
  }
}

/**
 * Checks one segment. Returns its records when it has a hint to compare them with (and the
 * segment itself is sound enough to compare), else undefined.
 */
async function checkSegment(medium: Medium, dir: string, id: number, newest: boolean, hasHint: boolean,
                            report: CheckReport): Promise<SeenRecord[] | undefined> {
  const file = path.join(dir, segmentName(id));
  const handle = await medium.open(file, { readOnly: true });
  try {
    const size = handle.sizeSync();
    const header = Buffer.alloc(SEGMENT_HEADER_BYTES);
    const got = handle.readSync(header, 0, SEGMENT_HEADER_BYTES, 0);
    if (newest && (got < SEGMENT_HEADER_BYTES || header.every((b) => b === 0))) {
      if (size > 0 && !isAllZero(handle, size)) {
        report.problems.push({ severity: 'corruption', file, offset: 0, problem: 'segment header is missing but the file holds data' });
      } else if (size > 0) {
        report.problems.push({ severity: 'notice', file, offset: 0,
          problem: 'segment creation was interrupted (the header never reached the disk); open() resets it' });
      }
      return undefined;
    }
    try {
      checkSegmentHeader(header, file, id);
    } catch (err) {
      const offset = err instanceof LogkvError && typeof err.details.offset === 'number' ? err.details.offset : 0;
      report.problems.push({ severity: 'corruption', file, offset, problem: `${stripLocation((err as Error).message)}; the segment cannot be read` });
      return undefined;
    }
    return scanSegment(handle, file, size, newest, hasHint, report);
  } finally {
    await handle.close();
  }
}

function scanSegment(handle: MediumFile, file: string, size: number, newest: boolean, hasHint: boolean,
                     report: CheckReport): SeenRecord[] | undefined {
  const seen: SeenRecord[] = [];
  let sound = true;
  let batchStart = -1;
  let start = SEGMENT_HEADER_BYTES;
  const visit = (offset: number, header: RecordHeader, buf: Buffer, pos: number): void => {
    report.records++;
    const keyEnd = pos + RECORD_HEADER_BYTES + header.keyLength;
    const key = buf.toString('utf8', pos + RECORD_HEADER_BYTES, keyEnd);
    if (hasHint) seen.push({ offset, key, length: header.totalLength, expiresAt: header.expiresAt });
    if (header.type === TYPE_SET) {
      try {
        decodeValue(buf.subarray(keyEnd, pos + header.totalLength));
      } catch (err) {
        sound = false;
        report.problems.push({ severity: 'corruption', file, offset,
          problem: `the value of key ${JSON.stringify(key)} passes its CRC but does not decode: ${(err as Error).message}` });
      }
    }
    if ((header.flags & FLAG_BATCH_CONT) !== 0) {
      if (batchStart < 0) batchStart = offset;
    } else {
      batchStart = -1;
    }
  };
  for (;;) {
    const result = scanRecords(handle, size, visit, start);
    if (result.stop === undefined) break;
    sound = false;
    const next = findNextRecord(handle, result.stop.offset + 1, size);
    const reason = result.stop.reason;
    if (next === undefined) {
      // Nothing good follows: a torn tail in the newest segment, damage anywhere else.
      report.problems.push(newest
        ? { severity: 'notice', file, offset: result.stop.offset,
            problem: `torn tail (${reason}, ${size - result.stop.offset} bytes): what a crash mid-write leaves; open() cuts it off` }
        : { severity: 'corruption', file, offset: result.stop.offset,
            problem: `bad record (${reason}) and nothing readable after it in a sealed segment; open() refuses the store` });
      batchStart = -1;
      break;
    }
    report.problems.push({ severity: 'corruption', file, offset: result.stop.offset,
      problem: `bad record (${reason}); ${next - result.stop.offset} bytes skipped to the next good record at offset ${next}` +
        (newest ? '; open() would cut this segment here and lose the records after it' : '; open() refuses the store') });
    batchStart = -1;
    start = next;
  }
  if (batchStart >= 0) {
    report.problems.push(newest
      ? { severity: 'notice', file, offset: batchStart, problem: 'unfinished batch at the end (a crash mid-batch); open() drops it whole' }
      : { severity: 'corruption', file, offset: batchStart, problem: 'a sealed segment ends inside a batch; open() refuses the store' });
  }
  return hasHint && sound ? seen : undefined;
}

/** The offset of the first good record (plausible header, matching CRC) at or after `from`. */
function findNextRecord(handle: MediumFile, from: number, size: number): number | undefined {
  const WINDOW_BYTES = 1024 * 1024;
  const window = Buffer.allocUnsafe(WINDOW_BYTES + RECORD_HEADER_BYTES);
  for (let base = from; base + RECORD_HEADER_BYTES <= size; base += WINDOW_BYTES) {
    const got = handle.readSync(window, 0, Math.min(window.length, size - base), base);
    for (let pos = 0; pos < WINDOW_BYTES && pos + RECORD_HEADER_BYTES <= got; pos++) {
      const header = parseRecordHeader(window, pos);
      if (header === null || base + pos + header.totalLength > size) continue;
      let bytes = window;
      let at = pos;
      if (pos + header.totalLength > got) {
        bytes = Buffer.allocUnsafe(header.totalLength);
        if (handle.readSync(bytes, 0, header.totalLength, base + pos) !== header.totalLength) continue;
        at = 0;
      }
      if (recordCrcMatches(bytes, at, header)) return base + pos;
    }
  }
  return undefined;
}

/** readHint's reason when the segment is longer than the hint describes. */
const SIZE_MISMATCH = /^describes a segment of (\d+) bytes, found (\d+)$/;

/**
 * Compares a segment's hint with the records the scan found. A hint that describes a shorter
 * segment is stale, not damaged: the store reopened with that compaction output as its newest
 * segment and appended to it. Then the hint is checked against the part it describes.
 */
async function checkHint(medium: Medium, dir: string, id: number, segmentSize: number, seen: SeenRecord[],
                         report: CheckReport): Promise<void> {
  const file = path.join(dir, hintName(id));
  const unused = '; open() ignores it and scans the segment instead (compaction writes a new one)';
  let described = segmentSize;
  let hinted = await readHintEntries(medium, file, id, described);
  const stale = typeof hinted === 'string' ? SIZE_MISMATCH.exec(hinted) : null;
  if (stale !== null && Number(stale[1]) < segmentSize) {
    described = Number(stale[1]);
    hinted = await readHintEntries(medium, file, id, described);
  }
  if (typeof hinted === 'string') {
    report.problems.push({ severity: 'hint', file, offset: 0, problem: `hint file is unusable: ${hinted}${unused}` });
    return;
  }
  const expected = seen.filter((r) => r.offset < described);
  for (let i = 0; i < Math.max(expected.length, hinted.length); i++) {
    const a = expected[i];
    const b = hinted[i];
    if (a === undefined || b === undefined || a.key !== b.key || a.offset !== b.offset || a.length !== b.length ||
        a.expiresAt !== b.expiresAt) {
      report.problems.push({ severity: 'hint', file, offset: 0,
        problem: `hint entry ${i} does not match the segment's record at offset ${a?.offset ?? b?.offset}${unused}` });
      return;
    }
  }
  if (described < segmentSize) {
    report.problems.push({ severity: 'notice', file, offset: 0,
      problem: `stale hint: it describes the first ${described} bytes of a segment that has grown to ${segmentSize} since; ` +
        'open() scans the segment instead' });
  }
}

/** The hint's entries, or the reason it cannot be used. */
async function readHintEntries(medium: Medium, file: string, id: number, segmentSize: number):
    Promise<SeenRecord[] | string> {
  const entries: SeenRecord[] = [];
  try {
    const handle = await medium.open(file, { readOnly: true });
    try {
      const reason = readHint(handle, file, id, segmentSize, (bytes, keyStart, keyLength, entry) => {
        const key = bytes.toString('utf8', keyStart, keyStart + keyLength);
        entries.push({ key, offset: entry.offset, length: entry.length, expiresAt: entry.expiresAt });
      });
      return reason ?? entries;
    } finally {
      await handle.close();
    }
  } catch (err) {
    return stripLocation((err as Error).message);
  }
}

function isAllZero(handle: MediumFile, size: number): boolean {
  const buf = Buffer.alloc(Math.min(size, 64 * 1024));
  for (let at = 0; at < size; at += buf.length) {
    const n = handle.readSync(buf, 0, Math.min(buf.length, size - at), at);
    for (let i = 0; i < n; i++) if (buf[i] !== 0) return false;
  }
  return true;
}

/** corruption() appends "(file at offset n)"; the report carries those separately. */
function stripLocation(message: string): string {
  return message.replace(/ \([^()]* at offset \d+\)$/, '');
}

