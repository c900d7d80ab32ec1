/**
 * Every value type msgpack carries comes back equal and of the same type: read before its write
 * reached the file, read from the file, and read after close and reopen.
 */
import { expect } from 'chai';
import { ErrorCodes, Store } from '../lib';
import { dump, expectCode, openFast, tempDir } from './helpers';

/**
 * Asserts that `actual` equals `expected` and has the same constructor at every level: chai's
 * deep equality alone treats a Buffer and a Uint8Array, or a Map and a Map-like object, alike.
 */
export function expectSameValue(actual: unknown, expected: unknown, where = 'value'): void {
  expect(actual, where).to.deep.equal(expected);
  expectSameShape(actual, expected, where);
}

/** The constructor (and sign of zero) check of expectSameValue, at every level. */
function expectSameShape(actual: unknown, expected: unknown, where: string): void {
  if (typeof expected === 'number' && Object.is(expected, -0)) expect(Object.is(actual, -0), where).to.equal(true);
  if (typeof expected !== 'object' || expected === null) {
    if (typeof actual !== typeof expected) expect(typeof actual, where).to.equal(typeof expected);
    return;
  }
  const a = actual as object;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(expected)) {
    expect(a.constructor?.name, `${where}: constructor`).to.equal(expected.constructor?.name);
    expect.fail(`${where}: prototype differs`);
  }
  if (Array.isArray(expected)) {
    expected.forEach((item, i) => expectSameShape((a as unknown[])[i], item, `${where}[${i}]`));
  } else if (expected instanceof Map) {
    const got = [...(a as Map<unknown, unknown>)];
    [...expected].forEach(([k, v], i) => {
      expectSameShape(got[i][0], k, `${where} key #${i}`);
      expectSameShape(got[i][1], v, `${where} value #${i}`);
    });
  } else if (expected instanceof Set) {
    const got = [...(a as Set<unknown>)];
    [...expected].forEach((item, i) => expectSameShape(got[i], item, `${where} item #${i}`));
  } else if (expected instanceof RegExp) {
    expect((a as RegExp).source, where).to.equal(expected.source);
    expect((a as RegExp).flags, where).to.equal(expected.flags);
  } else if (Object.getPrototypeOf(expected) === Object.prototype) {
    expect(Object.keys(a), `${where}: keys`).to.deep.equal(Object.keys(expected));
    for (const [k, v] of Object.entries(expected)) expectSameShape((a as Record<string, unknown>)[k], v, `${where}.${k}`);
  }
}

const ab = new ArrayBuffer(16);
new Uint8Array(ab).forEach((_, i, bytes) => { bytes[i] = i * 17; });

