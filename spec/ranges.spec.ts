/**
 * Ordered keys through the Store (issue 12): keys(), values(), entries() with ranges, clear(),
 * getMany(), against a sorted model. Keys mix ASCII, NUL, Latin-1, U+E000–U+FFFF and
 * astral-plane characters, where UTF-16 order (JavaScript's `<`) and code point order (UTF-8
 * bytes, the contract) disagree: '\u{1F600}' sorts below '\uE000' in UTF-16 and above it here.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { CompactionResult, ErrorCodes, IterateOptions, Store } from '../lib';
import { ORDERED_MAGIC, SNAPSHOT_NAME } from '../lib/snapshot';
import { CLEAR_BATCH_KEYS } from '../lib/store';
import { FakeClock, expectCode, openFast, prng, tempDir } from './helpers';

const PIECES = ['a', 'b', 'ab', '\u0000', 'é', '\uE000', '\uFFFD', '\uFFFF', '\u{1F600}', '\u{10000}', 'z'];

function utf8Order(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** The keys of `live` that `options` selects, in order: what every iteration must yield. */
function expected(live: Iterable<string>, options: IterateOptions): string[] {
  const inRange = (key: string) =>
    (options.gt === undefined || utf8Order(key, options.gt) > 0) &&
    (options.gte === undefined || utf8Order(key, options.gte) >= 0) &&
    (options.lt === undefined || utf8Order(key, options.lt) < 0) &&
    (options.lte === undefined || utf8Order(key, options.lte) <= 0) &&
    (options.prefix === undefined || Buffer.from(key, 'utf8').subarray(0, Buffer.byteLength(options.prefix)).equals(Buffer.from(options.prefix, 'utf8')));
  const keys = [...live].filter(inRange).sort(utf8Order);
  if (options.reverse === true) keys.reverse();
  return keys.slice(0, options.limit ?? Infinity);
}

async function collect<T>(iteration: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iteration) out.push(item);
  return out;
}

function randomKey(random: () => number): string {
  let key = '';
  const pieces = 1 + Math.floor(random() * 3);
  for (let i = 0; i < pieces; i++) key += PIECES[Math.floor(random() * PIECES.length)];
  return key;
}

function randomRange(random: () => number): IterateOptions {
  const options: IterateOptions = {};
  const bound = () => (random() < 0.3 ? Array.from(randomKey(random))[0] : randomKey(random));
  if (random() < 0.3) options.gt = bound();
  if (random() < 0.3) options.gte = bound();
  if (random() < 0.3) options.lt = bound();
  if (random() < 0.3) options.lte = bound();
  if (random() < 0.25) options.prefix = PIECES[Math.floor(random() * PIECES.length)];
  if (random() < 0.5) options.reverse = true;
  if (random() < 0.3) options.limit = Math.floor(random() * 6);
  return options;
}

/** The model: every key's value and expiry (0 = never). */
type Model = Map<string, { value: number; expiresAt: number }>;

function liveKeys(model: Model, now: number): string[] {
  return [...model].filter(([, v]) => v.expiresAt === 0 || v.expiresAt > now).map(([k]) => k);
}

