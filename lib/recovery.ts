/**
 * Open-time recovery: find the segments, check their headers, replay their records into the
 * keydir in order, and cut a torn tail off the segment that takes writes. docs/recovery.md lists
 * the steps.
 *
 * The rules (walk.ts holds them, so `logkv check` applies the very same ones):
 * - Only the newest segment, and only if it is a write segment (its id a multiple of
 *   SEGMENT_ID_STEP), can have a torn tail or be an interrupted creation. A segment is synced
 *   before the next one is created, and a compaction output is synced before it is renamed into
 *   place, so every other segment was complete on disk before anything could crash after it.
 * - In that segment, the first bad record (incomplete, implausible or failing its CRC) and
 *   everything after it is cut off: a crash mid-append leaves exactly that. If the bad record is
 *   inside a batch, or the file ends inside one, the cut is at the batch's first record, so a
 *   torn batch is dropped whole and the next append cannot complete it by accident.
 * - Before a cut, the bytes it removes are kept in a sidecar file (`<segment id>-<offset>.cut`),
 *   synced with its directory entry, unless they are all zeros. A cut is what a crash leaves, or
 *   damage that looks the same; the sidecar keeps what damage would otherwise destroy. If the
 *   sidecar cannot be written (a full disk), or would take the store's files past
 *   maxStoreBytes (it exists beside the bytes it keeps until the cut), open fails with
 *   LOGKV_STORE_FULL and the segment is left as it was. Sidecars count under maxStoreBytes for
 *   as long as they are in the directory.
 * - A bad record in any other segment, compaction outputs included, is corruption: open fails
 *   with LOGKV_CORRUPTION naming the file and offset, rather than guess which keys the lost bytes
 *   held and serve older values.
 * - A newest write segment shorter than its header, or all zeros, or no longer than its header
 *   with a header that fails its CRC (torn), is a segment whose creation was interrupted (its
 *   header is synced before any record is written): it is reset.
 * - Zero bytes from a record boundary to the end of a version-2 segment are padding (preallocated
 *   space), not damage: the segment's records end there, and appends go there.
 * - The version counter starts at the highest of every file header's version floor, 1 + every
 *   record version replayed, 1 + every hint's highest version, and the snapshot's next version
 *   (format.ts), so no version issued before, dropped records' included, is issued again.
 */
import * as path from 'path';
import { ErrorCodes, LogkvError, corruption, ioError } from './errors';
import {
  FileHeader, RecordHeader, SEGMENT_HEADER_BYTES, TYPE_SET, checkSegmentHeader, encodeSegmentHeader,
} from './format';
import { Entry } from './keydir';
import type { Medium, MediumFile } from './medium/types';
import { hintName, parseHintName, readHint } from './hint';
import type { KeyDir } from './keydir';
import { SnapshotSegment, takeSnapshot } from './snapshot';
import { Segment, TEMP_SUFFIX, cutName, isWriteSegmentId, parseCutName, parseSegmentName, segmentName } from './segment';
import { RecordVisitor, SegmentWalker, judgeWalk, mayBeTorn, readSegmentStart } from './walk';

export interface TruncationReport {
  file: string;
  /** Where the cut was made. */
  offset: number;
  /** How many bytes were cut. */
  bytes: number;
  reason: string;
  /**
   * The sidecar file (a path, like `file`) that holds the cut bytes as they were, so damage that
   * looked like a torn tail destroyed nothing. Absent when the cut bytes were all zeros, and
   * when an interrupted creation was reset (at most a torn header, or zeros: no record).
   */
  sidecar?: string;
}

export interface RecoveryReport {
  segments: number;
  /** Records replayed by scanning segments. */
  records: number;
  /** Segments whose keydir entries came from their hint file, without reading values. */
  hinted: number;
  /** Hint files that could not be used (the segment was scanned instead), with why. */
  hintsIgnored: Array<{ file: string; reason: string }>;
  /** Leftover temporary files (an interrupted compaction, snapshot or sidecar) and orphan hints that were removed. */
  removed: string[];
  /** Whether the keydir was loaded from the snapshot the last clean close wrote. */
  snapshot: boolean;
  /** Why a snapshot that was there could not be used. */
  snapshotIgnored?: string;
  /** Set if a torn tail was cut off the newest segment, or an interrupted creation reset. */
  truncated?: TruncationReport;
}

