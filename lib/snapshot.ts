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
 *   ...         the table (keydir.ts toBytes): 40 bytes of counts, then slots, the four record
 *               columns, the key arena, the free list, the segment id table, the expiries
 *   end-4 4     crc u32: CRC-32 of bytes 28 .. end-4
 *
 * A snapshot of an older format version (a 20-byte header, no next version) is not used: the
 * store replays, which finds the version counter in the segments.
 */
import * as os from 'os';
import * as path from 'path';
import { crc32 } from './crc';
import { FORMAT_VERSION, SEGMENT_HEADER_BYTES, checkSegmentHeader, encodeSegmentHeader } from './format';
import { KeyDir } from './keydir';
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

async function readSnapshot(medium: Medium, file: string): Promise<Snapshot | string> {
  const handle = await medium.open(file, { readOnly: true });
  let buf: Buffer;
  try {
    const size = handle.sizeSync();
    if (size < SEGMENT_HEADER_BYTES + 8) return 'truncated';
    buf = Buffer.allocUnsafe(size);
    if (handle.readSync(buf, 0, size, 0) !== size) return 'truncated';
  } finally {
    await handle.close();
  }
  const header = checkSegmentHeader(buf, file, 0, KIND_SNAPSHOT);
  if (header.version !== FORMAT_VERSION) return `a format version ${header.version} snapshot`;
  if (buf.readUInt32LE(buf.length - 4) !== crc32(buf.subarray(SEGMENT_HEADER_BYTES, buf.length - 4))) return 'checksum mismatch';
  const count = buf.readUInt32LE(SEGMENT_HEADER_BYTES);
  const tableStart = SEGMENT_HEADER_BYTES + 4 + count * 16;
  if (tableStart > buf.length - 4) return 'truncated segment list';
  const segments: SnapshotSegment[] = [];
  for (let i = 0; i < count; i++) {
    const at = SEGMENT_HEADER_BYTES + 4 + i * 16;
    segments.push({ id: buf.readDoubleLE(at), size: buf.readDoubleLE(at + 8) });
  }
  const keydir = KeyDir.fromBytes(buf.subarray(tableStart, buf.length - 4));
  const listed = new Set(segments.map((s) => s.id));
  for (const id of keydir.loaded!.segmentsInUse) if (!listed.has(id)) return `records point into unlisted segment ${id}`;
  return { keydir, segments, nextVersion: header.floor };
}
