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
 *   ...         the table (keydir.ts toBytes): 48 bytes of counts (with the table layout, 1, at
 *               byte 32), the expiry heap (times, as f64 or as u32 offsets from a base time,
 *               then records), the slots, the five record columns, the key arena, the free
 *               list, the segment id table
 *   end-4 4     crc u32: CRC-32 of bytes 28 .. end-4
 *
 * The table's layout number changes whenever the table's bytes change meaning; a snapshot of any
 * other layout (such as layout 0, before the expiry heap) fails to load and the store replays.
 * So does a snapshot of an older format version (a 20-byte header, no next version): the replay
 * finds the version counter in the segments.
 */
import * as os from 'os';
import * as path from 'path';
import { crc32 } from './crc';
import { FORMAT_VERSION, SEGMENT_HEADER_BYTES, checkSegmentHeader, encodeSegmentHeader } from './format';
import { ExpiryHeap } from './expiry';
import { KeyDir, TABLE_FIXED_BYTES } from './keydir';
import type { Medium } from './medium/types';
import { TEMP_SUFFIX } from './segment';

export const SNAPSHOT_NAME = 'keydir.snapshot';
export const KIND_SNAPSHOT = 3;

export interface SnapshotSegment {
  id: number;
  size: number;
}

const littleEndian = os.endianness() === 'LE';

/**
 * Writes the snapshot under a temporary name and renames it. No fsync: a lost snapshot costs only
 * time. `nextVersion` is the version the store would give its next write.
 */
export async function writeSnapshot(medium: Medium, dir: string, segments: SnapshotSegment[], keydir: KeyDir,
                                    nextVersion: number): Promise<void> {
  if (!littleEndian) return;
  const list = Buffer.alloc(4 + segments.length * 16);
  list.writeUInt32LE(segments.length, 0);
  segments.forEach((s, i) => {
    list.writeDoubleLE(s.id, 4 + i * 16);
    list.writeDoubleLE(s.size, 12 + i * 16);
  });
  const body = [list, ...keydir.toBytes()];
  let crc = 0;
  for (const chunk of body) crc = crc32(chunk, crc);
  const trailer = Buffer.alloc(4);
  trailer.writeUInt32LE(crc, 0);
  const temp = path.join(dir, SNAPSHOT_NAME + TEMP_SUFFIX);
  const file = await medium.open(temp, { create: true });
  try {
    await file.truncate(0);
    await file.write([encodeSegmentHeader(0, KIND_SNAPSHOT, nextVersion), ...body, trailer], 0);
  } finally {
    await file.close();
  }
  await medium.rename(temp, path.join(dir, SNAPSHOT_NAME));
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

/**
 * Reads the snapshot in three pieces: the head (file header, segment list, the table's fixed
 * part), the expiry heap straight into the arrays the keydir will keep, and the rest of the table.
 * Fresh memory costs a page fault per 4 KiB (dearly on this project's machine), so the heap's bytes
 * are written once, where they stay, instead of into a buffer and then copied.
 */
async function readSnapshot(medium: Medium, file: string): Promise<Snapshot | string> {
  const handle = await medium.open(file, { readOnly: true });
  const read = (buf: Uint8Array, position: number): boolean => handle.readSync(buf, 0, buf.length, position) === buf.length;
  let head: Buffer;
  let heap: ReturnType<typeof ExpiryHeap.arraysFor>;
  let heapViews: [Uint8Array, Uint8Array];
  let table: Buffer;
  let nextVersion: number;
  try {
    const size = handle.sizeSync();
    if (size < SEGMENT_HEADER_BYTES + 8) return 'truncated';
    const first = Buffer.allocUnsafe(SEGMENT_HEADER_BYTES + 4);
    if (!read(first, 0)) return 'truncated';
    const header = checkSegmentHeader(first, file, 0, KIND_SNAPSHOT);
    if (header.version !== FORMAT_VERSION) return `a format version ${header.version} snapshot`;
    nextVersion = header.floor;
    // Every length read before the CRC is checked is bounded by the file's size before anything
    // is allocated for it, so a corrupt count cannot make us allocate more than the file holds.
    const headBytes = SEGMENT_HEADER_BYTES + 4 + first.readUInt32LE(SEGMENT_HEADER_BYTES) * 16 + TABLE_FIXED_BYTES;
    if (headBytes + 4 > size) return 'truncated segment list';
    head = Buffer.allocUnsafe(headBytes);
    if (!read(head, 0)) return 'truncated';
    const section = KeyDir.heapSection(head.subarray(headBytes - TABLE_FIXED_BYTES));
    const heapBytes = section.timeBytes + section.recordBytes;
    if (headBytes + heapBytes + 4 > size) return 'truncated expiry heap';
    heap = ExpiryHeap.arraysFor(section.count, section.base);
    heapViews = [new Uint8Array(heap.time.buffer, 0, section.timeBytes), new Uint8Array(heap.record.buffer, 0, section.recordBytes)];
    if (!read(heapViews[0], headBytes) || !read(heapViews[1], headBytes + section.timeBytes)) return 'truncated';
    // The table without its heap: the fixed part again, then the rest, then the file's crc.
    table = Buffer.allocUnsafe(TABLE_FIXED_BYTES + size - headBytes - heapBytes);
    head.copy(table, 0, headBytes - TABLE_FIXED_BYTES);
    if (!read(table.subarray(TABLE_FIXED_BYTES), headBytes + heapBytes)) return 'truncated';
  } finally {
    await handle.close();
  }
  // The CRC covers the bytes in file order: the head after the file header, the heap, the rest.
  let crc = crc32(head.subarray(SEGMENT_HEADER_BYTES));
  crc = crc32(heapViews[1], crc32(heapViews[0], crc));
  crc = crc32(table.subarray(TABLE_FIXED_BYTES, table.length - 4), crc);
  if (table.readUInt32LE(table.length - 4) !== crc) return 'checksum mismatch';
  const segments: SnapshotSegment[] = [];
  for (let i = 0, at = SEGMENT_HEADER_BYTES + 4; at + 16 <= head.length - TABLE_FIXED_BYTES; i++, at += 16) {
    segments.push({ id: head.readDoubleLE(at), size: head.readDoubleLE(at + 8) });
  }
  const keydir = KeyDir.fromBytes(table.subarray(0, table.length - 4), heap);
  const listed = new Set(segments.map((s) => s.id));
  for (const id of keydir.loaded!.segmentsInUse) if (!listed.has(id)) return `records point into unlisted segment ${id}`;
  return { keydir, segments, nextVersion };
}
