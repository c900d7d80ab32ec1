/**
 * The keydir snapshot's table layout 3 (keydir.ts, snapshot.ts): read straight into arrays of
 * exactly the sizes the table needs, a chunk at a time with the CRC of each as it comes; the
 * columns it keeps (a 1-byte hash tag, segment indices as narrow as the segment count allows,
 * slots sized to the count); a layout-2 snapshot ignored for the log; damage anywhere in a
 * multi-chunk snapshot ignored for the log; the writer's hash seed adopted.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { crc32 } from '../lib/crc';
import { SEGMENT_HEADER_BYTES } from '../lib/format';
import { Entry, KeyDir, TABLE_FIXED_BYTES, TABLE_LAYOUT } from '../lib/keydir';
import { fileSystem } from '../lib/medium/fs';
import { MemoryMedium } from '../lib/medium/memory';
import type { Medium } from '../lib/medium/types';
import { SNAPSHOT_NAME, takeSnapshot, writeSnapshot, type Snapshot } from '../lib/snapshot';
import { dump, openFast, tempDir } from './helpers';

const SEGMENT = 0x10000;

/** A keydir of `n` keys in one segment, every 7th deleted (free records), with `seed`. */
function keydirOf(n: number, seed?: number): KeyDir {
  const keydir = new KeyDir(seed === undefined ? {} : { seed });
  for (let i = 0; i < n; i++) keydir.put(`key-${i.toString(16).padStart(12, '0')}`, new Entry(SEGMENT, 28 + i * 40, 40, 0));
  for (let i = 0; i < n; i += 7) keydir.put(`key-${i.toString(16).padStart(12, '0')}`, undefined);
  return keydir;
}

/** Writes `keydir` as a snapshot into `dir` on `medium` and takes it back. */
async function roundTrip(medium: Medium, dir: string, keydir: KeyDir, damage?: (bytes: Buffer) => void): Promise<Snapshot | string> {
  await medium.mkdirp(dir);
  expect(await writeSnapshot(medium, dir, [{ id: SEGMENT, size: 1 << 30 }], keydir, 7)).to.equal(true);
  if (damage !== undefined) {
    const file = path.join(dir, SNAPSHOT_NAME);
    const handle = await medium.open(file);
    const bytes = Buffer.alloc(handle.sizeSync());
    handle.readSync(bytes, 0, bytes.length, 0);
    damage(bytes);
    await handle.truncate(0);
    await handle.write([bytes], 0);
    await handle.close();
  }
  return takeSnapshot(medium, dir, [SNAPSHOT_NAME]);
}

/** Where the table starts in a snapshot file of one segment. */
const TABLE_AT = SEGMENT_HEADER_BYTES + 4 + 16;

