/**
 * The change feed, store.watch() (issue 13): committed writes in commit order, starting with the
 * first write committed after the call; a rejected write never appears; a batch's events come
 * together and in order; touch() is a 'set'; expiry and compaction are not changes; a bounded
 * buffer per watcher that ends in LOGKV_WATCH_OVERFLOW after the events it holds, never a gap;
 * return()/break unsubscribes; close() ends every watcher.
 */
import { expect } from 'chai';
import { ErrorCodes, Store, open } from '../lib';
import type { ChangeEvent } from '../lib';
import { FaultyMedium } from '../lib/medium/faulty';
import { MemoryMedium } from '../lib/medium/memory';
import { expectCode, expectCodeSync, openFast, tempDir } from './helpers';

// Loose typing on purpose: these specs pass what TypeScript callers cannot, as JavaScript callers can.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = any;

/** Takes `n` events from a watcher. */
async function take<V>(watcher: AsyncIterator<ChangeEvent<V>>, n: number): Promise<Array<ChangeEvent<V>>> {
  const out: Array<ChangeEvent<V>> = [];
  while (out.length < n) {
    const next = await watcher.next();
    if (next.done) break;
    out.push(next.value);
  }
  return out;
}

/** Whether `promise` has settled after the event loop turned over a few times. */
async function settledSoon(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  void promise.then(() => { settled = true; }, () => { settled = true; });
  for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
  return settled;
}

