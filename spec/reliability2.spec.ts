/**
 * Issue 9, round 2 leftovers: each compact() call gets the kind it asked for, compactions of an
 * idle store take no segment ids (and ids never creep), and delete() of an expired key writes a
 * tombstone so a clock stepped back cannot bring it back.
 */
import { expect } from 'chai';
import { open } from '../lib';
import type { OpenOptions } from '../lib';
import { SEGMENT_ID_STEP, parseSegmentName } from '../lib/segment';
import { MemoryMedium } from '../lib/testing';
import { FakeClock, dump } from './helpers';

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
