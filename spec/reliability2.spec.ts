/**
 * Issue 9, round 2 leftovers: each compact() call gets the kind it asked for, compactions of an
 * idle store take no segment ids (and ids never creep), and delete() of an expired key writes a
 * tombstone so a clock stepped back cannot bring it back.
 */
import { expect } from 'chai';
import * as path from 'path';
import { ErrorCodes, open } from '../lib';
import type { OpenOptions } from '../lib';
import { Entry, KeyDir } from '../lib/keydir';
import { SEGMENT_ID_STEP, parseSegmentName } from '../lib/segment';
import { FaultyMedium, MemoryMedium, seededRandom } from '../lib/testing';
import { FakeClock, dump, expectCode } from './helpers';

const DIR = '/db';

async function segmentIds(memory: MemoryMedium): Promise<number[]> {
  return (await memory.list(DIR)).map(parseSegmentName).filter((id): id is number => id !== undefined).sort((a, b) => a - b);
}

describe('compact(): each call gets what it asked for', () => {
  const options = (memory: MemoryMedium): OpenOptions => ({ medium: memory, sync: 'never', autoCompact: false, maxSegmentBytes: 4096 });

  async function filled(memory: MemoryMedium) {
    const store = await open<string>(DIR, options(memory));
    for (let round = 0; round < 2; round++) {
      await Promise.all(Array.from({ length: 200 }, (_, i) => store.set(`k${i}`, `v${round}-${'p'.repeat(40)}`)));
    }
    return store;
  }

  it('a dry run asked for during a real compaction is a dry run of its own', async () => {
    const memory = new MemoryMedium();
    const store = await filled(memory);
    const real = store.compact();
    const dry = store.compact({ dryRun: true });
    expect(dry).to.not.equal(real);
    const [realResult, dryResult] = await Promise.all([real, dry]);
    expect(realResult.dryRun).to.equal(false);
    expect(realResult.recordsDropped).to.equal(200);
    expect(dryResult.dryRun).to.equal(true);
    // It measured the store the real one left: nothing left to drop.
    expect(dryResult.recordsDropped).to.equal(0);
    expect(store.stats().lastCompaction).to.deep.equal(realResult);
    await store.close();
  });

  it('a real compaction asked for during a dry run compacts', async () => {
    const memory = new MemoryMedium();
    const store = await filled(memory);
    const before = await segmentIds(memory);
    const dry = store.compact({ dryRun: true });
    const real = store.compact();
    expect(real).to.not.equal(dry);
    const [dryResult, realResult] = await Promise.all([dry, real]);
    expect(dryResult.dryRun).to.equal(true);
    expect(realResult.dryRun).to.equal(false);
    expect(realResult.recordsDropped).to.equal(200);
    expect(realResult.bytesAfter).to.be.below(realResult.bytesBefore);
    expect(await segmentIds(memory)).to.not.deep.equal(before);
    // Two real calls still share one compaction, and two waiting dry runs one dry run.
    const first = store.compact();
    expect(store.compact()).to.equal(first);
    const dryA = store.compact({ dryRun: true });
    expect(store.compact({ dryRun: true })).to.equal(dryA);
    await Promise.all([first, dryA]);
    await store.close();
  });

  it('close() during queued compactions rejects the waiting ones with LOGKV_CLOSED', async () => {
    const memory = new MemoryMedium();
    const store = await filled(memory);
    const real = store.compact();
    const dry = store.compact({ dryRun: true }).then(() => 'resolved', (err: { code: string }) => err.code);
    await store.close();
    await real.catch(() => undefined);
    expect(await dry).to.equal('LOGKV_CLOSED');
  });
});

describe('compactions of an idle store', () => {
  it('10,000 compactions of an idle store work, take no ids, and the store then writes and reopens', async function () {
    this.timeout(120_000);
    const memory = new MemoryMedium();
    const clock = new FakeClock();
    const options: OpenOptions = { medium: memory, sync: 'never', autoCompact: false, maxSegmentBytes: 1024, clock: clock.read };
    let store = await open<string>(DIR, options);
    // Enough live data for eight outputs per compaction: creeping by 8 ids a time, 10,000
    // compactions would need 80,000 ids between two write segments, which hold 65,535.
    for (let i = 0; i < 80; i++) await store.set(`k${i}`, 'v'.repeat(60));
    await store.set('k0', 'w'.repeat(60)); // one dead record
    await store.compact();
    const ids = await segmentIds(memory);
    expect(ids.length).to.be.at.least(8);
    for (let i = 0; i < 10_000; i++) {
      const result = await store.compact();
      expect(result.recordsDropped).to.equal(0);
    }
    expect(await segmentIds(memory)).to.deep.equal(ids);
    // A few with one dead record between them, some made by no write at all (a key expiring):
    // the outputs' ids stay in the first few of the ids after a write segment.
    for (let round = 0; round < 30; round++) {
      if (round % 2 === 0) await store.set(`k${round}`, `x${round}`.padEnd(60, 'x'));
      else {
        await store.set(`e${round}`, 'e', { ttl: 1000 });
        await store.compact(); // the expiring key now lives in an output
        clock.advance(2000);
      }
      const result = await store.compact();
      expect(result.recordsDropped).to.be.at.least(1);
      for (const id of await segmentIds(memory)) expect(id % SEGMENT_ID_STEP).to.be.at.most(ids.length + 1);
    }
    await store.set('after', 'yes');
    const expected = await dump(store);
    await store.close();
    store = await open<string>(DIR, options);
    expect(await dump(store)).to.deep.equal(expected);
    expect(await store.get('after')).to.equal('yes');
    await store.close();
  });
});

