/**
 * The rooms behind the Store, at the seams the facade hides: a reader and an index serving with
 * no writer, the compaction switch's space claim, a write still in flight when the switch ends,
 * an expired key the switch drops, and open()'s directory sync.
 */
import { expect } from 'chai';
import { ErrorCodes, LogkvError, open } from '../lib';
import { Entry } from '../lib/keydir';
import { KeyIndex } from '../lib/keyindex';
import { Reader } from '../lib/reader';
import { recover } from '../lib/recovery';
import { SegmentSet } from '../lib/segments';
import { FaultyMedium, MemoryMedium, OperationEvent } from '../lib/testing';
import { FakeClock, dump, expectCode } from './helpers';

const DIR = '/db';

describe('a reader and an index with no writer', () => {
  /** A closed store on `memory` holding `values`, then an index and a reader over its files. */
  async function follow(memory: MemoryMedium, clock: FakeClock): Promise<{ index: KeyIndex; reader: Reader; segments: SegmentSet }> {
    const index = new KeyIndex(clock.read);
    const { segments: found, keydir } = await recover(memory, DIR,
      (bytes, start, length, entry) => index.applyBytes(bytes, start, length, entry), (count) => index.reserve(count));
    if (keydir !== undefined) index.load(keydir);
    const segments = new SegmentSet(DIR, found);
    return { index, reader: new Reader(segments, 1 << 20), segments };
  }

  it('reads every live value a store wrote, and leaves out deleted and expired keys', async () => {
    const memory = new MemoryMedium();
    const clock = new FakeClock();
    const store = await open<unknown>(DIR, { medium: memory, sync: 'never', maxSegmentBytes: 1024, clock: clock.read });
    for (let i = 0; i < 100; i++) await store.set(`k${i}`, { i, text: 'x'.repeat(i) });
    await store.delete('k3');
    await store.set('short', 'lived', { ttl: 10 });
    await store.compact();
    await store.set('k5', 'after compaction');
    const expected = await dump(store);
    await store.close();
    clock.advance(20);

    // With the snapshot close() left, and with a replay of the segments.
    for (const snapshot of [true, false]) {
      if (!snapshot) await memory.remove(`${DIR}/keydir.snapshot`).catch(() => undefined);
      const { index, reader } = await follow(memory, clock);
      const read: Array<[string, unknown]> = [];
      for (const key of index.range({ reverse: false, limit: Infinity })) {
        const entry = index.live(key);
        if (entry !== undefined) read.push([key, reader.read(key, entry)]);
      }
      read.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      expect(read).to.deep.equal(expected.filter(([key]) => key !== 'short'));
      expect(index.live('k3')).to.equal(undefined);
      expect(index.size()).to.equal(99);
    }
  });

  it('an entry naming a segment that is not there, or an offset past what was written, is LOGKV_IO', async () => {
    const memory = new MemoryMedium();
    const store = await open(DIR, { medium: memory, sync: 'never' });
    await store.set('k', 'v');
    await store.close();
    const { index, reader, segments } = await follow(memory, new FakeClock());
    const entry = index.live('k')!;
    expect(reader.read('k', entry)).to.equal('v');
    const read = (bad: Entry): unknown => {
      try {
        return reader.read('k', bad);
      } catch (err) {
        return err;
      }
    };
    const gone = read(new Entry(entry.segmentId + 1, entry.offset, entry.length, 0));
    const past = read(new Entry(entry.segmentId, segments.get(entry.segmentId)!.flushed + 100, entry.length, 0));
    for (const err of [gone, past]) {
      expect(err).to.be.instanceOf(LogkvError);
      expect((err as LogkvError).code).to.equal(ErrorCodes.IO);
    }
  });
});