describe('keydir snapshot, table layout 3', () => {
  it('is layout 4, and a table keeps 1-byte segment indices and 4-byte offset, length and key offset per record, the slots\' record width in byte 34', () => {
    const keydir = keydirOf(1000);
    const bytes = Buffer.concat(keydir.toBytes());
    expect(TABLE_LAYOUT).to.equal(4);
    expect(bytes.readUInt16LE(32)).to.equal(4);
    // 1000 records in columns of 1024: 11 bits name a record (the tags live in the slots).
    expect(bytes.readUInt8(34)).to.equal(11);
    expect(bytes.readUInt8(35)).to.equal(0);
    const slots = bytes.readUInt32LE(8);
    expect(bytes.length).to.equal(TABLE_FIXED_BYTES + slots * 4 + 1000 * 13 + bytes.readUInt32LE(12) + 8);
  });

  for (const [name, medium] of [['the file system (reads in the thread pool)', fileSystem], ['a medium without async reads', new MemoryMedium()]] as const) {
    it(`loads into arrays of exactly the sizes the table needs, then grows them by half (${name})`, async () => {
      const keydir = keydirOf(100_000);
      const snapshot = await roundTrip(medium, tempDir('snap3-exact'), keydir);
      if (typeof snapshot === 'string') throw new Error(snapshot);
      const loaded = snapshot.keydir;
      const table = Buffer.concat(keydir.toBytes());
      const high = table.readUInt32LE(4);
      expect(high).to.equal(100_000);
      expect(loaded.capacities).to.deep.equal({ slots: keydir.capacities.slots, records: high, arena: table.readUInt32LE(12), segmentWidth: 1 });
      expect(loaded.size).to.equal(keydir.size);
      for (let i = 0; i < 100_000; i += 997) {
        const key = `key-${i.toString(16).padStart(12, '0')}`;
        expect(loaded.get(key), key).to.deep.equal(keydir.get(key));
      }
      // The same table, as long (free records' links in their offset column may differ).
      expect(Buffer.concat(loaded.toBytes()).length).to.equal(table.length);
      // The free records (every 7th) come back first; then a new one grows the columns by half.
      for (let i = 0; i < Math.ceil(100_000 / 7) + 1; i++) loaded.put(`new-${i}`, new Entry(SEGMENT, i, 40, 0));
      expect(loaded.capacities.records).to.equal(Math.ceil(high * 1.5));
      expect(loaded.get('new-0')).to.deep.equal(new Entry(SEGMENT, 0, 40, 0));
      expect(loaded.get('key-000000000001')).to.deep.equal(new Entry(SEGMENT, 28 + 40, 40, 0));
    });
  }

  it('sizes the slots to the count at 70% load, not a power of two, and finds every key in them', () => {
    const keydir = new KeyDir();
    keydir.reserve(100_000);
    expect(keydir.capacities.slots).to.equal(Math.ceil(100_000 / 0.7));
    for (let i = 0; i < 100_000; i++) keydir.put(`k${i}`, new Entry(SEGMENT, i, 1, 0));
    expect(keydir.capacities.slots).to.equal(Math.ceil(100_000 / 0.7));
    for (let i = 0; i < 100_000; i++) expect(keydir.get(`k${i}`)?.offset).to.equal(i);
    // One more key than 70% allows: half again as many slots.
    for (let i = 100_000; i < 100_002; i++) keydir.put(`k${i}`, new Entry(SEGMENT, i, 1, 0));
    expect(keydir.capacities.slots).to.equal(Math.ceil(Math.ceil(100_000 / 0.7) * 1.5));
    for (let i = 0; i < 100_002; i++) expect(keydir.get(`k${i}`)?.offset).to.equal(i);
    for (let i = 0; i < 100_002; i += 2) keydir.put(`k${i}`, undefined);
    for (let i = 0; i < 100_002; i++) expect(keydir.get(`k${i}`)?.offset).to.equal(i % 2 === 1 ? i : undefined);
  });

  it('widens the segment index column at the 257th and the 65537th segment, and a snapshot keeps the width', () => {
    const keydir = new KeyDir();
    const ids = (n: number) => Array.from({ length: n }, (_, i) => (i + 1) * 0x10000);
    expect(keydir.capacities.segmentWidth).to.equal(1);
    for (const [count, width] of [[256, 1], [257, 2], [65536, 2], [65537, 4]] as const) {
      ids(count).forEach((id, i) => keydir.put(`s${i}`, new Entry(id, i, 10, 0)));
      expect(keydir.capacities.segmentWidth, `${count} segments`).to.equal(width);
      const copy = KeyDir.fromBytes(Buffer.concat(keydir.toBytes()));
      expect(copy.capacities.segmentWidth).to.equal(width);
      for (const i of [0, 255, count - 1]) expect(copy.get(`s${i}`), `s${i} of ${count}`).to.deep.equal(new Entry(ids(count)[i], i, 10, 0));
    }
  });

  it('adopts the seed of the table it loads, whatever this process drew, and keeps using it as the table changes', async () => {
    const seed = 0x5eed1234;
    const keydir = keydirOf(20_000, seed);
    expect(keydir.seed).to.equal(seed);
    expect(new KeyDir().seed).to.not.equal(seed); // this process's own seed (1 chance in 2^32 to collide)
    const snapshot = await roundTrip(fileSystem, tempDir('snap3-seed'), keydir);
    if (typeof snapshot === 'string') throw new Error(snapshot);
    const loaded = snapshot.keydir;
    expect(loaded.seed).to.equal(seed);
    expect(Buffer.concat(loaded.toBytes()).readUInt32LE(36)).to.equal(seed);
    // Enough new keys to resize the table (a rehash from the arena with the adopted seed).
    for (let i = 0; i < 40_000; i++) loaded.put(`more-${i}`, new Entry(SEGMENT, i, 1, 0));
    for (let i = 1; i < 20_000; i += 7) expect(loaded.get(`key-${i.toString(16).padStart(12, '0')}`)?.offset).to.equal(28 + i * 40);
    for (let i = 0; i < 40_000; i += 13) expect(loaded.get(`more-${i}`)?.offset).to.equal(i);
  });

  describe('damage in a snapshot of many chunks (1 MiB each) is found, and the snapshot ignored', () => {
    // 120,000 keys: about 3.8 MB, four chunks.
    const damages: Array<[string, (bytes: Buffer) => void, string]> = [
      ['a flipped bit in the second chunk (the slots)', (b) => { b[(1 << 20) + 12345] ^= 0x04; }, 'checksum mismatch'],
      ['a flipped bit in the last chunk (the arena)', (b) => { b[b.length - 1000] ^= 0x80; }, 'checksum mismatch'],
      ['a flipped bit in the stored crc', (b) => { b[b.length - 1] ^= 0x01; }, 'checksum mismatch'],
      ['a table count the CRC has not yet vouched for (the slots)', (b) => { b.writeUInt32LE(b.readUInt32LE(TABLE_AT + 8) + 1, TABLE_AT + 8); }, 'truncated table'],
      ['a torn end', (b) => { b.fill(0, b.length - 3000); }, 'checksum mismatch'],
    ];
    for (const [name, damage, reason] of damages) {
      it(`${name}: '${reason}'`, async () => {
        for (const medium of [fileSystem, new MemoryMedium()]) {
          const result = await roundTrip(medium, tempDir('snap3-bad'), keydirOf(120_000), damage);
          expect(result).to.equal(reason);
        }
      });
    }

    it('a read that fails midway (EIO in the thread pool): every read in flight settles, and the snapshot is ignored for that error', async () => {
      const dir = tempDir('snap3-eio');
      await writeSnapshot(fileSystem, dir, [{ id: SEGMENT, size: 1 << 30 }], keydirOf(120_000), 7);
      let reads = 0;
      let settled = 0;
      const failing: Medium = Object.create(fileSystem, {
        open: {
          value: async (file: string, options?: { readOnly?: boolean }) => {
            const inner = await fileSystem.open(file, options);
            return Object.assign(Object.create(inner), {
              path: inner.path,
              readSync: inner.readSync.bind(inner),
              sizeSync: inner.sizeSync.bind(inner),
              close: inner.close.bind(inner),
              read: async (buf: Uint8Array, offset: number, length: number, position: number) => {
                try {
                  if (++reads === 3) throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
                  return await inner.read!(buf, offset, length, position);
                } finally {
                  settled++;
                }
              },
            });
          },
        },
      });
      expect(await takeSnapshot(failing, dir, [SNAPSHOT_NAME])).to.equal('EIO: i/o error, read');
      expect(settled).to.equal(reads);
      expect(reads).to.be.within(3, 4);
      expect(fs.existsSync(path.join(dir, SNAPSHOT_NAME))).to.equal(false);
    });

    it('a file cut short: truncated, before any array is allocated for what is missing', async () => {
      const dir = tempDir('snap3-cut');
      await writeSnapshot(fileSystem, dir, [{ id: SEGMENT, size: 1 << 30 }], keydirOf(120_000), 7);
      const file = path.join(dir, SNAPSHOT_NAME);
      fs.truncateSync(file, fs.statSync(file).size - 5000);
      expect(await takeSnapshot(fileSystem, dir, [SNAPSHOT_NAME])).to.equal('truncated table');
      expect(fs.existsSync(file)).to.equal(false);
    });

    it('a store opens past it by replaying the log, with every key (the snapshot is only a cache)', async () => {
      const dir = tempDir('snap3-store');
      const store = await openFast(dir, { autoCompact: false });
      const writes: Array<Promise<unknown>> = [];
      for (let i = 0; i < 60_000; i++) writes.push(store.set(`key-${i.toString(16).padStart(12, '0')}`, i));
      await Promise.all(writes);
      await store.delete('key-000000000007');
      const expected = await dump(store);
      await store.close();
      const file = path.join(dir, SNAPSHOT_NAME);
      const bytes = fs.readFileSync(file);
      expect(bytes.length).to.be.above(1 << 20);
      bytes[(1 << 20) + 777] ^= 0x10;
      fs.writeFileSync(file, bytes);
      const damaged = await openFast(dir);
      expect(damaged.recovery.snapshot).to.equal(false);
      expect(damaged.recovery.snapshotIgnored).to.equal('checksum mismatch');
      expect(damaged.recovery.records).to.equal(60_001);
      expect(await dump(damaged)).to.deep.equal(expected);
      await damaged.close();
      // The clean close wrote a good one again: the next open loads it.
      const again = await openFast(dir);
      expect(again.recovery.snapshot).to.equal(true);
      expect(again.size).to.equal(59_999);
      expect(await dump(again)).to.deep.equal(expected);
      await again.close();
    });
  });

  // spec/fixtures/snapshot-layout2 was written by commit acd90ba (table layout 2) and
  // spec/fixtures/snapshot-layout3 by commit 7769a28 (layout 3: a tag column, unpacked slots), both
  // with the ordered section (the store iterated its keys before it closed) and with the clock at
  // 1_700_000_000_000: 'forever' and 'ключ' (no expiry), ttl:0..19 expiring at FUTURE + i % 4, then
  // ttl:5 set again without an expiry and ttl:6 deleted; closed cleanly, so each snapshot names
  // exactly these segments with exactly their sizes.
  for (const layout of [2, 3]) {
    it(`a snapshot of table layout ${layout} (before this layout) is ignored, and the log replayed with every key and expiry`, async () => {
      const FUTURE = 4_102_444_800_000;
      const fixture = path.join(__dirname, 'fixtures', `snapshot-layout${layout}`);
      const snapshot = fs.readFileSync(path.join(fixture, SNAPSHOT_NAME));
      expect(snapshot.readUInt32LE(TABLE_AT + 32)).to.equal(layout);
      expect(crc32(snapshot.subarray(SEGMENT_HEADER_BYTES, snapshot.length - 4))).to.equal(snapshot.readUInt32LE(snapshot.length - 4));
      const dir = tempDir(`snap-layout${layout}`);
      for (const name of fs.readdirSync(fixture)) fs.copyFileSync(path.join(fixture, name), path.join(dir, name));
      let now = 1_700_000_000_000;
      const store = await openFast(dir, { clock: () => now });
      expect(store.recovery.snapshot).to.equal(false);
      expect(store.recovery.snapshotIgnored).to.equal(`keydir snapshot: table layout ${layout}, expected 4`);
      expect(store.recovery.records).to.equal(24);
      expect(fs.existsSync(path.join(dir, SNAPSHOT_NAME))).to.equal(false);
      expect(store.size).to.equal(21);
      expect(await store.get('forever')).to.equal('f');
      expect(await store.get('ключ')).to.equal('non-ascii');
      expect(await store.getEntry('ttl:5')).to.deep.equal({ value: 'no longer expires', version: 23 });
      expect(await store.has('ttl:6')).to.equal(false);
      for (const i of [0, 1, 2, 3, 19]) expect((await store.getEntry(`ttl:${i}`))?.expiresAt).to.equal(FUTURE + (i % 4));
      now = FUTURE + 1;
      expect(store.size).to.equal(3 + 9); // ttl:i with i % 4 >= 2, except ttl:6
      now = FUTURE + 3;
      expect(store.size).to.equal(3);
      await store.close();
      // Closed cleanly by this build: a layout-4 snapshot, which the next open loads.
      const bytes = fs.readFileSync(path.join(dir, SNAPSHOT_NAME));
      expect(bytes.readUInt16LE(TABLE_AT + 32)).to.equal(4);
      const reopened = await openFast(dir, { clock: () => now });
      expect(reopened.recovery.snapshot).to.equal(true);
      expect(reopened.size).to.equal(3);
      expect(await reopened.get('ключ')).to.equal('non-ascii');
      await reopened.close();
    });
  }
});
