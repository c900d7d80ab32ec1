/**
 * The keydir snapshot: a cleanly closed store writes its keydir to `keydir.snapshot`, so the next
 * open is a bulk load instead of a replay of every record.
 *
 * A snapshot is only ever an optimisation, and it must never be wrong, so:
 * - it is written only by close(), after the final sync, and names every segment file and its
 *   exact size at that moment;
 * - open() removes it (and fsyncs the directory) before the store takes any write, whether or not
 *   it could use it, so a snapshot on disk always describes the store as the last clean close
 *   left it;
 * - open() uses it only if its CRC matches, it parses as a consistent table, and the directory
 *   holds exactly the segments it names with exactly their sizes. Otherwise it replays as usual.
 *
 * Layout (little-endian; snapshots are only written and read on little-endian hosts, because the
 * table's typed arrays are stored as they sit in memory):
 *
 *   off   size  field
 *   0     28    file header (format.ts), kind = 3, id = 0, version floor = the store's next version
 *   28    4     segment count n
 *   32    16n   per segment: id (f64), size (f64)
 *   ...         the table (keydir.ts toBytes): 48 bytes of counts (with the table layout, 4, a
 *               u16 at byte 32, the slots' record-field width at byte 34 and the hash seed at
 *               byte 36), the expiry column (one time per record, as f64 or as u32 offsets from a
 *               base time), the slots (each: record number, distance from home, hash tag), the
 *               record columns (segment index of 1, 2 or 4 bytes, offset, length, key offset),
 *               the key arena, the segment id table
 *   ...         the ordered section, if the keydir keeps its keys in order (once the store has
 *               iterated): 0-3 zero bytes of padding, the ordered index (ordered.ts toBytes), then
 *               pad u32, length u32 of the index's bytes, magic u32 'ORD1'
 *   end-4 4     crc u32: CRC-32 of bytes 28 .. end-4
 *
 * The table's layout number changes whenever the table's bytes change meaning; a snapshot of any
 * other layout (such as layout 0, before the expiry heap, 1, before the hash seed, 2, before
 * the narrow columns, or 3, before the packed slots) fails to load and the store replays (from hint files where it has them). The hashes and slots were made with the seed of the process that wrote
 * the snapshot: the loaded table adopts that seed (keydir.ts), so nothing here depends on this
 * process's seed.
 * So does a snapshot of an older format version (a 20-byte header, no next version): the replay
 * finds the version counter in the segments. A snapshot without the ordered section (or whose
 * section does not describe the table's live records) still loads its table; open then builds
 * the ordered index with one sort (keyindex.ts).
 */
import * as os from 'os';
import * as path from 'path';
import { crc32 } from './crc';
import { FORMAT_VERSION, SEGMENT_HEADER_BYTES, checkSegmentHeader, encodeSegmentHeader } from './format';
import { KeyDir, TABLE_FIXED_BYTES, type TableArrays, type TableHead } from './keydir';
import type { Medium, MediumFile } from './medium/types';
import { TEMP_SUFFIX } from './segment';

export const SNAPSHOT_NAME = 'keydir.snapshot';
export const KIND_SNAPSHOT = 3;
/** Ends the ordered section: 'ORD1' as a little-endian u32, after its padding and length. */
export const ORDERED_MAGIC = 0x3144524f;
const ORDERED_TRAILER_BYTES = 12;

export interface SnapshotSegment {
  id: number;
  size: number;
}

const littleEndian = os.endianness() === 'LE';

/**
 * Writes the snapshot under a temporary name and renames it. No fsync: a lost snapshot costs only
 * time. `nextVersion` is the version the store would give its next write. Writes nothing if the
 * snapshot would take more than `roomBytes` (what maxStoreBytes leaves beside the store's other
 * files): it is only an optimisation, and the cap holds for every file. Returns whether it wrote one.
 */
export async function writeSnapshot(medium: Medium, dir: string, segments: SnapshotSegment[], keydir: KeyDir,
                                    nextVersion: number, roomBytes = Infinity): Promise<boolean> {
  if (!littleEndian) return false;
  const list = Buffer.alloc(4 + segments.length * 16);
  list.writeUInt32LE(segments.length, 0);
  segments.forEach((s, i) => {
    list.writeDoubleLE(s.id, 4 + i * 16);
    list.writeDoubleLE(s.size, 12 + i * 16);
  });
  const table = keydir.toBytes();
  const body = [list, ...table, ...orderedSection(keydir, table)];
  let crc = 0;
  for (const chunk of body) crc = crc32(chunk, crc);
  const trailer = Buffer.alloc(4);
  trailer.writeUInt32LE(crc, 0);
  const header = encodeSegmentHeader(0, KIND_SNAPSHOT, nextVersion);
  const totalBytes = body.reduce((sum, chunk) => sum + chunk.length, header.length + trailer.length);
  if (totalBytes > roomBytes) return false;
  const temp = path.join(dir, SNAPSHOT_NAME + TEMP_SUFFIX);
  const file = await medium.open(temp, { create: true });
  try {
    await file.truncate(0);
    await file.write([header, ...body, trailer], 0);
  } finally {
    await file.close();
  }
  await medium.rename(temp, path.join(dir, SNAPSHOT_NAME));
  return true;
}

