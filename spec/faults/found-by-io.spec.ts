/**
 * Store bugs the crash harness's io mode found (power loss combined with EIO/ENOSPC), one spec each,
 * each failing before its fix. The replay commands that found them are in the commit messages.
 */
import { expect } from 'chai';
import { open } from '../../lib';
import type { Store } from '../../lib';
import { FaultyMedium } from '../../lib/medium/faulty';
import { DROP_UNSYNCED, MemoryMedium, randomCrash } from '../../lib/medium/memory';
import { seededRandom } from '../../lib/medium/random';
import { expectCode } from '../helpers';

async function contents(store: Store<unknown>): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for await (const [key, value] of store.entries()) out[key] = value;
  return out;
}

describe('found by the io crash mode', () => {
  it('close() of a store that refused writes does not resolve unless what it acknowledged is durable', async () => {
    const memory = new MemoryMedium();
    const faulty = new FaultyMedium(memory, { seed: 1 });
    const store = await open('/db', { medium: faulty, sync: 'never', autoCompact: false });
    await store.set('b', 2); // acknowledged: in the page cache, not yet synced
    faulty.failNext('write', 'EIO', { writtenBytes: 5 });
    faulty.failNext('truncate'); // the repair fails too: the store refuses writes from now on
    await expectCode(store.set('c', 3), 'LOGKV_IO');
    await expectCode(store.set('d', 4), 'LOGKV_IO');
    // Either close() says it could not make everything durable, or it did.
    const closed = await store.close().then(() => true, (err: { code?: string }) => {
      expect(err.code).to.equal('LOGKV_IO');
      return false;
    });
    if (closed) {
      const after = await open('/db', { medium: memory.crash(DROP_UNSYNCED) });
      expect(await after.get('b')).to.equal(2);
      await after.close();
    }
  });

  it('a segment file whose creation failed, behind which the writer already rotated, does not stop the store opening', async () => {
    const memory = new MemoryMedium();
    const faulty = new FaultyMedium(memory, { seed: 1 });
    const store = await open('/db', { medium: faulty, sync: 'always', maxSegmentBytes: 1024, autoCompact: false });
    await store.set('big', 'x'.repeat(900));
    faulty.failNext('truncate', 'EIO', { path: '000000020000.seg' });
    // One group: 'a' starts segment 20000, 'b' does not fit after it and starts 30000.
    const a = store.set('a', 'y'.repeat(600));
    const b = store.set('b', 'z'.repeat(600));
    await expectCode(a, 'LOGKV_IO');
    await expectCode(b, 'LOGKV_IO');
    await store.set('c', 1); // creates 30000 and syncs the directory: the empty 20000 is durable
    await store.close();
    const again = await open('/db', { medium: memory });
    expect(await contents(again)).to.deep.equal({ big: 'x'.repeat(900), c: 1 });
    await again.close();
  });

  it('a segment file whose creation failed and that cannot be removed poisons the writer, and the store reopens', async () => {
    const memory = new MemoryMedium();
    const faulty = new FaultyMedium(memory, { seed: 1 });
    const store = await open('/db', { medium: faulty, sync: 'always', maxSegmentBytes: 1024, autoCompact: false });
    await store.set('big', 'x'.repeat(900));
    faulty.failNext('truncate', 'EIO', { path: '000000020000.seg' });
    faulty.failNext('remove', 'EIO', { path: '000000020000.seg' });
    await expectCode(store.set('a', 'y'.repeat(600)), 'LOGKV_IO');
    await expectCode(store.set('c', 1), 'LOGKV_IO'); // poisoned: no later segment is created
    expect((await memory.list('/db')).filter((n) => n.endsWith('.seg')).sort()).to.deep.equal(['000000010000.seg', '000000020000.seg']);
    await expectCode(store.close(), 'LOGKV_IO');
    const again = await open('/db', { medium: memory });
    expect(await contents(again)).to.deep.equal({ big: 'x'.repeat(900) });
    await again.set('c', 1);
    await again.close();
  });

  it('a write made while a failed write is being repaired is not acknowledged by a store the repair poisoned', async () => {
    const memory = new MemoryMedium();
    const faulty = new FaultyMedium(memory, { seed: 1 });
    const store = await open('/db', { medium: faulty, sync: 'always', autoCompact: false });
    await store.set('a', 1);
    faulty.failNext('write', 'EIO', { writtenBytes: 10_000 }); // p's and q's bytes all reach the file
    faulty.failNext('truncate');                                // and the repair fails: poisoned
    let late: Promise<string> | undefined;
    faulty.onOperation = (event) => {
      if (event.op === 'truncate' && event.phase === 'before' && late === undefined) {
        late = store.set('x', 'L'.repeat(50)).then(() => 'ok', (err: { code?: string }) => String(err.code));
      }
    };
    await expectCode(store.set('p', 'R'.repeat(50)), 'LOGKV_IO');
    await expectCode(store.set('q', 'S'.repeat(50)), 'LOGKV_IO');
    expect(await late).to.equal('LOGKV_IO');
    await store.close().catch(() => undefined);
    const again = await open('/db', { medium: memory });
    expect(['a', 'a,p', 'a,p,q']).to.include(Object.keys(await contents(again)).sort().join(','));
    await again.close();
  });

  it('a reopened store makes what it recovered durable, even a truncate a failed repair left unsynced in an older segment', async () => {
    const memory = new MemoryMedium();
    const faulty = new FaultyMedium(memory, { seed: 1 });
    const store = await open('/db', { medium: faulty, sync: 'always', maxSegmentBytes: 1024, autoCompact: false });
    await store.set('key', 'x'.repeat(850));
    faulty.failNext('write', 'EIO', { path: '000000020000.seg', nth: 2 });
    faulty.failNext('sync', 'EIO', { path: '000000010000.seg', nth: 2 });
    const deleted = store.delete('key');          // fits in 10000; synced when 20000 is created
    const b = store.set('b', 'y'.repeat(600));    // starts 20000; its write fails
    await expectCode(deleted, 'LOGKV_IO');
    await expectCode(b, 'LOGKV_IO');
    await store.close().catch(() => undefined);
    const reopened = await open('/db', { medium: memory });
    expect(await reopened.get('key')).to.equal('x'.repeat(850));
    await reopened.set('c', 1);
    await reopened.close();
    const afterPowerLoss = await open('/db', { medium: memory.crash(DROP_UNSYNCED) });
    expect(await contents(afterPowerLoss)).to.deep.equal({ key: 'x'.repeat(850), c: 1 });
    await afterPowerLoss.close();
  });

  it('a compaction removes what an earlier one left behind oldest first, each removal durable before the next', async () => {
    const memory = new MemoryMedium();
    const faulty = new FaultyMedium(memory, { seed: 1 });
    const store = await open('/db', { medium: faulty, sync: 'always', maxSegmentBytes: 1024, autoCompact: false });
    await store.set('gone', 'old'.repeat(250));
    await store.set('pad', 'p'.repeat(700));
    await store.delete('gone');
    await store.set('next', 'n'.repeat(700));
    faulty.failNext('remove', 'EIO'); // every input is left as garbage
    await expectCode(store.compact(), 'LOGKV_IO');
    let failures = 0;
    let checked = 0;
    faulty.onOperation = async (event) => {
      if (event.phase !== 'before' || (event.op !== 'remove' && event.op !== 'syncDir')) return;
      for (let seed = 0; seed < 20; seed++) {
        const again = await open('/db', { medium: memory.crash(randomCrash(seededRandom(seed))) });
        checked++;
        if ((await again.get('gone')) !== undefined) failures++;
        await again.close();
      }
    };
    await store.compact();
    faulty.onOperation = undefined;
    expect(checked).to.be.above(0);
    expect(failures).to.equal(0);
    await store.close();
  });
});
