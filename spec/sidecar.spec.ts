/**
 * Cut bytes are kept, not destroyed (issue 9, item 4): before open() cuts a torn tail it copies
 * the bytes into a sidecar file `<segment id>-<offset hex>.cut`, synced with its directory entry,
 * unless they are all zeros. A full disk fails the open and leaves the segment as it was; a crash
 * at any step of the protocol leaves the bytes in the segment or in a whole sidecar, and the next
 * open goes on as usual. `logkv check` lists sidecars as notices.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { ErrorCodes, open } from '../lib';
import type { OpenOptions } from '../lib';
import { checkStore } from '../lib/check';
import { FaultyMedium } from '../lib/medium/faulty';
import { DROP_UNSYNCED, KEEP_UNSYNCED, MemoryMedium } from '../lib/medium/memory';
import { cutName } from '../lib/segment';
import { encodeValue, prepareValue } from '../lib/codec';
import { TYPE_SET } from '../lib/format';
import { dump, expectCode, openAfterCrash, setRecordBytes, tempDir } from './helpers';
import { encodeRecordV1, encodeSegmentHeaderV1 } from './v1';

const SEG1 = '000000010000.seg';
const ID1 = 0x10000;

/** A closed store of a few keys and then `last`; the last record's span in its only segment. */
async function storeWithLast(last: unknown): Promise<{ dir: string; file: string; lastStart: number; pristine: Buffer }> {
  const dir = tempDir();
  const store = await openAfterCrash(dir);
  for (let i = 0; i < 4; i++) await store.set(`k${i}`, `value ${i}`);
  await store.set('last', last);
  await store.close();
  const file = path.join(dir, SEG1);
  const pristine = fs.readFileSync(file);
  return { dir, file, lastStart: pristine.length - setRecordBytes('last', last), pristine };
}

const cutFiles = (dir: string): string[] => fs.readdirSync(dir).filter((name) => name.includes('.cut')).sort();