/**
 * The ordered index's bytes (OrderedIndex.toBytes()) and the trailer that finds them, to follow
 * the table; nothing if the keydir keeps no ordered index. Padding first, so that the index's
 * 32-bit arrays start 4-byte aligned relative to the table (the reader's buffer starts with it)
 * and load without a byte copy.
 */
function orderedSection(keydir: KeyDir, table: Buffer[]): Buffer[] {
  const ordered = keydir.ordered;
  if (ordered === undefined) return [];
  const tableBytes = table.reduce((sum, chunk) => sum + chunk.length, 0);
  const pad = (4 - (tableBytes % 4)) % 4;
  const bytes = ordered.toBytes();
  const trailer = Buffer.alloc(ORDERED_TRAILER_BYTES);
  trailer.writeUInt32LE(pad, 0);
  trailer.writeUInt32LE(bytes.reduce((sum, chunk) => sum + chunk.length, 0), 4);
  trailer.writeUInt32LE(ORDERED_MAGIC, 8);
  return [Buffer.alloc(pad), ...bytes, trailer];
}

/**
 * The ordered index's bytes from the ordered section (what follows the table, the crc cut off),
 * or undefined if there is none or it does not add up.
 */
function orderedBytes(section: Buffer): Buffer | undefined {
  const end = section.length;
  if (end < ORDERED_TRAILER_BYTES || section.readUInt32LE(end - 4) !== ORDERED_MAGIC) return undefined;
  const pad = section.readUInt32LE(end - 12);
  const length = section.readUInt32LE(end - 8);
  if (pad > 3 || pad + length + ORDERED_TRAILER_BYTES !== end) return undefined;
  return section.subarray(pad, pad + length);
}

/** What a usable snapshot holds. */
export interface Snapshot {
  keydir: KeyDir;
  segments: SnapshotSegment[];
  /** The version the store would have given its next write when it closed. */
  nextVersion: number;
}

/**
 * Reads and removes the snapshot. Returns the table and the segments it describes, or a reason
 * it cannot be used (including that there is none).
 */
export async function takeSnapshot(medium: Medium, dir: string, names: string[]): Promise<Snapshot | string> {
  if (!names.includes(SNAPSHOT_NAME)) return 'none';
  const file = path.join(dir, SNAPSHOT_NAME);
  let result: Snapshot | string;
  try {
    result = littleEndian ? await readSnapshot(medium, file) : 'big-endian host';
  } catch (err) {
    result = (err as Error).message;
  }
  await medium.remove(file);
  await medium.syncDir(dir);
  return result;
}

/** Bytes read at a time: the CRC of one chunk runs while the next is read (when the medium reads asynchronously). */
const CHUNK_BYTES = 1 << 20;
/**
 * Chunk reads queued at once. Measured on the project's 2-core machine (37 MB snapshot, under
 * load), a second read in flight took the pipelined read+CRC from 2.1x to 1.35x the floor's wall
 * time; a third gained little more.
 */
const READS_IN_FLIGHT = 2;

/**
 * Reads the snapshot straight into the arrays the keydir will keep: the head (file header,
 * segment list, the table's fixed part) first, which gives every array's exact size; then each
 * array's bytes, read into it where it stays; then the rest (the ordered section, the crc). Fresh
 * memory costs a page fault per 4 KiB (dearly on this project's machine), so every byte is written
 * once, by the read, and nothing is copied. The CRC is computed a chunk at a time as the chunks
 * come; with a medium that reads asynchronously (the file system), the next chunk is being read
 * in the thread pool while the CRC of the last one runs, so with a second core free the CRC costs
 * little wall time. Its CPU time is what remains of open beyond a plain read of the file: measured
 * on the project's VM (1M keys, a 37 MB snapshot), the first touch from JavaScript of a page the
 * kernel's read just filled costs ~8 us (~85 ms in all, user time, no page fault counted; a second
 * pass over the same bytes takes ~10 ms), which the floor never pays and which no check of every
 * byte can avoid.
 */
