/**
 * checkStore(): read every segment and hint file of a store, verify every header, record CRC and
 * value, and report each problem with its file and offset. Behind `logkv check`.
 *
 * It changes nothing: where open() would cut a torn tail or remove a leftover, check only reports
 * it. It takes the store's lock before it lists the directory and holds it while it reads, so no
 * writer changes the files underneath it.
 *
 * It reads segments with the walker open() uses (walk.ts), and classes each segment by the same
 * rules (readSegmentStart, judgeWalk), so check and open() agree on what is a torn tail and what
 * is corruption. Where open() stops at the first bad record, check reports it and reads on from
 * the next good record, to list every problem.
 *
 * How problems are classed:
 * - 'corruption': what makes open() refuse the store (a bad record or header in any segment but
 *   the newest write segment, or the marker of a backup into this directory that never
 *   completed), and a value that passes its CRC but does not decode (open() does not decode
 *   values; reading that key fails). Data is at risk. Also record versions out of
 *   order (within a segment they rise strictly; in a write segment none is below its floor):
 *   logkv never writes them so, and compare-and-set relies on it.
 * - 'hint': a hint file that fails its checks or disagrees with its segment. open() ignores it and
 *   scans the segment instead, so no data is at risk, but the file is damaged.
 * - 'notice': what open() repairs on its own: a torn tail of the newest write segment (a crash
 *   mid-write; open() cuts it, keeping its bytes in a sidecar unless they are zeros), an
 *   interrupted segment creation, leftovers of an interrupted compaction, a stale hint, and the
 *   sidecars earlier opens left; and zero padding after a segment's records (preallocated space,
 *   which open() keeps and appends over).
 * A store is healthy (`ok`) when there is no 'corruption' and no 'hint' problem.
 */
import * as path from 'path';
import { BACKUP_MARKER_NAME } from './backup';
import { decodeValue } from './codec';
import { ErrorCodes, LogkvError, ioError, isErrno } from './errors';
import { FileHeader, RecordHeader, SEGMENT_HEADER_BYTES, TYPE_SET } from './format';
import { hintName, parseHintName, readHint } from './hint';
import { DirLock, currentOwner } from './lock';
import { fileSystem } from './medium/fs';
import type { Medium, MediumFile } from './medium/types';
import { TEMP_SUFFIX, cutName, isWriteSegmentId, parseCutName, parseSegmentName, segmentName } from './segment';
import { Head, HeadReader } from './shared/head';
import { Damage, SegmentWalker, isAllZero, judgeWalk, mayBeTorn, readSegmentStart } from './walk';

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
  /**
   * Set when the store was open, shared, in another process (its owner): check then reads the
   * files without the lock, up to the head the owner published, and changes nothing. A segment a
   * compaction removes meanwhile is skipped.
   */
  live?: { pid: number };
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
  /** Its version (not in a hint's entries, which carry only the segment's highest). */
  version?: number;
}

/** A sound segment's records, and its header, for the hint check. */
interface SeenSegment {
  header: FileHeader;
  records: SeenRecord[];
}

/**
 * Reads and verifies the whole store in `dir`. Rejects with LOGKV_LOCKED if it is open elsewhere,
 * unless it is open shared: then it checks the live store without the lock (`report.live`).
 */
export async function checkStore(dir: string, options: CheckOptions = {}): Promise<CheckReport> {
  const medium = options.medium ?? fileSystem;
  const where = path.resolve(dir);
  // The lock first: a listing taken before it could miss, or name, files a writer that still
  // held the store was creating, renaming or removing.
  let lock: DirLock | undefined;
  let live: { pid: number; head: Head } | undefined;
  try {
    lock = medium.isFileSystem ? await DirLock.acquire(where) : undefined;
  } catch (err) {
    live = err instanceof LogkvError && err.code === ErrorCodes.LOCKED ? liveHead(where) : undefined;
    if (live === undefined) throw ioError(err, `locking ${where}`, where);
  }
  try {
    let names: string[];
    try {
      names = await medium.list(where);
    } catch (err) {
      throw ioError(err, `listing ${where}`, where);
    }
    const report = await checkFiles(medium, where, names, options.onProgress, live?.head);
    if (live !== undefined) report.live = { pid: live.pid };
    return report;
  } finally {
    await lock?.release();
  }
}