/**
 * Receives each key's newest state as records replay: an entry, or undefined for a delete. The
 * key is `bytes[start .. start + length)` in UTF-8; `bytes` is reused after the call.
 */
export type ApplyRecord = (bytes: Buffer, start: number, length: number, entry: Entry | undefined) => void;

/** What recovery found: the segments oldest first (each with its hint file's size), the report, the keydir if a snapshot gave it whole. */
export interface Recovered {
  segments: Segment[];
  report: RecoveryReport;
  keydir?: KeyDir;
  /** The version the store's next write gets: above every version any of its files ever held. */
  nextVersion: number;
  /** Bytes of the files the store keeps beside its segments and their hints: cut-bytes sidecars. */
  strayBytes: number;
}

/**
 * Recovers the store in `dir`. `maxStoreBytes` bounds what recovery itself may add to the
 * directory: a sidecar that would take the store's files past it is not written, and open fails
 * with LOGKV_STORE_FULL, cutting nothing.
 */
export async function recover(medium: Medium, dir: string, apply: ApplyRecord, reserve?: (count: number) => void,
                              maxStoreBytes = Infinity): Promise<Recovered> {
  const listed = await medium.list(dir);
  const ids = listed.map(parseSegmentName).filter((id): id is number => id !== undefined).sort((a, b) => a - b);
  const segments: Segment[] = [];
  const report: RecoveryReport = {
    segments: ids.length, records: 0, hinted: 0, hintsIgnored: [], removed: [], snapshot: false,
  };
  await removeLeftovers(medium, dir, listed, new Set(ids), report);
  const names = listed.filter((name) => !report.removed.includes(name));
  const sizes = await measureFiles(medium, dir, names);
  const found = (all: Segment[]): Recovered['segments'] => {
    for (const segment of all) segment.hintBytes = sizes.hints.get(segment.id) ?? 0;
    return all;
  };
  const snapshot = await takeSnapshot(medium, dir, names);
  if (typeof snapshot !== 'string') {
    const opened = await openSnapshotSegments(medium, dir, ids, snapshot.segments);
    if (Array.isArray(opened)) {
      report.snapshot = true;
      const nextVersion = opened.reduce((next, s) => Math.max(next, s.floor), Math.max(1, snapshot.nextVersion));
      return { segments: found(opened), report, keydir: snapshot.keydir, nextVersion, strayBytes: sizes.sidecars };
    }
    report.snapshotIgnored = opened;
  } else if (snapshot !== 'none') {
    report.snapshotIgnored = snapshot;
  }
  // Room for a sidecar: the cap, less every file but the segment being replayed (added at the cut).
  let hintBytes = 0;
  for (const bytes of sizes.hints.values()) hintBytes += bytes;
  const room = (): number => maxStoreBytes - sizes.sidecars - hintBytes - segments.reduce((sum, s) => sum + s.tail, 0);
  const versions: VersionCount = { next: 1 };
  try {
    for (let i = 0; i < ids.length; i++) {
      const torn = mayBeTorn(ids[i], i === ids.length - 1);
      const fromHint = sizes.hints.has(ids[i]) ? await recoverFromHint(medium, dir, ids[i], apply, report, versions, reserve)
        : undefined;
      const segment = fromHint ?? await recoverSegment(medium, dir, ids[i], torn, apply, report, versions, room);
      segments.push(segment);
    }
  } catch (err) {
    await Promise.all(segments.map((s) => s.file?.close()));
    throw err;
  }
  const sidecarBytes = report.truncated?.sidecar === undefined ? 0 : report.truncated.bytes;
  return { segments: found(segments), report, nextVersion: versions.next, strayBytes: sizes.sidecars + sidecarBytes };
}

