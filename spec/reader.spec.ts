/**
 * The reader checks a record where it finds it: in a block cache slab (where it lies among other
 * records), in a copy made across two blocks, in a positioned read of a record larger than a
 * block, or with no cache at all. On every one of those paths, a changed byte anywhere in the
 * record gives LOGKV_CORRUPTION, never a value, and the records around it still read exactly.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { ErrorCodes, LogkvError } from '../lib';
import { BLOCK_BYTES } from '../lib/cache';
import { decodeValue, decodeValueAt, encodeValue, prepareValue } from '../lib/codec';
import { Entry } from '../lib/keydir';
import { KeyIndex } from '../lib/keyindex';
import { fileSystem } from '../lib/medium/fs';
import { Reader } from '../lib/reader';
import { recover } from '../lib/recovery';
import { SegmentSet } from '../lib/segments';
import { FakeClock, openFast, tempDir } from './helpers';

/** An index and segments over a closed store's files, as a reader sees them (no writer). */
async function follow(dir: string): Promise<{ index: KeyIndex; segments: SegmentSet }> {
  const index = new KeyIndex(new FakeClock().read);
  const { segments: found, keydir } = await recover(fileSystem, dir,
    (bytes, start, length, entry) => index.applyBytes(bytes, start, length, entry), (count) => index.reserve(count));
  if (keydir !== undefined) index.load(keydir);
  return { index, segments: new SegmentSet(dir, found) };
}

/** What a read gives: the value, or the error's code. */
function attempt(reader: Reader, key: string, entry: Entry): { value: unknown } | { code: string } {
  try {
    return { value: reader.read(key, entry) };
  } catch (err) {
    if (!(err instanceof LogkvError)) throw err;
    return { code: err.code };
  }
}

describe('the reader, on each path a record takes', () => {
  const values = new Map<string, unknown>();
  let dir: string;

  beforeEach(async () => {
    dir = tempDir('reader');
    values.clear();
    const store = await openFast(dir);
    // Small records packed many to a block, some across block boundaries, and records larger
    // than a block; strings around msgpackr's 140-byte switch between its JS and native decoding.
    for (let i = 0; i < 400; i++) {
      const size = i % 50 === 7 ? BLOCK_BYTES + 300 + i : (i * 37) % 260;
      const value = i % 3 === 0 ? { i, text: 'é'.repeat(size >> 1), list: [i, 'x'.repeat(size % 17)] } : 'v'.repeat(size) + i;
      values.set(`key-${i}`, value);
      await store.set(`key-${i}`, value);
    }
    await store.close();
  });

  it('reads every record exactly, with a cache of any size and with none', async () => {
    const { index, segments } = await follow(dir);
    for (const cacheBytes of [0, BLOCK_BYTES * 2, BLOCK_BYTES * 3, 1 << 20]) {
      const reader = new Reader(segments, cacheBytes);
      for (let pass = 0; pass < 2; pass++) {
        for (const [key, value] of values) expect(reader.read(key, index.live(key)!), `${key} with ${cacheBytes}`).to.deep.equal(value);
      }
    }
    await segments.closeAll();
  });

  it('a changed byte anywhere in a record is LOGKV_CORRUPTION on every path, and its neighbours still read', async () => {
    const { index, segments } = await follow(dir);
    const entries = [...values.keys()].map((key) => ({ key, entry: index.live(key)! }));
    const inBlock = entries.find(({ entry }) => entry.length > 60 && entry.offset % BLOCK_BYTES > 0 &&
      (entry.offset % BLOCK_BYTES) + entry.length < BLOCK_BYTES)!;
    const across = entries.find(({ entry }) => entry.length < BLOCK_BYTES &&
      Math.floor(entry.offset / BLOCK_BYTES) !== Math.floor((entry.offset + entry.length - 1) / BLOCK_BYTES))!;
    const large = entries.find(({ entry }) => entry.length > BLOCK_BYTES)!;
    expect(inBlock && across && large, 'the store has a record on each path').to.not.equal(undefined);
    for (const { key, entry } of [inBlock, across, large]) {
      const segment = segments.get(entry.segmentId)!;
      const file = segment.path;
      for (const at of [0, 3, 4, 5, 6, 8, 12, 20, 27, 28, 28 + key.length - 1, 28 + key.length, entry.length >> 1, entry.length - 1]) {
        const position = entry.offset + at;
        const fd = fs.openSync(file, 'r+');
        const original = Buffer.alloc(1);
        fs.readSync(fd, original, 0, 1, position);
        fs.writeSync(fd, Buffer.from([original[0] ^ 0x01]), 0, 1, position);
        try {
          for (const cacheBytes of [0, 1 << 20]) {
            const reader = new Reader(segments, cacheBytes); // a fresh cache reads the damaged bytes
            expect(attempt(reader, key, entry), `${key} byte ${at} with ${cacheBytes}`).to.deep.equal({ code: ErrorCodes.CORRUPTION });
            // The same reader reads the damaged block again (the failed check dropped it): still corrupt.
            expect(attempt(reader, key, entry)).to.deep.equal({ code: ErrorCodes.CORRUPTION });
            for (const other of entries) {
              if (other.key === key) continue;
              expect(attempt(reader, other.key, other.entry)).to.deep.equal({ value: values.get(other.key) });
            }
          }
        } finally {
          fs.writeSync(fd, original, 0, 1, position);
          fs.closeSync(fd);
        }
      }
    }
    await segments.closeAll();
  });

  it('an entry that names a neighbour\'s offset or a wrong length is LOGKV_CORRUPTION, not the neighbour\'s value', async () => {
    const { index, segments } = await follow(dir);
    const reader = new Reader(segments, 1 << 20);
    const a = index.live('key-10')!;
    const b = index.live('key-11')!;
    const wrongOffset = new Entry(b.segmentId, b.offset, b.length, 0);
    expect(attempt(reader, 'key-10', wrongOffset)).to.deep.equal({ code: ErrorCodes.CORRUPTION });
    for (const length of [a.length - 1, a.length + 1, 10]) {
      const wrongLength = new Entry(a.segmentId, a.offset, length, 0);
      expect(attempt(reader, 'key-10', wrongLength), `length ${length}`).to.deep.equal({ code: ErrorCodes.CORRUPTION });
    }
    expect(attempt(reader, 'key-10', a)).to.deep.equal({ value: values.get('key-10') });
    await segments.closeAll();
  });
});