describe('watch()', () => {
  let store: Store<unknown>;
  let now: number;
  beforeEach(async () => {
    now = 1_700_000_000_000;
    store = await openFast(tempDir('watch'), { clock: () => now });
  });
  afterEach(async () => {
    await store.close();
  });

  it('yields every committed write in commit order, with its version; values and expiries from the records', async () => {
    const watcher = store.watch();
    await store.set('a', { n: 1 });
    await store.set('b', 'two', { ttl: 1000 });
    await store.delete('a');
    await store.update('b', [3]);
    expect(await take(watcher, 4)).to.deep.equal([
      { type: 'set', key: 'a', value: { n: 1 }, version: 1 },
      { type: 'set', key: 'b', value: 'two', expiresAt: now + 1000, version: 2 },
      { type: 'delete', key: 'a', version: 3 },
      { type: 'set', key: 'b', value: [3], version: 4 },
    ]);
    await watcher.return!();
  });

  it('starts with the first write committed after the call: a write queued before it, committed after, is in', async () => {
    await store.set('before', 0);
    const queued = store.set('queued', 1); // not committed yet
    const watcher = store.watch();
    await queued;
    await store.set('after', 2);
    expect((await take(watcher, 2)).map((e) => e.key)).to.deep.equal(['queued', 'after']);
    await watcher.return!();
  });

  it('the event is there when the write\'s promise resolves; values are copies of the record, not the caller\'s object', async () => {
    const watcher = store.watch();
    const value = { list: [1, 2] };
    const write = store.set('k', value);
    value.list.push(3); // after the call: the record holds what was written
    await write;
    const next = watcher.next();
    expect(await settledSoon(next)).to.equal(true);
    expect((await next).value).to.deep.equal({ type: 'set', key: 'k', value: { list: [1, 2] }, version: 1 });
    await watcher.return!();
  });

  it('a batch\'s events come together, in order; a delete that wrote nothing is no event', async () => {
    await store.set('x', 0); // before the watcher
    const watcher = store.watch();
    await store.batch([
      { type: 'set', key: 'a', value: 1 },
      { type: 'delete', key: 'missing' },
      { type: 'delete', key: 'x' },
      { type: 'set', key: 'b', value: 2, expiresAt: now + 50 },
    ]);
    await store.set('c', 3);
    expect(await take(watcher, 4)).to.deep.equal([
      { type: 'set', key: 'a', value: 1, version: 2 },
      { type: 'delete', key: 'x', version: 3 },
      { type: 'set', key: 'b', value: 2, expiresAt: now + 50, version: 4 },
      { type: 'set', key: 'c', value: 3, version: 5 },
    ]);
    await watcher.return!();
  });

  it('touch() is a set with the new expiry; a write that is refused or fails is no event; expiry and compaction are none', async () => {
    await store.set('t', 'v', { ttl: 100 });
    await store.set('old', 1);
    const watcher = store.watch();
    expect(await store.touch('t', { ttl: 500 })).to.equal(true);
    expect(await store.touch('missing', { ttl: 500 })).to.equal(false);
    await expectCode(store.create('t', 'again'), ErrorCodes.KEY_EXISTS);
    await expectCode(store.set('t', 'x', { ifVersion: 1 }), ErrorCodes.VERSION_MISMATCH);
    await expectCode(store.batch([{ type: 'set', key: 'y', value: 1 }, { type: 'set', key: 'y', value: undefined }]), ErrorCodes.INVALID_VALUE);
    now += 600; // 't' expires
    expect(await store.has('t')).to.equal(false);
    await store.set('old', 2);
    await store.compact();
    await store.set('last', 3);
    expect(await take(watcher, 3)).to.deep.equal([
      { type: 'set', key: 't', value: 'v', expiresAt: now - 600 + 500, version: 3 },
      { type: 'set', key: 'old', value: 2, version: 4 },
      { type: 'set', key: 'last', value: 3, version: 5 },
    ]);
    await watcher.return!();
  });

  it('a write that fails at the disk never appears; the writes after it do', async () => {
    await store.close();
    const faulty = new FaultyMedium(new MemoryMedium(), { seed: 3 });
    store = await open('/db', { medium: faulty, sync: 'never' });
    const watcher = store.watch();
    await store.set('ok', 1);
    faulty.fail({ op: 'write' });
    await expectCode(store.set('lost', 2), ErrorCodes.IO);
    faulty.clearFaults();
    await store.set('after', 3);
    expect((await take(watcher, 2)).map((e) => [e.key, e.version])).to.deep.equal([['ok', 1], ['after', 3]]);
    await watcher.return!();
  });

  it('filters by prefix; each watcher gets its own copy of each value', async () => {
    const users = store.watch({ prefix: 'user:' });
    const all = store.watch();
    await store.set('user:1', { name: 'Ada' });
    await store.set('order:1', 5);
    await store.batch([{ type: 'set', key: 'order:2', value: 6 }, { type: 'delete', key: 'user:1' }]);
    const fromUsers = await take(users, 2);
    expect(fromUsers).to.deep.equal([
      { type: 'set', key: 'user:1', value: { name: 'Ada' }, version: 1 },
      { type: 'delete', key: 'user:1', version: 4 },
    ]);
    const fromAll = await take(all, 4);
    expect(fromAll.map((e) => e.key)).to.deep.equal(['user:1', 'order:1', 'order:2', 'user:1']);
    (fromUsers[0] as { value: { name: string } }).value.name = 'changed';
    expect((fromAll[0] as { value: unknown }).value).to.deep.equal({ name: 'Ada' });
    await users.return!();
    await all.return!();
  });

  it('a waiting next() resolves when the next write commits', async () => {
    const watcher = store.watch();
    const next = watcher.next();
    expect(await settledSoon(next)).to.equal(false);
    await store.set('k', 1);
    expect(await next).to.deep.equal({ value: { type: 'set', key: 'k', value: 1, version: 1 }, done: false });
    await watcher.return!();
  });

  it('works with for await, and break unsubscribes', async () => {
    const seen: string[] = [];
    const consumer = (async () => {
      for await (const event of store.watch()) {
        seen.push(event.key);
        if (seen.length === 3) break;
      }
    })();
    for (let i = 0; i < 5; i++) await store.set(`k${i}`, i);
    await consumer;
    expect(seen).to.deep.equal(['k0', 'k1', 'k2']);
  });

  it('return() unsubscribes and drops what was buffered: the watcher is done', async () => {
    const watcher = store.watch();
    await store.set('a', 1);
    expect(await watcher.return!()).to.deep.equal({ value: undefined, done: true });
    await store.set('b', 2);
    expect(await watcher.next()).to.deep.equal({ value: undefined, done: true });
  });

  describe('a watcher that falls behind', () => {
    it('gets every event it had room for, then LOGKV_WATCH_OVERFLOW, and then is done: never a silent gap', async () => {
      const watcher = store.watch({ maxBuffered: 3 });
      for (let i = 0; i < 10; i++) await store.set(`k${i}`, i);
      expect((await take(watcher, 3)).map((e) => e.key)).to.deep.equal(['k0', 'k1', 'k2']);
      const err = await expectCode(watcher.next(), ErrorCodes.WATCH_OVERFLOW);
      expect(err.details).to.deep.equal({ maxBuffered: 3 });
      expect(await watcher.next()).to.deep.equal({ value: undefined, done: true });
    });

    it('a consumer that keeps up never overflows, and the default bound is 10,000', async () => {
      const fast = store.watch({ maxBuffered: 2 });
      const slow = store.watch();
      const got: string[] = [];
      for (let i = 0; i < 50; i++) {
        await store.set(`k${i}`, i);
        got.push((await fast.next()).value!.key);
      }
      expect(got).to.have.length(50);
      const writes = [];
      for (let i = 0; i < 10_001; i++) writes.push(store.set(`many${i}`, i));
      await Promise.all(writes);
      expect((await take(slow, 10_000)).length).to.equal(10_000);
      await expectCode(slow.next(), ErrorCodes.WATCH_OVERFLOW);
      await fast.return!();
    });

    it('a batch goes in whole or not at all: it overflows a buffer it does not fit, and fills an empty one whatever its size', async () => {
      const watcher = store.watch({ maxBuffered: 3 });
      await store.set('a', 1);
      await store.batch([1, 2, 3].map((i) => ({ type: 'set' as const, key: `b${i}`, value: i })));
      expect((await take(watcher, 1)).map((e) => e.key)).to.deep.equal(['a']);
      await expectCode(watcher.next(), ErrorCodes.WATCH_OVERFLOW);

      const roomy = store.watch({ maxBuffered: 2 });
      await store.batch([1, 2, 3, 4, 5].map((i) => ({ type: 'set' as const, key: `c${i}`, value: i })));
      expect((await take(roomy, 5)).map((e) => e.key)).to.deep.equal(['c1', 'c2', 'c3', 'c4', 'c5']);
      await roomy.return!();
    });
  });

  describe('close()', () => {
    it('ends every watcher: a waiting next() is done, buffered events are still given first', async () => {
      const waiting = store.watch();
      const pending = waiting.next();
      const buffered = store.watch();
      const write = store.set('last', 1);
      const closing = store.close();
      await write;
      await closing;
      expect(await pending).to.deep.equal({ value: { type: 'set', key: 'last', value: 1, version: 1 }, done: false });
      expect(await waiting.next()).to.deep.equal({ value: undefined, done: true });
      expect((await take(buffered, 5)).map((e) => e.key)).to.deep.equal(['last']);
      expect(await buffered.next()).to.deep.equal({ value: undefined, done: true });
    });

    it('an overflowed watcher still reports its overflow after close()', async () => {
      const watcher = store.watch({ maxBuffered: 1 });
      await store.set('a', 1);
      await store.set('b', 2);
      await store.close();
      expect((await take(watcher, 1)).map((e) => e.key)).to.deep.equal(['a']);
      await expectCode(watcher.next(), ErrorCodes.WATCH_OVERFLOW);
    });

    it('watch() on a closed store throws LOGKV_CLOSED', async () => {
      await store.close();
      expectCodeSync(() => store.watch(), ErrorCodes.CLOSED);
    });
  });

  it('validates its options: prefix a string, maxBuffered a positive integer', () => {
    for (const bad of [null, 5, 'x', { prefix: 5 }, { maxBuffered: 0 }, { maxBuffered: 1.5 }, { maxBuffered: -1 },
      { maxBuffered: '10' }, { maxBuffered: Infinity }, { maxBuffered: 2 ** 31 }]) {
      expectCodeSync(() => store.watch(bad as Loose), ErrorCodes.INVALID_ARGUMENT);
    }
    const err = expectCodeSync(() => store.watch({ maxBuffered: 0 }), ErrorCodes.INVALID_ARGUMENT);
    expect(err.details.option).to.equal('maxBuffered');
    void store.watch({ maxBuffered: 1 }).return!();
    void store.watch({ prefix: '' }).return!();
  });
});
