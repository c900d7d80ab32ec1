/**
 * Versions (issue 13): every write gets a store-wide, strictly increasing version in call order,
 * kept in its record, unchanged by compaction, reopening and recovery (snapshot, hints, replay);
 * a version is never issued twice, not even one whose record compaction dropped (ABA).
 * Compare-and-set (ifVersion), touch(), getEntry()'s version, and the batch size limit (issue 9,
 * item 5) are here too.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { ErrorCodes, Store, open } from '../lib';
import type { OpenOptions } from '../lib';
import { checkStore } from '../lib/check';
import { crc32 } from '../lib/crc';
import { RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES, TYPE_SET } from '../lib/format';
import { FaultyMedium } from '../lib/medium/faulty';
import { MemoryMedium } from '../lib/medium/memory';
import { encodeValue, prepareValue } from '../lib/codec';
import { expectCode, openFast, segmentBytes, segmentFiles, setRecordBytes, tempDir } from './helpers';
import { encodeRecordV1, encodeSegmentHeaderV1 } from './v1';

// Loose typing on purpose: these specs pass what TypeScript callers cannot, as JavaScript callers can.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = any;

const SNAPSHOT = 'keydir.snapshot';

/** Removes what lets open() skip a replay: the snapshot, and the hints too if `hints`. */
function forget(dir: string, what: { snapshot?: boolean; hints?: boolean }): void {
  for (const name of fs.readdirSync(dir)) {
    if ((what.snapshot && name === SNAPSHOT) || (what.hints && name.endsWith('.hint'))) fs.rmSync(path.join(dir, name));
  }
}

/** The three ways open() finds the index and the version counter. */
const PATHS: Array<{ name: string; forget: { snapshot?: boolean; hints?: boolean }; expect: (s: Store<unknown>) => void }> = [
  { name: 'the snapshot', forget: {}, expect: (s) => expect(s.recovery.snapshot).to.equal(true) },
  { name: 'the hints', forget: { snapshot: true }, expect: (s) => expect(s.recovery.hinted).to.be.greaterThan(0) },
  { name: 'a replay', forget: { snapshot: true, hints: true }, expect: (s) => expect([s.recovery.snapshot, s.recovery.hinted]).to.deep.equal([false, 0]) },
];

/** The version of every live key. */
async function versionsOf(store: Store<unknown>): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const key of store.keys()) out.set(key, (await store.getEntry(key))!.version);
  return out;
}

