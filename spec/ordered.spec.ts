/**
 * The ordered index (lib/ordered.ts) against a sorted model: a JS array of keys sorted by
 * Buffer.compare of their UTF-8 bytes. Seeded random inserts and removals through a KeyDir, with
 * keys where UTF-16 order and code point order differ (astral plane vs U+E000–U+FFFF), empty and
 * NUL-laden keys, keys that are prefixes of each other, long shared prefixes and keys up to 65535
 * bytes; ranges of every bound combination; cursors stepping while the index changes under them;
 * a bulk build equal to an incremental one. Node capacities of 4 and 5 make deep trees, so splits,
 * lends, merges and root collapses all happen within a few thousand keys.
 */
import { expect } from 'chai';
import { Entry, KeyDir } from '../lib/keydir';
import { seededRandom, type Random } from '../lib/medium/random';
import { sortByKey } from '../lib/keysort';
import { type ByteRange, OrderedIndex } from '../lib/ordered';

const ENTRY = new Entry(1, 0, 30, 0);
const utf8 = (key: string): Buffer => Buffer.from(key, 'utf8');
const byBytes = (a: string, b: string): number => Buffer.compare(utf8(a), utf8(b));

/** Characters where JS string order and UTF-8 byte order disagree, plus NUL and 0x7f/0x80 edges. */
const ODD = ['\u0000', '\u007f', '\u0080', '\u07ff', '\u0800', '\ud7ff', '\ue000', '\uf8ff', '\ufffd', '\uffff',
  '\u{10000}', '\u{1f600}', '\u{10ffff}', 'é', 'z'];

/** A key of one of several shapes, from a pool of `spread` distinct ones per shape. */
function randomKey(random: Random, spread: number): string {
  const n = random.int(spread);
  switch (random.int(8)) {
    case 0: return `k${n.toString(36)}`;
    case 1: return `user:${String(n).padStart(8, '0')}`;
    case 2: return 'p'.repeat(300) + n.toString(16); // a shared prefix longer than 255 bytes
    case 3: { // short keys of odd characters, prefixes of each other
      let key = '';
      for (let i = n % 4; i >= 0; i--) key += ODD[(n >> (i * 2)) % ODD.length];
      return key;
    }
    case 4: return `${ODD[n % ODD.length]}${n % 7}`;
    case 5: return 'a' + '\u0000'.repeat(n % 9); // keys that differ only in trailing NULs
    case 6: return n % 5 === 0 ? '' : `${n.toString(2)}`;
    default: return `t/${n % 3}/` + 'x'.repeat(n % 40) + ODD[n % ODD.length];
  }
}

/** A sorted array of unique keys with insert and delete, the model the index must match. */
class Model {
  readonly keys: string[] = [];
  #position(key: string): number {
    let low = 0;
    let high = this.keys.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (byBytes(this.keys[mid], key) < 0) low = mid + 1;
      else high = mid;
    }
    return low;
  }
  has(key: string): boolean {
    const at = this.#position(key);
    return at < this.keys.length && this.keys[at] === key;
  }
  add(key: string): void {
    const at = this.#position(key);
    if (this.keys[at] !== key) this.keys.splice(at, 0, key);
  }
  delete(key: string): void {
    const at = this.#position(key);
    if (this.keys[at] === key) this.keys.splice(at, 1);
  }
  range(range: StringRange): string[] {
    const inside = this.keys.filter((key) => inRange(key, range));
    if (range.reverse) inside.reverse();
    return range.limit === undefined ? inside : inside.slice(0, range.limit);
  }
}

interface StringRange {
  gt?: string;
  gte?: string;
  lt?: string;
  lte?: string;
  prefix?: string;
  reverse?: boolean;
  limit?: number;
}

function inRange(key: string, range: StringRange): boolean {
  if (range.gt !== undefined && byBytes(key, range.gt) <= 0) return false;
  if (range.gte !== undefined && byBytes(key, range.gte) < 0) return false;
  if (range.lt !== undefined && byBytes(key, range.lt) >= 0) return false;
  if (range.lte !== undefined && byBytes(key, range.lte) > 0) return false;
  if (range.prefix !== undefined && !utf8(key).subarray(0, utf8(range.prefix).length).equals(utf8(range.prefix))) return false;
  return true;
}