describe('ordered keys through the Store', () => {
  let dir: string;
  let clock: FakeClock;
  let store: Store<number>;
  const options = () => ({ clock: clock.read, maxSegmentBytes: 2048, autoCompact: false as const });

  beforeEach(async () => {
    dir = tempDir('ranges');
    clock = new FakeClock();
    store = await openFast<number>(dir, options());
  });

  afterEach(async () => {
    await store.close();
  });

  /** Checks a few random ranges, in keys(), values() and entries(), against the model. */
  async function checkRanges(model: Model, random: () => number, seed: number, step: number): Promise<void> {
    const live = liveKeys(model, clock.now);
    for (let i = 0; i < 4; i++) {
      const range = randomRange(random);
      const want = expected(live, range);
      const context = `seed ${seed} step ${step} range ${JSON.stringify(range)}`;
      expect(await collect(store.keys(range)), context).to.deep.equal(want);
      expect(await collect(store.values(range)), context).to.deep.equal(want.map((k) => model.get(k)!.value));
      expect(await collect(store.entries(range)), context).to.deep.equal(want.map((k) => [k, model.get(k)!.value]));
    }
  }

  /** Reopens the store: after a clean close (snapshot), or as after a crash with hints kept, or with nothing but the segments. */
  async function reopen(how: 'snapshot' | 'hints' | 'replay'): Promise<void> {
    await store.close();
    for (const name of fs.readdirSync(dir)) {
      const drop = (how !== 'snapshot' && name.startsWith('keydir.snapshot')) || (how === 'replay' && name.endsWith('.hint'));
      if (drop) fs.rmSync(path.join(dir, name));
    }
    store = await openFast<number>(dir, options());
    expect(store.recovery.snapshot, `${how}: the snapshot was used`).to.equal(how === 'snapshot');
  }

  for (const seed of [1, 2, 3]) {
    it(`matches a sorted model under random sets, deletes, batches, expiries, clears, compactions and reopens (seed ${seed})`, async () => {
      const random = prng(seed);
      const model: Model = new Map();
      for (let step = 0; step < 400; step++) {
        const roll = random();
        const key = randomKey(random);
        if (roll < 0.45) {
          const ttl = random() < 0.15 ? 1 + Math.floor(random() * 50) : undefined;
          await store.set(key, step, ttl === undefined ? undefined : { ttl });
          model.set(key, { value: step, expiresAt: ttl === undefined ? 0 : clock.now + ttl });
        } else if (roll < 0.6) {
          await store.delete(key);
          model.delete(key);
        } else if (roll < 0.7) {
          const other = randomKey(random);
          await store.batch([{ type: 'set', key, value: step }, { type: 'delete', key: other }, { type: 'set', key: other + 'b', value: -step - 1 }]);
          model.set(key, { value: step, expiresAt: 0 });
          model.delete(other);
          model.set(other + 'b', { value: -step - 1, expiresAt: 0 });
        } else if (roll < 0.75) {
          clock.advance(Math.floor(random() * 30));
        } else if (roll < 0.78) {
          const range = randomRange(random);
          const doomed = expected(liveKeys(model, clock.now), range);
          expect(await store.clear(range)).to.equal(doomed.length);
          for (const k of doomed) model.delete(k);
        } else if (roll < 0.8) {
          await store.compact();
        } else if (roll < 0.82) {
          await reopen((['snapshot', 'hints', 'replay'] as const)[Math.floor(random() * 3)]);
        }
        if (step % 10 === 0) await checkRanges(model, random, seed, step);
      }
      await checkRanges(model, random, seed, -1);
    });
  }

  it('keeps every bound combination, with and without a prefix, reverse and limit', async () => {
    const keys = ['a', 'a\u0000', 'ab', 'abc', 'b', 'é', '\uE000', '\uE000a', '\uFFFF', '\u{1F600}', '\u{1F600}\u{1F600}'];
    for (const [i, key] of keys.entries()) await store.set(key, i);
    const model: Model = new Map(keys.map((k, i) => [k, { value: i, expiresAt: 0 }]));
    const bounds = [undefined, 'a', 'ab', 'c', '\uE000', '\u{1F600}'];
    const prefixes = [undefined, '', 'a', '\uE000', '\u{1F600}'];
    let checked = 0;
    for (const gt of bounds) for (const gte of bounds) for (const lt of bounds) for (const lte of bounds) {
      for (const prefix of prefixes) {
        for (const [reverse, limit] of [[false, undefined], [true, undefined], [true, 2], [false, 1], [true, 0]] as const) {
          const range: IterateOptions = { gt, gte, lt, lte, prefix, reverse, limit };
          for (const name of Object.keys(range) as Array<keyof IterateOptions>) if (range[name] === undefined) delete range[name];
          expect(await collect(store.keys(range)), JSON.stringify(range)).to.deep.equal(expected(model.keys(), range));
          checked++;
        }
      }
    }
    expect(checked).to.equal(6 ** 4 * 5 * 5);
  });

  it('keeps the keys in order once an iteration asks, and carries the order through a clean close', async () => {
    const carriesOrder = () => {
      const bytes = fs.readFileSync(path.join(dir, SNAPSHOT_NAME));
      return bytes.readUInt32LE(bytes.length - 8) === ORDERED_MAGIC;
    };
    for (let i = 0; i < 500; i++) await store.set(`k${(i * 7919) % 500}`, i);
    await store.close();
    expect(carriesOrder(), 'no order kept before any iteration').to.equal(false);
    store = await openFast<number>(dir, options());
    expect((await collect(store.keys({ limit: 3 })))).to.deep.equal(['k0', 'k1', 'k10']);
    await store.set('k0a', -1);
    await store.delete('k1');
    await store.close();
    expect(carriesOrder(), 'the snapshot carries the order').to.equal(true);
    store = await openFast<number>(dir, options());
    expect((await collect(store.keys({ limit: 3 })))).to.deep.equal(['k0', 'k0a', 'k10']);
  });

  it('yields astral-plane keys above U+E000–U+FFFF (code point order, not UTF-16 order)', async () => {
    for (const key of ['\u{1F600}', '\uFFFD', '\uE000', 'z']) await store.set(key, 1);
    expect(await collect(store.keys())).to.deep.equal(['z', '\uE000', '\uFFFD', '\u{1F600}']);
    expect(await collect(store.keys({ reverse: true, limit: 2 }))).to.deep.equal(['\u{1F600}', '\uFFFD']);
  });

  it('stays in order, never repeats and never yields a dead key while writes, deletes and expiries go on', async () => {
    const random = prng(11);
    const model: Model = new Map();
    for (let i = 0; i < 300; i++) {
      const key = `k${String(i * 3).padStart(4, '0')}`;
      await store.set(key, i, i % 7 === 0 ? { ttl: 100 + i } : undefined);
      model.set(key, { value: i, expiresAt: i % 7 === 0 ? clock.now + 100 + i : 0 });
    }
    for (const reverse of [false, true]) {
      const untouched = new Set(liveKeys(model, clock.now + 1000));
      const seen: string[] = [];
      for await (const [key, value] of store.entries({ reverse, gte: 'k0100' })) {
        const now = model.get(key);
        expect(now, `${key} is live when yielded`).to.not.equal(undefined);
        expect(now!.expiresAt === 0 || now!.expiresAt > clock.now, `${key} has not expired`).to.equal(true);
        expect(value).to.equal(now!.value);
        if (seen.length > 0) expect(utf8Order(seen[seen.length - 1], key) * (reverse ? -1 : 1), `${key} after ${seen[seen.length - 1]}`).to.be.below(0);
        seen.push(key);
        // Between two steps: sets ahead and behind, deletes ahead and behind, time passing.
        for (let j = 0; j < 3; j++) {
          const other = `k${String(Math.floor(random() * 900)).padStart(4, '0')}`;
          if (random() < 0.5) {
            await store.set(other, -1);
            model.set(other, { value: -1, expiresAt: 0 });
          } else {
            await store.delete(other);
            model.delete(other);
          }
          untouched.delete(other);
        }
        clock.advance(1);
      }
      const missing = [...untouched].filter((k) => utf8Order(k, 'k0100') >= 0 && !seen.includes(k));
      expect(missing, 'every key live and untouched throughout was yielded').to.deep.equal([]);
      expect(new Set(seen).size).to.equal(seen.length);
    }
  });

  it('is not disturbed by a compaction that moves every record while it runs', async () => {
    for (let i = 0; i < 2000; i++) await store.set(`key:${String(i).padStart(5, '0')}`, i);
    for (let i = 0; i < 2000; i += 2) await store.set(`key:${String(i).padStart(5, '0')}`, -i - 1);
    const want = Array.from({ length: 2000 }, (_, i) => [`key:${String(i).padStart(5, '0')}`, i % 2 === 0 ? -i - 1 : i]);
    for (const reverse of [false, true]) {
      // Dead records again, so that this pass's compaction has work to do.
      for (let i = 0; i < 2000; i += 2) await store.set(`key:${String(i).padStart(5, '0')}`, -i - 1);
      const seen: Array<[string, number]> = [];
      let compaction: Promise<CompactionResult> | undefined;
      let overlapped = 0;
      for await (const entry of store.entries({ reverse, prefix: 'key:' })) {
        seen.push(entry);
        if (seen.length === 100) compaction = store.compact();
        if (store.stats().compacting) overlapped++;
        // Let the compaction's steps run between the iteration's.
        if (seen.length % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
      const result = await compaction!;
      expect(result.recordsKept, 'the compaction moved every live record').to.equal(2000);
      expect(overlapped, 'the compaction ran while the iteration did').to.be.above(0);
      expect(seen).to.deep.equal(reverse ? [...want].reverse() : want);
    }
  });

  it('clear() deletes a range, a prefix or everything, honours reverse and limit, and resolves with the count', async () => {
    for (const key of ['a', 'a1', 'a2', 'b', 'b1', 'c']) await store.set(key, 1);
    expect(await store.clear({ prefix: 'a', reverse: true, limit: 2 })).to.equal(2);
    expect(await collect(store.keys())).to.deep.equal(['a', 'b', 'b1', 'c']);
    expect(await store.clear({ gt: 'a', lte: 'b1' })).to.equal(2);
    expect(await collect(store.keys())).to.deep.equal(['a', 'c']);
    expect(await store.clear({ limit: 0 })).to.equal(0);
    expect(await store.clear()).to.equal(2);
    expect(store.size).to.equal(0);
    expect(await store.clear()).to.equal(0);
  });

  it('clear() writes bounded batches: no segment grows past maxSegmentBytes by more than one batch', async () => {
    await store.close();
    store = await openFast<number>(dir, { ...options(), maxSegmentBytes: 4096 });
    const n = 3000;
    await store.batch(Array.from({ length: 100 }, (_, i) => ({ type: 'set' as const, key: `x${i}`, value: i })));
    for (let i = 0; i < n; i += 50) {
      await store.batch(Array.from({ length: 50 }, (_, j) => ({ type: 'set' as const, key: `k${String(i + j).padStart(6, '0')}`, value: i + j })));
    }
    const before = new Set(fs.readdirSync(dir));
    expect(await store.clear({ prefix: 'k' })).to.equal(n);
    expect(store.size).to.equal(100);
    // Tombstones of about 35 bytes: one batch of all 3000 would be a ~100 KB segment.
    const written = fs.readdirSync(dir).filter((name) => name.endsWith('.seg') && !before.has(name));
    expect(written.length).to.be.above(10);
    for (const name of written) expect(fs.statSync(path.join(dir, name)).size, name).to.be.at.most(4096 + 1024 + 64);
    expect(CLEAR_BATCH_KEYS).to.be.at.most(10_000);
  });

  it('clear() deletes keys set ahead of its position while it runs, and keeps those set behind it', async () => {
    await store.close();
    store = await openFast<number>(dir, { ...options(), maxSegmentBytes: 1 << 20 });
    for (let i = 0; i < 30_000; i++) if (i % 1000 === 0) await store.batch(Array.from({ length: 1000 }, (_, j) => ({ type: 'set' as const, key: `k${String(i + j).padStart(6, '0')}`, value: j })));
    const clearing = store.clear({ prefix: 'k' });
    // The first batch is written synchronously before clear() returns: k000000 is behind it now.
    const behind = store.set('k000000', 7);
    const ahead = store.set('k029999x', 8);
    await Promise.all([behind, ahead]);
    // The 30,000 it found at the start, less k000000 (deleted in the first batch, then set again
    // behind the clear), plus k029999x (set ahead of it).
    expect(await clearing).to.equal(30_001);
    expect(await collect(store.keys())).to.deep.equal(['k000000']);
  });

  it('getMany() answers in the order asked, undefined for missing and expired keys', async () => {
    await store.set('b', 2);
    await store.set('a', 1);
    await store.set('t', 3, { ttl: 10 });
    clock.advance(20);
    expect(await store.getMany(['b', 'missing', 'a', 't', 'b'])).to.deep.equal([2, undefined, 1, undefined, 2]);
    expect(await store.getMany([])).to.deep.equal([]);
  });

  it('rejects bad options at the door with LOGKV_INVALID_ARGUMENT, and bad keys with LOGKV_INVALID_KEY', async () => {
    type Loose = never;
    const bad: unknown[] = [
      { start: 'a' }, { gt: 1 }, { lte: null }, { prefix: 5 }, { gte: '\uD800' }, { reverse: 'yes' },
      { limit: -1 }, { limit: 1.5 }, { limit: '3' }, { limit: NaN }, 'a', null, [],
    ];
    for (const options of bad) {
      await expectCode(store.keys(options as Loose).next(), ErrorCodes.INVALID_ARGUMENT);
      await expectCode(store.values(options as Loose).next(), ErrorCodes.INVALID_ARGUMENT);
      await expectCode(store.entries(options as Loose).next(), ErrorCodes.INVALID_ARGUMENT);
      await expectCode(store.clear(options as Loose), ErrorCodes.INVALID_ARGUMENT);
    }
    await expectCode(store.getMany('a' as Loose), ErrorCodes.INVALID_ARGUMENT);
    await expectCode(store.getMany(['a', ''] as Loose), ErrorCodes.INVALID_KEY);
    await expectCode(store.getMany(['a', 3] as Loose), ErrorCodes.INVALID_KEY);
    expect(await collect(store.keys({ limit: Infinity, gt: '', prefix: '' }))).to.deep.equal([]);
  });

  it('rejects LOGKV_CLOSED from an iteration whose store closes under it', async () => {
    for (const key of ['a', 'b', 'c']) await store.set(key, 1);
    const iteration = store.keys();
    expect((await iteration.next()).value).to.equal('a');
    await store.close();
    await expectCode(iteration.next(), ErrorCodes.CLOSED);
    await expectCode(store.clear(), ErrorCodes.CLOSED);
    await expectCode(store.getMany(['a']), ErrorCodes.CLOSED);
    store = await openFast<number>(dir, options());
  });
});
