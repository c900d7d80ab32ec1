/**
 * Expiry in the keydir (lib/expiry.ts, the keydir's expiry API): the heap against a plain Map
 * model under seeded random operations, with ties and the largest expiry the format holds, across
 * snapshot round trips; the heap loader's refusals; and the sweeper that purges in slices.
 */
import { expect } from 'chai';
import { ExpiryHeap, ExpirySweeper } from '../lib/expiry';
import { MAX_EXPIRES_AT } from '../lib/format';
import { Entry, KeyDir } from '../lib/keydir';
import { seededRandom } from '../lib/medium/random';

interface Modelled {
  length: number;
  expiresAt: number;
}

/** What the model says countExpired(), expiredLength() and nextExpiry() must answer. */
function expected(model: Map<string, Modelled>, now: number): { count: number; length: number; next: number; expiring: number } {
  let count = 0;
  let length = 0;
  let next = Infinity;
  let expiring = 0;
  for (const m of model.values()) {
    if (m.expiresAt === 0) continue;
    expiring++;
    next = Math.min(next, m.expiresAt);
    if (m.expiresAt <= now) {
      count++;
      length += m.length;
    }
  }
  return { count, length, next, expiring };
}

function check(keydir: KeyDir, model: Map<string, Modelled>, now: number, where: string): void {
  const want = expected(model, now);
  expect(keydir.countExpired(now), `countExpired ${where}`).to.equal(want.count);
  expect(keydir.expiredLength(now), `expiredLength ${where}`).to.equal(want.length);
  expect(keydir.nextExpiry(), `nextExpiry ${where}`).to.equal(want.next);
  expect(keydir.expiringCount, `expiringCount ${where}`).to.equal(want.expiring);
  expect(keydir.size, `size ${where}`).to.equal(model.size);
}

/**
 * takeExpired(now, limit) against the model: it takes min(limit, expired) keys, all expired by
 * `now`, none later than an expired key it left, and reports each one's length.
 */
function takeAndCheck(keydir: KeyDir, model: Map<string, Modelled>, now: number, limit: number, where: string): void {
  const before = expected(model, now);
  let visitedLength = 0;
  const taken = keydir.takeExpired(now, limit, (_record, length) => { visitedLength += length; });
  expect(taken, `taken ${where}`).to.equal(Math.min(limit, before.count));
  const gone = [...model].filter(([key]) => keydir.get(key) === undefined);
  expect(gone.length, `keys gone ${where}`).to.equal(taken);
  let latestTaken = -Infinity;
  let lengthTaken = 0;
  for (const [key, m] of gone) {
    expect(m.expiresAt, `expiry of taken ${key} ${where}`).to.be.within(1, now);
    latestTaken = Math.max(latestTaken, m.expiresAt);
    lengthTaken += m.length;
    model.delete(key);
  }
  for (const [key, m] of model) {
    if (m.expiresAt !== 0 && m.expiresAt <= now) expect(m.expiresAt, `left ${key} ${where}`).to.be.at.least(latestTaken);
  }
  expect(visitedLength, `visited length ${where}`).to.equal(lengthTaken);
}