describe('delete() of an expired key', () => {
  it('writes a tombstone, resolves false, and the key stays gone when the clock steps back', async () => {
    const memory = new MemoryMedium();
    const clock = new FakeClock();
    const options: OpenOptions = { medium: memory, sync: 'never', autoCompact: false, clock: clock.read };
    let store = await open<string>(DIR, options);
    await store.set('k', 'v', { ttl: 1000 });
    await store.set('b', 'v', { ttl: 1000 });
    clock.advance(5000);
    const before = store.stats().diskBytes;
    expect(await store.delete('k')).to.equal(false);
    expect(store.stats().diskBytes).to.be.above(before); // a tombstone was written
    await store.batch([{ type: 'delete', key: 'b' }]);
    expect(await store.delete('never-there')).to.equal(false);
    await store.close();
    clock.advance(-10_000); // the clock steps back before the reopen
    store = await open<string>(DIR, options);
    expect(await store.get('k')).to.equal(undefined);
    expect(await store.get('b')).to.equal(undefined);
    await store.close();
  });
});

describe('maxStoreBytes caps every file the store keeps', () => {
  /** The bytes of every file in DIR now, as the disk holds them. */
  function realBytes(memory: MemoryMedium): number {
    let total = 0;
    for (const file of memory.files()) if (file.startsWith(`${DIR}/`)) total += memory.readFile(file).length;
    return total;
  }

  it('the directory never passes the cap: writes filling it, compactions running, writes and removals failing, closes and reopens', async function () {
    this.timeout(120_000);
    const CAP = 48 * 1024;
    const memory = new MemoryMedium();
    let peak = 0;
    let checks = 0;
    const faulty = new FaultyMedium(memory, {
      seed: 9,
      onOperation: (event) => {
        if (event.phase !== 'after') return;
        checks++;
        peak = Math.max(peak, realBytes(memory));
      },
    });
    const random = seededRandom(17);
    const options: OpenOptions = { medium: faulty, sync: 'never', autoCompact: false, maxSegmentBytes: 2048, maxStoreBytes: CAP };
    const counts = { full: 0, failedWrites: 0, compactions: 0, failedCompactions: 0, reopens: 0, snapshots: 0 };
    const faults = faulty.failRandomly({ rate: 0.03, ops: ['write', 'open', 'remove', 'rename', 'truncate'], seed: 5 });
    const openStore = async () => {
      faults.paused = true; // open's own failures are another spec's business
      const store = await open<string>(DIR, options);
      faults.paused = false;
      if (store.recovery.snapshot) counts.snapshots++;
      return store;
    };
    let store = await openStore();
    const compactions: Array<Promise<unknown>> = [];
    for (let op = 0; op < 4000; op++) {
      const key = `k${random.int(60)}`;
      const roll = random.int(100);
      try {
        if (roll < 80) await store.set(key, 'v'.repeat(20 + random.int(300)));
        else if (roll < 92) await store.delete(key);
        else if (roll < 99) {
          counts.compactions++;
          compactions.push(store.compact().catch(() => { counts.failedCompactions++; }));
        } else {
          await Promise.all(compactions.splice(0));
          faults.paused = true;
          await store.close().catch(() => undefined);
          faults.paused = false;
          counts.reopens++;
          store = await openStore();
        }
      } catch (err) {
        const { code, details } = err as { code: string; details?: { file?: string } };
        // The cap refuses a write with no file named; a failed write (EIO, or ENOSPC) names one.
        if (code === 'LOGKV_STORE_FULL' && details?.file === undefined) {
          // Full: delete some keys (deletes may use the reserve) and compact, as a user would.
          counts.full++;
          for (let i = 0; i < 20; i++) await store.delete(`k${random.int(60)}`).catch(() => undefined);
          counts.compactions++;
          compactions.push(store.compact().catch(() => { counts.failedCompactions++; }));
          continue;
        }
        counts.failedWrites++;
        // A failed repair poisons the writer until the store is reopened.
        if (await store.sync().then(() => true, () => false)) continue;
        await Promise.all(compactions.splice(0));
        faults.paused = true;
        await store.close().catch(() => undefined);
        faults.paused = false;
        store = await openStore();
      }
    }
    await Promise.all(compactions.splice(0));
    faults.cancel();
    await store.close();
    expect(counts.full, 'the store was filled to its cap').to.be.above(50);
    expect(counts.failedWrites, 'writes failed').to.be.above(10);
    expect(counts.compactions - counts.failedCompactions, 'compactions completed').to.be.above(10);
    expect(counts.failedCompactions, 'compactions failed').to.be.above(3);
    expect(counts.snapshots, 'snapshots were left and used').to.be.above(0);
    expect(checks).to.be.above(1000);
    expect(peak, JSON.stringify(counts)).to.be.at.most(CAP);
    expect(realBytes(memory)).to.be.at.most(CAP);
  });
});

