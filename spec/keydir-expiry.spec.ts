/**
 * Expiry in the keydir (lib/expiry.ts, the keydir's expiry API): the heap against a plain Map
 * model under seeded random operations, with ties and the largest expiry the format holds, across
 * snapshot round trips; the heap loader's refusals; and the sweeper that purges in slices.
 */
import { expect } from 'chai';
import { ExpiryColumn, ExpirySweeper } from '../lib/expiry';
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
    // (so they store u32 offsets from the earliest). Seeds 13 and 14 keep the ordered index too
    // (small nodes: deep trees), which every removal by expiry must keep in step.
    const huge = seed % 2 === 1;
    const ordered = seed >= 13 ? { nodeCapacity: 5 } : undefined;
    it(`matches a model through 30,000 random operations, with ties${huge ? ' and huge expiries' : ''}${ordered ? ', ordered' : ''} (seed ${seed})`, () => {
      const random = seededRandom(seed);
      let keydir = new KeyDir({ ordered });
      const checkOrder = (where: string) => {
        if (ordered === undefined) return;
        keydir.ordered!.check();
        const keys = [...model.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
        expect([...keydir.range()], `keys in order ${where}`).to.deep.equal(keys);
      };
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
          if (i % 20 === 0) checkOrder(where);
        } else if (roll < 0.99) {
          takeAndCheck(keydir, model, now, 1 + random.int(random() < 0.5 ? 5 : 500), where);
        } else {
          const saved = ordered && Buffer.concat(keydir.ordered!.toBytes());
          keydir = KeyDir.fromBytes(Buffer.concat(keydir.toBytes()));
          if (ordered) keydir.orderKeys(ordered, random() < 0.5 ? saved : undefined);
          check(keydir, model, now, `after a snapshot round trip ${where}`);
          checkOrder(where);
        }
      }
      check(keydir, model, now, 'at the end');
      checkOrder('at the end');
      takeAndCheck(keydir, model, MAX_EXPIRES_AT, Infinity, 'taking everything');
      checkOrder('after taking everything');
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

describe('expiry column', () => {
  /** A column of records 0..n-1 with the given times (0 = none), as bytes. */
  function columnBytes(times: number[]): { base: number; times: Buffer; count: number } {
    const column = new ExpiryColumn(times.length);
    times.forEach((t, record) => column.set(record, t));
    const bytes = column.toBytes(times.length);
    return { base: bytes.base, times: Buffer.from(bytes.times), count: column.length };
  }
  const live = (): boolean => true;
  /** The model's earliest time and the records that have it. */
  const earliestOf = (model: Map<number, number>): [number, number[]] => {
    const earliest = Math.min(...model.values());
    return [earliest, [...model].filter(([, t]) => t === earliest).map(([r]) => r)];
  };

  it('matches a model through random sets and deletes: get, earliest, earliestRecordBy, forEach, and a copy by bytes', () => {
    const random = seededRandom(21);
    const column = new ExpiryColumn(100);
    const model = new Map<number, number>();
    for (let i = 0; i < 50_000; i++) {
      // The records grow as a keydir's do, with expiries already set.
      if (i % 10_000 === 0) column.growRecords(100 * (1 + i / 10_000));
      const record = random.int(5000);
      if (record >= 100 * (1 + Math.floor(i / 10_000))) continue;
      if (random() < 0.7) {
        const t = random() < 0.05 ? MAX_EXPIRES_AT : 1 + random.int(1000);
        column.set(record, t);
        model.set(record, t);
      } else {
        column.delete(record);
        model.delete(record);
      }
      const [earliest, holders] = earliestOf(model);
      expect(column.earliest()).to.equal(model.size === 0 ? Infinity : earliest);
      expect(column.length).to.equal(model.size);
      if (model.size > 0) {
        expect(holders).to.include(column.earliestRecordBy(earliest));
        expect(column.earliestRecordBy(earliest - 1)).to.equal(-1);
      }
      if (i % 5000 === 0) {
        const { base, times } = column.toBytes(500);
        const copy = ExpiryColumn.fromBytes(times, column.length, base, live);
        expect(copy.length).to.equal(model.size);
        expect(copy.earliest()).to.equal(column.earliest());
        for (const [record, time] of model) expect(copy.get(record)).to.equal(time);
      }
    }
    for (let record = 0; record < 500; record++) expect(column.get(record)).to.equal(model.get(record) ?? 0);
    const seen = new Map<number, number>();
    column.forEach((record, time) => seen.set(record, time));
    expect(seen).to.deep.equal(model);
  });

  it('counts and visits exactly the expired, from none to all', () => {
    const random = seededRandom(31);
    const column = new ExpiryColumn(10_000);
    const times = Array.from({ length: 10_000 }, () => (random() < 0.1 ? 0 : 1 + random.int(100_000)));
    times.forEach((t, record) => column.set(record, t));
    for (const now of [0, 1, 50, 300, 600, 700, 5000, 50_000, 100_000]) {
      const expired = times.map((t, record) => [t, record]).filter(([t]) => t !== 0 && t <= now).map(([, record]) => record);
      expect(column.countBy(now), `countBy(${now})`).to.equal(expired.length);
      const visited: number[] = [];
      column.forEachBy(now, (record) => visited.push(record));
      expect(visited, `forEachBy(${now})`).to.deep.equal(expired);
    }
  });

  it('takes the earliest first as records go: earliestRecordBy() then delete() drains in time order', () => {
    const random = seededRandom(33);
    const column = new ExpiryColumn(3000);
    const times = Array.from({ length: 3000 }, () => 1 + random.int(500));
    times.forEach((t, record) => column.set(record, t));
    const taken: number[] = [];
    for (let record = column.earliestRecordBy(400); record >= 0; record = column.earliestRecordBy(400)) {
      taken.push(column.get(record));
      column.delete(record);
    }
    expect(taken).to.deep.equal(times.filter((t) => t <= 400).sort((a, b) => a - b));
    expect(column.length).to.equal(times.filter((t) => t > 400).length);
  });

  it('stores times as u32 offsets from a base (0xFFFFFFFF for none) when all fit, else as f64 (Infinity for none), and reads both back', () => {
    // A span of 2^32 - 2 ms still fits (0xFFFFFFFF means none): the base moves to the earliest.
    const near = columnBytes([1e12 + 40, 1e12 + 10, 1e12 + 10 + 0xfffffffe, 0, 1e12 + 30]);
    expect(near.base).to.equal(1e12 + 10);
    expect(near.times.length).to.equal(20);
    expect([...new Uint32Array(Uint8Array.from(near.times).buffer)]).to.deep.equal([30, 0, 0xfffffffe, 0xffffffff, 20]);
    const copy = ExpiryColumn.fromBytes(near.times, 4, near.base, live);
    expect([0, 1, 2, 3, 4].map((r) => copy.get(r))).to.deep.equal([1e12 + 40, 1e12 + 10, 1e12 + 10 + 0xfffffffe, 0, 1e12 + 30]);
    // A narrow column's base leaves about 24 days below its first expiry, and not below 1.
    const first = columnBytes([1e12, 1e12 + 5]);
    expect(first.base).to.equal(1e12 - 2 ** 31);
    expect([...new Uint32Array(Uint8Array.from(first.times).buffer)]).to.deep.equal([2 ** 31, 2 ** 31 + 5]);
    expect(columnBytes([7]).base).to.equal(1);
    // One more millisecond of range, a fraction, or the largest expiry: f64, as in memory.
    for (const times of [[1e12, 1e12 + 0xffffffff], [1e12, 1e12 + 0.5], [1, MAX_EXPIRES_AT]]) {
      const far = columnBytes([...times, 0]);
      expect(far.base, String(times)).to.equal(0);
      expect(far.times.length).to.equal(24);
      expect(far.times.readDoubleLE(16)).to.equal(Infinity);
      const back = ExpiryColumn.fromBytes(far.times, 2, 0, live);
      expect([back.get(0), back.get(1), back.get(2)]).to.deep.equal([...times, 0]);
    }
  });

  it('fromBytes() refuses a wrong count, expiries of dead records, bad times and bad bases', () => {
    const f64 = columnBytes([10, 20, 30, 2 ** 40]);
    const u32 = columnBytes([10, 20, 30, 40]);
    expect(f64.base).to.equal(0);
    expect(u32.base).to.equal(1);
    expect(ExpiryColumn.fromBytes(f64.times, 4, 0, live).get(3)).to.equal(2 ** 40);
    expect(ExpiryColumn.fromBytes(u32.times, 4, 1, live).get(3)).to.equal(40);
    type Damage = (t: Buffer) => void;
    const cases: Array<[string, Damage | undefined, Damage | undefined, number, ((record: number) => boolean)?]> = [
      ['a count too high', undefined, undefined, 5],
      ['a count too low', undefined, undefined, 3],
      ['a dead record', undefined, undefined, 4, (record) => record !== 2],
      ['a zero time', (t) => { t.fill(0, 0, 8); }, undefined, 4],
      ['a negative time', (t) => { t.writeDoubleLE(-5, 8); }, undefined, 4],
      ['a time past MAX_EXPIRES_AT', (t) => { t.writeDoubleLE(MAX_EXPIRES_AT + 2, 24); }, undefined, 4],
      ['NaN', (t) => { t.writeDoubleLE(NaN, 24); }, undefined, 4],
    ];
    for (const [name, damageF64, damageU32, count, isLive] of cases) {
      for (const [column, damage] of [[f64, damageF64], [u32, damageU32]] as const) {
        if (damage === undefined && count === 4 && isLive === undefined) continue; // no such damage here
        const t = Buffer.from(column.times);
        damage?.(t);
        expect(() => ExpiryColumn.fromBytes(t, count, column.base, isLive ?? live), `${name} (base ${column.base})`).to.throw('expiry column');
      }
    }
    expect(() => ExpiryColumn.fromBytes(f64.times.subarray(1), 4, 0, live), 'wrong size').to.throw('expiry column');
    for (const base of [NaN, -1, 0.5, MAX_EXPIRES_AT + 2]) {
      expect(() => ExpiryColumn.fromBytes(u32.times, 4, base, live), `base ${base}`).to.throw('expiry column');
    }
    // Records without an expiry are never counted, however late the time asked about.
    expect(ExpiryColumn.fromBytes(columnBytes([10, 0, 0, 40]).times, 2, 1, live).countBy(MAX_EXPIRES_AT)).to.equal(2);
    expect(ExpiryColumn.fromBytes(columnBytes([10, 0, 0, 2 ** 40]).times, 2, 0, live).countBy(Infinity)).to.equal(2);
    // A base whose offsets run past MAX_EXPIRES_AT.
    expect(() => ExpiryColumn.fromBytes(u32.times, 4, MAX_EXPIRES_AT - 20, live)).to.throw('expiry column');
  });

  it('moves its base as expiries drift past 2^32 ms, widens for a span it cannot hold, and narrows once empty', () => {
    const random = seededRandom(41);
    const column = new ExpiryColumn(4000);
    const model = new Map<number, number>();
    const check = (where: string): void => {
      const { base, times } = column.toBytes(4000);
      const copy = ExpiryColumn.fromBytes(times, column.length, base, live);
      for (const [record, time] of model) {
        expect(column.get(record), `${where}: record ${record}`).to.equal(time);
        expect(copy.get(record), `${where}: copy, record ${record}`).to.equal(time);
      }
      const earliest = Math.min(...model.values());
      expect(column.earliest(), where).to.equal(model.size === 0 ? Infinity : earliest);
      expect(column.countBy(earliest + 2 ** 31), where).to.equal([...model.values()].filter((t) => t <= earliest + 2 ** 31).length);
    };
    // A cache's life: a steady one-day ttl while the clock runs through 600 days, the earliest
    // expiries taken as they pass. The window of 2^32 ms from the base must move about 25 times.
    let now = 1.7e12;
    for (let i = 0; i < 60_000; i++) {
      now += 864_000 + random.int(10_000); // about 100 keys a day
      const record = random.int(4000);
      column.set(record, now + 24 * 3600_000);
      model.set(record, now + 24 * 3600_000);
      while (column.earliestRecordBy(now) >= 0) {
        const gone = column.earliestRecordBy(now);
        column.delete(gone);
        model.delete(gone);
      }
      if (i % 6000 === 0) check(`day ${Math.round((now - 1.7e12) / 864e5)}`);
    }
    check('after 600 days');
    expect(column.wide, 'still narrow').to.equal(false);
    // A key that never expires in practice, beside one-day ttls: the times themselves, as f64.
    column.set(4000 - 1, MAX_EXPIRES_AT);
    model.set(4000 - 1, MAX_EXPIRES_AT);
    check('wide');
    expect(column.wide, 'wide').to.equal(true);
    for (const record of [...model.keys()]) {
      column.delete(record);
      model.delete(record);
    }
    column.set(1, now);
    model.set(1, now);
    check('empty, then one again');
    expect(column.wide, 'narrow again').to.equal(false);
  });

  it('widens rather than move its base again and again for expiries chosen to straddle its window', () => {
    const column = new ExpiryColumn(2000);
    for (let record = 0; record < 1000; record++) column.set(record, 1e12 + record);
    // Just above the window: the base moves up (all of it spans less than 2^32 ms).
    column.set(1000, 1e12 + 2 ** 31 + 100);
    expect(column.wide).to.equal(false);
    // Then just below the new window, one addition later: it would move back down, O(n) again.
    column.delete(1000);
    column.set(1001, 1e12 - 2 ** 31);
    expect(column.wide).to.equal(true);
    expect([1001, 5, 999, 1000].map((r) => column.get(r))).to.deep.equal([1e12 - 2 ** 31, 1e12 + 5, 1e12 + 999, 0]);
    expect(column.earliest()).to.equal(1e12 - 2 ** 31);
    expect(column.toBytes(2000).base, 'stored narrow all the same: it fits').to.equal(1e12 - 2 ** 31);
  });

  it('costs 4 bytes per record and a tree of about 1/8 byte per record', () => {
    const column = new ExpiryColumn(64 * 1024);
    expect(column.memoryBytes).to.equal(64 * 1024 * 4 + 2 * 1024 * 4);
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
