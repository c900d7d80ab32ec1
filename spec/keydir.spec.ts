/**
 * The compact keydir against a plain Map model: random puts, overwrites and deletes, across
 * resizes, arena rebuilds and long keys, with iteration under modification.
 */
import { expect } from 'chai';
import { seededRandom } from '../lib/medium/random';
import { Entry, KeyDir } from '../lib/keydir';

function keyOf(n: number): string {
  // Mix short ASCII, multi-byte UTF-8 and long keys (which take a 3-byte length prefix).
  if (n % 7 === 0) return `k${n}-` + 'é'.repeat(n % 50) + '😀';
  if (n % 11 === 0) return `long-${n}-` + 'x'.repeat(200 + (n % 300));
  return `k${n}`;
}

// Every spec runs twice: alone, and keeping the ordered index (ordered.ts) in step, small nodes
// so that it splits and merges often; then the keys must also come out in UTF-8 byte order.
for (const ordered of [false, { nodeCapacity: 5 }]) describe(ordered ? 'keydir with the ordered index' : 'keydir', () => {
  for (const seed of [1, 2, 3]) {
    it(`matches a Map through 60,000 random operations (seed ${seed})`, () => {
      const random = seededRandom(seed);
      const keydir = new KeyDir({ ordered });
      const model = new Map<string, Entry>();
      for (let i = 0; i < 60_000; i++) {
        const key = keyOf(Math.floor(random() * 8000));
        const roll = random();
        if (roll < 0.6) {
          const entry = new Entry(Math.floor(random() * 5) * 0x10000, Math.floor(random() * 2 ** 32),
            20 + Math.floor(random() * 1000), roll < 0.1 ? 1_700_000_000_000 + i : 0);
          const previous = keydir.put(key, entry);
          expect(previous, `put ${key} (op ${i}, seed ${seed})`).to.deep.equal(model.get(key));
          model.set(key, entry);
        } else if (roll < 0.85) {
          expect(keydir.put(key, undefined), `delete ${key} (op ${i})`).to.deep.equal(model.get(key));
          model.delete(key);
        } else {
          expect(keydir.get(key), `get ${key} (op ${i})`).to.deep.equal(model.get(key));
        }
        expect(keydir.size).to.equal(model.size);
      }
      for (const [key, entry] of model) expect(keydir.get(key)).to.deep.equal(entry);
      expect([...keydir.keys()].sort()).to.deep.equal([...model.keys()].sort());
      if (ordered) {
        keydir.ordered!.check();
        expect([...keydir.range()]).to.deep.equal([...model.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
      }
    });
  }

  it('grows to hold 200,000 keys and removes them all', () => {
    const keydir = new KeyDir({ ordered });
    for (let i = 0; i < 200_000; i++) keydir.put(`key:${i}`, new Entry(0x10000, i * 40, 40, 0));
    expect(keydir.size).to.equal(200_000);
    expect(keydir.get('key:123456')).to.deep.equal(new Entry(0x10000, 123456 * 40, 40, 0));
    for (let i = 0; i < 200_000; i++) expect(keydir.put(`key:${i}`, undefined)).to.not.equal(undefined);
    expect(keydir.size).to.equal(0);
    expect([...keydir.keys()]).to.deep.equal([]);
    if (ordered) expect(keydir.ordered!.height).to.equal(0);
    // Freed records and arena space are reused.
    for (let i = 0; i < 1000; i++) keydir.put(`again:${i}`, new Entry(0x20000, i, 30, 0));
    expect(keydir.size).to.equal(1000);
    expect(keydir.get('again:999')).to.deep.equal(new Entry(0x20000, 999, 30, 0));
  });

  it('reserve() ahead of a bulk load keeps every key findable, before and after', () => {
    const keydir = new KeyDir({ ordered });
    for (let i = 0; i < 500; i++) keydir.put(`before:${i}`, new Entry(1, i, 25, 0));
    keydir.reserve(50_000);
    for (let i = 0; i < 50_000; i++) keydir.put(`bulk:${i}`, new Entry(2, i, 30, i % 3 === 0 ? 1e12 + i : 0));
    keydir.reserve(10); // no-op when there is room
    expect(keydir.size).to.equal(50_500);
    expect(keydir.get('before:499')).to.deep.equal(new Entry(1, 499, 25, 0));
    expect(keydir.get('bulk:49999')).to.deep.equal(new Entry(2, 49999, 30, 0));
    expect(keydir.get('bulk:49999x')).to.equal(undefined);
    expect(keydir.get('bulk:3')).to.deep.equal(new Entry(2, 3, 30, 1e12 + 3));
  });

  it('never yields a key twice, nor one added after the iteration started', () => {
    const keydir = new KeyDir({ ordered });
    for (let i = 0; i < 100; i++) keydir.put(`a${i}`, new Entry(1, i, 25, 0));
    const seen: string[] = [];
    for (const key of keydir.keys()) {
      seen.push(key);
      if (key === 'a10') {
        // Delete and re-add keys behind and ahead of the cursor, and add new ones.
        keydir.put('a5', undefined);
        keydir.put('a5', new Entry(1, 500, 25, 0));
        keydir.put('a50', undefined);
        keydir.put('a50', new Entry(1, 5000, 25, 0));
        keydir.put('a60', undefined);
        keydir.put('new', new Entry(1, 1, 25, 0));
      }
    }
    expect(new Set(seen).size).to.equal(seen.length);
    expect(seen).to.not.include('new');
    expect(seen).to.not.include('a60');
    expect(seen).to.include('a5');
    expect(keydir.get('a50')).to.deep.equal(new Entry(1, 5000, 25, 0));
    expect(keydir.size).to.equal(100);
  });
});

describe('keydir slots (record, distance from home and tag packed in one)', () => {
  it('widens the record field as the records grow (11 to 17 bits), keeping every key', () => {
    const keydir = new KeyDir(99);
    const widths: number[] = [keydir.recordBits];
    for (let i = 0; i < 70_000; i++) {
      keydir.put(`w${i}`, new Entry(1, i, 30, 0));
      if (keydir.recordBits !== widths[widths.length - 1]) widths.push(keydir.recordBits);
    }
    // Columns of 1024 records grow by half: 1536, 2304, 3456, 5184, ... 88,574; each past a power of two widens the field.
    expect(widths).to.deep.equal([11, 12, 13, 14, 15, 16, 17]);
    for (let i = 0; i < 70_000; i++) expect(keydir.get(`w${i}`)).to.deep.equal(new Entry(1, i, 30, 0));
    expect(keydir.get('w70000')).to.equal(undefined);
  });

  for (const seed of [5, 6]) {
    it(`removals shift members back whether their slot knows their distance or it is too far to say (seed ${seed})`, () => {
      const random = seededRandom(seed);
      const keydir = new KeyDir(seed);
      const model = new Map<string, Entry>();
      // Filled to its 70% limit, where some members sit 15 or more slots past their home.
      keydir.reserve(12_000);
      const slots = keydir.capacities.slots;
      const fill = Math.floor(slots * 0.7);
      for (let i = 0; i < fill; i++) {
        const entry = new Entry(2, i, 40, 0);
        keydir.put(`s${i}`, entry);
        model.set(`s${i}`, entry);
      }
      expect(keydir.capacities.slots).to.equal(slots);
      const far = keydir.farSlots;
      expect(far).to.be.greaterThan(0);
      // Delete half in random order, then put new keys into the holes, checking everything as it goes.
      const order = [...model.keys()].sort(() => random() - 0.5);
      for (const [n, key] of order.slice(0, fill >> 1).entries()) {
        expect(keydir.put(key, undefined), key).to.deep.equal(model.get(key));
        model.delete(key);
        if (n % 2000 === 0) for (const [k, entry] of model) expect(keydir.get(k), k).to.deep.equal(entry);
      }
      expect(keydir.farSlots).to.be.lessThan(far);
      for (let i = 0; i < fill >> 1; i++) {
        const entry = new Entry(3, i, 41, 0);
        keydir.put(`t${i}`, entry);
        model.set(`t${i}`, entry);
      }
      expect(keydir.size).to.equal(model.size);
      for (const [key, entry] of model) expect(keydir.get(key), key).to.deep.equal(entry);
      for (const key of order.slice(0, fill >> 1)) expect(keydir.get(key), key).to.equal(undefined);
      // A snapshot of it loads with the same slots and answers the same.
      const copy = KeyDir.fromBytes(Buffer.concat(keydir.toBytes()));
      expect(copy.recordBits).to.equal(keydir.recordBits);
      for (const [key, entry] of model) expect(copy.get(key), key).to.deep.equal(entry);
    });
  }
});

describe('keydir slots in a snapshot (table layout 4)', () => {
  it('refuses a table whose record width cannot hold its records, or whose byte 35 is not zero', () => {
    const keydir = new KeyDir(7);
    for (let i = 0; i < 3000; i++) keydir.put(`r${i}`, new Entry(1, i, 30, 0));
    const good = Buffer.concat(keydir.toBytes());
    // 3000 records in columns of 3456: 12 bits.
    expect(good.readUInt8(34)).to.equal(12);
    expect(KeyDir.fromBytes(good).get('r2999')).to.deep.equal(new Entry(1, 2999, 30, 0));
    for (const [at, value] of [[34, 11], [34, 10], [34, 32], [35, 1]] as const) {
      const bad = Buffer.from(good);
      bad.writeUInt8(value, at);
      expect(() => KeyDir.fromBytes(bad), `byte ${at} = ${value}`).to.throw('keydir snapshot: bad slot record bits');
    }
    // A wider field than the records need is allowed (a writer whose columns had grown further).
    const wider = Buffer.from(good);
    wider.writeUInt8(13, 34);
    expect(() => KeyDir.tableHead(wider)).to.not.throw();
  });
});
