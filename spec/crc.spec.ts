/**
 * The engine may compute CRC-32 with Node's zlib.crc32 or with the crc-32 package: both must give
 * the same value for every input, so a store written with one reads with the other, and records
 * encoded with either are byte-identical.
 */
import { expect } from 'chai';
import Module = require('module');
import * as zlib from 'zlib';
import { CRC_RANGE_NATIVE_FROM, crc32, crc32Implementation, crc32Js, crc32Range, crc32Short } from '../lib/crc';
import * as format from '../lib/format';
import { prng, randomBytes } from './helpers';

type FormatModule = typeof format;
type CrcModule = typeof import('../lib/crc');

/**
 * Loads fresh copies of lib/crc.ts and lib/format.ts as they load on a Node without zlib.crc32,
 * so they use the crc-32 package. The module cache is restored afterwards.
 */
function loadWithoutZlibCrc(): { crc: CrcModule; format: FormatModule } {
  const crcPath = require.resolve('../lib/crc');
  const formatPath = require.resolve('../lib/format');
  const saved = { crc: require.cache[crcPath], format: require.cache[formatPath] };
  // zlib's exports are read-only: hand the fresh modules a copy of zlib without crc32 instead.
  const loader = Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown };
  const load = loader._load;
  const { crc32: _dropped, ...zlibWithoutCrc } = zlib as unknown as Record<string, unknown>;
  void _dropped;
  loader._load = (request: string, ...rest: unknown[]) => (request === 'zlib' ? zlibWithoutCrc : load(request, ...rest));
  delete require.cache[crcPath];
  delete require.cache[formatPath];
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return { crc: require('../lib/crc') as CrcModule, format: require('../lib/format') as FormatModule };
  } finally {
    loader._load = load;
    require.cache[crcPath] = saved.crc;
    require.cache[formatPath] = saved.format;
  }
}