describe('the compaction switch', () => {
  it('a compaction that would pass maxStoreBytes rejects LOGKV_STORE_FULL and changes nothing', async () => {
    const memory = new MemoryMedium();
    const store = await open<string>(DIR, { medium: memory, sync: 'never', maxStoreBytes: 4096, autoCompact: false });
    // Live records fill most of the cap, so their copies cannot fit beside them.
    for (let i = 0; ; i++) {
      try {
        await store.set(`k${i}`, 'v'.repeat(100));
      } catch (err) {
        expect((err as LogkvError).code).to.equal(ErrorCodes.STORE_FULL);
        break;
      }
    }
    await store.set('k0', 'v'.repeat(10)); // a dead record, so there is something to reclaim
    const before = { stats: store.stats(), entries: await dump(store), files: (await memory.list(DIR)).sort() };
    await expectCode(store.compact(), ErrorCodes.STORE_FULL);
    const { lastCompaction, ...stats } = store.stats();
    expect(lastCompaction).to.equal(undefined);
    expect({ stats, entries: await dump(store), files: (await memory.list(DIR)).sort() }).to.deep.equal(before);
    await store.close();
  });

  it('a write still in flight when the switch ends is undone onto the copy of what it replaced', async () => {
    const memory = new MemoryMedium();
    let gate: Promise<void> | undefined;
    let openGate = (): void => undefined;
    let blocked: string | undefined;
    let hintRenamed = false;
    let switched = (): void => undefined;
    const switchDone = new Promise<void>((resolve) => { switched = resolve; });
    const medium = new FaultyMedium(memory, {
      onOperation: async (event: OperationEvent) => {
        if (event.phase === 'before' && event.op === 'write' && event.path.endsWith('.seg') && gate !== undefined) {
          blocked = event.path;
          const wait = gate;
          gate = undefined;
          await wait;
        }
        if (event.phase === 'after' && event.op === 'rename' && event.to?.endsWith('.hint')) hintRenamed = true;
        if (event.phase === 'after' && event.op === 'syncDir' && hintRenamed) switched();
      },
    });
    const store = await open<string>(DIR, { medium, sync: 'never', autoCompact: false });
    for (let i = 0; i < 20; i++) await store.set(`k${i}`, `old ${i}`);
    await store.set('k0', 'dead'); // something to reclaim

    let write: Promise<unknown> | undefined;
    const compaction = store.compact({
      onProgress: (progress) => {
        if (progress.phase !== 'copy' || write !== undefined) return;
        // After the seal: this write goes to the new active segment and is held there until the
        // switch has ended, so its undo entry (k1's record in an input) must move to the copy.
        gate = new Promise<void>((resolve) => { openGate = resolve; });
        write = store.set('k1', 'new').catch((err: unknown) => err);
      },
    }).catch((err: unknown) => err);
    await switchDone; // the outputs are durable; the switch runs without a break after this
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await store.get('k1')).to.equal('new');
    medium.failNext('write', 'EIO', { path: blocked! });
    openGate();
    expect((await write as LogkvError).code).to.equal(ErrorCodes.IO);
    // The sync before removing the inputs was queued behind the failed write, so the inputs stay
    // for the next compaction to remove.
    expect((await compaction as LogkvError).code).to.equal(ErrorCodes.IO);
    expect(await store.get('k1')).to.equal('old 1');
    const expected = await dump(store);
    expect(expected).to.have.length(20);

    await store.compact();
    await store.close();
    const again = await open<string>(DIR, { medium: memory });
    expect(await dump(again)).to.deep.equal(expected);
    await again.close();
  });

  it('a key that expired before the copy is dropped at the end of the switch, even if the clock goes back', async () => {
    const clock = new FakeClock();
    const store = await open<string>(DIR, { medium: new MemoryMedium(), sync: 'never', clock: clock.read });
    await store.set('brief', 'gone soon', { ttl: 100 });
    await store.set('kept', 'v');
    await store.set('kept', 'w');
    clock.advance(200);
    await store.compact();
    // A wall clock may step back (NTP). The expired key's record was not copied and its segment is
    // gone: it must stay gone, not turn into a read of a missing segment.
    clock.advance(-150);
    expect(await store.get('brief')).to.equal(undefined);
    expect(await dump(store)).to.deep.equal([['kept', 'w']]);
    await store.close();
  });
});

describe('automatic compaction', () => {
  it('a failed one is reported in stats().lastAutoCompactionError, and the next trigger that succeeds clears it', async () => {
    const medium = new FaultyMedium(new MemoryMedium());
    const store = await open<string>(DIR, { medium, sync: 'never', autoCompact: { minDeadRatio: 0, minDeadBytes: 0 } });
    await store.set('k', 'v1');
    medium.fail({ op: 'open', path: /\.seg\.tmp$/ }); // the next compaction cannot make its output
    await store.set('k', 'v2'); // dead bytes now: the trigger fires after this write
    while (store.stats().compacting) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(store.stats().lastAutoCompactionError?.code).to.equal(ErrorCodes.IO);
    await store.set('k', 'v3');
    while (store.stats().compacting) await new Promise((resolve) => setTimeout(resolve, 5));
    const stats = store.stats();
    expect(stats.lastAutoCompactionError).to.equal(undefined);
    expect(stats.lastCompaction?.dryRun).to.equal(false);
    expect(await store.get('k')).to.equal('v3');
    await store.close();
  });
});

describe('open()', () => {
  it('rejects LOGKV_IO, holding no lock, when the sync of the new directory\'s parent fails', async () => {
    const memory = new MemoryMedium();
    const medium = new FaultyMedium(memory);
    medium.fail({ op: 'syncDir', path: '/' });
    await expectCode(open(DIR, { medium }), ErrorCodes.IO);
    const store = await open(DIR, { medium });
    await store.close();
  });
});