describe('maxStoreBytes: each kind of file is counted', () => {
  function realBytes(memory: MemoryMedium): number {
    let total = 0;
    for (const file of memory.files()) if (file.startsWith(`${DIR}/`)) total += memory.readFile(file).length;
    return total;
  }

  it('a write failing during a compaction keeps its claim, and a discarded compaction gives it back once', async () => {
    const memory = new MemoryMedium();
    const faulty = new FaultyMedium(memory, { seed: 1 });
    const store = await open<string>(DIR, { medium: faulty, sync: 'never', autoCompact: false, maxSegmentBytes: 1024, maxStoreBytes: 1 << 20 });
    for (let round = 0; round < 3; round++) for (let i = 0; i < 40; i++) await store.set(`k${i}`, `${round}`.padEnd(40, 'x'));
    expect(store.stats().diskBytes).to.equal(realBytes(memory));
    let failed = false;
    const compaction = store.compact({
      onProgress: (progress) => {
        // Late in the copy, once outputs hold claimed bytes.
        if (failed || progress.bytesDone < progress.bytesTotal) return;
        failed = true;
        // A write that fails while the compaction holds its claim: its repair recounts the bytes.
        faulty.failNext('write', 'EIO', { path: /\.seg$/ });
        void store.set('during', 'x').catch(() => undefined);
        faulty.failNext('rename'); // and the compaction then fails, discarding its outputs
      },
    });
    await expectCode(compaction, ErrorCodes.IO);
    await store.sync();
    expect(store.stats().diskBytes).to.equal(realBytes(memory));
    await store.close();
  });

  it('hint files count, and so do inputs until they are removed', async () => {
    const memory = new MemoryMedium();
    const store = await open<string>(DIR, { medium: memory, sync: 'never', autoCompact: false, maxSegmentBytes: 1024 });
    for (let round = 0; round < 3; round++) for (let i = 0; i < 40; i++) await store.set(`k${i}`, `${round}`.padEnd(40, 'x'));
    const result = await store.compact();
    expect(memory.files().some((f) => f.endsWith('.hint'))).to.equal(true);
    expect(result.bytesAfter).to.equal(realBytes(memory));
    expect(store.stats().diskBytes).to.equal(realBytes(memory));
    await store.close();
    const again = await open<string>(DIR, { medium: memory, sync: 'never', autoCompact: false, maxSegmentBytes: 1024 });
    expect(again.stats().diskBytes).to.equal(realBytes(memory)); // the snapshot open() removed is not there
    await again.close();
  });

  it('close() leaves no snapshot that would pass the cap; with room it does', async () => {
    const memory = new MemoryMedium();
    const CAP = 16 * 1024;
    let store = await open<string>(DIR, { medium: memory, sync: 'never', autoCompact: false, maxStoreBytes: CAP });
    for (let i = 0; ; i++) {
      try {
        await store.set(`k${i}`, 'v'.repeat(30));
      } catch (err) {
        expect((err as { code: string }).code).to.equal(ErrorCodes.STORE_FULL);
        break;
      }
    }
    await store.close();
    expect(memory.exists(`${DIR}/keydir.snapshot`)).to.equal(false);
    expect(realBytes(memory)).to.be.at.most(CAP);
    store = await open<string>(DIR, { medium: memory, sync: 'never', autoCompact: false, maxStoreBytes: 4 * CAP });
    expect(store.recovery.snapshot).to.equal(false);
    await store.close();
    expect(memory.exists(`${DIR}/keydir.snapshot`)).to.equal(true);
  });

  it('a cut-bytes sidecar counts, and open refuses to write one that would pass the cap (LOGKV_STORE_FULL, nothing cut)', async () => {
    const memory = new MemoryMedium();
    let store = await open<string>(DIR, { medium: memory, sync: 'never', autoCompact: false });
    for (let i = 0; i < 60; i++) await store.set(`k${i}`, 'v'.repeat(100));
    await store.close();
    const segment = `${DIR}/000000010000.seg`;
    const bytes = memory.readFile(segment);
    await memory.remove(`${DIR}/keydir.snapshot`);
    // Tear the last record: its last 10 bytes are gone, as a crash mid-append leaves it.
    const file = await memory.open(segment);
    await file.truncate(bytes.length - 10);
    await file.close();
    const size = realBytes(memory);
    expect(size).to.be.above(4096 + 20);
    await expectCode(open<string>(DIR, { medium: memory, maxStoreBytes: size + 20 }), ErrorCodes.STORE_FULL);
    expect(realBytes(memory)).to.equal(size);
    store = await open<string>(DIR, { medium: memory, sync: 'never', autoCompact: false, maxStoreBytes: 4 * size });
    expect(store.recovery.truncated?.sidecar).to.be.a('string');
    expect(store.stats().diskBytes).to.equal(realBytes(memory));
    await store.close();
  });
});