async function readSnapshot(medium: Medium, file: string): Promise<Snapshot | string> {
  const handle = await medium.open(file, { readOnly: true });
  let head: Buffer;
  let tableHead: TableHead;
  let arrays: TableArrays;
  let rest: Buffer;
  let stored: Buffer;
  let nextVersion: number;
  let crc: number;
  try {
    const readSync = (buf: Uint8Array, position: number): boolean => handle.readSync(buf, 0, buf.length, position) === buf.length;
    const size = handle.sizeSync();
    if (size < SEGMENT_HEADER_BYTES + 8) return 'truncated';
    const first = Buffer.allocUnsafe(SEGMENT_HEADER_BYTES + 4);
    if (!readSync(first, 0)) return 'truncated';
    const header = checkSegmentHeader(first, file, 0, KIND_SNAPSHOT);
    if (header.version !== FORMAT_VERSION) return `a format version ${header.version} snapshot`;
    nextVersion = header.floor;
    // Every length read before the CRC is checked is bounded by the file's size before anything
    // is allocated for it, so a corrupt count cannot make us allocate more than the file holds.
    const headBytes = SEGMENT_HEADER_BYTES + 4 + first.readUInt32LE(SEGMENT_HEADER_BYTES) * 16 + TABLE_FIXED_BYTES;
    if (headBytes + 4 > size) return 'truncated segment list';
    head = Buffer.allocUnsafe(headBytes);
    if (!readSync(head, 0)) return 'truncated';
    tableHead = KeyDir.tableHead(head.subarray(headBytes - TABLE_FIXED_BYTES));
    const tableEnd = headBytes - TABLE_FIXED_BYTES + tableHead.bytes;
    if (tableEnd + 4 > size) return 'truncated table';
    arrays = KeyDir.tableArrays(tableHead);
    // The rest starts at the same offset mod 4 as in the file relative to the table, so that the
    // ordered index's 32-bit arrays (padded to 4 bytes from the table's start) load without a copy.
    const skew = tableHead.bytes % 4;
    rest = Buffer.allocUnsafe(skew + size - tableEnd - 4).subarray(skew);
    stored = Buffer.allocUnsafe(4);
    crc = crc32(head.subarray(SEGMENT_HEADER_BYTES));
    const chunks: Array<[Uint8Array, number]> = [];
    let position = headBytes;
    for (const target of [...arrays.sections, rest, stored]) {
      for (let at = 0; at < target.length; at += CHUNK_BYTES) {
        chunks.push([target.subarray(at, Math.min(target.length, at + CHUNK_BYTES)), position + at]);
      }
      position += target.length;
    }
    crc = await readChunks(handle, chunks, crc);
    if (crc < 0) return 'truncated';
  } finally {
    await handle.close();
  }
  if (stored.readUInt32LE(0) !== crc) return 'checksum mismatch';
  const segments: SnapshotSegment[] = [];
  for (let i = 0, at = SEGMENT_HEADER_BYTES + 4; at + 16 <= head.length - TABLE_FIXED_BYTES; i++, at += 16) {
    segments.push({ id: head.readDoubleLE(at), size: head.readDoubleLE(at + 8) });
  }
  const keydir = KeyDir.fromArrays(tableHead, arrays);
  const ordered = orderedBytes(rest);
  if (ordered !== undefined) {
    try {
      keydir.orderKeys({}, ordered);
    } catch {
      // Bytes that do not describe this table's live records: open sorts the keys instead.
    }
  }
  const listed = new Set(segments.map((s) => s.id));
  for (const id of keydir.loaded!.segmentsInUse) if (!listed.has(id)) return `records point into unlisted segment ${id}`;
  return { keydir, segments, nextVersion };
}

/**
 * Reads each chunk ([target, file position]) in full and returns the CRC-32 of all but the last
 * (the stored crc) in order, continuing `crc`; -1 if the file ends early. With a medium that reads
 * asynchronously, the read of a chunk is in flight while the previous one's CRC runs.
 */
async function readChunks(handle: MediumFile, chunks: Array<[Uint8Array, number]>, crc: number): Promise<number> {
  const last = chunks.length - 1;
  const read = handle.read?.bind(handle);
  if (read === undefined) {
    for (let i = 0; i <= last; i++) {
      const [buf, position] = chunks[i];
      if (handle.readSync(buf, 0, buf.length, position) !== buf.length) return -1;
      if (i < last) crc = crc32(buf, crc);
    }
    return crc;
  }
  // A read's failure is its value, not a rejection: a rejected read still queued behind the one
  // awaited would be an unhandled rejection (which ends the process by default).
  const start = (index: number): Promise<boolean | Error> => {
    const [buf, position] = chunks[index];
    return read(buf, 0, buf.length, position).then((n) => n === buf.length, (err: Error) => err);
  };
  // READS_IN_FLIGHT reads queued at the thread pool, so that it never waits for the CRC to ask
  // for the next chunk (and two pool threads can fault fresh pages in at once).
  const inFlight: Array<Promise<boolean | Error>> = [];
  let next = 0;
  for (; next <= last && inFlight.length < READS_IN_FLIGHT; next++) inFlight.push(start(next));
  for (let i = 0; i <= last; i++) {
    const full = await inFlight.shift()!;
    if (full !== true) {
      // Every started read settles before this returns, so that none still writes into the
      // arrays or reads the handle once the caller closes it.
      await Promise.all(inFlight);
      if (full instanceof Error) throw full;
      return -1;
    }
    if (next <= last) inFlight.push(start(next++));
    if (i < last) crc = crc32(chunks[i][0], crc);
  }
  return crc;
}
