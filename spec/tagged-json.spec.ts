/**
 * lib/tagged-json.ts: the JSON rendering of values used by the command line (get, set, dump, load).
 * The dump → load round trip of every type through the real commands is in spec/cli.spec.ts; here
 * are the exact renderings, the escaping of user objects that look like tags, and malformed tags.
 */
import { expect } from 'chai';
import { ErrorCodes, LogkvError } from '../lib';
import { TAG, fromTaggedJson, toTaggedJson } from '../lib/tagged-json';

function rejects(json: unknown): void {
  let threw: unknown;
  try {
    fromTaggedJson(json);
  } catch (err) {
    threw = err;
  }
  expect(threw, JSON.stringify(json)).to.be.instanceOf(LogkvError);
  expect((threw as LogkvError).code).to.equal(ErrorCodes.INVALID_VALUE);
}

describe('tagged JSON (values on the command line)', () => {
  const TABLE: Array<[string, unknown, unknown]> = [
    ['plain JSON stays itself', { a: [1, 'two', null, true] }, { a: [1, 'two', null, true] }],
    ['undefined', [undefined], [{ [TAG]: 'undefined' }]],
    ['NaN and infinities', [NaN, Infinity, -Infinity], [{ [TAG]: 'NaN' }, { [TAG]: 'Infinity' }, { [TAG]: '-Infinity' }]],
    ['bigint', -(2n ** 70n), { [TAG]: 'BigInt', value: '-1180591620717411303424' }],
    ['Date', new Date(Date.UTC(2024, 4, 1, 12)), { [TAG]: 'Date', value: '2024-05-01T12:00:00.000Z' }],
    ['RegExp', /a+b/gi, { [TAG]: 'RegExp', source: 'a+b', flags: 'gi' }],
    ['Buffer', Buffer.from('hello'), { [TAG]: 'Buffer', base64: 'aGVsbG8=' }],
    ['Uint8Array is not a Buffer', new Uint8Array([1, 2]), { [TAG]: 'Uint8Array', base64: 'AQI=' }],
    ['Float64Array', new Float64Array([1]), { [TAG]: 'Float64Array', base64: 'AAAAAAAA8D8=' }],
    ['Map with non-string keys', new Map<unknown, unknown>([[1, 'a'], [new Date(0), 2n]]),
      { [TAG]: 'Map', entries: [[1, 'a'], [{ [TAG]: 'Date', value: '1970-01-01T00:00:00.000Z' }, { [TAG]: 'BigInt', value: '2' }]] }],
    ['Set', new Set([1, 'x']), { [TAG]: 'Set', values: [1, 'x'] }],
    ['an object that looks like a tag is escaped', { [TAG]: 'Map', entries: [] },
      { [TAG]: 'Object', value: { [TAG]: 'Map', entries: [] } }],
  ];
  for (const [name, value, rendering] of TABLE) {
    it(`${name}: renders exactly and reads back the same`, () => {
      expect(toTaggedJson(value)).to.deep.equal(rendering);
      expect(fromTaggedJson(JSON.parse(JSON.stringify(rendering)))).to.deep.equal(value);
    });
  }

  it('a typed array view of part of a buffer renders only its own bytes', () => {
    const view = new Uint16Array(new Uint8Array([9, 9, 1, 0, 2, 0, 9, 9]).buffer, 2, 2);
    expect(fromTaggedJson(toTaggedJson(view))).to.deep.equal(new Uint16Array([1, 2]));
  });

  it('a member named __proto__ stays a member, never a prototype', () => {
    const value = fromTaggedJson(JSON.parse('{"__proto__": {"polluted": true}}')) as Record<string, unknown>;
    expect(Object.getPrototypeOf(value)).to.equal(Object.prototype);
    expect(Object.keys(value)).to.deep.equal(['__proto__']);
    expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
  });

  it('rejects malformed tags with LOGKV_INVALID_VALUE rather than guess', () => {
    rejects({ [TAG]: 'Nope' });
    rejects({ [TAG]: 5 });
    rejects({ [TAG]: 'BigInt', value: '1.5' });
    rejects({ [TAG]: 'BigInt', value: 12 });
    rejects({ [TAG]: 'BigInt' });
    rejects({ [TAG]: 'NaN', extra: 1 });
    rejects({ [TAG]: 'Date', value: '2024-05-01' });           // not the exact ISO form: time zone ambiguity
    rejects({ [TAG]: 'Date', value: 'yesterday' });
    rejects({ [TAG]: 'RegExp', source: '(', flags: '' });
    rejects({ [TAG]: 'Buffer', base64: 'a b c' });               // not canonical base64
    rejects({ [TAG]: 'Float32Array', base64: 'AQI=' });          // 2 bytes, not a multiple of 4
    rejects({ [TAG]: 'Map', entries: [[1]] });
    rejects({ [TAG]: 'Set', values: 'x' });
    rejects({ [TAG]: 'Object', value: [1] });
    rejects({ nested: [{ [TAG]: 'Nope' }] });
  });
});
