/**
 * Calls take effect in the order they are made, and a read sees every write called before it,
 * even one whose promise has not resolved. Thousands of unawaited calls on overlapping keys are
 * checked against a model Map that applies the same calls in call order.
 */
import { expect } from 'chai';
import { ErrorCodes, OpenOptions, Store, open } from '../lib';
import type { BatchOperation, ErrorCode } from '../lib';
import { coreStats, dump, expectCode, openFast, prng, segmentBytes, tempDir } from './helpers';

type Outcome = { value: unknown } | { code: ErrorCode };

/** One unawaited call and what the model says it must settle with. */
interface Pending {
  index: number;
  describe: string;
  /** The call's outcome, observed at once so a rejection is never left unhandled. */
  settled: Promise<PromiseSettledResult<unknown>>;
  expected: Outcome;
}

/**
 * Makes `count` random calls on `store` without awaiting any, keeping `model` in step, and
 * returns them with their expected outcomes.
 */
function fireCalls(store: Store<unknown>, model: Map<string, unknown>, count: number, seed: number,
                   versions: { last: number }): Pending[] {
  const random = prng(seed);
  const keys = Array.from({ length: 40 }, (_, i) => `key:${i}`);
  const pick = (): string => keys[Math.floor(random() * keys.length)];
  const calls: Pending[] = [];
  // Versions are given in call order, one per record written: the model predicts each exactly,
  // continuing from the last one the store gave (`versions.last`, which it keeps up to date).
  let version = versions.last;
  const push = (describe: string, promise: Promise<unknown>, expected: Outcome): void => {
    const settled = promise.then(
      (value): PromiseSettledResult<unknown> => ({ status: 'fulfilled', value }),
      (reason): PromiseSettledResult<unknown> => ({ status: 'rejected', reason }));
    calls.push({ index: calls.length, describe, settled, expected });
  };
  for (let i = 0; i < count; i++) {
    const key = pick();
    const value = random() < 0.5 ? i : { i, tag: `v${i}`, list: [i, i + 1] };
    const roll = random();
    if (roll < 0.2) {
      push(`set ${key}`, store.set(key, value), { value: ++version });
      model.set(key, value);
    } else if (roll < 0.32) {
      if (model.has(key)) {
        push(`create ${key} (exists)`, store.create(key, value), { code: ErrorCodes.KEY_EXISTS });
      } else {
        push(`create ${key}`, store.create(key, value), { value: ++version });
        model.set(key, value);
      }
    } else if (roll < 0.44) {
      if (model.has(key)) {
        push(`update ${key}`, store.update(key, value), { value: ++version });
        model.set(key, value);
      } else {
        push(`update ${key} (missing)`, store.update(key, value), { code: ErrorCodes.KEY_NOT_FOUND });
      }
    } else if (roll < 0.58) {
      push(`delete ${key}`, store.delete(key), { value: model.has(key) });
      if (model.has(key)) version++;
      model.delete(key);
    } else if (roll < 0.68) {
      const ops: Array<BatchOperation<unknown>> = [];
      const n = 1 + Math.floor(random() * 4);
      for (let j = 0; j < n; j++) {
        const k = pick();
        ops.push(random() < 0.7 ? { type: 'set', key: k, value: `b${i}.${j}` } : { type: 'delete', key: k });
      }
      const versions: number[] = [];
      for (const op of ops) {
        // A delete of a key not live at that point of the batch writes nothing, and gets 0.
        versions.push(op.type === 'set' || model.has(op.key) ? ++version : 0);
        if (op.type === 'set') model.set(op.key, op.value);
        else model.delete(op.key);
      }
      push(`batch of ${n}`, store.batch(ops), { value: versions });
    } else if (roll < 0.71) {
      // A batch with a bad operation at its end: nothing of it may apply.
      const bad = [{ type: 'set', key, value: 'never' }, { type: 'set', key: pick(), value: undefined }];
      push(`bad batch on ${key}`, store.batch(bad as Array<BatchOperation<unknown>>), { code: ErrorCodes.INVALID_VALUE });
    } else if (roll < 0.73) {
      push(`bad set on ${key}`, store.set(key, 'never', { ttl: -1 }), { code: ErrorCodes.INVALID_ARGUMENT });
    } else if (roll < 0.88) {
      push(`get ${key}`, store.get(key), { value: model.get(key) });
    } else if (roll < 0.98) {
      push(`has ${key}`, store.has(key), { value: model.has(key) });
    } else {
      push('sync', store.sync(), { value: undefined });
    }
  }
  versions.last = version;
  return calls;
}