describe('recovery keeps cut bytes in a sidecar', () => {
  it('the last record cut at every length: the sidecar holds exactly the cut bytes, and check lists it', async () => {
    const { dir, file, lastStart, pristine } = await storeWithLast({ text: 'the last record', n: 7 });
    for (let cut = lastStart + 1; cut < pristine.length; cut++) {
      fs.writeFileSync(file, pristine.subarray(0, cut));
      const store = await openAfterCrash(dir); // removes the sidecar the previous round left
      const where = `cut at ${cut}`;
      const sidecar = path.join(dir, cutName(ID1, lastStart));
      expect(store.recovery.truncated, where).to.deep.include({ file, offset: lastStart, bytes: cut - lastStart, sidecar });
      expect(cutFiles(dir), where).to.deep.equal([cutName(ID1, lastStart)]);
      expect(fs.readFileSync(sidecar), where).to.deep.equal(pristine.subarray(lastStart, cut));
      expect((await dump(store)).map(([k]) => k), where).to.deep.equal(['k0', 'k1', 'k2', 'k3']);
      await store.close();
      const report = await checkStore(dir);
      expect(report.ok, where).to.equal(true);
      expect(report.problems.map((p) => [p.severity, path.basename(p.file), p.offset]), where)
        .to.deep.equal([['notice', cutName(ID1, lastStart), 0]]);
    }
  });

  const zeroTails: Array<[string, number]> = [['1 zero byte', 1], ['27 zero bytes', 27], ['4096 zero bytes', 4096]];
  for (const [name, bytes] of zeroTails) {
    it(`a tail of ${name}: zero padding, neither cut nor kept`, async () => {
      const { dir, file, pristine } = await storeWithLast('v');
      fs.appendFileSync(file, Buffer.alloc(bytes));
      const store = await openAfterCrash(dir);
      expect(store.recovery.truncated).to.equal(undefined);
      expect(fs.statSync(file).size).to.equal(pristine.length + bytes);
      expect(cutFiles(dir)).to.deep.equal([]);
      await store.close();
    });

    it(`a tail of ${name} in a version-1 segment (which has no padding): cut, and nothing kept`, async () => {
      const dir = tempDir();
      const file = path.join(dir, SEG1);
      const records = Buffer.concat([encodeSegmentHeaderV1(ID1), encodeRecordV1(TYPE_SET, 0, 'k', encodeValue(prepareValue(1)), 0)]);
      fs.writeFileSync(file, Buffer.concat([records, Buffer.alloc(bytes)]));
      const store = await openAfterCrash(dir);
      expect(store.recovery.truncated).to.deep.include({ file, offset: records.length, bytes });
      expect(store.recovery.truncated!.sidecar).to.equal(undefined);
      expect(cutFiles(dir)).to.deep.equal([]);
      expect(await store.get('k')).to.equal(1);
      await store.close();
    });
  }

  it('zeros followed by a non-zero byte: kept', async () => {
    const { dir, file, pristine } = await storeWithLast('v');
    const tail = Buffer.concat([Buffer.alloc(100), Buffer.from([1])]);
    fs.appendFileSync(file, tail);
    const store = await openAfterCrash(dir);
    expect(store.recovery.truncated!.sidecar).to.equal(path.join(dir, cutName(ID1, pristine.length)));
    expect(fs.readFileSync(store.recovery.truncated!.sidecar!)).to.deep.equal(tail);
    await store.close();
  });

  it('an interrupted segment creation is reset with no sidecar: a torn header holds no record', async () => {
    const { dir } = await storeWithLast('v');
    fs.writeFileSync(path.join(dir, '000000020000.seg'), Buffer.from('LKVS\x01\x00\x01'));
    const store = await openAfterCrash(dir);
    expect(store.recovery.truncated).to.deep.include({ offset: 0, bytes: 7 });
    expect(store.recovery.truncated!.sidecar).to.equal(undefined);
    expect(cutFiles(dir)).to.deep.equal([]);
    await store.close();
  });

  it('a sidecar of several MiB is copied whole', async () => {
    const big = Buffer.alloc(3 * 1024 * 1024 + 5, 7);
    const { dir, file, lastStart, pristine } = await storeWithLast(big);
    fs.writeFileSync(file, pristine.subarray(0, pristine.length - 1));
    const store = await openAfterCrash(dir);
    expect(fs.readFileSync(store.recovery.truncated!.sidecar!)).to.deep.equal(pristine.subarray(lastStart, pristine.length - 1));
    await store.close();
  });
});