describe('versions', () => {
  let dir: string;
  let store: Store<unknown>;
  beforeEach(async () => {
    dir = tempDir('versions');
    store = await openFast(dir);
  });
  afterEach(async () => {
    await store.close();
  });

  it('each write gets the next version, in call order: set, create, update resolve with theirs; delete takes one too', async () => {
    const calls = [store.set('a', 1), store.create('b', 2), store.update('a', 3), store.set('c', 4)];
    const deleted = store.delete('c');
    const after = store.set('d', 5);
    expect(await Promise.all(calls)).to.deep.equal([1, 2, 3, 4]);
    expect(await deleted).to.equal(true);
    expect(await after).to.equal(6); // the delete's tombstone was version 5
    expect(await versionsOf(store)).to.deep.equal(new Map([['a', 3], ['b', 2], ['d', 6]]));
  });

  it('a batch resolves with the version of each operation; a delete that wrote nothing gets 0', async () => {
    await store.set('live', 0); // 1
    expect(await store.batch([
      { type: 'set', key: 'x', value: 1 },
      { type: 'delete', key: 'missing' },
      { type: 'delete', key: 'live' },
      { type: 'delete', key: 'live' },
      { type: 'set', key: 'y', value: 2 },
    ])).to.deep.equal([2, 0, 3, 0, 4]);
    expect(await store.set('z', 3)).to.equal(5);
  });

  it('a call that is rejected before it writes takes no version; one that fails at the disk keeps its versions unused', async () => {
    await expectCode(store.set('k', undefined), ErrorCodes.INVALID_VALUE);
    await expectCode(store.update('missing', 1), ErrorCodes.KEY_NOT_FOUND);
    await expectCode(store.batch([{ type: 'set', key: 'a', value: 1 }, { type: 'set', key: 'b', value: () => 1 } as Loose]),
      ErrorCodes.INVALID_VALUE);
    expect(await store.set('k', 1)).to.equal(1);

    const memory = new MemoryMedium();
    const faulty = new FaultyMedium(memory, { seed: 1 });
    const onDisk = await open('/db', { medium: faulty, sync: 'never' });
    expect(await onDisk.set('a', 1)).to.equal(1);
    faulty.fail({ op: 'write' });
    const failed = onDisk.set('b', 2);
    // Its version was visible while it was queued; a failure never gives it back.
    expect((await onDisk.getEntry('b'))!.version).to.equal(2);
    await expectCode(failed, ErrorCodes.IO);
    faulty.clearFaults();
    expect(await onDisk.has('b')).to.equal(false);
    expect(await onDisk.set('b', 3)).to.equal(3);
    await onDisk.close();
    const reopened = await open('/db', { medium: memory, sync: 'never' });
    expect(await versionsOf(reopened)).to.deep.equal(new Map([['a', 1], ['b', 3]]));
    await reopened.close();
  });

  it('getEntry() reads the version from the record: queued, cached, or from the file', async () => {
    await store.close();
    store = await openFast(dir, { cacheBytes: 0 });
    const queued = store.set('k', 'v');
    expect(await store.getEntry('k')).to.deep.equal({ value: 'v', version: 1 });
    await queued;
    await store.sync();
    expect(await store.getEntry('k')).to.deep.equal({ value: 'v', version: 1 });
    await store.set('t', 'x', { expiresAt: 4_102_444_800_000 });
    expect(await store.getEntry('t')).to.deep.equal({ value: 'x', version: 2, expiresAt: 4_102_444_800_000 });
  });

  it('survive compaction and reopening by the snapshot, by the hints and by a replay, and the counter goes on above them', async () => {
    await store.close();
    const options: OpenOptions = { maxSegmentBytes: 2048, autoCompact: false };
    store = await openFast(dir, options);
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < 30; i++) await store.set(`k${i}`, `${round}:${i}`.padEnd(60, '.'));
      for (let i = 0; i < 30; i += 7) await store.delete(`k${i}`);
    }
    await store.set('last', 'dropped soon');
    await store.delete('last');
    const issued = 4 * (30 + 5) + 2;
    const before = await versionsOf(store);
    await store.compact();
    expect(await versionsOf(store)).to.deep.equal(before);
    await store.close();
    const pristine = new Map(fs.readdirSync(dir).filter((n) => /\.(seg|hint|snapshot)$/.test(n))
      .map((n) => [n, fs.readFileSync(path.join(dir, n))] as const));
    for (const p of PATHS) {
      for (const [name, bytes] of pristine) fs.writeFileSync(path.join(dir, name), bytes);
      forget(dir, p.forget);
      store = await openFast(dir, options);
      p.expect(store);
      expect(await versionsOf(store), p.name).to.deep.equal(before);
      // The newest records (the set and delete of 'last') were dropped: their versions are not reissued.
      expect(await store.set('after', 1), p.name).to.equal(issued + 1);
      await store.close();
      for (const name of segmentFiles(dir)) if (!pristine.has(name)) fs.rmSync(path.join(dir, name));
    }
  });

  describe('a compaction that drops the newest records never lets a reopen issue their versions again (ABA)', () => {
    for (const p of PATHS) {
      it(`every record dropped: one output without records keeps the floor; reopened by ${p.name}`, async () => {
        expect(await store.set('k', 'v99')).to.equal(1);
        expect(await store.delete('k')).to.equal(true); // version 2
        const result = await store.compact();
        expect([result.recordsKept, result.recordsDropped]).to.deep.equal([0, 2]);
        await store.close();
        forget(dir, p.forget);
        // The output holds no record; its header carries the floor: 1 + the highest dropped version.
        const [output] = segmentFiles(dir);
        expect(parseInt(output, 16) % 0x10000).to.not.equal(0);
        const bytes = fs.readFileSync(path.join(dir, output));
        expect(bytes.length).to.equal(SEGMENT_HEADER_BYTES);
        expect(bytes.readUInt32LE(16)).to.equal(3);
        store = await openFast(dir);
        expect(await store.has('k')).to.equal(false);
        // A caller holding "k at version 1" must not match a new k.
        expect(await store.set('k', 'other')).to.equal(3);
        await expectCode(store.set('k', 'stale', { ifVersion: 1 }), ErrorCodes.VERSION_MISMATCH);
      });
    }

    it('the newest records dropped, older ones kept: the outputs carry the floor; reopened by the hints and by a replay', async () => {
      await store.set('a', 1); // 1
      await store.set('k', 2); // 2
      await store.delete('k'); // 3
      await store.compact();
      await store.close();
      for (const what of [{ snapshot: true }, { snapshot: true, hints: true }]) {
        forget(dir, what);
        store = await openFast(dir);
        expect((await store.getEntry('a'))!.version).to.equal(1);
        expect(await store.sync().then(() => store.set('k', 3))).to.equal(4);
        await store.close();
        fs.rmSync(path.join(dir, segmentFiles(dir).pop()!)); // the write segment that write made
      }
    });

    it('an idle store compacted again and again keeps its floor and makes no new files', async () => {
      await store.set('k', 1);
      await store.delete('k');
      await store.compact();
      const files = fs.readdirSync(dir).sort();
      for (let i = 0; i < 200; i++) await store.compact();
      expect(fs.readdirSync(dir).sort()).to.deep.equal(files);
      await store.close();
      forget(dir, { snapshot: true, hints: true });
      store = await openFast(dir);
      expect(await store.set('k', 2)).to.equal(3);
    });

    it('a second compaction that drops everything again carries the first one\'s floor on', async () => {
      await store.set('k', 1);
      await store.delete('k');
      await store.compact(); // floor 3, in an output without records
      await store.set('j', 1); // 3
      await store.delete('j'); // 4
      await store.compact(); // its inputs: that output and the write segment; floor 5
      await store.close();
      expect(segmentFiles(dir)).to.have.length(1);
      forget(dir, { snapshot: true, hints: true });
      store = await openFast(dir);
      expect(await store.set('k', 2)).to.equal(5);
    });
  });

  it('a newest segment reset after an interrupted creation gets the counter as its floor', async () => {
    for (let i = 0; i < 3; i++) await store.set(`k${i}`, i);
    await store.close();
    forget(dir, { snapshot: true });
    fs.writeFileSync(path.join(dir, '000000020000.seg'), Buffer.alloc(10));
    store = await openFast(dir);
    expect(fs.readFileSync(path.join(dir, '000000020000.seg')).readUInt32LE(16)).to.equal(4);
    expect(await store.set('k', 1)).to.equal(4);
  });

  it('a version-1 compaction output with its version-1 hint: open uses the hint, and the records read as version 0', async () => {
    await store.close();
    const value = encodeValue(prepareValue('old'));
    const records = ['a', 'b'].map((key) => encodeRecordV1(TYPE_SET, 0, key, value, 0));
    const segment = Buffer.concat([encodeSegmentHeaderV1(0x10001), ...records]);
    fs.writeFileSync(path.join(dir, '000000010001.seg'), segment);
    fs.writeFileSync(path.join(dir, '000000010001.hint'), hintV1(0x10001, segment.length, ['a', 'b'], records.map((r) => r.length)));
    forget(dir, { snapshot: true });
    for (const name of segmentFiles(dir)) if (name !== '000000010001.seg') fs.rmSync(path.join(dir, name));
    store = await openFast(dir);
    expect([store.recovery.hinted, store.recovery.hintsIgnored]).to.deep.equal([1, []]);
    expect(await store.getEntry('a')).to.deep.equal({ value: 'old', version: 0 });
    expect(await store.set('c', 1)).to.equal(1);
    const report = await store.close().then(() => checkStore(dir));
    expect(report.problems.filter((p) => p.severity !== 'notice')).to.deep.equal([]);
    store = await openFast(dir);
  });

  it('a snapshot of format version 1 is ignored: the store replays', async () => {
    await store.set('k', 1);
    await store.close();
    const file = path.join(dir, SNAPSHOT);
    const bytes = fs.readFileSync(file);
    // The same snapshot with a version-1 header (20 bytes, no next version), as version 1 wrote them.
    const header = encodeSegmentHeaderV1(0, 3);
    fs.writeFileSync(file, Buffer.concat([header, bytes.subarray(SEGMENT_HEADER_BYTES)]));
    store = await openFast(dir);
    expect(store.recovery.snapshot).to.equal(false);
    expect(store.recovery.snapshotIgnored).to.equal('a format version 1 snapshot');
    expect(await store.getEntry('k')).to.deep.equal({ value: 1, version: 1 });
    expect(await store.set('k', 2)).to.equal(2);
  });

  it('check reports versions out of order in a segment as corruption', async () => {
    await store.set('a', 1);
    await store.set('b', 2);
    await store.close();
    forget(dir, { snapshot: true });
    const file = path.join(dir, segmentFiles(dir)[0]);
    const bytes = fs.readFileSync(file);
    const second = SEGMENT_HEADER_BYTES + setRecordBytes('a', 1);
    // The second record given version 1 again, its CRC fixed: a record logkv never writes.
    bytes.writeUInt32LE(1, second + 20);
    bytes.writeUInt32LE(crc32(bytes.subarray(second + 4, second + setRecordBytes('b', 2))), second);
    fs.writeFileSync(file, bytes);
    const report = await checkStore(dir);
    expect(report.problems.map((p) => [p.severity, p.offset])).to.deep.equal([['corruption', second]]);
    store = await openFast(dir);
  });
});