/** [name, value]: every kind of value a user may store. */
export const VALUES: Array<[string, unknown]> = [
  // objects
  ['empty object', {}],
  ['flat object', { a: 1, b: 'two', c: true, d: null }],
  ['nested object', { user: { name: 'Ada', tags: ['x', 'y'], address: { city: 'London', zip: null } } }],
  ['object with unicode and numeric-like keys', { 'ключ': 1, '😀': 2, '10': 'ten', '2': 'two', '': 'empty' }],
  ['object with 40 keys', Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, i]))],
  ['object holding undefined', { a: undefined, b: 1 }],
  // arrays
  ['empty array', []],
  ['nested arrays', [[], [[]], [1, [2, [3, [4, [5]]]]]]],
  ['mixed array', [1, 'a', null, true, false, { x: [1] }, 1.5]],
  ['array holding undefined', [undefined, 1, undefined]],
  ['array of 70000 numbers', Array.from({ length: 70000 }, (_, i) => i % 300)],
  // strings
  ['empty string', ''],
  ['ascii string', 'hello, world'],
  ['emoji string', '😀 family: 👩‍👩‍👧, flag: 🇫🇷'],
  ['accented string', 'Ünïcödé façade naïve'],
  ['CJK string', '日本語のテキスト'],
  ['string of 31 bytes', 'x'.repeat(31)],
  ['string of 32 bytes', 'x'.repeat(32)],
  ['string of 255 bytes', 'x'.repeat(255)],
  ['string of 256 bytes', 'x'.repeat(256)],
  ['string of 65536 bytes', 'y'.repeat(65536)],
  ['string with NUL and controls', 'a\u0000b\u0001\n\t\r'],
  // numbers
  ['zero', 0],
  ['one', 1],
  ['minus one', -1],
  ['127', 127], ['128', 128], ['255', 255], ['256', 256], ['65535', 65535], ['65536', 65536],
  ['2^32 - 1', 2 ** 32 - 1], ['2^32', 2 ** 32], ['-2^31', -(2 ** 31)], ['-2^31 - 1', -(2 ** 31) - 1],
  ['MAX_SAFE_INTEGER', Number.MAX_SAFE_INTEGER],
  ['MIN_SAFE_INTEGER', Number.MIN_SAFE_INTEGER],
  ['2^53', 2 ** 53],
  ['0.1', 0.1],
  ['-1.5', -1.5],
  ['1e300', 1e300],
  ['MAX_VALUE', Number.MAX_VALUE],
  ['MIN_VALUE (denormal)', Number.MIN_VALUE],
  ['NaN', NaN],
  ['Infinity', Infinity],
  ['-Infinity', -Infinity],
  ['floats in an array', [0.5, -0.25, 3.141592653589793, 1 / 3]],
  // bigint
  ['bigint 0', 0n],
  ['small bigint', 5n],
  ['negative small bigint', -5n],
  ['bigint 2^63 - 1', 2n ** 63n - 1n],
  ['bigint -2^63', -(2n ** 63n)],
  ['bigint 2^64 - 1', 2n ** 64n - 1n],
  ['bigint 2^64 (over 64 bits)', 2n ** 64n],
  ['bigint 2^100', 2n ** 100n],
  ['bigint -2^100', -(2n ** 100n)],
  ['bigint 2^1000', 2n ** 1000n],
  ['bigints in an object', { a: 1n, b: -(2n ** 70n) }],
  // binary
  ['empty Buffer', Buffer.alloc(0)],
  ['Buffer', Buffer.from([0, 1, 2, 254, 255])],
  ['Buffer of 70000 bytes', Buffer.alloc(70000, 0xab)],
  ['Buffer view into a larger buffer', Buffer.from('hello world').subarray(6)],
  ['Uint8Array', new Uint8Array([1, 2, 3, 255])],
  ['empty Uint8Array', new Uint8Array(0)],
  ['Int8Array', new Int8Array([-128, 0, 127])],
  ['Uint8ClampedArray', new Uint8ClampedArray([0, 128, 255])],
  ['Int16Array', new Int16Array([-32768, 0, 32767])],
  ['Uint16Array', new Uint16Array([0, 65535])],
  ['Uint16Array view at an odd offset', new Uint16Array(ab, 2, 3)],
  ['Int32Array', new Int32Array([-(2 ** 31), 0, 2 ** 31 - 1])],
  ['Uint32Array', new Uint32Array([0, 2 ** 32 - 1])],
  ['Float32Array', new Float32Array([1.5, -2.25, Infinity])],
  ['Float64Array', new Float64Array([Math.PI, -Math.E, NaN])],
  ['BigInt64Array', new BigInt64Array([-(2n ** 63n), 0n, 2n ** 63n - 1n])],
  ['BigUint64Array', new BigUint64Array([0n, 2n ** 64n - 1n])],
  // dates
  ['Date epoch', new Date(0)],
  ['Date now-ish', new Date(1_700_000_000_123)],
  ['Date before 1970', new Date(-86_400_001)],
  ['Date far future', new Date(8.64e15)],
  ['Date far past', new Date(-8.64e15)],
  // maps
  ['empty Map', new Map()],
  ['Map with string keys', new Map([['a', 1], ['b', 2]])],
  ['Map with non-string keys', new Map<unknown, unknown>([[1, 'one'], [true, 'yes'], [null, 'nil'], [2n, 'big'], [{ x: 1 }, 'obj'], [[1, 2], 'arr']])],
  ['nested Map', new Map<unknown, unknown>([['inner', new Map([[1, new Map([['deep', [1, 2]]])]])]])],
  ['Map with Set and Date values', new Map<unknown, unknown>([['s', new Set([1, 2])], ['d', new Date(5)], ['u', undefined]])],
  ['Map with a __proto__ key', new Map([['__proto__', 1]])],
  ['Maps inside objects and arrays', { m: new Map([[1, 2]]), list: [new Map([['k', 'v']])] }],
  // sets
  ['empty Set', new Set()],
  ['Set of mixed values', new Set<unknown>([1, 'a', null, 2n, { b: 2 }])],
  ['nested Set', new Set([new Set([1]), new Set([new Set(['x'])])])],
  ['Set of Maps', new Set([new Map([[1, 2]])])],
  // regular expressions
  ['RegExp', /ab+c/],
  ['RegExp with every flag', /a.b/dgimsuy],
  ['RegExp with escapes', /\/\d+\\[\]]/],
  // constants
  ['null', null],
  ['true', true],
  ['false', false],
];

