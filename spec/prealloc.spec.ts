/**
 * Preallocated segments (issue 14): in 'always' mode the group of writes that passes the active
 * segment's preallocated end also writes zero padding after its records, so later groups'
 * fdatasyncs overwrite space the file has and commit no new file size. The padding counts under
 * maxStoreBytes, is cut when a segment is sealed and at a clean close, and a power loss inside it
 * leaves a torn tail that recovery cuts like any other (docs/durability.md, docs/format.md).
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { open } from '../lib';
import type { Store } from '../lib';
import { checkStore } from '../lib/check';
import { SEGMENT_HEADER_BYTES } from '../lib/format';
import { ErrorCodes, LogkvError } from '../lib/errors';
import { KeyIndex } from '../lib/keyindex';
import { FaultyMedium } from '../lib/medium/faulty';
import { MemoryMedium } from '../lib/medium/memory';
import type { MediumFile } from '../lib/medium/types';
import { gateWrites } from '../lib/medium/gated';
import { makeDurableDir, recoverRooms, writeRooms } from '../lib/open';
import { resolveOptions } from '../lib/options';
import { Reader } from '../lib/reader';
import { recover } from '../lib/recovery';
import { Segment, cutName } from '../lib/segment';
import { SegmentSet } from '../lib/segments';
import { storeOver } from '../lib/store';
import { dump, expectCode, setRecordBytes, tempDir } from './helpers';

const DIR = '/db';
const SEG1 = `${DIR}/000000010000.seg`;
const ID1 = 0x10000;
const MIB = 1024 * 1024;
const VALUE = 'v'.repeat(100);

/** The sizes of the segment files of a MemoryMedium store, by name. */
function segmentSizes(memory: MemoryMedium): Record<string, number> {
  const sizes: Record<string, number> = {};
  for (const file of memory.files()) if (file.endsWith('.seg')) sizes[path.basename(file)] = memory.readFile(file).length;
  return sizes;
}

/** Key `i`: all keys the same length, so all their records are too. */
function key(i: number): string {
  return `k${String(i).padStart(4, '0')}`;
}

/** The bytes of a record fill() writes. */
const RECORD = setRecordBytes(key(0), VALUE);

/** Sets keys from..from+n-1 to VALUE, each awaited. */
async function fill(store: Store<unknown>, n: number, from = 0): Promise<void> {
  for (let i = from; i < from + n; i++) await store.set(key(i), VALUE);
}