describe('decodeValueAt', () => {
  it('decodes a value lying anywhere in a larger buffer exactly as decodeValue decodes it alone', () => {
    const samples: unknown[] = [
      0, -1, 2 ** 53 - 1, 1.5, 'a', 'x'.repeat(139), 'y'.repeat(140), 'z'.repeat(5000), 'é✓'.repeat(90), true, null,
      { id: 7, name: 'user-00000007', tags: ['alpha', 'bravo'], score: 1.25, ts: 1_700_000_000_000 },
      [1, [2, [3]]], new Map<unknown, unknown>([['a', 1], [2, new Set([3])]]), new Date(1_700_000_000_000),
      Buffer.from([1, 2, 3]), new Float64Array([1.5, -2]), 12345678901234567890n,
    ];
    const filler = Buffer.alloc(300, 0x91); // would decode as arrays if a read strayed into it
    for (const value of samples) {
      const encoded = encodeValue(prepareValue(value));
      for (const before of [0, 1, 141, 4000]) {
        const buf = Buffer.concat([Buffer.alloc(before, 0x91), encoded, filler]);
        const decoded = decodeValueAt(buf, before, before + encoded.length);
        expect(decoded).to.deep.equal(decodeValue(encoded));
        expect(decoded).to.deep.equal(value);
        // A range one byte short or one byte long is not a value.
        expect(() => decodeValueAt(buf, before, before + encoded.length - 1)).to.throw();
        expect(() => decodeValueAt(buf, before, before + encoded.length + 1)).to.throw();
      }
    }
  });

  it('gives Buffers and typed arrays that share no memory with what it read', () => {
    const encoded = encodeValue(prepareValue({ b: Buffer.from('abc'), f: new Uint8Array([9, 8]) }));
    const buf = Buffer.concat([Buffer.alloc(5), encoded]);
    const decoded = decodeValueAt(buf, 5, buf.length) as { b: Buffer; f: Uint8Array };
    buf.fill(0);
    expect(decoded.b.toString()).to.equal('abc');
    expect([...decoded.f]).to.deep.equal([9, 8]);
    const again = decodeValueAt(Buffer.concat([Buffer.alloc(5), encoded]), 5, 5 + encoded.length) as { b: Buffer };
    expect(again.b.toString()).to.equal('abc');
    expect(decoded.b.toString()).to.equal('abc');
  });
});

describe('values decoded from the shared scratch copy', () => {
  // Small values are decoded from one scratch buffer that the next read overwrites (codec.ts): a
  // Buffer or typed array in a value must be a copy of its bytes, never a view of that scratch.
  it('a Buffer or typed array read earlier keeps its bytes after later reads', async () => {
    const store = await openFast(tempDir());
    await store.set('a', { bytes: Buffer.from([1, 2, 3, 4]), floats: new Float64Array([1.5, -2]) });
    await store.set('b', { bytes: Buffer.from([9, 9, 9, 9, 9, 9, 9, 9]), floats: new Float64Array([7, 7, 7]) });
    const first = (await store.get('a')) as { bytes: Buffer; floats: Float64Array };
    for (let i = 0; i < 3; i++) await store.get('b');
    expect([...first.bytes]).to.deep.equal([1, 2, 3, 4]);
    expect([...first.floats]).to.deep.equal([1.5, -2]);
    await store.close();
  });
});