describe('values round-trip', () => {
  let dir: string;
  let store: Store<unknown>;

  beforeEach(async () => {
    dir = tempDir();
    store = await openFast(dir);
  });
  afterEach(async () => {
    await store.close();
  });

  it('every value type, read before and after its write reached the file, and after reopen', async () => {
    const writes: Array<Promise<unknown>> = [];
    for (const [name, value] of VALUES) {
      writes.push(store.set(name, value));
      // Not yet written: this read is served from the queued record.
      expectSameValue(await store.get(name), value, `${name} (queued)`);
    }
    await Promise.all(writes);
    for (const [name, value] of VALUES) expectSameValue(await store.get(name), value, `${name} (written)`);
    await store.close();
    store = await openFast(dir);
    expect(store.size).to.equal(VALUES.length);
    for (const [name, value] of VALUES) {
      expect(await store.has(name), name).to.equal(true);
      expectSameValue(await store.get(name), value, `${name} (reopened)`);
    }
    const byName = new Map(VALUES);
    for (const [name, value] of await dump(store)) expectSameValue(value, byName.get(name), `${name} (entries)`);
  });

  it('falsy values are present, not missing', async () => {
    for (const [i, value] of [0, '', false, null, NaN, 0n].entries()) await store.set(`f${i}`, value);
    await store.close();
    store = await openFast(dir);
    for (const [i, value] of [0, '', false, null, NaN, 0n].entries()) {
      expect(await store.has(`f${i}`)).to.equal(true);
      expectSameValue(await store.get(`f${i}`), value, `f${i}`);
    }
  });

  it('each get returns a fresh copy: mutating it changes nothing stored', async () => {
    await store.set('obj', { list: [1, 2] });
    const first = (await store.get('obj')) as { list: number[] };
    first.list.push(3);
    expect(await store.get('obj')).to.deep.equal({ list: [1, 2] });
  });

  it('a value is copied at the call: mutating it afterwards changes nothing stored', async () => {
    const value = { n: 1, list: [1] };
    const write = store.set('k', value);
    value.n = 2;
    value.list.push(2);
    await write;
    expect(await store.get('k')).to.deep.equal({ n: 1, list: [1] });
    await store.close();
    store = await openFast(dir);
    expect(await store.get('k')).to.deep.equal({ n: 1, list: [1] });
  });

  it('batch() values round-trip too', async () => {
    const slice = VALUES.slice(0, 30);
    await store.batch(slice.map(([name, value]) => ({ type: 'set' as const, key: name, value })));
    await store.close();
    store = await openFast(dir);
    for (const [name, value] of slice) expectSameValue(await store.get(name), value, name);
  });
});

describe('values msgpack would change are rejected with LOGKV_INVALID_VALUE', () => {
  const cases: Array<[string, unknown]> = [
    ['negative zero', -0],
    ['negative zero inside an array', [1, -0]],
    ['negative zero as a Map value', new Map([['x', -0]])],
    ['a lone high surrogate', 'a\uD800'],
    ['a lone low surrogate inside an object', { s: '\uDC00' }],
    ['a lone surrogate in an object key', { ['k\uD800']: 1 }],
    ['a lone surrogate in a Map key', new Map([['\uDFFF', 1]])],
    ['a lone surrogate in a Set', new Set(['\uD83D'])],
    ['an own __proto__ property', JSON.parse('{"__proto__": {"x": 1}}')],
    ['a nested own __proto__ property', { a: [JSON.parse('{"__proto__": 1, "b": 2}')] }],
    ['an ArrayBuffer', new ArrayBuffer(4)],
    ['a DataView', new DataView(new ArrayBuffer(4))],
  ];
  for (const [name, value] of cases) {
    it(name, async () => {
      const dir = tempDir();
      const store = await openFast(dir);
      await store.set('k', 'before');
      const err = await expectCode(store.set('k', value), ErrorCodes.INVALID_VALUE);
      expect(err.details.key).to.equal('k');
      await expectCode(store.batch([{ type: 'set', key: 'k', value }]), ErrorCodes.INVALID_VALUE);
      expect(await store.get('k')).to.equal('before');
      await store.close();
    });
  }

  it('a well-formed surrogate pair is accepted, in values and in object keys', async () => {
    const store = await openFast(tempDir());
    await store.set('k', { ['😀']: '😀' });
    expect(await store.get('k')).to.deep.equal({ ['😀']: '😀' });
    await store.close();
  });
});

describe('the value checker of these specs', () => {
  it('tells apart what chai deep equality alone does not', () => {
    const pairs: Array<[unknown, unknown]> = [
      [new Uint8Array([1]), Buffer.from([1])],
      [Buffer.from([1]), new Uint8Array([1])],
      [0, -0],
      [{ a: new Uint8Array([1]) }, { a: Buffer.from([1]) }],
      [new Map([[1, new Uint8Array([2])]]), new Map([[1, Buffer.from([2])]])],
    ];
    for (const [actual, expected] of pairs) {
      expect(() => expectSameValue(actual, expected)).to.throw();
    }
    expectSameValue(new Map([[1, Buffer.from([2])]]), new Map([[1, Buffer.from([2])]]));
  });
});