describe('keydir expiry', () => {
  for (const seed of [11, 12, 13, 14]) {
    // Odd seeds give some keys the largest expiry (so snapshots store f64 times), even seeds do not
    // (so they store u32 offsets from the earliest).
    const huge = seed % 2 === 1;
    it(`matches a model through 30,000 random operations, with ties${huge ? ' and huge expiries' : ''} (seed ${seed})`, () => {
      const random = seededRandom(seed);
      let keydir = new KeyDir();
      const model = new Map<string, Modelled>();
      let now = 1000;
      // Few distinct times near `now`, so ties are common and expiries pass often; some never
      // expire in practice (MAX_EXPIRES_AT) and some keys have no expiry at all.
      const expiry = (): number => {
        const roll = random();
        if (roll < 0.3) return 0;
        if (roll < 0.4) return huge ? MAX_EXPIRES_AT : now + 1000 + random.int(10);
        return now + random.int(60);
      };
      for (let i = 0; i < 30_000; i++) {
        const where = `(op ${i}, seed ${seed})`;
        const key = `k${random.int(600)}`;
        const roll = random();
        if (roll < 0.55) {
          const entry = new Entry(0x10000 * (1 + random.int(3)), random.int(2 ** 31), 20 + random.int(500), expiry());
          const previous = keydir.put(key, entry);
          expect(previous?.expiresAt, `previous expiry of ${key} ${where}`).to.equal(model.get(key)?.expiresAt);
          model.set(key, { length: entry.length, expiresAt: entry.expiresAt });
        } else if (roll < 0.7) {
          keydir.put(key, undefined);
          model.delete(key);
        } else if (roll < 0.8) {
          expect(keydir.get(key)?.expiresAt, `expiry of ${key} ${where}`).to.equal(model.get(key)?.expiresAt);
        } else if (roll < 0.9) {
          now += random.int(8);
          check(keydir, model, now, where);
        } else if (roll < 0.99) {
          takeAndCheck(keydir, model, now, 1 + random.int(random() < 0.5 ? 5 : 500), where);
        } else {
          keydir = KeyDir.fromBytes(Buffer.concat(keydir.toBytes()));
          check(keydir, model, now, `after a snapshot round trip ${where}`);
        }
      }
      check(keydir, model, now, 'at the end');
      takeAndCheck(keydir, model, MAX_EXPIRES_AT, Infinity, 'taking everything');
      expect(keydir.expiringCount).to.equal(0);
      expect(keydir.nextExpiry()).to.equal(Infinity);
      for (const [key, m] of model) expect(keydir.get(key)?.expiresAt, key).to.equal(m.expiresAt);
    });
  }

  it('takeExpired() takes the earliest first, up to the limit, and tells each length before removing it', () => {
    const keydir = new KeyDir();
    keydir.put('c', new Entry(1, 0, 30, 300));
    keydir.put('a', new Entry(1, 30, 10, 100));
    keydir.put('never', new Entry(1, 40, 50, 0));
    keydir.put('b', new Entry(1, 90, 20, 200));
    keydir.put('far', new Entry(1, 110, 40, MAX_EXPIRES_AT));
    const seen: Array<[string | undefined, number]> = [];
    const visit = (_record: number, length: number): void => {
      // The key is still there while visit runs: find which one by its length.
      seen.push([['a', 'b', 'c'].find((k) => keydir.get(k)?.length === length), length]);
    };
    expect(keydir.takeExpired(250, 1, visit)).to.equal(1);
    expect(keydir.takeExpired(250, 10, visit)).to.equal(1);
    expect(keydir.takeExpired(250, 10, visit)).to.equal(0);
    expect(seen).to.deep.equal([['a', 10], ['b', 20]]);
    expect(keydir.get('c')?.expiresAt).to.equal(300);
    expect(keydir.nextExpiry()).to.equal(300);
    expect(keydir.countExpired(MAX_EXPIRES_AT - 1)).to.equal(1);
    expect(keydir.countExpired(MAX_EXPIRES_AT)).to.equal(2);
    expect(keydir.takeExpired(MAX_EXPIRES_AT, Infinity)).to.equal(2);
    expect([...keydir.keys()]).to.deep.equal(['never']);
  });

  it('an overwrite moves a key in the heap, both ways, and without an expiry takes it out', () => {
    const keydir = new KeyDir();
    for (let i = 0; i < 100; i++) keydir.put(`k${i}`, new Entry(1, i, 10, 1000 + i));
    keydir.put('k50', new Entry(1, 50, 10, 5)); // earliest now
    expect(keydir.nextExpiry()).to.equal(5);
    keydir.put('k50', new Entry(1, 50, 10, 5000)); // latest now
    expect(keydir.nextExpiry()).to.equal(1000);
    keydir.put('k0', new Entry(1, 0, 10, 0)); // no expiry any more
    expect(keydir.nextExpiry()).to.equal(1001);
    expect(keydir.countExpired(1049)).to.equal(49); // k1 .. k49
    expect(keydir.countExpired(4999)).to.equal(98);
    expect(keydir.expiringCount).to.equal(99);
  });

  it('removeExpiringIn() removes exactly the expiring keys whose records lie in the given segments', () => {
    const keydir = new KeyDir();
    for (let i = 0; i < 300; i++) keydir.put(`k${i}`, new Entry(0x10000 * (1 + (i % 3)), i, 10 + (i % 7), i % 2 === 0 ? 0 : 10 ** 12 + i));
    let removedLength = 0;
    const removed = keydir.removeExpiringIn(new Set([0x10000, 0x30000, 0x990000]), (_record, length) => { removedLength += length; });
    let wantLength = 0;
    for (let i = 0; i < 300; i++) {
      const gone = i % 2 === 1 && i % 3 !== 1;
      if (gone) wantLength += 10 + (i % 7);
      expect(keydir.get(`k${i}`) === undefined, `k${i}`).to.equal(gone);
    }
    expect(removed).to.equal(100);
    expect(removedLength).to.equal(wantLength);
    expect(keydir.expiringCount).to.equal(50);
    expect(keydir.removeExpiringIn(new Set())).to.equal(0);
  });

  it('a keydir without any expiry allocates no heap and answers at once', () => {
    const keydir = new KeyDir();
    const bare = keydir.memoryBytes;
    for (let i = 0; i < 100; i++) keydir.put(`k${i}`, new Entry(1, i, 10, 0));
    expect(keydir.memoryBytes).to.equal(bare);
    expect(keydir.nextExpiry()).to.equal(Infinity);
    expect(keydir.countExpired(MAX_EXPIRES_AT)).to.equal(0);
    expect(keydir.takeExpired(MAX_EXPIRES_AT, 10)).to.equal(0);
    keydir.put('t', new Entry(1, 0, 10, 7));
    expect(keydir.memoryBytes).to.be.greaterThan(bare);
  });
});