/**
 * The owner and its head, when the store is held by a process that opened it shared: its head
 * says how far its log goes and which segments a compaction is removing (lib/shared/head.ts).
 */
function liveHead(dir: string): { pid: number; head: Head } | undefined {
  const owner = currentOwner(dir);
  if (owner?.shared !== true) return undefined;
  try {
    const reader = new HeadReader(dir);
    try {
      const head = reader.read();
      return head === undefined ? undefined : { pid: owner.pid, head };
    } finally {
      reader.close();
    }
  } catch {
    return undefined;
  }
}

async function checkFiles(medium: Medium, dir: string, names: string[],
                          onProgress: CheckOptions['onProgress'], head?: Head): Promise<CheckReport> {
  // A live store: the segments from the head's floor up to its segment, that one up to its end.
  const ids = names.map(parseSegmentName)
    .filter((id): id is number => id !== undefined && (head === undefined || (id >= head.floor && id <= head.segment)))
    .sort((a, b) => a - b);
  const report: CheckReport = { dir, segments: ids.length, hints: 0, records: 0, bytes: 0, problems: [], ok: true };
  const sizes = new Map<number, number>();
  let total = 0;
  for (const id of [...ids]) {
    let size: number;
    try {
      size = await fileSize(medium, path.join(dir, segmentName(id)));
    } catch (err) {
      if (head === undefined || !isErrno(err, 'ENOENT')) throw err;
      ids.splice(ids.indexOf(id), 1); // removed by the owner's compaction since the listing
      continue;
    }
    if (head !== undefined && id === head.segment) size = Math.min(size, Math.max(head.end, SEGMENT_HEADER_BYTES));
    sizes.set(id, size);
    total += size;
  }
  const hintIds = new Set(names.map(parseHintName).filter((id): id is number => id !== undefined));

  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    let seen: SeenSegment | undefined;
    try {
      seen = await checkSegment(medium, dir, id, mayBeTorn(id, i === ids.length - 1), hintIds.has(id), report, sizes.get(id)!);
    } catch (err) {
      if (head === undefined || !isErrno(err, 'ENOENT')) throw err;
      continue;
    }
    report.bytes += sizes.get(id)!;
    onProgress?.(report.bytes, total);
    if (seen !== undefined) await checkHint(medium, dir, id, sizes.get(id)!, seen.header, seen.records, report);
  }
  for (const name of names) {
    const file = path.join(dir, name);
    if (name === BACKUP_MARKER_NAME) {
      report.problems.push({ severity: 'corruption', file, offset: 0,
        problem: 'an incomplete backup: a backup into this directory was interrupted, so its files are not a ' +
          'consistent store; open() refuses it; back up into it again to complete it' });
    }
    if (name.endsWith(TEMP_SUFFIX) && head === undefined) {
      report.problems.push({ severity: 'notice', file, offset: 0,
        problem: 'leftover of an interrupted compaction, snapshot or sidecar; open() removes it' });
    }
    const cut = parseCutName(name);
    if (cut !== undefined) {
      report.problems.push({ severity: 'notice', file, offset: 0,
        problem: `bytes an earlier open() cut off ${segmentName(cut.segmentId)} at offset ${cut.offset}, kept as they were; ` +
          'not part of the store: inspect them, then delete the file' });
    }
    const hintId = parseHintName(name);
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
 * Checks one segment. `torn`: it may end in a torn tail (mayBeTorn). Returns its records when it
 * has a hint to compare them with (and the segment itself is sound enough to compare), else
 * undefined.
 */
async function checkSegment(medium: Medium, dir: string, id: number, torn: boolean, hasHint: boolean,
                            report: CheckReport, limit = Infinity): Promise<SeenSegment | undefined> {
  const file = path.join(dir, segmentName(id));
  const handle = await medium.open(file, { readOnly: true });
  try {
    const size = Math.min(handle.sizeSync(), limit);
    let start;
    try {
      start = readSegmentStart(handle, file, id, size, torn);
    } catch (err) {
      const offset = err instanceof LogkvError && typeof err.details.offset === 'number' ? err.details.offset : 0;
      report.problems.push({ severity: 'corruption', file, offset,
        problem: `${stripLocation((err as Error).message)}; the segment cannot be read; open() refuses the store` });
      return undefined;
    }
    if (start.kind === 'interrupted') {
      if (size > 0) {
        report.problems.push({ severity: 'notice', file, offset: 0,
          problem: 'segment creation was interrupted (its header never reached the disk whole); open() resets it' });
      }
      return undefined;
    }
    const records = walkSegment(handle, start.header, id, file, size, torn, hasHint, report);
    return records === undefined ? undefined : { header: start.header, records };
  } finally {
    await handle.close();
  }
}

/**
 * Reads every good record of a segment, decoding values, and reports its damage as open() would
 * judge it. Returns the records for the hint check when the segment is sound and has a hint.
 */
function walkSegment(handle: MediumFile, fileHeader: FileHeader, id: number, file: string, size: number, torn: boolean,
                     hasHint: boolean, report: CheckReport): SeenRecord[] | undefined {
  const seen: SeenRecord[] = [];
  const undecodable: CheckProblem[] = [];
  const damages: Damage[] = [];
  let visitedAfterDamage = 0;
  const order = new VersionOrder(file, isWriteSegmentId(id) ? fileHeader.floor : 0);
  const walker = new SegmentWalker(handle, size, fileHeader.layout, { policy: 'report', onDamage: (d) => damages.push(d) });
  const outcome = walker.walkAll((offset: number, header: RecordHeader, buf: Buffer, pos: number) => {
    if (damages.length > 0) visitedAfterDamage++;
    const keyStart = pos + header.headerLength;
    const key = buf.toString('utf8', keyStart, keyStart + header.keyLength);
    order.see(header.version, offset);
    if (hasHint) seen.push({ offset, key, length: header.totalLength, expiresAt: header.expiresAt, version: header.version });
    if (header.type !== TYPE_SET) return;
    try {
      decodeValue(buf.subarray(keyStart + header.keyLength, pos + header.totalLength));
    } catch (err) {
      undecodable.push({ severity: 'corruption', file, offset,
        problem: `the value of key ${JSON.stringify(key)} passes its CRC but does not decode: ${(err as Error).message}` });
    }
  });
  report.records += outcome.records;
  const verdict = judgeWalk(outcome, size, torn);
  if (outcome.paddingFrom !== undefined && verdict.action === 'keep') {
    report.problems.push({ severity: 'notice', file, offset: outcome.paddingFrom,
      problem: `zero padding after the records (${size - outcome.paddingFrom} bytes): preallocated space; ` +
        'open() keeps it, and appends over it when this segment takes writes' });
  }
  if (verdict.action === 'cut') {
    // open() cuts here: what follows is not part of the store, whatever it holds.
    report.problems.push(...undecodable.filter((p) => p.offset < verdict.offset));
    report.problems.push(...order.problems.filter((p) => p.offset < verdict.offset));
    report.problems.push({ severity: 'notice', file, offset: verdict.offset,
      problem: tornTail(handle, id, verdict.offset, size, verdict.reason, visitedAfterDamage) });
    return undefined;
  }
  const problems = [...undecodable, ...order.problems];
  for (const damage of damages) {
    problems.push({ severity: 'corruption', file, offset: damage.offset,
      problem: `bad record (${damage.reason})` + (damage.next === undefined ? ' and nothing readable after it'
        : `; ${damage.next - damage.offset} bytes skipped to the next good record at offset ${damage.next}`) +
        `; ${REFUSES}` });
  }
  if (outcome.unfinishedBatch !== undefined) {
    problems.push({ severity: 'corruption', file, offset: outcome.unfinishedBatch,
      problem: `the segment ends inside a batch; ${REFUSES}` });
  }
  report.problems.push(...problems.sort((a, b) => a.offset - b.offset));
  return verdict.action === 'keep' && hasHint && undecodable.length === 0 ? seen : undefined;
}

/**
 * The order of a segment's record versions: each non-zero version above the one before (log
 * order is version order, and compaction keeps the order), and none below `floor` (a write
 * segment's: its first record's version). Zero is a record from before versions: it may repeat.
 */
class VersionOrder {
  readonly problems: CheckProblem[] = [];
  #last = 0;

  constructor(readonly file: string, readonly floor: number) {}

  see(version: number, offset: number): void {
    if (version === 0) return;
    if (version <= this.#last || version < this.floor) {
      this.problems.push({ severity: 'corruption', file: this.file, offset,
        problem: `record version ${version} is out of order (after ${this.#last}, floor ${this.floor}): ` +
          'versions no longer rise strictly, so compare-and-set could be misled' });
    }
    this.#last = Math.max(this.#last, version);
  }
}

const REFUSES = 'open() refuses the store (only the newest write segment can have a torn tail)';

/** The notice for a torn tail that open() cuts at `offset`. */
function tornTail(handle: MediumFile, id: number, offset: number, size: number, reason: string,
                  recordsAfter: number): string {
  const kept = isAllZero(handle, offset, size) ? 'they are all zeros, so nothing is kept'
    : `keeping them in ${cutName(id, offset)}`;
  const after = recordsAfter === 0 ? ''
    : `; ${recordsAfter} good-looking record(s) follow the damage: after a crash they were never synced, ` +
      'but if this store did not crash they are writes lost to damage (the sidecar holds them)';
  return `torn tail (${reason}, ${size - offset} bytes): what a crash mid-write leaves; open() cuts it off, ${kept}${after}`;
}

/** readHint's reason when the segment is longer than the hint describes. */
const SIZE_MISMATCH = /^describes a segment of (\d+) bytes, found (\d+)$/;

/**
 * Compares a segment's hint with the records the scan found. A hint that describes a shorter
 * segment is stale, not damaged: the store reopened with that compaction output as its newest
 * segment and appended to it. Then the hint is checked against the part it describes.
 */
async function checkHint(medium: Medium, dir: string, id: number, segmentSize: number, segment: FileHeader,
                         seen: SeenRecord[], report: CheckReport): Promise<void> {
  const file = path.join(dir, hintName(id));
  const unused = '; open() ignores it and scans the segment instead (compaction writes a new one)';
  let described = segmentSize;
  let read = await readHintEntries(medium, file, id, described, segment);
  const stale = typeof read === 'string' ? SIZE_MISMATCH.exec(read) : null;
  if (stale !== null && Number(stale[1]) < segmentSize) {
    described = Number(stale[1]);
    read = await readHintEntries(medium, file, id, described, segment);
  }
  if (typeof read === 'string') {
    report.problems.push({ severity: 'hint', file, offset: 0, problem: `hint file is unusable: ${read}${unused}` });
    return;
  }
  const hinted = read.entries;
  const expected = seen.filter((r) => r.offset < described);
  const maxVersion = expected.reduce((max, r) => Math.max(max, r.version ?? 0), 0);
  if (read.maxVersion !== maxVersion) {
    report.problems.push({ severity: 'hint', file, offset: 0,
      problem: `hint says the highest version is ${read.maxVersion}, the segment holds ${maxVersion}${unused}` });
    return;
  }
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

/** The hint's entries and the highest version it names, or the reason it cannot be used. */
async function readHintEntries(medium: Medium, file: string, id: number, segmentSize: number, segment: FileHeader):
    Promise<{ entries: SeenRecord[]; maxVersion: number } | string> {
  const entries: SeenRecord[] = [];
  try {
    const handle = await medium.open(file, { readOnly: true });
    try {
      const read = readHint(handle, file, id, segmentSize, segment, (bytes, keyStart, keyLength, entry) => {
        const key = bytes.toString('utf8', keyStart, keyStart + keyLength);
        entries.push({ key, offset: entry.offset, length: entry.length, expiresAt: entry.expiresAt });
      });
      return typeof read === 'string' ? read : { entries, maxVersion: read };
    } finally {
      await handle.close();
    }
  } catch (err) {
    return stripLocation((err as Error).message);
  }
}

/** corruption() appends "(file at offset n)"; the report carries those separately. */
function stripLocation(message: string): string {
  return message.replace(/ \([^()]* at offset \d+\)$/, '');
}