/** A version-1 hint file, as version 1 of logkv wrote them (docs/format.md). */
function hintV1(id: number, segmentSize: number, keys: string[], lengths: number[]): Buffer {
  const entries = keys.map((key, i) => {
    const entry = Buffer.alloc(14 + Buffer.byteLength(key));
    entry.writeUInt16LE(Buffer.byteLength(key), 0);
    entry.writeUInt32LE(lengths[i], 2);
    entry.write(key, 14);
    return entry;
  });
  const fixed = Buffer.alloc(12);
  fixed.writeUInt32LE(segmentSize, 0);
  fixed.writeUInt32LE(keys.length, 8);
  const body = Buffer.concat([fixed, ...entries]);
  const trailer = Buffer.alloc(4);
  trailer.writeUInt32LE(crc32(body), 0);
  return Buffer.concat([encodeSegmentHeaderV1(id, 2), body, trailer]);
}

describe('compare-and-set (ifVersion)', () => {
  let dir: string;
  let store: Store<unknown>;
  beforeEach(async () => {
    dir = tempDir('cas');
    store = await openFast(dir);
  });
  afterEach(async () => {
    await store.close();
  });

  it('set, update and delete write only if the key is live with exactly that version', async () => {
    const v1 = await store.set('k', 'a');
    const v2 = await store.set('k', 'b', { ifVersion: v1 });
    expect(v2).to.equal(v1 + 1);
    const v3 = await store.update('k', 'c', { ifVersion: v2 });
    expect(await store.getEntry('k')).to.deep.equal({ value: 'c', version: v3 });
    expect(await store.delete('k', { ifVersion: v3 })).to.equal(true);
    expect(await store.has('k')).to.equal(false);
  });

  it('a mismatch rejects LOGKV_VERSION_MISMATCH with the key, the expected and the found version, and writes nothing', async () => {
    await store.set('k', 'a'); // 1
    await store.set('k', 'b'); // 2
    await store.sync();
    const bytes = segmentBytes(dir);
    let err = await expectCode(store.set('k', 'x', { ifVersion: 1 }), ErrorCodes.VERSION_MISMATCH);
    expect(err.details).to.deep.equal({ key: 'k', ifVersion: 1, version: 2 });
    err = await expectCode(store.update('k', 'x', { ifVersion: 3 }), ErrorCodes.VERSION_MISMATCH);
    expect(err.details).to.deep.equal({ key: 'k', ifVersion: 3, version: 2 });
    await expectCode(store.delete('k', { ifVersion: 1 }), ErrorCodes.VERSION_MISMATCH);
    // A key that is not live matches no version: missing, deleted, or expired.
    err = await expectCode(store.set('missing', 'x', { ifVersion: 1 }), ErrorCodes.VERSION_MISMATCH);
    expect(err.details).to.deep.equal({ key: 'missing', ifVersion: 1 });
    await expectCode(store.update('missing', 'x', { ifVersion: 1 }), ErrorCodes.VERSION_MISMATCH);
    await expectCode(store.delete('missing', { ifVersion: 1 }), ErrorCodes.VERSION_MISMATCH);
    await store.sync();
    expect(segmentBytes(dir)).to.equal(bytes);
    expect(await store.getEntry('k')).to.deep.equal({ value: 'b', version: 2 });
    expect(await store.set('next', 1)).to.equal(3);
  });

  it('an expired key matches no version', async () => {
    let now = 1_000_000;
    await store.close();
    store = await openFast(dir, { clock: () => now });
    const v = await store.set('k', 'a', { ttl: 10 });
    now += 10;
    await expectCode(store.set('k', 'b', { ifVersion: v }), ErrorCodes.VERSION_MISMATCH);
    expect(await store.has('k')).to.equal(false);
  });

  it('is decided at the call\'s place in the call order, against writes still queued', async () => {
    const first = store.set('k', 'a'); // 1, queued
    const second = store.set('k', 'b', { ifVersion: 1 }); // sees version 1 at once
    const third = store.set('k', 'c', { ifVersion: 1 }); // by now k has version 2
    expect(await first).to.equal(1);
    expect(await second).to.equal(2);
    await expectCode(third, ErrorCodes.VERSION_MISMATCH);
  });

  it('ifVersion must be a version: an integer from 0 to 2^53 - 1; create() takes none', async () => {
    await store.set('k', 1);
    for (const bad of [-1, 1.5, NaN, Infinity, 2 ** 53, '1', null, 1n]) {
      await expectCode(store.set('k', 2, { ifVersion: bad } as Loose), ErrorCodes.INVALID_ARGUMENT);
      await expectCode(store.update('k', 2, { ifVersion: bad } as Loose), ErrorCodes.INVALID_ARGUMENT);
      await expectCode(store.delete('k', { ifVersion: bad } as Loose), ErrorCodes.INVALID_ARGUMENT);
      await expectCode(store.batch([{ type: 'set', key: 'k', value: 2, ifVersion: bad } as Loose]), ErrorCodes.INVALID_ARGUMENT);
    }
    await expectCode(store.create('new', 1, { ifVersion: 1 } as Loose), ErrorCodes.INVALID_ARGUMENT);
    await expectCode(store.delete('k', 'nope' as Loose), ErrorCodes.INVALID_ARGUMENT);
    expect(await store.getEntry('k')).to.deep.equal({ value: 1, version: 1 });
  });

  describe('in a batch', () => {
    it('each ifVersion is checked at its point of the batch, all or nothing', async () => {
      const a = await store.set('a', 1); // 1
      const b = await store.set('b', 1); // 2
      // 'a' is set by the batch's first operation (version 3): the third asks for that version.
      expect(await store.batch([
        { type: 'set', key: 'a', value: 2, ifVersion: a },
        { type: 'set', key: 'b', value: 2, ifVersion: b },
        { type: 'set', key: 'a', value: 3, ifVersion: 3 },
        { type: 'delete', key: 'b', ifVersion: 4 },
      ])).to.deep.equal([3, 4, 5, 6]);
      expect(await store.getEntry('a')).to.deep.equal({ value: 3, version: 5 });
      expect(await store.has('b')).to.equal(false);
    });

    it('one mismatch anywhere writes none of it', async () => {
      await store.set('a', 1); // 1
      await store.set('b', 1); // 2
      await store.sync();
      const bytes = segmentBytes(dir);
      const cases: Array<Array<{ type: 'set' | 'delete'; key: string; value?: unknown; ifVersion?: number }>> = [
        [{ type: 'set', key: 'a', value: 2, ifVersion: 1 }, { type: 'set', key: 'b', value: 2, ifVersion: 1 }],
        [{ type: 'set', key: 'a', value: 2 }, { type: 'set', key: 'a', value: 3, ifVersion: 1 }],
        [{ type: 'delete', key: 'a' }, { type: 'delete', key: 'a', ifVersion: 1 }],
        [{ type: 'set', key: 'c', value: 1 }, { type: 'delete', key: 'missing', ifVersion: 0 }],
      ];
      for (const ops of cases) {
        const err = await expectCode(store.batch(ops as Loose), ErrorCodes.VERSION_MISMATCH);
        expect(err.details.key).to.be.oneOf(['a', 'b', 'missing']);
      }
      await store.sync();
      expect(segmentBytes(dir)).to.equal(bytes);
      expect([await store.get('a'), await store.get('b'), await store.has('c')]).to.deep.equal([1, 1, false]);
      expect(await store.set('next', 1)).to.equal(3);
    });
  });

  describe('races', () => {
    for (const sync of ['never', 'always'] as const) {
      it(`50 callers in one tick CAS the same key from the same version: exactly one wins, the first in call order (sync '${sync}')`, async () => {
        await store.close();
        store = await openFast(tempDir('cas-race'), { sync });
        const from = await store.set('k', 'start');
        const calls = Array.from({ length: 50 }, (_, i) => store.set('k', `caller ${i}`, { ifVersion: from }));
        const settled = await Promise.allSettled(calls);
        const won = settled.flatMap((s, i) => (s.status === 'fulfilled' ? [i] : []));
        expect(won).to.deep.equal([0]);
        for (const s of settled.slice(1)) expect((s as PromiseRejectedResult).reason.code).to.equal(ErrorCodes.VERSION_MISMATCH);
        expect(await store.getEntry('k')).to.deep.equal({ value: 'caller 0', version: from + 1 });
      });
    }

    it('callers interleaved over many ticks, each a read-modify-CAS loop: no update is lost, and each version is won once', async () => {
      const workers = 12;
      const perWorker = 25;
      await store.set('counter', 0);
      const won: number[] = [];
      let mismatches = 0;
      let seed = 7;
      const pause = async (): Promise<void> => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        for (let i = seed % 4; i > 0; i--) await new Promise<void>((resolve) => setImmediate(resolve));
      };
      const worker = async (): Promise<void> => {
        for (let done = 0; done < perWorker;) {
          const { value, version } = (await store.getEntry('counter'))!;
          await pause();
          try {
            won.push(await store.set('counter', (value as number) + 1, { ifVersion: version }));
            done++;
          } catch (err) {
            expect((err as { code?: string }).code).to.equal(ErrorCodes.VERSION_MISMATCH);
            mismatches++;
          }
          await pause();
        }
      };
      await Promise.all(Array.from({ length: workers }, worker));
      expect(await store.get('counter')).to.equal(workers * perWorker);
      expect(mismatches).to.be.greaterThan(0);
      expect(new Set(won).size).to.equal(won.length);
      // Every successful CAS read the version the one before it wrote.
      expect([...won].sort((x, y) => x - y)).to.deep.equal(Array.from({ length: won.length }, (_, i) => i + 2));
    });
  });
});