describe('expiry heap', () => {
  /** A heap of records 0..n-1 with the given times, as bytes. */
  function heapBytes(times: number[]): { base: number; times: Buffer; records: Buffer } {
    const heap = new ExpiryHeap(times.length);
    times.forEach((t, record) => heap.set(record, t));
    const bytes = heap.toBytes();
    return { base: bytes.base, times: Buffer.from(bytes.times), records: Buffer.from(bytes.records) };
  }
  const live = (): boolean => true;

  it('stays a heap through random sets and deletes (fromBytes checks the heap order)', () => {
    const random = seededRandom(21);
    const heap = new ExpiryHeap(5000);
    const model = new Map<number, number>();
    for (let i = 0; i < 50_000; i++) {
      const record = random.int(5000);
      if (random() < 0.7) {
        const t = random() < 0.05 ? MAX_EXPIRES_AT : 1 + random.int(1000);
        heap.set(record, t);
        model.set(record, t);
      } else {
        heap.delete(record);
        model.delete(record);
      }
      if (i % 5000 === 0) {
        const { base, times, records } = heap.toBytes();
        const copy = ExpiryHeap.fromBytes(times, records, heap.length, base, 5000, live);
        expect(copy.length).to.equal(model.size);
        for (const [record, time] of model) expect(copy.get(record)).to.equal(time);
      }
    }
    let count = 0;
    heap.forEach((record, time) => {
      count++;
      expect(model.get(record)).to.equal(time);
    });
    expect(count).to.equal(model.size);
  });

  it('counts and visits the expired by a walk when few have expired and by a scan when many have, alike', () => {
    const random = seededRandom(31);
    const heap = new ExpiryHeap(10_000);
    const times = Array.from({ length: 10_000 }, () => 1 + random.int(100_000));
    times.forEach((t, record) => heap.set(record, t));
    // From none, through fewer than a sixteenth (the walk), to all (the scan).
    for (const now of [0, 1, 50, 300, 600, 700, 5000, 50_000, 100_000]) {
      const expired = times.map((t, record) => [t, record]).filter(([t]) => t <= now).map(([, record]) => record);
      expect(heap.countBy(now), `countBy(${now})`).to.equal(expired.length);
      const visited: number[] = [];
      heap.forEachBy(now, (record) => visited.push(record));
      expect(visited.sort((a, b) => a - b), `forEachBy(${now})`).to.deep.equal(expired);
    }
  });

  it('stores times as u32 offsets from a base when all fit, else as f64, and reads both back', () => {
    // A span of exactly 2^32 - 1 ms still fits: the base moves to the earliest.
    const near = heapBytes([1e12 + 40, 1e12 + 10, 1e12 + 10 + 0xffffffff, 1e12 + 30]);
    expect(near.base).to.equal(1e12 + 10);
    expect(near.times.length).to.equal(16);
    expect([...new Uint32Array(Uint8Array.from(near.times).buffer)]).to.have.members([0, 20, 30, 0xffffffff]);
    const copy = ExpiryHeap.fromBytes(near.times, near.records, 4, near.base, 4, live);
    expect([0, 1, 2, 3].map((r) => copy.get(r))).to.deep.equal([1e12 + 40, 1e12 + 10, 1e12 + 10 + 0xffffffff, 1e12 + 30]);
    // A narrow heap's base leaves about 24 days below its first expiry, and not below 1.
    const first = heapBytes([1e12, 1e12 + 5]);
    expect(first.base).to.equal(1e12 - 2 ** 31);
    expect([...new Uint32Array(Uint8Array.from(first.times).buffer)]).to.deep.equal([2 ** 31, 2 ** 31 + 5]);
    expect(heapBytes([7]).base).to.equal(1);
    // One more millisecond of range, a fraction, or the largest expiry: f64, as in memory.
    for (const times of [[1e12, 1e12 + 2 ** 32], [1e12, 1e12 + 0.5], [1, MAX_EXPIRES_AT]]) {
      const far = heapBytes(times);
      expect(far.base, String(times)).to.equal(0);
      expect(far.times.length).to.equal(16);
      const back = ExpiryHeap.fromBytes(far.times, far.records, 2, 0, 2, live);
      expect([back.get(0), back.get(1)]).to.deep.equal(times);
    }
    expect(heapBytes([]).base).to.equal(0);
  });

  it('fromBytes() refuses entries out of heap order, repeated or dead records, and bad times', () => {
    const f64 = heapBytes([10, 20, 30, 2 ** 40]);
    const u32 = heapBytes([10, 20, 30, 40]);
    expect(f64.base).to.equal(0);
    expect(u32.base).to.equal(1);
    expect(ExpiryHeap.fromBytes(f64.times, f64.records, 4, 0, 4, live).get(3)).to.equal(2 ** 40);
    expect(ExpiryHeap.fromBytes(u32.times, u32.records, 4, 1, 4, live).get(3)).to.equal(40);
    type Damage = (t: Buffer, r: Buffer) => void;
    const cases: Array<[string, Damage, Damage, ((record: number) => boolean)?]> = [
      ['out of order', (t) => { t.writeDoubleLE(5, 8); }, (t) => { t.writeUInt32LE(0, 4); t.writeUInt32LE(5, 0); }],
      ['a repeated record', (_t, r) => { r.writeInt32LE(0, 4); }, (_t, r) => { r.writeInt32LE(0, 4); }],
      ['a record past the table', (_t, r) => { r.writeInt32LE(4, 12); }, (_t, r) => { r.writeInt32LE(4, 12); }],
      ['a negative record', (_t, r) => { r.writeInt32LE(-1, 12); }, (_t, r) => { r.writeInt32LE(-1, 12); }],
      ['a dead record', () => undefined, () => undefined, (record) => record !== 2],
      ['a zero time', (t) => { t.fill(0, 0, 8); }, () => undefined],
      ['a time past MAX_EXPIRES_AT', (t) => { t.writeDoubleLE(MAX_EXPIRES_AT + 2, 24); }, () => undefined],
      ['NaN', (t) => { t.writeDoubleLE(NaN, 24); }, () => undefined],
    ];
    for (const [name, damageF64, damageU32, isLive] of cases) {
      for (const [heap, damage] of [[f64, damageF64], [u32, damageU32]] as const) {
        const t = Buffer.from(heap.times);
        const r = Buffer.from(heap.records);
        damage(t, r);
        if (t.equals(heap.times) && r.equals(heap.records) && isLive === undefined) continue; // no such damage here
        expect(() => ExpiryHeap.fromBytes(t, r, 4, heap.base, 4, isLive ?? live), `${name} (base ${heap.base})`).to.throw('expiry heap');
      }
    }
    expect(() => ExpiryHeap.fromBytes(f64.times, f64.records, 3, 0, 4, live), 'wrong size').to.throw('expiry heap');
    expect(() => ExpiryHeap.fromBytes(u32.times, u32.records, 4, 0, 4, live), 'wrong size for f64').to.throw('expiry heap');
    for (const base of [NaN, -1, 0.5, MAX_EXPIRES_AT + 2]) {
      expect(() => ExpiryHeap.fromBytes(u32.times, u32.records, 4, base, 4, live), `base ${base}`).to.throw('expiry heap');
    }
    // A base whose offsets run past MAX_EXPIRES_AT.
    expect(() => ExpiryHeap.fromBytes(u32.times, u32.records, 4, MAX_EXPIRES_AT - 20, 4, live)).to.throw('expiry heap');
  });

  it('moves its base as expiries drift past 2^32 ms, widens for a span it cannot hold, and narrows once empty', () => {
    const random = seededRandom(41);
    const heap = new ExpiryHeap(4000);
    const model = new Map<number, number>();
    const check = (where: string): void => {
      const { base, times, records } = heap.toBytes();
      const copy = ExpiryHeap.fromBytes(times, records, heap.length, base, 4000, live);
      for (const [record, time] of model) {
        expect(heap.get(record), `${where}: record ${record}`).to.equal(time);
        expect(copy.get(record), `${where}: copy, record ${record}`).to.equal(time);
      }
      const earliest = Math.min(...model.values());
      expect(heap.earliest(), where).to.equal(model.size === 0 ? Infinity : earliest);
      expect(heap.countBy(earliest + 2 ** 31), where).to.equal([...model.values()].filter((t) => t <= earliest + 2 ** 31).length);
    };
    // A cache's life: a steady one-day ttl while the clock runs through 600 days, the earliest
    // expiries taken as they pass. The window of 2^32 ms from the base must move about 25 times.
    let now = 1.7e12;
    for (let i = 0; i < 60_000; i++) {
      now += 864_000 + random.int(10_000); // about 100 keys a day
      const record = random.int(4000);
      heap.set(record, now + 24 * 3600_000);
      model.set(record, now + 24 * 3600_000);
      while (heap.earliestRecordBy(now) >= 0) {
        const gone = heap.earliestRecordBy(now);
        heap.delete(gone);
        model.delete(gone);
      }
      if (i % 6000 === 0) check(`day ${Math.round((now - 1.7e12) / 864e5)}`);
    }
    check('after 600 days');
    expect(heap.wide, 'still narrow').to.equal(false);
    // A key that never expires in practice, beside one-day ttls: the times themselves, as f64.
    heap.set(4000 - 1, MAX_EXPIRES_AT);
    model.set(4000 - 1, MAX_EXPIRES_AT);
    check('wide');
    expect(heap.wide, 'wide').to.equal(true);
    for (const record of [...model.keys()]) {
      heap.delete(record);
      model.delete(record);
    }
    heap.set(1, now);
    model.set(1, now);
    check('empty, then one again');
    expect(heap.wide, 'narrow again').to.equal(false);
  });

  it('widens rather than move its base again and again for expiries chosen to straddle its window', () => {
    const heap = new ExpiryHeap(2000);
    for (let record = 0; record < 1000; record++) heap.set(record, 1e12 + record);
    // Just above the window: the base moves up (all of it spans less than 2^32 ms).
    heap.set(1000, 1e12 + 2 ** 31 + 100);
    expect(heap.wide).to.equal(false);
    // Then just below the new window, one addition later: it would move back down, O(n) again.
    heap.delete(1000);
    heap.set(1001, 1e12 - 2 ** 31);
    expect(heap.wide).to.equal(true);
    expect([1001, 5, 999].map((r) => heap.get(r))).to.deep.equal([1e12 - 2 ** 31, 1e12 + 5, 1e12 + 999]);
    expect(heap.earliest()).to.equal(1e12 - 2 ** 31);
    expect(heap.toBytes().base, 'stored narrow all the same: it fits').to.equal(1e12 - 2 ** 31);
  });

});