describe('the keydir hash is seeded per process', () => {
  /** A fresh instance of the modules under lib/ (a fresh hash seed), leaving the cached ones as they were. */
  function freshLib<T>(module: string): T {
    const root = path.resolve(__dirname, '..', 'lib') + path.sep;
    const saved = Object.keys(require.cache).filter((id) => id.startsWith(root)).map((id) => [id, require.cache[id]] as const);
    for (const [id] of saved) delete require.cache[id];
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      return require(path.join(root, module)) as T;
    } finally {
      for (const [id] of Object.keys(require.cache).filter((id) => id.startsWith(root)).map((id) => [id] as const)) delete require.cache[id];
      for (const [id, entry] of saved) require.cache[id] = entry;
    }
  }

  const keys = Array.from({ length: 3000 }, (_, i) => (i % 3 === 0 ? `ключ-${i}` : `key:${i}`));

  it('two module instances hash the same keys differently, and a table written under one seed loads under another', () => {
    const other = freshLib<typeof import('../lib/keydir')>('keydir');
    expect(other.KeyDir).to.not.equal(KeyDir);
    const mine = new KeyDir();
    const theirs = new other.KeyDir();
    keys.forEach((key, i) => {
      mine.put(key, new Entry(0x10000, 20 + i * 40, 40, 0));
      theirs.put(key, new other.Entry(0x10000, 20 + i * 40, 40, 0));
    });
    // The tables hold the same keys and entries; only the seeded hashes (and so the slots) differ.
    expect(Buffer.concat(mine.toBytes()).equals(Buffer.concat(theirs.toBytes()))).to.equal(false);
    // Written under their seed, loaded under mine: every key found, updates and removals work.
    const loaded = KeyDir.fromBytes(Buffer.concat(theirs.toBytes()));
    expect(loaded.size).to.equal(keys.length);
    keys.forEach((key, i) => expect(loaded.get(key), key).to.deep.equal(new Entry(0x10000, 20 + i * 40, 40, 0)));
    loaded.put(keys[7], new Entry(0x20000, 20, 40, 0));
    expect(loaded.put(keys[8], undefined)).to.deep.equal(new Entry(0x10000, 20 + 8 * 40, 40, 0));
    loaded.put('a new key', new Entry(0x20000, 60, 40, 0));
    expect(loaded.size).to.equal(keys.length);
    expect(loaded.get(keys[7])).to.deep.equal(new Entry(0x20000, 20, 40, 0));
    expect(loaded.get(keys[8])).to.equal(undefined);
    expect(loaded.get('a new key')).to.deep.equal(new Entry(0x20000, 60, 40, 0));
    expect([...loaded.keys()].length).to.equal(keys.length);
  });

  it('a store closed by one instance (its snapshot) opens under another seed with every key, and overwrites stay single', async () => {
    const memory = new MemoryMedium();
    const lib = freshLib<typeof import('../lib')>('index');
    const first = await lib.open<number>(DIR, { medium: memory, sync: 'never', autoCompact: false });
    for (let i = 0; i < keys.length; i++) await first.set(keys[i], i);
    await first.close();
    let store = await open<number>(DIR, { medium: memory, sync: 'never', autoCompact: false });
    expect(store.recovery.snapshot).to.equal(true);
    expect(store.size).to.equal(keys.length);
    for (let i = 0; i < keys.length; i++) expect(await store.get(keys[i])).to.equal(i);
    for (let i = 0; i < 100; i++) await store.set(keys[i], -1 - i);
    expect(store.size).to.equal(keys.length);
    const expected = await dump(store);
    await store.close();
    await memory.remove(`${DIR}/keydir.snapshot`); // now replay
    store = await open<number>(DIR, { medium: memory, sync: 'never', autoCompact: false });
    expect(store.recovery.snapshot).to.equal(false);
    expect(await dump(store)).to.deep.equal(expected);
    await store.close();
  });
});