describe('touch()', () => {
  let dir: string;
  let now: number;
  let store: Store<unknown>;
  beforeEach(async () => {
    dir = tempDir('touch');
    now = 1_700_000_000_000;
    store = await openFast(dir, { clock: () => now });
  });
  afterEach(async () => {
    await store.close();
  });

  it('gives a live key a new expiry and a new version, with the same value bytes; resolves true', async () => {
    const value = { n: 1, text: 'kept as it is', when: new Date(5) };
    await store.set('k', value, { ttl: 1000 });
    expect(await store.touch('k', { ttl: 5000 })).to.equal(true);
    expect(await store.getEntry('k')).to.deep.equal({ value, version: 2, expiresAt: now + 5000 });
    expect(await store.touch('k', { expiresAt: now + 10 })).to.equal(true);
    expect(await store.getEntry('k')).to.deep.equal({ value, version: 3, expiresAt: now + 10 });
    await store.set('p', 'no expiry yet');
    expect(await store.touch('p', { ttl: 1 })).to.equal(true);
    expect((await store.getEntry('p'))!.expiresAt).to.equal(now + 1);
    await store.sync();
    // The records' value bytes are identical: touch never re-encodes a value.
    const bytes = fs.readFileSync(path.join(dir, segmentFiles(dir)[0]));
    const first = SEGMENT_HEADER_BYTES;
    const length = setRecordBytes('k', value);
    const valueOf = (at: number): Buffer => bytes.subarray(at + RECORD_HEADER_BYTES + 1, at + length);
    expect(valueOf(first + length)).to.deep.equal(valueOf(first));
    now += 11;
    expect(await store.has('k')).to.equal(false);
  });

  it('resolves false and writes nothing for a key that is not live', async () => {
    await store.set('gone', 1);
    await store.delete('gone');
    await store.set('expired', 1, { ttl: 5 });
    now += 5;
    await store.sync();
    const bytes = segmentBytes(dir);
    for (const key of ['missing', 'gone', 'expired']) expect(await store.touch(key, { ttl: 1000 }), key).to.equal(false);
    await store.sync();
    expect(segmentBytes(dir)).to.equal(bytes);
    expect(await store.set('x', 1)).to.equal(4);
  });

  it('survives reopening, as a write does', async () => {
    await store.set('k', 'v', { ttl: 100 });
    await store.touch('k', { ttl: 10_000 });
    await store.close();
    now += 1000;
    store = await openFast(dir, { clock: () => now });
    expect(await store.getEntry('k')).to.deep.equal({ value: 'v', version: 2, expiresAt: now - 1000 + 10_000 });
  });

  it('takes exactly one of ttl or expiresAt, and a key', async () => {
    await store.set('k', 1);
    for (const bad of [undefined, null, {}, { ttl: 1, expiresAt: now + 1 }, { ttl: 0 }, { ttl: -1 }, { expiresAt: 'soon' }, 5]) {
      await expectCode(store.touch('k', bad as Loose), ErrorCodes.INVALID_ARGUMENT);
    }
    await expectCode(store.touch('', { ttl: 1 }), ErrorCodes.INVALID_KEY);
    expect(await store.getEntry('k')).to.deep.equal({ value: 1, version: 1 });
  });
});