function randomRange(random: Random, keys: readonly string[]): StringRange {
  // Bounds are present keys, absent keys, or prefixes and extensions of present keys.
  const boundKey = (): string => {
    const base = keys.length > 0 && random.chance(0.7) ? random.pick(keys) : randomKey(random, 500);
    const roll = random.int(4);
    if (roll === 0) return base.slice(0, random.int(base.length + 1));
    if (roll === 1) return base + random.pick(ODD);
    return base;
  };
  const range: StringRange = {};
  if (random.chance(0.4)) range[random.chance(0.5) ? 'gt' : 'gte'] = boundKey();
  if (random.chance(0.4)) range[random.chance(0.5) ? 'lt' : 'lte'] = boundKey();
  if (random.chance(0.1)) { range.gt = boundKey(); range.gte = boundKey(); }
  if (random.chance(0.1)) { range.lt = boundKey(); range.lte = boundKey(); }
  if (random.chance(0.3)) {
    const key = boundKey();
    range.prefix = [...key].slice(0, random.int(4)).join('');
  }
  if (random.chance(0.5)) range.reverse = true;
  if (random.chance(0.3)) range.limit = random.int(12);
  return range;
}

function keysOf(keydir: KeyDir, range: StringRange = {}): string[] {
  return [...keydir.range(range)];
}

const CAPACITIES = [4, 5, 8, 64];