describe('expiry sweeper', () => {
  /** A keydir whose `expired` keys expire at 100 and `later` keys at 10^6, with a sweeper over it. */
  function setup(expired: number, later: number, options = {}): { keydir: KeyDir; clock: { now: number }; sweeper: ExpirySweeper; purges: number[] } {
    const keydir = new KeyDir();
    for (let i = 0; i < expired; i++) keydir.put(`e${i}`, new Entry(1, i, 10, 100));
    for (let i = 0; i < later; i++) keydir.put(`l${i}`, new Entry(1, i, 10, 1_000_000));
    const clock = { now: 1000 };
    const purges: number[] = [];
    const sweeper = new ExpirySweeper({
      clock: () => clock.now,
      nextExpiry: () => keydir.nextExpiry(),
      purge: (now, limit) => {
        const taken = keydir.takeExpired(now, limit);
        purges.push(taken);
        return taken;
      },
    }, options);
    return { keydir, clock, sweeper, purges };
  }
  const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
  const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

  async function until(done: () => boolean, ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!done()) {
      if (Date.now() > deadline) throw new Error('timed out');
      await sleep(5);
    }
  }

  it('purges what expired in slices, yielding to the event loop between them, and leaves the rest', async () => {
    const { keydir, sweeper, purges } = setup(40_000, 10, { sliceMs: 0, batch: 1000 });
    sweeper.start();
    let ticks = 0;
    while (keydir.size > 10) {
      await tick();
      ticks++;
      if (ticks > 10_000) throw new Error('the sweep did not finish');
    }
    await tick(); // the last slice, which finds nothing left
    sweeper.stop();
    // sliceMs 0: one batch per slice, so 41 slices, each after its own turn of the event loop.
    expect(purges).to.deep.equal([...Array(40).fill(1000), 0]);
    expect(ticks).to.be.at.least(40);
    expect(keydir.countExpired(1000)).to.equal(0);
    expect(keydir.nextExpiry()).to.equal(1_000_000);
  });

  it('a key noted with an earlier expiry brings the timer forward', async () => {
    const { keydir, clock, sweeper } = setup(0, 10, { minIntervalMs: 0 });
    sweeper.start(); // armed for 10^6 - 1000 ms from now: far away
    clock.now = 2000;
    keydir.put('soon', new Entry(1, 0, 10, 2030));
    sweeper.note(2030);
    clock.now = 2030;
    await until(() => keydir.get('soon') === undefined);
    expect(keydir.size).to.equal(10);
    sweeper.stop();
  });

  it('wake() sweeps soon when the clock jumped past the expiry the timer waits for', async () => {
    const { keydir, clock, sweeper } = setup(0, 50, { minIntervalMs: 0 });
    sweeper.start(); // armed for 10^6 by the clock: the timer waits a minute before looking again
    clock.now = 2_000_000;
    sweeper.note(1_000_000); // the same expiry as the timer's: nothing changes
    await sleep(50);
    expect(keydir.size).to.equal(50);
    sweeper.wake();
    await until(() => keydir.size === 0, 2000);
    sweeper.stop();
  });

  it('stop() ends a sweep between slices, and start() resumes it', async () => {
    const { keydir, sweeper } = setup(20_000, 0, { sliceMs: 0, batch: 100 });
    sweeper.start();
    // One slice per turn of the event loop, 200 of them: stop after the first few.
    while (keydir.size === 20_000) await tick();
    sweeper.stop();
    const left = keydir.size;
    for (let i = 0; i < 20; i++) await tick();
    expect(keydir.size).to.equal(left);
    expect(left).to.be.greaterThan(0);
    sweeper.start();
    await until(() => keydir.size === 0);
  });

  it('waits at least minIntervalMs between sweeps, so keys expiring one by one go in groups', async () => {
    const { keydir, clock, sweeper, purges } = setup(0, 0, { minIntervalMs: 200 });
    keydir.put('a', new Entry(1, 0, 10, 1000));
    sweeper.start();
    await until(() => keydir.size === 0);
    const started = Date.now();
    clock.now = 1001;
    keydir.put('b', new Entry(1, 0, 10, 1001));
    sweeper.note(1001);
    await until(() => keydir.size === 0);
    expect(Date.now() - started).to.be.at.least(150);
    expect(purges.filter((n) => n > 0)).to.deep.equal([1, 1]);
    sweeper.stop();
  });
});