/**
 * The sizes of the files the store keeps beside its segments, which maxStoreBytes counts too:
 * hint files by segment id, and the cut-bytes sidecars (`<id>-<offset>.cut`) in total.
 */
async function measureFiles(medium: Medium, dir: string, names: string[]): Promise<{ hints: Map<number, number>; sidecars: number }> {
  const hints = new Map<number, number>();
  let sidecars = 0;
  for (const name of names) {
    const hintId = parseHintName(name);
    if (hintId === undefined && parseCutName(name) === undefined) continue;
    const file = await medium.open(path.join(dir, name), { readOnly: true });
    try {
      if (hintId !== undefined) hints.set(hintId, file.sizeSync());
      else sidecars += file.sizeSync();
    } finally {
      await file.close();
    }
  }
  return { hints, sidecars };
}

/** The version counter as recovery raises it, segment by segment. */
export interface VersionCount {
  /** Above every version seen so far, and at least every floor seen. */
  next: number;
}

/** The highest record version a replay saw. */
export interface VersionSeen {
  max: number;
}

/**
 * The segments, if the directory holds exactly those the snapshot names, with exactly their
 * sizes and sound headers; otherwise why not (and nothing is left open).
 */
async function openSnapshotSegments(medium: Medium, dir: string, ids: number[], expected: SnapshotSegment[]):
    Promise<Segment[] | string> {
  if (ids.length !== expected.length || ids.some((id, i) => expected[i].id !== id)) return 'the segment files differ';
  const segments: Segment[] = [];
  const buf = Buffer.alloc(SEGMENT_HEADER_BYTES);
  try {
    for (let i = 0; i < ids.length; i++) {
      const file = path.join(dir, segmentName(ids[i]));
      const handle = await medium.open(file);
      try {
        if (handle.sizeSync() !== expected[i].size) throw new Error(`${file} changed size`);
        const got = handle.readSync(buf, 0, SEGMENT_HEADER_BYTES, 0);
        const header = checkSegmentHeader(buf.subarray(0, got), file, ids[i]);
        segments.push(new Segment(ids[i], file, handle, handle.sizeSync(), header.layout, header.floor));
      } catch (err) {
        await handle.close();
        throw err;
      }
    }
    return segments;
  } catch (err) {
    await Promise.all(segments.map((s) => s.file?.close()));
    return (err as Error).message;
  }
}

/**
 * Removes what an interrupted compaction leaves: temporary files (never part of the store until
 * renamed) and hint files whose segment is gone. Syncs the directory if it removed anything.
 */
export async function removeLeftovers(medium: Medium, dir: string, names: string[], ids: Set<number>,
                                      report: RecoveryReport): Promise<void> {
  for (const name of names) {
    const hintId = parseHintName(name);
    const orphanHint = hintId !== undefined && !ids.has(hintId);
    if (name.endsWith(TEMP_SUFFIX) || orphanHint) {
      await medium.remove(path.join(dir, name));
      report.removed.push(name);
    }
  }
  if (report.removed.length > 0) await medium.syncDir(dir);
}

/** The segment, its keydir entries applied from its hint; undefined if the hint cannot be used. */
async function recoverFromHint(medium: Medium, dir: string, id: number, apply: ApplyRecord, report: RecoveryReport,
                               versions: VersionCount, reserve?: (count: number) => void): Promise<Segment | undefined> {
  const hintPath = path.join(dir, hintName(id));
  const segmentPath = path.join(dir, segmentName(id));
  const segmentFile = await medium.open(segmentPath);
  let reason: string;
  try {
    const buf = Buffer.alloc(SEGMENT_HEADER_BYTES);
    const got = segmentFile.readSync(buf, 0, SEGMENT_HEADER_BYTES, 0);
    const header: FileHeader = checkSegmentHeader(buf.subarray(0, got), segmentPath, id);
    const size = segmentFile.sizeSync();
    const hintFile = await medium.open(hintPath, { readOnly: true });
    let read: number | string;
    try {
      read = readHint(hintFile, hintPath, id, size, header, apply, reserve);
    } finally {
      await hintFile.close();
    }
    if (typeof read === 'number') {
      report.hinted++;
      versions.next = Math.max(versions.next, header.floor, read + 1);
      return new Segment(id, segmentPath, segmentFile, size, header.layout, header.floor);
    }
    reason = read;
  } catch (err) {
    reason = (err as Error).message;
  }
  await segmentFile.close();
  report.hintsIgnored.push({ file: hintPath, reason });
  return undefined;
}