describe('recovery keeps cut bytes: failures and crashes', () => {
  const DIR = '/db';
  const SEGMENT = `${DIR}/${SEG1}`;
  const OPTIONS: OpenOptions = { sync: 'never', autoCompact: false };

  /** A memory disk with a store of k0..k3 whose segment ends in `tail` (durable); returns the tail's offset. */
  async function tornDisk(tail: Buffer): Promise<{ memory: MemoryMedium; offset: number }> {
    const memory = new MemoryMedium();
    const store = await open(DIR, { ...OPTIONS, medium: memory });
    for (let i = 0; i < 4; i++) await store.set(`k${i}`, `value ${i}`);
    await store.close();
    for (const name of await memory.list(DIR)) if (!name.endsWith('.seg')) await memory.remove(`${DIR}/${name}`);
    const file = await memory.open(SEGMENT);
    const offset = file.sizeSync();
    await file.write([tail], offset);
    await file.sync();
    await file.close();
    await memory.syncDir(DIR);
    return { memory, offset };
  }

  const TAIL = Buffer.from('a torn record: these bytes are not zero');

  const failures: Array<{ name: string; op: 'open' | 'write' | 'sync' | 'rename' | 'syncDir'; path: RegExp; code: 'ENOSPC' | 'EIO'; expectCode: string }> = [
    { name: 'creating the sidecar fails with ENOSPC', op: 'open', path: /\.cut\.tmp$/, code: 'ENOSPC', expectCode: ErrorCodes.STORE_FULL },
    { name: 'writing the sidecar fails with ENOSPC', op: 'write', path: /\.cut\.tmp$/, code: 'ENOSPC', expectCode: ErrorCodes.STORE_FULL },
    { name: 'syncing the sidecar fails with EIO', op: 'sync', path: /\.cut\.tmp$/, code: 'EIO', expectCode: ErrorCodes.IO },
    { name: 'renaming the sidecar fails with EIO', op: 'rename', path: /\.cut\.tmp$/, code: 'EIO', expectCode: ErrorCodes.IO },
    { name: 'syncing the directory after the rename fails with EIO', op: 'syncDir', path: /^\/db$/, code: 'EIO', expectCode: ErrorCodes.IO },
  ];
  for (const f of failures) {
    it(`${f.name}: open() rejects with ${f.expectCode}, the segment is not cut, and the next open() cuts it`, async () => {
      const { memory, offset } = await tornDisk(TAIL);
      const faulty = new FaultyMedium(memory, { seed: 1 });
      // open() syncs the directory once before recovery (makeDurableDir): the second is the one
      // after the sidecar's rename (the spec below proves the sidecar is there if it fired late).
      faulty.fail({ op: f.op, path: f.path, code: f.code, nth: f.op === 'syncDir' ? 2 : 1 });
      await expectCode(open(DIR, { ...OPTIONS, medium: faulty }), f.expectCode as typeof ErrorCodes.IO);
      expect(faulty.calls.rename ?? 0, 'no rename after the failure').to.equal(f.op === 'rename' || f.op === 'syncDir' ? 1 : 0);
      expect(memory.readFile(SEGMENT).length, 'the segment keeps its tail').to.equal(offset + TAIL.length);
      expect((await memory.list(DIR)).filter((n) => n.endsWith('.tmp')), 'no temporary file left').to.deep.equal([]);
      const store = await open(DIR, { ...OPTIONS, medium: memory });
      expect(store.recovery.truncated).to.deep.include({ offset, bytes: TAIL.length, sidecar: `${DIR}/${cutName(ID1, offset)}` });
      expect(memory.readFile(`${DIR}/${cutName(ID1, offset)}`)).to.deep.equal(TAIL);
      expect(store.size).to.equal(4);
      await store.close();
    });
  }

  it('a power loss at every step of the cut: the tail is in the segment or whole in the sidecar, and the next open() is clean', async () => {
    const { memory, offset } = await tornDisk(TAIL);
    const disks: Array<{ disk: MemoryMedium; at: string }> = [];
    const faulty = new FaultyMedium(memory, {
      seed: 2,
      onOperation: (event) => {
        if (event.phase !== 'before') return;
        const at = `before ${event.op} ${event.path} (#${event.index})`;
        disks.push({ disk: memory.crash(DROP_UNSYNCED), at: `${at}, unsynced dropped` });
        disks.push({ disk: memory.crash(KEEP_UNSYNCED), at: `${at}, unsynced kept` });
      },
    });
    const store = await open(DIR, { ...OPTIONS, medium: faulty });
    expect(store.recovery.truncated?.offset).to.equal(offset);
    await store.close();
    expect(disks.length).to.be.greaterThan(10);
    const sidecar = `${DIR}/${cutName(ID1, offset)}`;
    for (const { disk, at } of disks) {
      const segment = disk.readFile(SEGMENT);
      const inSegment = segment.length === offset + TAIL.length && segment.subarray(offset).equals(TAIL);
      const inSidecar = disk.exists(sidecar) && disk.readFile(sidecar).equals(TAIL);
      expect(inSegment || inSidecar, `${at}: the tail is somewhere`).to.equal(true);
      const reopened = await open(DIR, { ...OPTIONS, medium: disk });
      expect(reopened.size, at).to.equal(4);
      expect(disk.readFile(SEGMENT).length, at).to.equal(offset);
      expect(disk.readFile(sidecar), at).to.deep.equal(TAIL);
      expect((await disk.list(DIR)).filter((n) => n.includes('.cut')), at).to.deep.equal([cutName(ID1, offset)]);
      await reopened.close();
    }
  });
});