describe('a batch larger than a segment (issue 9, item 5)', () => {
  it('is rejected with LOGKV_INVALID_ARGUMENT and writes nothing: a batch must fit in one segment', async () => {
    const dir = tempDir('batch-limit');
    const store = await openFast(dir, { maxSegmentBytes: 1024 });
    await store.set('before', 1);
    await store.sync();
    const bytes = segmentBytes(dir);
    const value = 'v'.repeat(300);
    const ops = [1, 2, 3, 4].map((i) => ({ type: 'set' as const, key: `b${i}`, value }));
    const err = await expectCode(store.batch(ops), ErrorCodes.INVALID_ARGUMENT);
    expect(err.details).to.deep.equal({ option: 'maxSegmentBytes', bytes: 4 * setRecordBytes('b1', value) });
    await store.sync();
    expect(segmentBytes(dir)).to.equal(bytes);
    expect(store.size).to.equal(1);
    // Tombstones count too, but only those that write: deletes of keys that are not live do not.
    const keys = Array.from({ length: 40 }, (_, i) => `k${String(i).padStart(2, '0')}`);
    for (let i = 0; i < keys.length; i += 10) await store.batch(keys.slice(i, i + 10).map((key) => ({ type: 'set' as const, key, value: 1 })));
    await expectCode(store.batch(keys.map((key) => ({ type: 'delete' as const, key }))), ErrorCodes.INVALID_ARGUMENT);
    expect(store.size).to.equal(41);
    expect(await store.batch(Array.from({ length: 100 }, (_, i) => ({ type: 'delete' as const, key: `missing${i}` }))))
      .to.deep.equal(Array(100).fill(0));
    expect(await store.set('after', 1)).to.equal(42);
    await store.close();
  });

  it('a batch of exactly maxSegmentBytes of records is taken whole, in a segment of its own; a single larger record still is', async () => {
    const dir = tempDir('batch-limit');
    const store = await openFast(dir, { maxSegmentBytes: 1024 });
    await store.set('first', 1);
    // 1024 bytes in all: b1's value is a str16 (3 bytes of msgpack header, then the characters).
    const fill = 'y'.repeat(1024 - setRecordBytes('b0', 'x') - RECORD_HEADER_BYTES - 'b1'.length - 3);
    const ops = [{ type: 'set' as const, key: 'b0', value: 'x' }, { type: 'set' as const, key: 'b1', value: fill }];
    expect(setRecordBytes('b0', 'x') + setRecordBytes('b1', fill)).to.equal(1024);
    expect(await store.batch(ops)).to.deep.equal([2, 3]);
    expect(await store.set('big', 'z'.repeat(4000))).to.equal(4);
    await store.close();
    const reopened = await openFast(dir, { maxSegmentBytes: 1024 });
    expect(await reopened.get('b1')).to.equal(fill);
    expect(await reopened.get('big')).to.equal('z'.repeat(4000));
    await reopened.close();
  });
});

describe('await using', () => {
  it('closes the store at the end of the block (Symbol.asyncDispose)', async () => {
    const dir = tempDir('using');
    let held: Store<unknown> | undefined;
    {
      await using store = await open(dir, { sync: 'never' });
      held = store;
      await store.set('k', 1);
    }
    expect(held.closed).to.equal(true);
    const again = await open(dir);
    expect(await again.get('k')).to.equal(1);
    await again[Symbol.asyncDispose]();
    expect(again.closed).to.equal(true);
  });
});