/**
 * Replays segment `id` into the keydir. `torn`: it may end in a torn tail (mayBeTorn), which is
 * then cut off (its bytes kept in a sidecar); otherwise damage is LOGKV_CORRUPTION. With `from`,
 * the records before that offset are already in the keydir (a shared store's client that takes
 * the store over: lib/shared/role.ts), and the replay starts there.
 */
export async function recoverSegment(medium: Medium, dir: string, id: number, torn: boolean, apply: ApplyRecord,
                                     report: RecoveryReport, versions: VersionCount, room: () => number,
                                     from?: number): Promise<Segment> {
  const file = path.join(dir, segmentName(id));
  const handle = await medium.open(file);
  try {
    const size = handle.sizeSync();
    const resumed = from !== undefined && from > SEGMENT_HEADER_BYTES;
    const start = readSegmentStart(handle, file, id, size, torn && !resumed);
    if (start.kind === 'interrupted') {
      // Nothing in it was ever acknowledged, and it holds no record to keep (walk.ts). It is the
      // newest segment, so every other has been read: its floor is the counter as it stands.
      await resetSegment(handle, id, versions.next);
      if (size > 0) report.truncated = { file, offset: 0, bytes: size, reason: 'incomplete segment header' };
      return new Segment(id, file, handle, SEGMENT_HEADER_BYTES, undefined, versions.next);
    }
    const { header, layout } = start;
    const seen: VersionSeen = { max: 0 };
    const walker = new SegmentWalker(handle, size, layout, resumed ? { start: from } : {});
    const outcome = walker.walkAll(replayVisitor(id, apply, seen));
    const maxVersion = seen.max;
    report.records += outcome.records;
    versions.next = Math.max(versions.next, header.floor, maxVersion + 1);
    const verdict = judgeWalk(outcome, size, torn);
    if (verdict.action === 'refuse') throw corruption(`bad record in a sealed segment: ${verdict.reason}`, file, verdict.offset);
    if (verdict.action === 'cut') {
      const sidecar = await keepCutBytes(medium, dir, handle, id, verdict.offset, size, room() - size);
      await handle.truncate(verdict.offset);
      await handle.sync();
      report.truncated = { file, offset: verdict.offset, bytes: size - verdict.offset, reason: verdict.reason };
      if (sidecar !== undefined) report.truncated.sidecar = sidecar;
      return new Segment(id, file, handle, verdict.offset, layout, header.floor);
    }
    // A process killed before it synced may have left records in the page cache only, and a
    // failed repair may have left a truncate of an older write segment unsynced. The store serves
    // what the page cache holds and counts every segment as synced, so make that true now, for
    // every write segment (compaction outputs were synced before they were renamed into place).
    if (isWriteSegmentId(id)) await handle.sync();
    // Zero padding stays (preallocated space): the records end where it starts, and appends go there.
    const segment = new Segment(id, file, handle, outcome.paddingFrom ?? size, layout, header.floor);
    segment.allocated = size;
    return segment;
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/**
 * The walker's visitor that replays segment `id`'s records into the index through `apply`: a set
 * points its key at the record, a delete removes it. Shared with the clients of a shared store,
 * which replay the records another process appends (lib/shared/follower.ts).
 */
export function replayVisitor(id: number, apply: ApplyRecord, seen?: VersionSeen): RecordVisitor {
  return (offset: number, record: RecordHeader, buf: Buffer, pos: number) => {
    const entry = record.type === TYPE_SET ? new Entry(id, offset, record.totalLength, record.expiresAt) : undefined;
    apply(buf, pos + record.headerLength, record.keyLength, entry);
    if (seen !== undefined && record.version > seen.max) seen.max = record.version;
  };
}

/** A run of zeros at least this long ending the bytes cut off a segment is padding, not kept in the sidecar. */
const PADDING_RUN_BYTES = 4096;

/** Bytes copied into a sidecar at a time. */
const SIDECAR_CHUNK_BYTES = 1024 * 1024;

/**
 * Keeps bytes [offset, size) of segment `id` in a sidecar file before they are cut off, and
 * returns its path; undefined if they are all zeros (nothing to keep). A run of at least
 * PADDING_RUN_BYTES zeros at their end is not kept: a torn record in preallocated space is
 * followed by the rest of the padding, which holds nothing, and copying it would take up to a
 * megabyte of the room maxStoreBytes leaves (a shorter run is kept: it may be part of a record).
 * The recovery report gives the length of the whole cut. The sidecar is written
 * under a temporary name, synced, renamed and its directory synced, all before the cut: a crash
 * at any point leaves either no sidecar (a temporary file the next open removes) or a whole one,
 * and the segment uncut until the sidecar is durable, so the next open simply does it again. If
 * the sidecar cannot be written (a full disk), the open fails: cutting anyway would destroy bytes
 * that may hold acknowledged writes, while a failed open is undone by freeing space.
 */
async function keepCutBytes(medium: Medium, dir: string, handle: MediumFile, id: number, offset: number,
                            size: number, roomBytes: number): Promise<string | undefined> {
  const dataEnd = nonZeroEnd(handle, offset, size);
  if (dataEnd === offset) return undefined;
  if (size - dataEnd >= PADDING_RUN_BYTES) size = dataEnd;
  const name = cutName(id, offset);
  const sidecar = path.join(dir, name);
  // The sidecar and the bytes it keeps exist side by side until the cut: maxStoreBytes must hold both.
  if (size - offset > roomBytes) {
    throw new LogkvError(ErrorCodes.STORE_FULL,
      `keeping the ${size - offset} bytes to be cut off ${segmentName(id)} would pass maxStoreBytes`, { file: sidecar });
  }
  const temp = sidecar + TEMP_SUFFIX;
  try {
    const out = await medium.open(temp, { create: true });
    try {
      await out.truncate(0);
      const buf = Buffer.allocUnsafe(Math.min(SIDECAR_CHUNK_BYTES, size - offset));
      for (let at = offset; at < size;) {
        const n = handle.readSync(buf, 0, Math.min(buf.length, size - at), at);
        if (n <= 0) throw new Error(`${segmentName(id)} ended at ${at} while ${size} bytes were expected`);
        await out.write([buf.subarray(0, n)], at - offset);
        at += n;
      }
      await out.sync();
    } finally {
      await out.close();
    }
    await medium.rename(temp, sidecar);
    await medium.syncDir(dir);
  } catch (err) {
    await medium.remove(temp).catch(() => undefined);
    throw ioError(err, `keeping the ${size - offset} bytes to be cut off ${segmentName(id)} at offset ${offset} in ${name}`,
      sidecar);
  }
  return sidecar;
}

/** Where the bytes [from, to) of `file` end once the zeros at their end are left out (`from` if all are zeros). */
function nonZeroEnd(file: MediumFile, from: number, to: number): number {
  const buf = Buffer.allocUnsafe(Math.min(Math.max(to - from, 0), 64 * 1024));
  for (let end = to; end > from;) {
    const start = Math.max(from, end - buf.length);
    const n = file.readSync(buf, 0, end - start, start);
    for (let i = n - 1; i >= 0; i--) if (buf[i] !== 0) return start + i + 1;
    end = start;
  }
  return from;
}

async function resetSegment(handle: MediumFile, id: number, floor: number): Promise<void> {
  await handle.truncate(0);
  await handle.write([encodeSegmentHeader(id, undefined, floor)], 0);
  await handle.sync();
}