describe('CRC-32', () => {
  it('the engine uses zlib.crc32 where Node has it', () => {
    const native = (zlib as unknown as { crc32?: unknown }).crc32;
    expect(crc32Implementation).to.equal(typeof native === 'function' ? 'zlib' : 'crc-32');
  });

  it('both give the standard check values', () => {
    const check = Buffer.from('123456789');
    expect(crc32(check)).to.equal(0xcbf43926);
    expect(crc32Js(check)).to.equal(0xcbf43926);
    expect(crc32(Buffer.alloc(0))).to.equal(0);
    expect(crc32Js(Buffer.alloc(0))).to.equal(0);
    expect(crc32Js(Buffer.from('The quick brown fox jumps over the lazy dog'))).to.equal(0x414fa339);
    expect(crc32Js(Buffer.alloc(32, 0xff))).to.equal(crc32(Buffer.alloc(32, 0xff)));
  });

  it('both return unsigned 32-bit integers', () => {
    const random = prng(7);
    for (let i = 0; i < 200; i++) {
      const data = randomBytes(random, 1 + (i % 64));
      for (const value of [crc32(data), crc32Js(data)]) {
        expect(Number.isInteger(value)).to.equal(true);
        expect(value).to.be.within(0, 0xffffffff);
      }
    }
  });

  it('agree on 2000 random buffers of 0 to 5000 bytes (seed 42)', () => {
    const random = prng(42);
    for (let i = 0; i < 2000; i++) {
      const length = i < 100 ? i : Math.floor(random() * 5000);
      const data = randomBytes(random, length);
      expect(crc32Js(data), `buffer #${i} of ${length} bytes, seed 42`).to.equal(crc32(data));
    }
  });

  it('agree on Uint8Array views at odd offsets', () => {
    const random = prng(3);
    const backing = randomBytes(random, 4096);
    for (let i = 0; i < 200; i++) {
      const start = Math.floor(random() * 2048);
      const view = new Uint8Array(backing.buffer, backing.byteOffset + start, Math.floor(random() * 2048));
      expect(crc32Js(view)).to.equal(crc32(view));
      expect(crc32(view)).to.equal(crc32(Buffer.from(view)));
    }
  });

  it('agree when chained: crc(b, crc(a)) equals crc(a + b), with either', () => {
    const random = prng(99);
    for (let i = 0; i < 300; i++) {
      const a = randomBytes(random, Math.floor(random() * 700));
      const b = randomBytes(random, Math.floor(random() * 700));
      const whole = crc32(Buffer.concat([a, b]));
      expect(crc32(b, crc32(a)), `pair #${i}`).to.equal(whole);
      expect(crc32Js(b, crc32Js(a)), `pair #${i}`).to.equal(whole);
      expect(crc32Js(b, crc32(a)), `pair #${i}`).to.equal(whole);
      expect(crc32(b, crc32Js(a)), `pair #${i}`).to.equal(whole);
    }
  });

  it('records and headers encoded with either implementation are byte-identical', () => {
    const alt = loadWithoutZlibCrc();
    expect(alt.crc.crc32Implementation).to.equal('crc-32');
    expect(alt.crc.crc32).to.not.equal(crc32);
    expect(alt.format.encodeRecord).to.not.equal(format.encodeRecord);

    const random = prng(2024);
    for (let i = 0; i < 500; i++) {
      const key = randomBytes(random, 1 + Math.floor(random() * 40));
      const isSet = random() < 0.8;
      const value = isSet ? randomBytes(random, Math.floor(random() * 600)) : undefined;
      const type = isSet ? format.TYPE_SET : format.TYPE_DELETE;
      const flags = random() < 0.3 ? format.FLAG_BATCH_CONT : 0;
      const expiresAt = random() < 0.5 ? 0 : Math.floor(random() * Number.MAX_SAFE_INTEGER);
      const mine = format.encodeRecord(type, flags, key, value, expiresAt, i + 1);
      const theirs = alt.format.encodeRecord(type, flags, key, value, expiresAt, i + 1);
      expect(theirs.equals(mine), `record #${i}, seed 2024`).to.equal(true);
      const header = format.parseRecordHeader(theirs, 0)!;
      expect(format.recordCrcMatches(theirs, 0, header)).to.equal(true);
      expect(alt.format.recordCrcMatches(mine, 0, header)).to.equal(true);
    }
    for (const id of [0x10000, 0x20001, 2 ** 40 + 5]) {
      const mine = format.encodeSegmentHeader(id);
      expect(alt.format.encodeSegmentHeader(id).equals(mine)).to.equal(true);
      expect(() => alt.format.checkSegmentHeader(mine, 'f', id)).to.not.throw();
    }
  });
  it('crc32Range gives crc32 of the subarray, for every short length and random ranges on both sides of the switch to zlib', () => {
    const random = prng(1234);
    const backing = randomBytes(random, 8192);
    for (let length = 0; length <= CRC_RANGE_NATIVE_FROM + 40; length++) {
      for (const start of [0, 1, 3, 7, 4093]) {
        const expected = crc32Js(backing.subarray(start, start + length));
        expect(crc32Range(backing, start, start + length), `${length} bytes at ${start}`).to.equal(expected);
        expect(crc32Short(backing, start, start + length), `${length} bytes at ${start}`).to.equal(expected);
      }
    }
    for (let i = 0; i < 2000; i++) {
      const start = Math.floor(random() * 4096);
      const end = start + Math.floor(random() * (random() < 0.5 ? 300 : 4096));
      const expected = crc32(backing.subarray(start, end));
      expect(crc32Range(backing, start, end), `[${start}, ${end}), seed 1234`).to.equal(expected);
      expect(crc32Short(backing, start, end)).to.equal(expected);
    }
    expect(crc32Range(Buffer.from('123456789'), 0, 9)).to.equal(0xcbf43926);
    expect(crc32Range(Buffer.alloc(0), 0, 0)).to.equal(0);
  });
});