describe('ordered index', () => {
  for (const capacity of CAPACITIES) {
    for (const seed of [1, 2]) {
      it(`matches a sorted model through random inserts and removals (capacity ${capacity}, seed ${seed})`, () => {
        const random = seededRandom(seed * 1000 + capacity);
        const keydir = new KeyDir({ ordered: { nodeCapacity: capacity } });
        const model = new Model();
        for (let i = 0; i < 6000; i++) {
          const key = randomKey(random, 400);
          if (random.chance(0.6)) {
            keydir.put(key, ENTRY);
            model.add(key);
          } else {
            keydir.put(key, undefined);
            model.delete(key);
          }
          if (i % 500 === 0) keydir.ordered!.check();
        }
        keydir.ordered!.check();
        expect(keysOf(keydir), `seed ${seed}`).to.deep.equal(model.keys);
        expect(keysOf(keydir, { reverse: true })).to.deep.equal([...model.keys].reverse());
        expect(keydir.ordered!.size).to.equal(model.keys.length);
        // Empty it: merges and root collapses down to a single empty leaf.
        for (const key of [...model.keys]) keydir.put(key, undefined);
        keydir.ordered!.check();
        expect(keysOf(keydir)).to.deep.equal([]);
        expect(keydir.ordered!.height).to.equal(0);
      });
    }
  }

  it('orders by UTF-8 bytes, not by JavaScript string order', () => {
    const keydir = new KeyDir({ ordered: true });
    const keys = ['\u{1f600}', '\uffff', '\ue000', 'z', '\u0000', '', 'a', 'a\u0000', '\u{10000}', '\ud7ff'];
    for (const key of keys) keydir.put(key, ENTRY);
    expect(keysOf(keydir)).to.deep.equal(['', '\u0000', 'a', 'a\u0000', 'z', '\ud7ff', '\ue000', '\uffff', '\u{10000}', '\u{1f600}']);
    // JS order would put the astral keys (surrogate pairs, 0xD800..) before U+E000.
    expect([...keys].sort()).to.not.deep.equal(keysOf(keydir));
  });

  it('holds keys of every length up to 65535 bytes, and keys that share 60,000 bytes', () => {
    const keydir = new KeyDir({ ordered: { nodeCapacity: 4 } });
    const model = new Model();
    const shared = 'q'.repeat(60_000);
    const keys = ['x'.repeat(65535), 'x'.repeat(65534), 'x'.repeat(127), 'x'.repeat(128), 'x'.repeat(129),
      shared, shared + 'a', shared + 'b', shared + '\u0000', shared + 'a'.repeat(5535), 'q', 'qq', '€'.repeat(21845)];
    for (let i = 0; i < 20; i++) keys.push(shared + String(i).padStart(3, '0'));
    for (const key of keys) {
      keydir.put(key, ENTRY);
      model.add(key);
    }
    keydir.ordered!.check();
    expect(keysOf(keydir)).to.deep.equal(model.keys);
    expect(keysOf(keydir, { prefix: shared + '01' })).to.deep.equal(model.range({ prefix: shared + '01' }));
    expect(keysOf(keydir, { gt: shared + '005', lte: shared + '012', reverse: true }))
      .to.deep.equal(model.range({ gt: shared + '005', lte: shared + '012', reverse: true }));
    for (const key of keys.filter((_, i) => i % 2 === 0)) {
      keydir.put(key, undefined);
      model.delete(key);
    }
    keydir.ordered!.check();
    expect(keysOf(keydir)).to.deep.equal(model.keys);
  });

  for (const capacity of [4, 64]) {
    it(`answers ranges of every bound combination like the model (capacity ${capacity})`, () => {
      const random = seededRandom(77 + capacity);
      const keydir = new KeyDir({ ordered: { nodeCapacity: capacity } });
      const model = new Model();
      for (let i = 0; i < 1500; i++) {
        const key = randomKey(random, 300);
        keydir.put(key, ENTRY);
        model.add(key);
      }
      for (let i = 0; i < 2500; i++) {
        const range = randomRange(random, model.keys);
        expect(keysOf(keydir, range), JSON.stringify(range)).to.deep.equal(model.range(range));
      }
    });
  }

  it('treats a prefix of all 0xff bytes, an empty prefix and limit 0 as the contract says', () => {
    // 0xff never occurs in UTF-8, so this goes to the byte-level cursor directly.
    const keydir = new KeyDir({ ordered: { nodeCapacity: 4 } });
    for (const key of ['a', 'b', '\u{10ffff}', '\uffff']) keydir.put(key, ENTRY);
    const index = keydir.ordered!;
    const decode = (range: ByteRange) => [...index.records(range)].length;
    expect(decode({ prefix: Buffer.from([0xff]) })).to.equal(0);
    expect(decode({ prefix: Buffer.from([0xf4]) })).to.equal(1);
    expect(decode({ prefix: Buffer.from([0xef, 0xbf]) })).to.equal(1);
    expect(decode({ prefix: Buffer.alloc(0) })).to.equal(4);
    expect(decode({ limit: 0 })).to.equal(0);
    expect(decode({ gt: Buffer.from('b'), lt: Buffer.from('a') })).to.equal(0);
    // A cursor keeps its own copies of the bounds: the caller's Buffers are neither changed by
    // it (a prefix's successor is computed in a copy) nor able to change it afterwards.
    const prefix = Buffer.from('a');
    const lower = Buffer.from('a');
    const cursor = index.cursor({ prefix, gte: lower });
    lower[0] = 0x7a;
    expect(cursor.next()).to.be.at.least(0);
    expect(cursor.next()).to.equal(-1);
    expect([...prefix, ...lower]).to.deep.equal([0x61, 0x7a]);
    expect(keysOf(keydir, { gte: 'b', lte: 'b' })).to.deep.equal(['b']);
    expect(keysOf(keydir, { gt: 'b', lte: 'b' })).to.deep.equal([]);
  });

  describe('cursors while the index changes', () => {
    for (const capacity of [4, 5, 64]) {
      for (const seed of [11, 12, 13]) {
        it(`never repeat, skip a steady key, or go out of order (capacity ${capacity}, seed ${seed})`, () => {
          const random = seededRandom(seed + capacity);
          const keydir = new KeyDir({ ordered: { nodeCapacity: capacity } });
          const model = new Model();
          for (let i = 0; i < 800; i++) {
            const key = randomKey(random, 200);
            keydir.put(key, ENTRY);
            model.add(key);
          }
          for (let round = 0; round < 12; round++) {
            const range = random.chance(0.5) ? randomRange(random, model.keys) : { reverse: random.chance(0.5) };
            delete range.limit;
            checkCursorUnderChanges(keydir, model, range, random);
          }
          keydir.ordered!.check();
          expect(keysOf(keydir)).to.deep.equal(model.keys);
        });
      }
    }

    it('continue after the last yielded key is removed, re-inserted, and its record reused', () => {
      const keydir = new KeyDir({ ordered: { nodeCapacity: 4 } });
      for (let i = 0; i < 40; i++) keydir.put(`k${String(i).padStart(2, '0')}`, ENTRY);
      const seen: string[] = [];
      for (const key of keydir.range()) {
        if (seen.length > 0) expect(byBytes(key, seen[seen.length - 1])).to.be.greaterThan(0);
        seen.push(key);
        if (key === 'k10') {
          keydir.put('k10', undefined);
          // The freed record index goes to the next new key: one far ahead and one behind.
          keydir.put('k35x', ENTRY);
          keydir.put('a', ENTRY);
        }
        if (key === 'k20') {
          keydir.put('k20', undefined);
          keydir.put('k20', ENTRY);
        }
        if (key === 'k30') {
          for (let i = 0; i < 30; i++) keydir.put(`k${String(i).padStart(2, '0')}`, undefined);
          keydir.put('k30', undefined);
        }
      }
      const expected = Array.from({ length: 31 }, (_, i) => `k${String(i).padStart(2, '0')}`);
      expected.push('k31', 'k32', 'k33', 'k34', 'k35', 'k35x', 'k36', 'k37', 'k38', 'k39');
      expect(seen).to.deep.equal(expected);
      keydir.ordered!.check();
      expect(keysOf(keydir)).to.deep.equal(['a', 'k31', 'k32', 'k33', 'k34', 'k35', 'k35x', 'k36', 'k37', 'k38', 'k39']);
    });

    it('in reverse, with the index emptied and refilled between steps', () => {
      const keydir = new KeyDir({ ordered: { nodeCapacity: 4 } });
      for (const key of ['b', 'd', 'f', 'h']) keydir.put(key, ENTRY);
      const cursor = keydir.range({ reverse: true });
      const next = (): string | undefined => cursor.next().value ?? undefined;
      expect(next()).to.equal('h');
      for (const key of ['b', 'd', 'f', 'h']) keydir.put(key, undefined);
      for (const key of ['a', 'c', 'g', 'i']) keydir.put(key, ENTRY);
      expect(next()).to.equal('g');
      expect(next()).to.equal('c');
      keydir.put('c', undefined);
      keydir.put('bb', ENTRY);
      expect(next()).to.equal('bb');
      expect(next()).to.equal('a');
      expect(cursor.next().done).to.equal(true);
      const raw = keydir.ordered!.cursor({ gt: utf8('b') });
      expect(raw.next()).to.equal(recordOf(keydir, 'bb'));
      expect(raw.next()).to.equal(recordOf(keydir, 'g'));
      expect(raw.next()).to.equal(recordOf(keydir, 'i'));
      expect(raw.next()).to.equal(-1);
      keydir.put('j', ENTRY);
      expect(raw.next()).to.equal(-1); // finished stays finished
    });

    it('cost nothing extra over an unchanged index: a stepping cursor yields what a fresh one does', () => {
      const keydir = new KeyDir({ ordered: { nodeCapacity: 5 } });
      const random = seededRandom(5);
      for (let i = 0; i < 2000; i++) keydir.put(randomKey(random, 1000), ENTRY);
      const all = keysOf(keydir);
      const from = all[700];
      expect(keysOf(keydir, { gte: from, limit: 300 })).to.deep.equal(all.slice(700, 1000));
      expect(keysOf(keydir, { lt: from, reverse: true, limit: 300 })).to.deep.equal(all.slice(400, 700).reverse());
    });
  });

  describe('bulk build', () => {
    for (const capacity of [4, 5, 64]) {
      it(`equals an incremental build, and stays correct under changes (capacity ${capacity})`, () => {
        const random = seededRandom(40 + capacity);
        const incremental = new KeyDir({ ordered: { nodeCapacity: capacity } });
        const plain = new KeyDir();
        const model = new Model();
        for (let i = 0; i < 5000; i++) {
          const key = randomKey(random, 800);
          const remove = random.chance(0.3);
          for (const keydir of [incremental, plain]) keydir.put(key, remove ? undefined : ENTRY);
          if (remove) model.delete(key);
          else model.add(key);
        }
        plain.orderKeys({ nodeCapacity: capacity });
        plain.ordered!.check();
        expect(keysOf(plain)).to.deep.equal(model.keys);
        expect(keysOf(incremental)).to.deep.equal(model.keys);
        for (let i = 0; i < 3000; i++) {
          const key = randomKey(random, 800);
          if (random.chance(0.5)) {
            plain.put(key, ENTRY);
            model.add(key);
          } else {
            plain.put(key, undefined);
            model.delete(key);
          }
        }
        plain.ordered!.check();
        expect(keysOf(plain)).to.deep.equal(model.keys);
      });
    }

    it('builds from no keys and from one', () => {
      const keydir = new KeyDir();
      keydir.orderKeys({ nodeCapacity: 4 });
      keydir.ordered!.check();
      expect(keysOf(keydir)).to.deep.equal([]);
      keydir.put('only', ENTRY);
      expect(keysOf(keydir)).to.deep.equal(['only']);
      const one = new KeyDir();
      one.put('x', ENTRY);
      one.orderKeys();
      expect(keysOf(one, { reverse: true })).to.deep.equal(['x']);
      expect(one.orderKeys()).to.equal(one.ordered); // a second call keeps the index it has
    });
  });

  describe('as bytes (for a snapshot)', () => {
    /** A keydir with an ordered index after random changes (so free nodes exist), and its model. */
    function churned(capacity: number): { keydir: KeyDir; model: Model; random: Random } {
      const random = seededRandom(90 + capacity);
      const keydir = new KeyDir({ ordered: { nodeCapacity: capacity } });
      const model = new Model();
      for (let i = 0; i < 4000; i++) {
        const key = randomKey(random, 600);
        const remove = random.chance(0.4);
        keydir.put(key, remove ? undefined : ENTRY);
        if (remove) model.delete(key);
        else model.add(key);
      }
      return { keydir, model, random };
    }

    for (const capacity of [4, 64]) {
      it(`round-trips beside the keydir's own bytes, and keeps working (capacity ${capacity})`, () => {
        const { keydir, model, random } = churned(capacity);
        const loaded = KeyDir.fromBytes(Buffer.concat(keydir.toBytes()));
        const index = loaded.orderKeys({}, Buffer.concat(keydir.ordered!.toBytes()));
        index.check();
        // Loaded pools have an eighth of room to grow, and a few nodes.
        expect(index.memoryBytes).to.be.at.most(keydir.ordered!.memoryBytes * 1.25 + 8192);
        expect(keysOf(loaded)).to.deep.equal(model.keys);
        for (let i = 0; i < 2000; i++) {
          const key = randomKey(random, 600);
          const remove = random.chance(0.5);
          for (const kd of [keydir, loaded]) kd.put(key, remove ? undefined : ENTRY);
          if (remove) model.delete(key);
          else model.add(key);
        }
        index.check();
        expect(keysOf(loaded)).to.deep.equal(model.keys);
        expect(keysOf(loaded, { reverse: true, limit: 50 })).to.deep.equal(keysOf(keydir, { reverse: true, limit: 50 }));
      });
    }

    it('round-trips an empty index', () => {
      const keydir = new KeyDir({ ordered: true });
      const loaded = KeyDir.fromBytes(Buffer.concat(keydir.toBytes()));
      loaded.orderKeys({}, Buffer.concat(keydir.ordered!.toBytes())).check();
      loaded.put('a', ENTRY);
      expect(keysOf(loaded)).to.deep.equal(['a']);
    });

    // Offsets into the bytes of a capacity-4 index with `leaves` leaves: after the header, leaf
    // entries (32 bytes a leaf: record, word, record, word...), next (4), prev (4), count | skip << 16 (4).
    const HEADER = 32;
    type Corrupt = (bytes: Buffer, leaves: number, leaf: number) => Buffer;
    const corruptions: Array<{ name: string; corrupt: Corrupt }> = [
      { name: 'truncated', corrupt: (bytes) => bytes.subarray(0, bytes.length - 4) },
      { name: 'shorter than a header', corrupt: (bytes) => bytes.subarray(0, 20) },
      { name: 'a size that is not the live count', corrupt: (bytes) => { bytes.writeUInt32LE(bytes.readUInt32LE(12) + 1, 12); return bytes; } },
      { name: 'a capacity out of range', corrupt: (bytes) => { bytes.writeUInt32LE(3, 0); return bytes; } },
      { name: 'a root out of range', corrupt: (bytes) => { bytes.writeUInt32LE(1_000_000, 8); return bytes; } },
      { name: 'a record in two places', corrupt: (bytes, _, leaf) => { bytes.copy(bytes, HEADER + leaf * 32 + 8, HEADER + leaf * 32, HEADER + leaf * 32 + 4); return bytes; } },
      { name: 'a record that is not live', corrupt: (bytes, _, leaf) => { bytes.writeUInt32LE(999_999, HEADER + leaf * 32 + 8); return bytes; } },
      { name: 'words that descend', corrupt: (bytes, _, leaf) => { bytes.writeUInt32LE(0xffffffff, HEADER + leaf * 32 + 4); return bytes; } },
      { name: 'a broken leaf link', corrupt: (bytes, leaves, leaf) => { bytes.writeInt32LE(leaf, HEADER + leaves * 32 + leaf * 4); return bytes; } },
      { name: 'a count above capacity', corrupt: (bytes, leaves, leaf) => { bytes.writeUInt16LE(5, HEADER + leaves * 40 + leaf * 4); return bytes; } },
    ];
    for (const { name, corrupt } of corruptions) {
      it(`refuses bytes with ${name}, leaving the keydir without an ordered index`, () => {
        const { keydir } = churned(4);
        const loaded = KeyDir.fromBytes(Buffer.concat(keydir.toBytes()));
        const bytes = Buffer.concat(keydir.ordered!.toBytes());
        expect(bytes.readUInt32LE(0)).to.equal(4);
        const leaves = bytes.readUInt32LE(16);
        // A leaf in use (not on the free list, at the end) with at least two entries.
        const free = new Set(Array.from({ length: bytes.readUInt32LE(24) }, (_, i) => bytes.readUInt32LE(bytes.length - (bytes.readUInt32LE(28) + bytes.readUInt32LE(24) - i) * 4)));
        let leaf = 0;
        while (free.has(leaf) || bytes.readUInt16LE(HEADER + leaves * 40 + leaf * 4) < 2) leaf++;
        expect(() => loaded.orderKeys({}, corrupt(bytes, leaves, leaf))).to.throw(Error);
        expect(loaded.ordered).to.equal(undefined);
        // The sort still builds it.
        loaded.orderKeys({ nodeCapacity: 4 }).check();
      });
    }
  });

  describe('sortByKey', () => {
    const shapes: Array<[string, (i: number) => string]> = [
      ['random hex', (i) => (Math.imul(i, 2654435761) >>> 0).toString(16).padStart(8, '0') + (Math.imul(i ^ 0x5bd1e995, 40503) >>> 0).toString(16)],
      ['a 3000-key run on the first word', (i) => `user:${(Math.imul(i, 2654435761) >>> 0) % 3000}`],
      ['ties 20 bytes deep', (i) => `namespace/tenant-42/${(Math.imul(i, 2654435761) >>> 0).toString(36)}`],
      ['prefix chains of NULs', (i) => 'ab' + '\u0000'.repeat(i % 40) + (i % 3 === 0 ? '' : 'z'.repeat(i % 5))],
      ['mixed shapes', (i) => randomKey(seededRandom(i), 100000)],
    ];
    it('sorts 150,000 keys (past the first scatter on the top bits) like Buffer.compare', () => {
      const keydir = new KeyDir();
      const keys = new Set<string>();
      for (let i = 0; keys.size < 150_000; i++) keys.add(shapes[i % shapes.length][1](i));
      for (const key of keys) keydir.put(key, ENTRY);
      const names = [...keys];
      const sorted = sortByKey(Uint32Array.from(names, (_, i) => i), keydir.keyArena, keydir.keyOffsets);
      const bytes = names.map(utf8);
      const expected = names.map((_, i) => i).sort((a, b) => Buffer.compare(bytes[a], bytes[b]));
      expect(Array.from(sorted.records)).to.deep.equal(expected);
    });

    for (const [name, keyOf] of shapes) {
      it(`sorts ${name} like Buffer.compare`, () => {
        const keydir = new KeyDir();
        const keys = new Set<string>();
        for (let i = 0; i < 6000; i++) keys.add(keyOf(i));
        // A fresh keydir numbers records in insertion order.
        for (const key of keys) keydir.put(key, ENTRY);
        const names = [...keys];
        const records = Uint32Array.from(names, (_, i) => i);
        const sorted = sortByKey(records, keydir.keyArena, keydir.keyOffsets);
        expect(Array.from(sorted.records, (r) => names[r])).to.deep.equal([...keys].sort(byBytes));
        // The heads are each key's first 8 bytes, beside its record.
        for (let i = 0; i < sorted.records.length; i += 97) {
          const bytes = Buffer.alloc(8);
          utf8(names[sorted.records[i]]).copy(bytes, 0, 0, 8);
          expect([sorted.head0[i], sorted.head1[i]]).to.deep.equal([bytes.readUInt32BE(0), bytes.readUInt32BE(4)]);
        }
      });
    }
  });

  it('refuses what breaks its contract, with the error types it documents', () => {
    const keydir = new KeyDir({ ordered: { nodeCapacity: 4 } });
    keydir.put('a', ENTRY);
    const index = keydir.ordered!;
    const record = recordOf(keydir, 'a');
    expect(() => index.insert(record)).to.throw(Error);
    expect(() => index.remove(record + 1)).to.throw(Error);
    for (const nodeCapacity of [3, 4097, 4.5]) expect(() => new OrderedIndex(keydir, { nodeCapacity })).to.throw(RangeError);
    expect(() => [...new KeyDir().range()]).to.throw(Error);
    index.check();
    expect(keysOf(keydir)).to.deep.equal(['a']);
  });
});