async function checkOutcomes(calls: Pending[], seed: number): Promise<void> {
  const settled = await Promise.all(calls.map((c) => c.settled));
  settled.forEach((result, i) => {
    const call = calls[i];
    const where = `call #${call.index} (${call.describe}), seed ${seed}`;
    if ('code' in call.expected) {
      expect(result.status, where).to.equal('rejected');
      expect((result as PromiseRejectedResult).reason.code, where).to.equal(call.expected.code);
    } else {
      if (result.status === 'rejected') expect.fail(`${where} rejected: ${String(result.reason)}`);
      expect(result.value, where).to.deep.equal(call.expected.value);
    }
  });
}

function sorted(model: Map<string, unknown>): Array<[string, unknown]> {
  return [...model].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

describe('call order under thousands of unawaited calls', () => {
  const runs: Array<{ name: string; options: OpenOptions; seed: number }> = [
    { name: "sync 'always'", options: { sync: 'always' }, seed: 1 },
    { name: "sync 'interval'", options: { sync: 'interval', syncIntervalMs: 2 }, seed: 2 },
    { name: "sync 'never'", options: { sync: 'never' }, seed: 3 },
    { name: "sync 'never' with small segments (rotation under load)", options: { sync: 'never', maxSegmentBytes: 4096 }, seed: 4 },
  ];
  for (const run of runs) {
    it(`5000 mixed calls on overlapping keys match a model applied in call order: ${run.name}`, async () => {
      const dir = tempDir();
      let store = await open(dir, run.options);
      const model = new Map<string, unknown>();
      const versions = { last: 0 };
      const calls = fireCalls(store, model, 5000, run.seed, versions);
      // Every effect is visible at once, before any promise settles.
      expect(store.size, `seed ${run.seed}`).to.equal(model.size);
      expect(await dump(store), `seed ${run.seed}`).to.deep.equal(sorted(model));
      await checkOutcomes(calls, run.seed);
      expect(await dump(store)).to.deep.equal(sorted(model));
      expect(coreStats(store).keys).to.equal(model.size);
      const stats = coreStats(store);
      const filesOpen = segmentBytes(dir);
      await store.close();
      // A clean close cuts the zero padding 'always' mode preallocates (docs/durability.md): the
      // files take that much less disk, and nothing else changes.
      const padding = filesOpen - segmentBytes(dir);
      if (run.options.sync === 'always') expect(padding).to.be.above(0);
      else expect(padding).to.equal(0);
      store = await open(dir, run.options);
      expect(await dump(store), `seed ${run.seed}, after reopen`).to.deep.equal(sorted(model));
      expect(coreStats(store)).to.deep.equal({ ...stats, diskBytes: stats.diskBytes - padding });
      if (run.options.maxSegmentBytes !== undefined) expect(stats.segments).to.be.greaterThan(10);
      // A second round on the reopened store, continuing from the same model.
      const more = fireCalls(store, model, 1000, run.seed + 100, versions);
      await store.close();
      await checkOutcomes(more, run.seed + 100);
      store = await open(dir, run.options);
      expect(await dump(store)).to.deep.equal(sorted(model));
      await store.close();
    });
  }
});

describe('a read sees every write called before it', () => {
  let store: Store<unknown>;
  beforeEach(async () => {
    store = await openFast(tempDir());
  });
  afterEach(async () => {
    await store.close();
  });

  it('get() right after an unawaited set() sees it', async () => {
    const write = store.set('k', { v: 1 });
    expect(await store.get('k')).to.deep.equal({ v: 1 });
    expect(await store.has('k')).to.equal(true);
    expect(store.size).to.equal(1);
    await write;
  });

  it('get() after unawaited set() and delete() sees the delete', async () => {
    const writes = [store.set('k', 1), store.delete('k')];
    expect(await store.get('k')).to.equal(undefined);
    expect(await store.has('k')).to.equal(false);
    expect(await Promise.all(writes)).to.deep.equal([1, true]);
  });

  it('create() after an unawaited delete() of the same key succeeds', async () => {
    await store.set('k', 'old');
    const del = store.delete('k');
    const create = store.create('k', 'new');
    expect(await del).to.equal(true);
    await create;
    expect(await store.get('k')).to.equal('new');
  });

  it('create() after an unawaited create() of the same key rejects LOGKV_KEY_EXISTS', async () => {
    const first = store.create('k', 1);
    await expectCode(store.create('k', 2), ErrorCodes.KEY_EXISTS);
    await first;
    expect(await store.get('k')).to.equal(1);
  });

  it('update() after an unawaited create() succeeds; after an unawaited delete() it rejects', async () => {
    const create = store.create('k', 1);
    const update = store.update('k', 2);
    const del = store.delete('k');
    await expectCode(store.update('k', 3), ErrorCodes.KEY_NOT_FOUND);
    expect(await Promise.all([create, update, del])).to.deep.equal([1, 2, true]);
    expect(await store.has('k')).to.equal(false);
  });

  it('delete() after an unawaited set() resolves true, and a second one false', async () => {
    const set = store.set('k', 1);
    const first = store.delete('k');
    const second = store.delete('k');
    expect(await Promise.all([set, first, second])).to.deep.equal([1, true, false]);
  });

  it('an unawaited batch() is visible at once, in its order', async () => {
    const batch = store.batch([
      { type: 'set', key: 'a', value: 1 },
      { type: 'delete', key: 'a' },
      { type: 'set', key: 'b', value: 2 },
    ]);
    expect(await store.has('a')).to.equal(false);
    expect(await store.get('b')).to.equal(2);
    await batch;
  });

  it('keys() and entries() see unawaited writes', async () => {
    const writes = [store.set('x', 1), store.set('y', 2), store.delete('x')];
    const keys: string[] = [];
    for await (const key of store.keys()) keys.push(key);
    expect(keys).to.deep.equal(['y']);
    expect(await dump(store)).to.deep.equal([['y', 2]]);
    await Promise.all(writes);
  });

  it('reads of queued writes in a segment rotated out are served correctly', async () => {
    await store.close();
    const dir = tempDir();
    store = await openFast(dir, { maxSegmentBytes: 1024 });
    const writes: Array<Promise<unknown>> = [];
    for (let i = 0; i < 50; i++) writes.push(store.set(`k${i}`, 'x'.repeat(100) + i));
    for (let i = 0; i < 50; i++) expect(await store.get(`k${i}`)).to.equal('x'.repeat(100) + i);
    await Promise.all(writes);
    for (let i = 0; i < 50; i++) expect(await store.get(`k${i}`)).to.equal('x'.repeat(100) + i);
    expect(coreStats(store).segments).to.be.greaterThan(5);
  });

  it('queued records are found in any order before they reach the file', async () => {
    const writes: Array<Promise<unknown>> = [];
    for (let i = 0; i < 33; i++) writes.push(store.set(`k${i}`, i));
    // Issued before any write can finish: every read is served from the queue.
    const order = [32, 0, 16, 31, 1, 8, 24, 15, 17, 2, 30];
    const reads = order.map((i) => store.get(`k${i}`));
    expect(await Promise.all(reads)).to.deep.equal(order);
    await Promise.all(writes);
  });

  it("reads never wait behind the write queue, even with sync 'always'", async () => {
    await store.close();
    store = await openFast(tempDir(), { sync: 'always' });
    await store.set('old', 'value');
    const events: string[] = [];
    const write = store.set('new', 1).then(() => events.push('write'));
    const read = store.get('old').then((v) => events.push(`read ${String(v)}`));
    const readNew = store.get('new').then((v) => events.push(`read new ${String(v)}`));
    await Promise.all([write, read, readNew]);
    expect(events).to.deep.equal(['read value', 'read new 1', 'write']);
  });

  it('a batch larger than the room left in the active segment stays whole in the next one', async () => {
    await store.close();
    const dir = tempDir();
    store = await openFast(dir, { maxSegmentBytes: 1024 });
    await store.set('first', 'x'.repeat(500));
    const big = 'y'.repeat(300);
    await store.batch([1, 2, 3].map((i) => ({ type: 'set' as const, key: `b${i}`, value: big })));
    await store.set('after', 'z'.repeat(500));
    expect(coreStats(store).segments).to.equal(3);
    await store.close();
    store = await openFast(dir, { maxSegmentBytes: 1024 });
    expect(await store.get('b3')).to.equal(big);
    expect(await store.get('after')).to.equal('z'.repeat(500));
  });

  it('a write made while a group is being written lands after it', async () => {
    const first = store.set('k', 1);
    await Promise.resolve(); // let the writer start on the first group
    const second = store.set('k', 2);
    expect(await store.get('k')).to.equal(2);
    await Promise.all([first, second]);
    expect(await store.get('k')).to.equal(2);
  });
});
