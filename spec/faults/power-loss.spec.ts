/**
 * Power loss on the real store, through the in-memory medium's durability model: what 'always'
 * promises (nothing acknowledged is lost), what the other modes promise (everything a sync()
 * covered), torn last writes, and the directory entries a store depends on.
 */
import { expect } from 'chai';
import { LogkvError, open } from '../../lib';
import type { OpenOptions, Store } from '../../lib';
import { FaultyMedium } from '../../lib/medium/faulty';
import { DROP_UNSYNCED, KEEP_UNSYNCED, MemoryMedium } from '../../lib/medium/memory';
import { seededRandom } from '../../lib/medium/random';

const DIR = '/data/store';

async function contents(store: Store<unknown>): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for await (const [key, value] of store.entries()) out[key] = value;
  return out;
}

async function freshDisk(): Promise<{ memory: MemoryMedium; faulty: FaultyMedium }> {
  const memory = new MemoryMedium();
  const faulty = new FaultyMedium(memory, { seed: 7 });
  return { memory, faulty };
}

describe('power loss', () => {
  it("in 'always' mode loses nothing acknowledged, at any moment of a random workload", async () => {
    for (let seed = 1; seed <= 12; seed++) {
      const random = seededRandom(seed);
      const faulty = new FaultyMedium(new MemoryMedium(), { seed });
      const store = await open(DIR, { medium: faulty, sync: 'always', maxSegmentBytes: 1024, autoCompact: false });
      // Per key: every write issued, in order, and how many of them were acknowledged.
      const issued = new Map<string, Array<{ i: number; pad: string } | undefined>>();
      const ackedCount = new Map<string, number>();
      const pending: Array<Promise<void>> = [];
      const cutAfter = random.between(1, 120);
      let disk: MemoryMedium | undefined;
      let acks: Map<string, number> | undefined;
      for (let i = 0; i < 150 && disk === undefined; i++) {
        const key = `k${random.int(10)}`;
        const value = random.chance(0.2) ? undefined : { i, pad: 'x'.repeat(random.int(300)) };
        const writes = issued.get(key) ?? [];
        issued.set(key, writes);
        writes.push(value);
        const position = writes.length;
        // A delete that finds nothing to delete writes nothing and settles at once: its answer
        // says nothing about earlier writes being durable, so only writes that wrote count.
        const write = value === undefined ? store.delete(key) : store.set(key, value).then(() => true);
        pending.push(write.then((wrote) => {
          if (wrote) ackedCount.set(key, Math.max(ackedCount.get(key) ?? 0, position));
        }, () => undefined));
        if (i % 5 === 4) await Promise.race(pending);
        if (i === cutAfter) {
          disk = faulty.powerLoss();
          acks = new Map(ackedCount);
        }
      }
      if (disk === undefined) {
        disk = faulty.powerLoss();
        acks = new Map(ackedCount);
      }
      await Promise.allSettled(pending);
      await store.close().catch(() => undefined);
      const reopened = await open(DIR, { medium: disk });
      const found = await contents(reopened);
      // Each key holds its last acknowledged write, or one issued after it (in flight at the cut).
      for (const [key, writes] of issued) {
        const acked = acks!.get(key) ?? 0;
        const allowed = writes.slice(Math.max(0, acked - 1));
        if (acked === 0) allowed.push(undefined);
        expect(allowed, `seed ${seed}, key ${key}`).to.deep.include(found[key]);
      }
      await reopened.close();
    }
  });

  it('a store made in a new directory keeps its writes: the directory entries are synced (regression)', async () => {
    // Found by the crash harness: open() created the store's directory but never synced its
    // parent, so a power loss could take the directory, and every acknowledged write in it.
    const memory = new MemoryMedium();
    const store = await open(DIR, { medium: memory, sync: 'always' });
    await store.set('key', 'value');
    const disk = memory.crash(DROP_UNSYNCED);
    await store.close();
    const reopened = await open(DIR, { medium: disk });
    expect(await reopened.get('key')).to.equal('value');
    await reopened.close();
  });

  it('a segment file a killed process created is made durable before the restarted store writes to it (regression)', async () => {
    // Found by the crash harness: a process killed between creating a segment file and syncing
    // its directory leaves the file in the page cache only. The next open reset and used it, and
    // a power loss then took the file with writes the restarted store had acknowledged.
    const memory = new MemoryMedium();
    const faulty = new FaultyMedium(memory, { seed: 3 });
    const first = await open(DIR, { medium: faulty, sync: 'always' });
    faulty.failNext('syncDir', 'EIO', { path: DIR });
    await first.set('a', 1).catch((err: LogkvError) => expect(err.code).to.equal('LOGKV_IO'));
    const killed = memory.fork(); // the page cache the killed process leaves
    await first.close().catch(() => undefined);
    const restarted = await open(DIR, { medium: killed, sync: 'always' });
    await restarted.set('b', 2);
    const disk = killed.crash(DROP_UNSYNCED);
    await restarted.close();
    const reopened = await open(DIR, { medium: disk });
    expect(await reopened.get('b')).to.equal(2);
    await reopened.close();
  });

  it('sync() after a restart makes durable what the killed process left unsynced (regression)', async () => {
    // Found by the crash harness: recovery took the newest segment as synced, so neither sync()
    // nor the sync before a rotation ever covered records a killed process had written but not
    // synced. The restarted store served them, acknowledged newer writes, and a power loss then
    // took the old records but kept the new ones.
    for (const rotate of [false, true]) {
      const memory = new MemoryMedium();
      const first = await open(DIR, { medium: memory, sync: 'never', maxSegmentBytes: 1024 });
      await first.set('a', 'x'.repeat(rotate ? 900 : 10));
      const killed = memory.fork();
      const restarted = await open(DIR, { medium: killed, sync: 'always', maxSegmentBytes: 1024 });
      expect(await restarted.get('a')).to.equal('x'.repeat(rotate ? 900 : 10));
      await restarted.set('b', 'y'.repeat(rotate ? 900 : 10)); // rotates when the first is full
      await restarted.sync();
      const disk = killed.crash(DROP_UNSYNCED);
      await restarted.close();
      await first.close();
      const reopened = await open(DIR, { medium: disk });
      expect(await reopened.get('b'), `rotate ${rotate}`).to.equal('y'.repeat(rotate ? 900 : 10));
      expect(await reopened.get('a'), `rotate ${rotate}`).to.equal('x'.repeat(rotate ? 900 : 10));
      await reopened.close();
    }
  });

  for (const newer of ['set', 'delete'] as const) {
    it(`compaction keeps a synced value until the ${newer} that superseded it is durable (regression)`, async () => {
      // Found by the crash harness: in 'never' and 'interval' mode, compaction dropped a record
      // the keydir no longer pointed at and removed its input, while the newer write was still
      // only in the page cache. A power loss then took the newer write and the synced older
      // value with it: the key was lost, though a completed sync() had covered its value.
      const memory = new MemoryMedium();
      const faulty = new FaultyMedium(memory, { seed: 1 });
      const store = await open(DIR, { medium: faulty, sync: 'never', maxSegmentBytes: 1024, autoCompact: false });
      await store.set('filler', 'f'.repeat(1000)); // fills the first segment, the first input
      await store.set('key', 'old'); // the second segment: scanned after compaction yields
      await store.sync();
      await store.set('other', 1); // so the seal has something to sync
      let during: Promise<unknown> | undefined;
      faulty.onOperation = (event) => {
        // Compaction has sealed the old segments and is syncing them: writes arrive now, and
        // complete before it scans the second input.
        if (during === undefined && event.op === 'sync' && event.phase === 'after') {
          during = Promise.all([store.set('marker', 1), newer === 'set' ? store.set('key', 'new') : store.delete('key')]);
        }
      };
      await store.compact();
      await during;
      const disk = memory.crash(DROP_UNSYNCED);
      await store.close();
      const reopened = await open(DIR, { medium: disk });
      const key = await reopened.get('key');
      const marker = await reopened.get('marker');
      // The newer write was never synced by the caller, so it may be gone (then 'key' is 'old'),
      // or compaction made it durable (then so is the marker written before it). Never neither.
      if (key !== 'old') {
        expect(key, 'key').to.equal(newer === 'set' ? 'new' : undefined);
        expect(marker, 'the write before the newer one').to.equal(1);
      }
      await reopened.close();
    });
  }

  it('a segment header torn during the segment\'s creation does not stop the store opening (regression)', async () => {
    // Found by the crash harness: a power loss while a new segment's header was being written
    // could leave a 20-byte file with a torn header (its rest zeros or garbage), and recovery
    // called that corruption. Records go in only after the header is synced, so a newest segment
    // no longer than a header holds nothing: it is an interrupted creation, reset like an empty one.
    const cases: Array<{ keptBytes: number; rest: 'absent' | 'zeros' | 'garbage' }> = [];
    for (let keptBytes = 0; keptBytes <= 19; keptBytes++) {
      for (const rest of ['absent', 'zeros', 'garbage'] as const) cases.push({ keptBytes, rest });
    }
    for (const tear of cases) {
      const memory = new MemoryMedium();
      const faulty = new FaultyMedium(memory, { seed: tear.keptBytes });
      const store = await open(DIR, { medium: faulty, sync: 'always', maxSegmentBytes: 1024 });
      await store.set('first', 'x'.repeat(900));
      let disk: MemoryMedium | undefined;
      faulty.onOperation = (event) => {
        // Right after the second segment's header is written, before it is synced.
        if (disk === undefined && event.phase === 'after' && event.op === 'write' && event.path.endsWith('000000020000.seg')) {
          disk = faulty.diskAfterPowerLoss({ keep: 'all', tearLastWrite: tear });
        }
      };
      await store.set('second', 'y'.repeat(900));
      await store.close();
      const where = `header torn after ${tear.keptBytes} bytes, rest ${tear.rest}`;
      expect(disk, where).to.not.equal(undefined);
      const reopened = await open(DIR, { medium: disk! });
      expect(await reopened.get('first'), where).to.equal('x'.repeat(900));
      expect(await reopened.get('second'), where).to.equal(undefined);
      await reopened.set('third', 3);
      await reopened.close();
      const again = await open(DIR, { medium: disk! });
      expect(await again.get('third'), where).to.equal(3);
      await again.close();
    }
  });

  for (const sync of ['interval', 'never'] as const) {
    it(`in '${sync}' mode keeps everything a sync() covered, and the rest is a prefix`, async () => {
      const { memory, faulty } = await freshDisk();
      const options: OpenOptions = { medium: faulty, sync, syncIntervalMs: 3_600_000 };
      const store = await open(DIR, options);
      for (let i = 0; i < 20; i++) await store.set(`k${i}`, i);
      await store.sync();
      for (let i = 20; i < 40; i++) await store.set(`k${i}`, i);
      const worst = memory.crash(DROP_UNSYNCED);
      const best = memory.crash(KEEP_UNSYNCED);
      const torn = faulty.diskAfterPowerLoss({ keep: 'all', tearLastWrite: { keptBytes: 5, rest: 'garbage' } });
      await store.close();
      const expectPrefix = async (disk: MemoryMedium, atLeast: number, exactly?: number) => {
        const reopened = await open(DIR, { medium: disk });
        const found = await contents(reopened);
        const n = Object.keys(found).length;
        expect(n).to.be.at.least(atLeast);
        if (exactly !== undefined) expect(n).to.equal(exactly);
        for (let i = 0; i < n; i++) expect(found[`k${i}`]).to.equal(i);
        await reopened.close();
      };
      await expectPrefix(worst, 20, 20);
      await expectPrefix(best, 40, 40);
      await expectPrefix(torn, 39, 39);
    });
  }

  it('a torn last write is cut off and reported; everything before it is there', async () => {
    for (const rest of ['absent', 'zeros', 'garbage'] as const) {
      for (const keptBytes of [0, 1, 19, 20, 21, 40]) {
        const { faulty } = await freshDisk();
        const store = await open(DIR, { medium: faulty, sync: 'never' });
        await store.set('before', 'kept');
        await store.sync();
        await store.set('torn', 'y'.repeat(30));
        const disk = faulty.powerLoss({ keep: 'all', tearLastWrite: { keptBytes, rest } });
        await store.close().catch(() => undefined);
        const reopened = await open(DIR, { medium: disk });
        const where = `${rest}, ${keptBytes} bytes kept`;
        expect(await reopened.get('before'), where).to.equal('kept');
        expect(await reopened.get('torn'), where).to.equal(undefined);
        // Zeros alone where the write was are zero padding (format version 2), not a tail to cut.
        const cut = keptBytes > 0 || rest === 'garbage';
        expect(reopened.recovery.truncated !== undefined, where).to.equal(cut);
        // And the next write goes where the torn one was, and survives the next power loss.
        await reopened.set('after', 1);
        const again = disk.crash(DROP_UNSYNCED);
        await reopened.close();
        const last = await open(DIR, { medium: again });
        expect(await contents(last), where).to.deep.equal({ before: 'kept', after: 1 });
        await last.close();
      }
    }
  });
});