/**
 * Steps a cursor over `range` while making random changes between steps (to the keydir and the
 * model), including removing and re-inserting the key just yielded, and checks what it yields:
 * strictly ascending (or descending), each key live when yielded and in range, and every key
 * that was in range for the whole iteration yielded.
 */
function checkCursorUnderChanges(keydir: KeyDir, model: Model, range: StringRange, random: Random): void {
  const steady = new Set(model.range(range));
  const seen: string[] = [];
  for (const key of keydir.range(range)) {
    if (seen.length > 0) {
      const order = byBytes(key, seen[seen.length - 1]);
      expect(range.reverse ? order < 0 : order > 0, `order after ${JSON.stringify(seen[seen.length - 1])}`).to.equal(true);
    }
    expect(model.has(key), `yielded ${JSON.stringify(key)}, which is not live`).to.equal(true);
    expect(inRange(key, range)).to.equal(true);
    seen.push(key);
    for (let i = random.int(4); i > 0; i--) {
      const roll = random.int(5);
      const key2 = roll === 0 ? key : randomKey(random, 200);
      if (roll <= 1 || random.chance(0.4)) {
        keydir.put(key2, undefined);
        model.delete(key2);
        steady.delete(key2);
        if (roll === 0 && random.chance(0.5)) {
          keydir.put(key2, ENTRY);
          model.add(key2);
        }
      } else {
        keydir.put(key2, ENTRY);
        model.add(key2);
      }
    }
  }
  const yielded = new Set(seen);
  expect(yielded.size).to.equal(seen.length);
  for (const key of steady) expect(yielded.has(key), `skipped ${JSON.stringify(key)}`).to.equal(true);
}

/** The record index the keydir holds `key` in, found through its ordered index. */
function recordOf(keydir: KeyDir, key: string): number {
  const bytes = utf8(key);
  return keydir.ordered!.cursor({ gte: bytes, lte: bytes }).next();
}