describe('preallocated segments', () => {
  it("in 'always' mode the first records bring 1 MiB of padding, later ones fill it, and a clean close cuts it", async () => {
    const memory = new MemoryMedium();
    const store = await open(DIR, { medium: memory, sync: 'always' });
    await store.set(key(0), VALUE);
    const record = RECORD;
    const recordsEnd = SEGMENT_HEADER_BYTES + record;
    expect(segmentSizes(memory)).to.deep.equal({ '000000010000.seg': recordsEnd + MIB });
    // The padding takes disk: the cap and stats() count it.
    expect(store.stats().diskBytes).to.equal(recordsEnd + MIB);
    await fill(store, 9, 1);
    expect(segmentSizes(memory)).to.deep.equal({ '000000010000.seg': recordsEnd + MIB });
    expect(store.stats().diskBytes).to.equal(recordsEnd + MIB);
    const bytes = memory.readFile(SEG1);
    expect(bytes.subarray(SEGMENT_HEADER_BYTES + 10 * record).every((b) => b === 0)).to.equal(true);
    await store.close();
    expect(segmentSizes(memory)).to.deep.equal({ '000000010000.seg': SEGMENT_HEADER_BYTES + 10 * record });
    expect(memory.readFile(SEG1)).to.deep.equal(bytes.subarray(0, SEGMENT_HEADER_BYTES + 10 * record));

    // Reopened, it appends where the records end, and pads again.
    const again = await open(DIR, { medium: memory, sync: 'always' });
    await again.set(key(10), VALUE);
    expect(segmentSizes(memory)).to.deep.equal({ '000000010000.seg': SEGMENT_HEADER_BYTES + 11 * record + MIB });
    expect((await dump(again)).length).to.equal(11);
    await again.close();
  });

  for (const sync of ['never', 'interval'] as const) {
    it(`in '${sync}' mode nothing is preallocated`, async () => {
      const memory = new MemoryMedium();
      const store = await open(DIR, { medium: memory, sync });
      await fill(store, 3);
      await store.sync();
      expect(segmentSizes(memory)).to.deep.equal({ '000000010000.seg': SEGMENT_HEADER_BYTES + 3 * RECORD });
      await store.close();
    });
  }

  it('a record that would pass the padding brings more, never past maxSegmentBytes; a sealed segment keeps no padding', async () => {
    const memory = new MemoryMedium();
    const store = await open(DIR, { medium: memory, sync: 'always', maxSegmentBytes: 4096, autoCompact: false });
    const record = RECORD;
    const perSegment = Math.floor((4096 - SEGMENT_HEADER_BYTES) / record);
    await fill(store, perSegment + 1); // one more than fits: the second segment takes it
    expect(segmentSizes(memory)).to.deep.equal({
      '000000010000.seg': SEGMENT_HEADER_BYTES + perSegment * record, // sealed: its padding cut
      '000000020000.seg': 4096, // the padding stops at maxSegmentBytes
    });
    expect(store.stats().diskBytes).to.equal(SEGMENT_HEADER_BYTES + perSegment * record + 4096);
    await store.close();
  });

  it('a compaction seals the padded active segment: the store counts exactly the bytes its files take, before and after', async () => {
    const memory = new MemoryMedium();
    const store = await open(DIR, { medium: memory, sync: 'always', autoCompact: false });
    await fill(store, 5);
    await fill(store, 5); // overwrites: dead bytes for the compaction to drop
    expect(store.stats().diskBytes).to.equal(SEGMENT_HEADER_BYTES + RECORD + MIB);
    await store.compact();
    expect((await dump(store)).length).to.equal(5);
    // Every byte the files take is counted, and nothing more: the input's padding neither leaked
    // into the count nor outlived it.
    expect(store.stats().diskBytes).to.equal(Object.values(segmentSizes(memory)).reduce((a, b) => a + b, 0) +
      memory.files().filter((f) => f.endsWith('.hint')).reduce((sum, f) => sum + memory.readFile(f).length, 0));
    await store.close();
    const again = await open(DIR, { medium: memory });
    expect((await dump(again)).length).to.equal(5);
    await again.close();
  });

  it('counts under maxStoreBytes: it never takes the room the cap leaves, nor the tombstone reserve, and the store holds as many records as without it', async () => {
    const maxStoreBytes = 64 * 1024;
    const reserve = 4096; // maxStoreBytes / 16
    const accepted: Record<string, number> = {};
    for (const sync of ['always', 'never'] as const) {
      const memory = new MemoryMedium();
      const store = await open(DIR, { medium: memory, sync, maxStoreBytes, autoCompact: false });
      let n = 0;
      for (;; n++) {
        try {
          await store.set(key(n), VALUE);
        } catch (err) {
          expect((err as { code?: string }).code).to.equal('LOGKV_STORE_FULL');
          break;
        }
        const files = Object.values(segmentSizes(memory)).reduce((a, b) => a + b, 0);
        expect(files, `after ${n + 1} writes`).to.be.at.most(maxStoreBytes - reserve);
        if (sync === 'always') expect(store.stats().diskBytes).to.equal(maxStoreBytes - reserve);
      }
      accepted[sync] = n;
      await store.delete(key(0)); // the reserve is still there for tombstones
      await store.close();
    }
    expect(accepted.always).to.be.above(0);
    expect(accepted.always).to.equal(accepted.never);
  });

  it('a write whose padding finds the disk full rejects with LOGKV_STORE_FULL, writes nothing, and the next write succeeds', async () => {
    const memory = new MemoryMedium();
    const faulty = new FaultyMedium(memory, { seed: 1 });
    const store = await open(DIR, { medium: faulty, sync: 'always', autoCompact: false });
    await store.set('a', 1);
    const before = memory.readFile(SEG1);
    const recordsEnd = SEGMENT_HEADER_BYTES + setRecordBytes('a', 1);
    // Larger than the padding left: its write carries new padding, and fails.
    faulty.failNext('write', 'ENOSPC', { path: '000000010000.seg' });
    await expectCode(store.set('big', 'b'.repeat(MIB + 1)), 'LOGKV_STORE_FULL');
    expect(await store.get('big')).to.equal(undefined);
    // The repair cut the file back where the acknowledged records end; the padding went with it.
    expect(memory.readFile(SEG1)).to.deep.equal(before.subarray(0, recordsEnd));
    expect(store.stats().diskBytes).to.equal(recordsEnd);
    await store.set('c', 3);
    const size = recordsEnd + setRecordBytes('c', 3);
    expect(segmentSizes(memory)).to.deep.equal({ '000000010000.seg': size + MIB });
    expect(store.stats().diskBytes).to.equal(size + MIB);
    await store.close();
    const again = await open(DIR, { medium: memory });
    expect(await dump(again)).to.deep.equal([['a', 1], ['c', 3]]);
    await again.close();
  });

  describe('a power loss while a record is written into the padding', () => {
    for (const rest of ['absent', 'zeros', 'garbage'] as const) {
      for (const keptBytes of [0, 1, 27, 28, 60, 120]) {
        it(`torn after ${keptBytes} bytes, the rest ${rest}: the acknowledged records stay, the torn one is cut, and writes go on where the records end`, async () => {
          const memory = new MemoryMedium();
          const faulty = new FaultyMedium(memory, { seed: keptBytes });
          const store = await open(DIR, { medium: faulty, sync: 'always' });
          await store.set('a', VALUE);
          await store.set('b', VALUE);
          const recordsEnd = SEGMENT_HEADER_BYTES + 2 * setRecordBytes('a', VALUE);
          let disk: MemoryMedium | undefined;
          faulty.onOperation = (event) => {
            if (disk === undefined && event.phase === 'after' && event.op === 'write' && event.path === SEG1) {
              disk = faulty.diskAfterPowerLoss({ keep: 'all', tearLastWrite: { keptBytes, rest } });
            }
          };
          await store.set('c', VALUE);
          await store.close();
          expect(disk).to.not.equal(undefined);
          const torn = disk!.readFile(SEG1);
          expect(torn.length).to.equal(SEGMENT_HEADER_BYTES + setRecordBytes('a', VALUE) + MIB); // the first write padded the file
          let dataEnd = torn.length;
          while (dataEnd > recordsEnd && torn[dataEnd - 1] === 0) dataEnd--;

          const reopened = await open(DIR, { medium: disk!, sync: 'always' });
          expect(await dump(reopened)).to.deep.equal([['a', VALUE], ['b', VALUE]]);
          if (dataEnd === recordsEnd) {
            // Nothing of the record reached the disk: zeros only, which are padding.
            expect(reopened.recovery.truncated).to.equal(undefined);
          } else {
            // Cut like any torn tail; the sidecar keeps the torn bytes, not the padding after them.
            const sidecar = `${DIR}/${cutName(ID1, recordsEnd)}`;
            expect(reopened.recovery.truncated).to.deep.include({ file: SEG1, offset: recordsEnd, bytes: torn.length - recordsEnd, sidecar });
            expect(disk!.readFile(sidecar)).to.deep.equal(torn.subarray(recordsEnd, dataEnd));
          }
          await reopened.set('d', 4);
          await reopened.close();
          const again = await open(DIR, { medium: disk! });
          expect(await dump(again)).to.deep.equal([['a', VALUE], ['b', VALUE], ['d', 4]]);
          await again.close();
        });
      }
    }
  });

  it('on the real file system: the file is padded while open, and after a clean close `check` finds only records', async () => {
    const dir = tempDir('prealloc');
    const file = path.join(dir, '000000010000.seg');
    const store = await open(dir, { sync: 'always' });
    await fill(store, 20);
    const recordsEnd = SEGMENT_HEADER_BYTES + 20 * RECORD;
    expect(fs.statSync(file).size).to.equal(SEGMENT_HEADER_BYTES + RECORD + MIB);
    await store.close();
    expect(fs.statSync(file).size).to.equal(recordsEnd);
    const report = await checkStore(dir);
    expect(report.ok).to.equal(true);
    expect(report.problems).to.deep.equal([]);
  });

  describe('a segment this process holds read-only (a shared client that took over, docs/durability.md bug 12)', () => {
    const SEG2 = `${DIR}/000000020000.seg`;
    const options = { sync: 'always' as const, maxSegmentBytes: 4096, autoCompact: false as const };
    const perSegment = Math.floor((4096 - SEGMENT_HEADER_BYTES) / RECORD);

    /** A closed store of two segments: the first full, the second holding one record. */
    async function twoSegments(): Promise<MemoryMedium> {
      const memory = new MemoryMedium();
      const store = await open(DIR, { medium: memory, ...options });
      await fill(store, perSegment + 1);
      await store.close();
      expect(segmentSizes(memory)).to.deep.equal({
        '000000010000.seg': SEGMENT_HEADER_BYTES + perSegment * RECORD, '000000020000.seg': SEGMENT_HEADER_BYTES + RECORD,
      });
      return memory;
    }

    /** `file` as a shared client's follower holds it: reads work, a write or a cut is refused and counted. */
    function readOnly(file: MediumFile, refused: string[]): MediumFile {
      const refuse = (op: string) => (): Promise<void> => {
        refused.push(op);
        return Promise.reject(new LogkvError(ErrorCodes.IO, `${file.path} is open for reading only`));
      };
      return {
        path: file.path,
        readSync: (buf, offset, length, position) => file.readSync(buf, offset, length, position),
        write: refuse('write'), truncate: refuse('truncate'),
        sync: () => Promise.resolve(), sizeSync: () => file.sizeSync(), close: () => file.close(),
      };
    }

    /**
     * A store over the files of `memory` whose segment `readOnlyId` is held read-only, its
     * `allocated` claiming `staleBytes` of padding the file does not hold (what a follower that
     * opened it while the owner had it padded saw), as a takeover builds it (lib/shared/role.ts).
     */
    async function storeHolding(memory: MemoryMedium, readOnlyId: number, staleBytes: number, refused: string[]) {
      const resolved = resolveOptions({ medium: memory, ...options });
      const index = new KeyIndex(resolved.clock);
      const found = await recover(memory, DIR, (bytes, start, length, entry) => index.applyBytes(bytes, start, length, entry),
        (count) => index.reserve(count));
      if (found.keydir !== undefined) index.load(found.keydir);
      const list = found.segments.map((s) => {
        if (s.id !== readOnlyId) return s;
        const held = new Segment(s.id, s.path, readOnly(s.file!, refused), s.flushed, s.layout, s.floor, 'read-only');
        held.allocated = s.flushed + staleBytes;
        return held;
      });
      const segments = new SegmentSet(DIR, list);
      const held = { release: () => Promise.resolve(), mayWrite: () => undefined };
      return storeOver<unknown>(writeRooms(memory, DIR, resolved, held,
        { index, segments, reader: new Reader(segments, resolved.cacheBytes), recovery: found.report, nextVersion: found.nextVersion }));
    }

    it("a sealed one is never cut, whatever its `allocated` says: 'always' groups and close() leave its file as it is", async () => {
      const memory = await twoSegments();
      const sealed = memory.readFile(SEG1);
      const refused: string[] = [];
      const store = await storeHolding(memory, ID1, MIB, refused);
      await store.set('after', VALUE);
      await store.set('again', VALUE);
      await store.close();
      expect(refused).to.deep.equal([]);
      expect(memory.readFile(SEG1)).to.deep.equal(sealed);
      expect(segmentSizes(memory)).to.deep.equal({
        '000000010000.seg': SEGMENT_HEADER_BYTES + perSegment * RECORD,
        '000000020000.seg': SEGMENT_HEADER_BYTES + RECORD + setRecordBytes('after', VALUE) + setRecordBytes('again', VALUE),
      });
      const again = await open(DIR, { medium: memory });
      expect((await dump(again)).length).to.equal(perSegment + 3);
      await again.close();
    });

    it('the newest one takes no writes: they start a segment of their own, and its file is left as it is', async () => {
      const memory = await twoSegments();
      const newest = memory.readFile(SEG2);
      const refused: string[] = [];
      const store = await storeHolding(memory, 0x20000, 0, refused);
      await store.set('after', VALUE);
      await store.close();
      expect(refused).to.deep.equal([]);
      expect(memory.readFile(SEG2)).to.deep.equal(newest);
      expect(segmentSizes(memory)).to.deep.equal({
        '000000010000.seg': SEGMENT_HEADER_BYTES + perSegment * RECORD,
        '000000020000.seg': SEGMENT_HEADER_BYTES + RECORD,
        '000000030000.seg': SEGMENT_HEADER_BYTES + setRecordBytes('after', VALUE),
      });
      const again = await open(DIR, { medium: memory });
      expect(await again.get('after')).to.equal(VALUE);
      expect((await dump(again)).length).to.equal(perSegment + 2);
      await again.close();
    });
  });

  describe('a store whose lock is lost (mayWrite() refuses): the padding stays', () => {
    /** A store on `memory` whose lock lose() takes away: from then on mayWrite() refuses every change. */
    async function storeWithLock(memory: MemoryMedium, options: object) {
      let lost: LogkvError | undefined;
      let released = 0;
      const mayWrite = (): LogkvError | undefined => lost;
      await makeDurableDir(memory, DIR);
      const rooms = await recoverRooms(gateWrites(memory, mayWrite), DIR, resolveOptions({ medium: memory, ...options }),
        { release: async () => { released++; }, mayWrite });
      return {
        store: storeOver<unknown>(rooms),
        lose: () => { lost = new LogkvError(ErrorCodes.LOCK_LOST, `${DIR} was taken over`); },
        released: () => released,
      };
    }

    it('at rotation: the sealed segment keeps its padding, no new segment is made, the write rejects LOGKV_LOCK_LOST; close() resolves and leaves no snapshot', async () => {
      const memory = new MemoryMedium();
      const { store, lose, released } = await storeWithLock(memory, { sync: 'always', maxSegmentBytes: 4096, autoCompact: false });
      const perSegment = Math.floor((4096 - SEGMENT_HEADER_BYTES) / RECORD);
      await fill(store, perSegment);
      const recordsEnd = SEGMENT_HEADER_BYTES + perSegment * RECORD;
      expect(segmentSizes(memory)).to.deep.equal({ '000000010000.seg': 4096 });
      const padded = memory.readFile(SEG1);
      const rotating = store.set(key(perSegment), VALUE); // does not fit: it starts the next segment
      lose();
      await expectCode(rotating, 'LOGKV_LOCK_LOST');
      expect(memory.readFile(SEG1)).to.deep.equal(padded);
      expect(padded.subarray(recordsEnd).every((b) => b === 0)).to.equal(true);
      expect(segmentSizes(memory)).to.deep.equal({ '000000010000.seg': 4096 });
      expect(store.stats().diskBytes).to.equal(4096);
      await store.close();
      expect(released()).to.equal(1);
      expect(memory.readFile(SEG1)).to.deep.equal(padded);
      expect(memory.files().map((f) => path.basename(f)).sort()).to.deep.equal(['000000010000.seg']);
      const again = await open(DIR, { medium: memory });
      expect(again.recovery.truncated).to.equal(undefined);
      expect((await dump(again)).map(([k]) => k)).to.deep.equal(Array.from({ length: perSegment }, (_, i) => key(i)));
      await again.close();
    });

    it('at close: close() resolves, cuts nothing and writes no snapshot; the next open appends over the padding', async () => {
      const memory = new MemoryMedium();
      const { store, lose, released } = await storeWithLock(memory, { sync: 'always' });
      await fill(store, 3);
      const padded = memory.readFile(SEG1);
      expect(padded.length).to.equal(SEGMENT_HEADER_BYTES + RECORD + MIB);
      lose();
      await store.close();
      expect(released()).to.equal(1);
      expect(memory.readFile(SEG1)).to.deep.equal(padded);
      expect(memory.files().map((f) => path.basename(f)).sort()).to.deep.equal(['000000010000.seg']);
      const again = await open(DIR, { medium: memory, sync: 'always' });
      expect(again.recovery.truncated).to.equal(undefined);
      expect(again.stats().diskBytes).to.equal(SEGMENT_HEADER_BYTES + RECORD + MIB);
      await again.set(key(3), VALUE);
      expect(segmentSizes(memory)).to.deep.equal({ '000000010000.seg': SEGMENT_HEADER_BYTES + RECORD + MIB });
      expect((await dump(again)).length).to.equal(4);
      await again.close();
      expect(segmentSizes(memory)).to.deep.equal({ '000000010000.seg': SEGMENT_HEADER_BYTES + 4 * RECORD });
    });
  });
});
