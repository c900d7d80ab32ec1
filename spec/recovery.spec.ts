/**
 * Recovery at open: a torn or garbage tail of the newest segment is cut off and everything before
 * it is there; a torn batch is dropped whole; a bad record in a sealed segment fails open with
 * LOGKV_CORRUPTION naming the file and offset; a bad record read later fails that read only.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { ErrorCodes, Store } from '../lib';
import { crc32 } from '../lib/crc';
import { encodeValue, prepareValue } from '../lib/codec';
import {
  FORMAT_VERSION, KIND_SEGMENT, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES, TYPE_SET, encodeRecord, encodeSegmentHeader,
} from '../lib/format';
import {
  deleteRecordBytes, dump, expectCode, openAfterCrash, openFast, prng, randomBytes, segmentFiles, setRecordBytes, tempDir,
} from './helpers';

const SEG1 = '000000010000.seg';
const SEG2 = '000000020000.seg';
const SEG3 = '000000030000.seg';

/** The first record's offset in a segment this build writes. */
const H = SEGMENT_HEADER_BYTES;

/** Flips every bit of the byte at `offset` of `file`. */
function flipByte(file: string, offset: number): void {
  const fd = fs.openSync(file, 'r+');
  try {
    const byte = Buffer.alloc(1);
    fs.readSync(fd, byte, 0, 1, offset);
    byte[0] ^= 0xff;
    fs.writeSync(fd, byte, 0, 1, offset);
  } finally {
    fs.closeSync(fd);
  }
}

const BASE: Array<[string, unknown]> = [
  ['k0', 'zero'],
  ['k1', { one: 1 }],
  ['k2', [2, 2]],
  ['k3', 3n],
  ['k4', Buffer.from('four')],
];

/** Writes BASE then `last` into a fresh store; returns the directory and the last record's span. */
async function storeWithLast(lastKey: string, lastValue: unknown): Promise<{ dir: string; file: string; lastStart: number; size: number }> {
  const dir = tempDir();
  const store = await openAfterCrash(dir);
  for (const [k, v] of BASE) await store.set(k, v);
  await store.set(lastKey, lastValue);
  await store.close();
  const file = path.join(dir, SEG1);
  const size = fs.statSync(file).size;
  return { dir, file, lastStart: size - setRecordBytes(lastKey, lastValue), size };
}

async function expectBase(store: Store<unknown>, extra: Array<[string, unknown]> = []): Promise<void> {
  const expected = [...BASE, ...extra].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  expect(await dump(store)).to.deep.equal(expected);
}

describe('recovery: a torn tail', () => {
  it('cut at every byte inside the last record: opens with every earlier key, and takes new writes', async () => {
    const last = { text: 'the last record', n: 12345 };
    const { dir, file, lastStart, size } = await storeWithLast('last', last);
    const pristine = fs.readFileSync(file);
    expect(size - lastStart).to.be.greaterThan(40);
    for (let cut = lastStart + 1; cut < size; cut++) {
      fs.writeFileSync(file, pristine.subarray(0, cut));
      let store = await openAfterCrash(dir);
      const where = `cut at ${cut} (record at ${lastStart}..${size})`;
      expect(store.recovery.truncated, where).to.deep.include({ file, offset: lastStart, bytes: cut - lastStart });
      expect(await store.has('last'), where).to.equal(false);
      await expectBase(store);
      expect(fs.statSync(file).size, where).to.equal(lastStart);
      await store.set('after', cut);
      await store.close();
      expect(fs.statSync(file).size, where).to.equal(lastStart + setRecordBytes('after', cut));
      store = await openAfterCrash(dir);
      expect(store.recovery.truncated, where).to.equal(undefined);
      await expectBase(store, [['after', cut]]);
      await store.close();
    }
  });

  it('cut exactly at a record boundary: nothing to repair', async () => {
    const { dir, file, lastStart } = await storeWithLast('last', 'value');
    fs.truncateSync(file, lastStart);
    const store = await openAfterCrash(dir);
    expect(store.recovery.truncated).to.equal(undefined);
    expect(store.recovery.records).to.equal(BASE.length);
    await expectBase(store);
    await store.close();
  });

  it('the intact file opens with every record and reports no repair', async () => {
    const { dir } = await storeWithLast('last', 'value');
    const store = await openAfterCrash(dir);
    expect(store.recovery.truncated).to.equal(undefined);
    expect(store.recovery.segments).to.equal(1);
    expect(store.recovery.records).to.equal(BASE.length + 1);
    await expectBase(store, [['last', 'value']]);
    await store.close();
  });

  it('a torn tail of the newest of several segments leaves the older ones whole', async () => {
    const dir = tempDir();
    let store = await openAfterCrash(dir, { maxSegmentBytes: 1024 });
    const value = 'x'.repeat(300);
    for (let i = 0; i < 8; i++) await store.set(`k${i}`, value);
    await store.close();
    const names = segmentFiles(dir);
    expect(names.length).to.be.greaterThan(2);
    const newest = path.join(dir, names[names.length - 1]);
    const size = fs.statSync(newest).size;
    fs.truncateSync(newest, size - 7);
    store = await openAfterCrash(dir, { maxSegmentBytes: 1024 });
    expect(store.recovery.truncated).to.deep.include({ file: newest, offset: size - setRecordBytes('k7', value) });
    expect(await store.has('k7')).to.equal(false);
    for (let i = 0; i < 7; i++) expect(await store.get(`k${i}`)).to.equal(value);
    await store.close();
  });
});

describe('recovery: segments larger than the read chunk', () => {
  it('records straddling the 1 MiB read chunks of recovery replay exactly', async () => {
    const dir = tempDir();
    let store = await openAfterCrash(dir);
    const random = prng(5);
    const expected: Array<[string, unknown]> = [];
    let bytes = 0;
    for (let i = 0; bytes < 3.5 * 1024 * 1024; i++) {
      const value = randomBytes(random, 500 + Math.floor(random() * 9000));
      const key = `r${String(i).padStart(5, '0')}`;
      void store.set(key, value);
      expected.push([key, value]);
      bytes += setRecordBytes(key, value);
    }
    await store.close();
    store = await openAfterCrash(dir);
    expect(store.recovery.records).to.equal(expected.length);
    expect(store.recovery.truncated).to.equal(undefined);
    expect(await dump(store)).to.deep.equal(expected);
    await store.close();
  });

  it('a 3 MiB value survives reopen, and a cut inside it is a torn tail', async () => {
    const big = randomBytes(prng(11), 3 * 1024 * 1024);
    const { dir, file, lastStart, size } = await storeWithLast('big', big);
    let store = await openAfterCrash(dir);
    expect(await store.get('big')).to.deep.equal(big);
    await store.close();
    const pristine = fs.readFileSync(file);
    for (const cut of [lastStart + 27, lastStart + 28, lastStart + 1024 * 1024, size - 1]) {
      fs.writeFileSync(file, pristine.subarray(0, cut));
      store = await openAfterCrash(dir);
      expect(store.recovery.truncated, `cut at ${cut}`).to.deep.include({ offset: lastStart, bytes: cut - lastStart });
      await expectBase(store);
      await store.close();
    }
  });
});

describe('recovery: a garbage tail', () => {
  const tails: Array<[string, (size: number) => Buffer]> = [];
  for (let seed = 1; seed <= 24; seed++) {
    tails.push([`${seed * 9} random bytes (seed ${seed})`, () => randomBytes(prng(seed), seed * 9)]);
  }
  tails.push(
    ['4096 zero bytes, then one that is not', () => Buffer.concat([Buffer.alloc(4096), Buffer.from([1])])],
    ['3 bytes of 0xff', () => Buffer.alloc(3, 0xff)],
    ['a plausible header claiming a huge value', () => {
      const header = Buffer.alloc(RECORD_HEADER_BYTES);
      header[4] = 1; // SET
      header.writeUInt16LE(3, 6);
      header.writeUInt32LE(1024 * 1024 * 1024, 8); // the largest value length the format allows
      header.writeUInt32LE(99, 20); // version
      return Buffer.concat([header, Buffer.from('abc')]);
    }],
    ['a complete record with a wrong checksum', () => {
      const record = Buffer.alloc(RECORD_HEADER_BYTES + 1 + 2);
      record[4] = 1;
      record.writeUInt16LE(1, 6);
      record.writeUInt32LE(2, 8);
      record.writeUInt32LE(99, 20); // version
      record.write('z', RECORD_HEADER_BYTES);
      record[RECORD_HEADER_BYTES + 1] = 0xa1; // msgpack "a"
      record[RECORD_HEADER_BYTES + 2] = 0x61;
      record.writeUInt32LE((crc32(record.subarray(4)) ^ 1) >>> 0, 0);
      return record;
    }],
  );

  for (const [name, makeTail] of tails) {
    it(`${name}: cut off, every key intact, new writes survive`, async () => {
      const { dir, file, size } = await storeWithLast('last', 'value');
      const tail = makeTail(size);
      fs.appendFileSync(file, tail);
      let store = await openAfterCrash(dir);
      expect(store.recovery.truncated).to.deep.include({ file, offset: size, bytes: tail.length });
      await expectBase(store, [['last', 'value']]);
      expect(fs.statSync(file).size).to.equal(size);
      await store.set('after', 1);
      await store.close();
      store = await openAfterCrash(dir);
      expect(store.recovery.truncated).to.equal(undefined);
      await expectBase(store, [['last', 'value'], ['after', 1]]);
      await store.close();
    });
  }

  it('zero bytes to the end of the file are padding, not a tail: kept, new writes go over them, and a clean close cuts the rest', async () => {
    const { dir, file, size } = await storeWithLast('last', 'value');
    fs.appendFileSync(file, Buffer.alloc(4096));
    let store = await openAfterCrash(dir);
    expect(store.recovery.truncated).to.equal(undefined);
    await expectBase(store, [['last', 'value']]);
    expect(fs.statSync(file).size).to.equal(size + 4096);
    await store.set('after', 1);
    // The write went where the records end, over the zeros; the rest of them are still padding.
    const whileOpen = fs.readFileSync(file);
    expect(whileOpen.length).to.equal(size + 4096);
    await store.close();
    // A clean close cuts the padding: the file ends where its records do.
    const closed = fs.readFileSync(file);
    expect(closed.length).to.be.above(size);
    expect(closed).to.deep.equal(whileOpen.subarray(0, closed.length));
    expect(whileOpen.subarray(closed.length).every((byte) => byte === 0)).to.equal(true);
    store = await openAfterCrash(dir);
    expect(store.recovery.truncated).to.equal(undefined);
    await expectBase(store, [['last', 'value'], ['after', 1]]);
    await store.close();
  });
});

describe('recovery: a torn batch', () => {
  it('cut anywhere inside a batch: none of the batch is visible, and the store goes on', async () => {
    const dir = tempDir();
    let store = await openAfterCrash(dir);
    for (const [k, v] of BASE) await store.set(k, v);
    await store.close();
    const file = path.join(dir, SEG1);
    const batchStart = fs.statSync(file).size;
    store = await openAfterCrash(dir);
    await store.batch([
      { type: 'set', key: 'k1', value: 'new one' },
      { type: 'set', key: 'fresh', value: { in: 'batch' } },
      { type: 'delete', key: 'k0' },
      { type: 'set', key: 'k2', value: 'new two' },
    ]);
    await store.close();
    const pristine = fs.readFileSync(file);
    const batchBytes = setRecordBytes('k1', 'new one') + setRecordBytes('fresh', { in: 'batch' }) +
      deleteRecordBytes('k0') + setRecordBytes('k2', 'new two');
    expect(pristine.length).to.equal(batchStart + batchBytes);

    for (let cut = batchStart + 1; cut < pristine.length; cut++) {
      fs.writeFileSync(file, pristine.subarray(0, cut));
      store = await openAfterCrash(dir);
      const where = `cut at ${cut} (batch at ${batchStart}..${pristine.length})`;
      expect(store.recovery.truncated, where).to.deep.include({ file, offset: batchStart, bytes: cut - batchStart });
      await expectBase(store);
      expect(await store.has('fresh'), where).to.equal(false);
      expect(fs.statSync(file).size, where).to.equal(batchStart);
      // The next write must not be taken as the end of the torn batch.
      await store.set('after', cut);
      await store.close();
      store = await openAfterCrash(dir);
      await expectBase(store, [['after', cut]]);
      await store.close();
    }

    fs.writeFileSync(file, pristine);
    store = await openAfterCrash(dir);
    expect(await dump(store)).to.deep.equal([
      ['fresh', { in: 'batch' }], ['k1', 'new one'], ['k2', 'new two'], ['k3', 3n], ['k4', Buffer.from('four')],
    ]);
    await store.close();
  });

  it('a whole batch before a torn one stays applied', async () => {
    const dir = tempDir();
    let store = await openAfterCrash(dir);
    await store.batch([{ type: 'set', key: 'a', value: 1 }, { type: 'set', key: 'b', value: 2 }]);
    await store.batch([{ type: 'set', key: 'a', value: 10 }, { type: 'set', key: 'c', value: 3 }]);
    await store.close();
    const file = path.join(dir, SEG1);
    fs.truncateSync(file, fs.statSync(file).size - 1);
    store = await openAfterCrash(dir);
    expect(await dump(store)).to.deep.equal([['a', 1], ['b', 2]]);
    await store.close();
  });
});

describe('recovery: a damaged sealed segment', () => {
  /** Three segments; returns the first record's offset and length in the first (sealed) one. */
  async function threeSegments(): Promise<{ dir: string; file: string; recordStart: number; recordLength: number }> {
    const dir = tempDir();
    const store = await openAfterCrash(dir, { maxSegmentBytes: 1024 });
    const value = 'v'.repeat(300);
    for (let i = 0; i < 8; i++) await store.set(`key${i}`, `${value}${i}`);
    await store.close();
    expect(segmentFiles(dir).slice(0, 3)).to.deep.equal([SEG1, SEG2, SEG3]);
    const recordLength = setRecordBytes('key1', `${value}1`);
    // The second record of the first segment: a record with records on both sides.
    return { dir, file: path.join(dir, SEG1), recordStart: H + setRecordBytes('key0', `${value}0`), recordLength };
  }

  it('a flipped byte anywhere in a record: open rejects LOGKV_CORRUPTION naming the file and the record', async () => {
    const { dir, file, recordStart, recordLength } = await threeSegments();
    const pristine = fs.readFileSync(file);
    // Every byte of the record's header and key, and a sample of its value.
    const positions = [...Array(32).keys()].concat([40, 100, 200, recordLength - 1]).map((i) => recordStart + i);
    for (const at of positions) {
      flipByte(file, at);
      const err = await expectCode(openAfterCrash(dir, { maxSegmentBytes: 1024 }), ErrorCodes.CORRUPTION);
      expect(err.details, `byte ${at}`).to.deep.include({ file, offset: recordStart });
      fs.writeFileSync(file, pristine);
    }
    // The failed opens released the lock, and the repaired file opens.
    const store = await openAfterCrash(dir, { maxSegmentBytes: 1024 });
    expect(store.size).to.equal(8);
    await store.close();
  });

  it('after a clean close too, a flipped value byte is never served as a value', async () => {
    // A clean close may leave what lets open skip the scan (a keydir snapshot); then the damage is
    // found when the key is read instead. Either way: LOGKV_CORRUPTION, never a wrong value.
    const { dir, file, recordStart, recordLength } = await threeSegments();
    const reopened = await openFast(dir, { maxSegmentBytes: 1024 });
    await reopened.close(); // a clean close, with whatever it leaves behind
    flipByte(file, recordStart + recordLength - 1);
    let store: Store<unknown>;
    try {
      store = await openFast(dir, { maxSegmentBytes: 1024 });
    } catch (err) {
      expect((err as { code?: string }).code).to.equal(ErrorCodes.CORRUPTION);
      expect((err as { details?: object }).details).to.deep.include({ file, offset: recordStart });
      return;
    }
    const err = await expectCode(store.get('key1'), ErrorCodes.CORRUPTION);
    expect(err.details).to.deep.include({ file, offset: recordStart, key: 'key1' });
    expect(await store.get('key0')).to.equal('v'.repeat(300) + '0');
    expect(await store.get('key7')).to.equal('v'.repeat(300) + '7');
    await store.close();
  });

  it('a flipped byte in the last record of a sealed segment is corruption, not a torn tail', async () => {
    const { dir, file, recordLength } = await threeSegments();
    const size = fs.statSync(file).size;
    flipByte(file, size - 1);
    const err = await expectCode(openAfterCrash(dir), ErrorCodes.CORRUPTION);
    expect(err.details.file).to.equal(file);
    expect(err.details.offset).to.equal(size - recordLength);
  });

  it('a sealed segment cut short is corruption', async () => {
    const { dir, file, recordLength } = await threeSegments();
    const size = fs.statSync(file).size;
    fs.truncateSync(file, size - 5);
    const err = await expectCode(openAfterCrash(dir), ErrorCodes.CORRUPTION);
    expect(err.details.file).to.equal(file);
    expect(err.details.offset).to.equal(size - recordLength);
  });

  it('garbage appended to a sealed segment is corruption', async () => {
    const { dir, file } = await threeSegments();
    const size = fs.statSync(file).size;
    fs.appendFileSync(file, Buffer.from([1, 2, 3]));
    const err = await expectCode(openAfterCrash(dir), ErrorCodes.CORRUPTION);
    expect(err.details).to.deep.include({ file, offset: size });
  });

  it('a flipped byte in a sealed segment header: LOGKV_CORRUPTION at offset 0 (at 4 in the version, which names the layout)', async () => {
    const { dir, file } = await threeSegments();
    for (let at = 0; at < H; at++) {
      flipByte(file, at);
      const err = await expectCode(openAfterCrash(dir), ErrorCodes.CORRUPTION);
      expect(err.details, `byte ${at}`).to.deep.include({ file, offset: at === 4 || at === 5 ? 4 : 0 });
      flipByte(file, at);
    }
  });

  it('an empty sealed segment is corruption', async () => {
    const { dir, file } = await threeSegments();
    fs.truncateSync(file, 0);
    const err = await expectCode(openAfterCrash(dir), ErrorCodes.CORRUPTION);
    expect(err.details).to.deep.include({ file, offset: 0 });
  });
});

describe('recovery: a compaction output is never torn', () => {
  // Only the segment that takes writes can be torn by a crash: a compaction output is synced
  // before it is renamed into place. When it is the newest segment (no write came after the
  // compaction) and its hint is gone, damage in it must not be cut off as a torn tail: the keys
  // after the damage would silently read as missing. Issue 9, item 4.
  const OPTIONS = { maxSegmentBytes: 2048, autoCompact: false as const };

  /** A compacted store whose newest segment is a compaction output; returns it and its records' offsets. */
  async function compacted(): Promise<{ dir: string; output: string; second: number }> {
    const dir = tempDir();
    const store = await openAfterCrash(dir, OPTIONS);
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 12; i++) await store.set(`key${String(i).padStart(2, '0')}`, `${round}`.repeat(120));
    }
    await store.compact();
    await store.close();
    const names = segmentFiles(dir);
    const output = path.join(dir, names[names.length - 1]);
    expect(parseInt(names[names.length - 1], 16) % 0x10000, 'the newest segment is a compaction output').to.not.equal(0);
    return { dir, output, second: H + setRecordBytes('key00', '2'.repeat(120)) };
  }

  it('a flipped byte mid-way through the newest segment, a compaction output without its hint: LOGKV_CORRUPTION', async () => {
    const { dir, output, second } = await compacted();
    const before = fs.readFileSync(output);
    flipByte(output, second + 25);
    const err = await expectCode(openAfterCrash(dir, OPTIONS), ErrorCodes.CORRUPTION); // openAfterCrash drops the hints
    expect(err.details).to.deep.include({ file: output, offset: second });
    expect(fs.statSync(output).size, 'nothing was cut').to.equal(before.length);
  });

  it('a torn write segment after an intact compaction output is cut as usual', async () => {
    const { dir, output } = await compacted();
    let store = await openAfterCrash(dir, OPTIONS);
    await store.set('later', 'value');
    await store.close();
    const names = segmentFiles(dir);
    const newest = path.join(dir, names[names.length - 1]);
    expect(newest).to.not.equal(output);
    const size = fs.statSync(newest).size;
    fs.truncateSync(newest, size - 2);
    store = await openAfterCrash(dir, OPTIONS);
    expect(store.recovery.truncated).to.deep.include({ file: newest, offset: H, bytes: size - H - 2 });
    expect(await store.get('key11')).to.equal('2'.repeat(120));
    expect(await store.has('later')).to.equal(false);
    await store.close();
  });
});

describe('recovery: bad segment headers', () => {
  /** A header (28 bytes as version 2, 20 as version 1) with a correct checksum over the given fields. */
  function header(fields: { magic?: number; version?: number; kind?: number; id: number; floor?: number }): Buffer {
    const version = fields.version ?? FORMAT_VERSION;
    const bytes = version === 1 ? 20 : 28;
    const buf = Buffer.alloc(bytes);
    buf.writeUInt32LE(fields.magic ?? 0x53564b4c, 0);
    buf.writeUInt16LE(version, 4);
    buf.writeUInt16LE(fields.kind ?? 1, 6);
    buf.writeUInt32LE(fields.id, 8);
    if (version !== 1) buf.writeUInt32LE(fields.floor ?? 0, 20);
    buf.writeUInt32LE(crc32(buf.subarray(0, bytes - 4)), bytes - 4);
    return buf;
  }

  const cases: Array<{ name: string; bytes: Buffer; offset: number }> = [
    { name: 'a newer format version', bytes: header({ version: FORMAT_VERSION + 1, id: 0x10000 }), offset: 4 },
    { name: 'version 0', bytes: header({ version: 0, id: 0x10000 }), offset: 4 },
    { name: 'another file kind', bytes: header({ kind: 2, id: 0x10000 }), offset: 6 },
    { name: 'the id of another segment', bytes: header({ id: 0x20000 }), offset: 8 },
    { name: 'a version floor past 2^53 - 1', bytes: header({ id: 0x10000, floor: 0x200000 }), offset: 16 },
    { name: 'a bad magic number', bytes: header({ magic: 0x12345678, id: 0x10000 }), offset: 0 },
    { name: 'a bad header checksum', bytes: Buffer.concat([encodeSegmentHeader(0x10000).subarray(0, 24), Buffer.alloc(4, 1)]), offset: 0 },
    { name: 'a version 1 header of another file kind', bytes: header({ version: 1, kind: 2, id: 0x10000 }), offset: 6 },
    { name: 'a version 1 header with the id of another segment', bytes: header({ version: 1, id: 0x20000 }), offset: 8 },
    { name: 'a version 1 header with a bad checksum', bytes: Buffer.concat([header({ version: 1, id: 0x10000 }).subarray(0, 16), Buffer.alloc(4, 1)]), offset: 0 },
  ];
  for (const c of cases) {
    it(`the newest (only) segment with ${c.name}: LOGKV_CORRUPTION, not a silent reset`, async () => {
      const dir = tempDir();
      const file = path.join(dir, SEG1);
      const record = Buffer.alloc(30, 7); // whatever follows: the header alone decides
      fs.writeFileSync(file, Buffer.concat([c.bytes, record]));
      const err = await expectCode(openAfterCrash(dir), ErrorCodes.CORRUPTION);
      expect(err.details).to.deep.include({ file, offset: c.offset });
      expect(fs.readFileSync(file)).to.deep.equal(Buffer.concat([c.bytes, record]));
    });
  }
});

describe('recovery: an interrupted segment creation', () => {
  async function oneSegment(): Promise<string> {
    const dir = tempDir();
    const store = await openAfterCrash(dir);
    for (const [k, v] of BASE) await store.set(k, v);
    await store.close();
    return dir;
  }

  const newest: Array<{ name: string; bytes: () => Buffer; truncatedBytes: number | undefined }> = [
    { name: 'empty', bytes: () => Buffer.alloc(0), truncatedBytes: undefined },
    { name: 'zero-filled (4096 bytes)', bytes: () => Buffer.alloc(4096), truncatedBytes: 4096 },
    { name: 'zero-filled (100000 bytes)', bytes: () => Buffer.alloc(100_000), truncatedBytes: 100_000 },
    { name: 'a torn header (10 bytes)', bytes: () => encodeSegmentHeader(0x20000).subarray(0, 10), truncatedBytes: 10 },
    { name: 'a header of random bytes shorter than a header', bytes: () => randomBytes(prng(9), 19), truncatedBytes: 19 },
  ];
  for (const c of newest) {
    it(`a newest segment that is ${c.name}: opens with every key of the older one`, async () => {
      const dir = await oneSegment();
      const file = path.join(dir, SEG2);
      fs.writeFileSync(file, c.bytes());
      let store = await openAfterCrash(dir);
      if (c.truncatedBytes === undefined) expect(store.recovery.truncated).to.equal(undefined);
      else expect(store.recovery.truncated).to.deep.include({ file, offset: 0, bytes: c.truncatedBytes });
      await expectBase(store);
      // Reset with the version floor the older segment's records leave: the next version.
      expect(fs.readFileSync(file)).to.deep.equal(encodeSegmentHeader(0x20000, KIND_SEGMENT, BASE.length + 1));
      await store.set('after', 1);
      await store.close();
      expect(segmentFiles(dir)).to.deep.equal([SEG1, SEG2]);
      store = await openAfterCrash(dir);
      await expectBase(store, [['after', 1]]);
      await store.close();
    });
  }

  it('an empty only segment: opens empty and takes writes', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, SEG1), '');
    let store = await openAfterCrash(dir);
    expect(store.size).to.equal(0);
    await store.set('a', 1);
    await store.close();
    store = await openAfterCrash(dir);
    expect(await dump(store)).to.deep.equal([['a', 1]]);
    await store.close();
  });

  it('files that are not segments are left alone', async () => {
    const dir = await oneSegment();
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'mine');
    fs.writeFileSync(path.join(dir, '10000.seg'), 'not a segment name');
    fs.writeFileSync(path.join(dir, '0000000100000.seg'), 'thirteen digits');
    const store = await openFast(dir);
    await expectBase(store);
    await store.close();
    expect(fs.readFileSync(path.join(dir, 'notes.txt'), 'utf8')).to.equal('mine');
    expect(fs.readFileSync(path.join(dir, '10000.seg'), 'utf8')).to.equal('not a segment name');
  });
});

describe('recovery: damage found after open, with the default options', () => {
  it('damage made before the first read of a key is found by that read', async () => {
    const dir = tempDir();
    const store = await openFast(dir);
    await store.set('a', 'alpha');
    await store.set('b', 'beta');
    await store.sync();
    const file = path.join(dir, SEG1);
    flipByte(file, fs.statSync(file).size - 1);
    const err = await expectCode(store.get('b'), ErrorCodes.CORRUPTION);
    expect(err.details).to.deep.include({ file, offset: H + setRecordBytes('a', 'alpha'), key: 'b' });
    expect(await store.get('a')).to.equal('alpha');
    await store.close();
  });

  it('a record whose checksum matches but whose value is not msgpack rejects LOGKV_CORRUPTION', async () => {
    // Bytes no writer of ours produces, with a valid checksum: the decoder is the last line of
    // defence against returning garbage. (A trailing byte after a complete value counts too.)
    const dir = tempDir();
    const bad = encodeRecord(TYPE_SET, 0, Buffer.from('bad'), Buffer.from([0x01, 0x02]), 0, 1);
    const truncated = encodeRecord(TYPE_SET, 0, Buffer.from('cut'), Buffer.from([0xa5, 0x61]), 0, 2);
    const good = encodeRecord(TYPE_SET, 0, Buffer.from('good'), encodeValue(prepareValue('fine')), 0, 3);
    const file = path.join(dir, SEG1);
    fs.writeFileSync(file, Buffer.concat([encodeSegmentHeader(0x10000), bad, truncated, good]));
    const store = await openAfterCrash(dir);
    expect(store.recovery.truncated).to.equal(undefined);
    expect(await store.has('bad')).to.equal(true);
    const err = await expectCode(store.get('bad'), ErrorCodes.CORRUPTION);
    expect(err.details).to.deep.include({ file, offset: H, key: 'bad' });
    const err2 = await expectCode(store.get('cut'), ErrorCodes.CORRUPTION);
    expect(err2.details).to.deep.include({ file, offset: H + bad.length, key: 'cut' });
    expect(await store.get('good')).to.equal('fine');
    await store.close();
  });
});

describe('recovery: damage found after open', () => {
  let dir: string;
  let file: string;
  let store: Store<unknown>;
  const b = { name: 'bee', list: [1, 2, 3] };
  const bStart = H + setRecordBytes('a', 'alpha');
  const bLength = setRecordBytes('b', b);

  beforeEach(async () => {
    dir = tempDir();
    file = path.join(dir, SEG1);
    // Without the block cache, so every get() reads the file again and sees each flip; with it,
    // a block read before the damage keeps serving the (CRC-checked) bytes it read then.
    store = await openAfterCrash(dir, { cacheBytes: 0 });
    await store.set('a', 'alpha');
    await store.set('b', b);
    await store.set('c', 'gamma');
    await store.sync();
  });
  afterEach(async () => {
    await store.close();
  });

  it('a flipped byte in any byte of a record: get() of that key rejects LOGKV_CORRUPTION, others read fine', async () => {
    for (let i = 0; i < bLength; i++) {
      flipByte(file, bStart + i);
      const err = await expectCode(store.get('b'), ErrorCodes.CORRUPTION);
      expect(err.details, `byte ${i}`).to.deep.equal({ file, offset: bStart, key: 'b' });
      expect(await store.get('a')).to.equal('alpha');
      expect(await store.get('c')).to.equal('gamma');
      flipByte(file, bStart + i);
      expect(await store.get('b')).to.deep.equal(b);
    }
  });

  it('entries() rejects LOGKV_CORRUPTION when it reaches the damaged record', async () => {
    flipByte(file, bStart + bLength - 1);
    const iterator = store.entries();
    expect((await iterator.next()).value).to.deep.equal(['a', 'alpha']);
    const err = await expectCode(iterator.next(), ErrorCodes.CORRUPTION);
    expect(err.details).to.deep.include({ file, offset: bStart });
    // keys() and has() do not read values.
    const keys: string[] = [];
    for await (const key of store.keys()) keys.push(key);
    expect(keys).to.deep.equal(['a', 'b', 'c']);
    expect(await store.has('b')).to.equal(true);
  });

  it('a record cut short under the store: get() rejects LOGKV_CORRUPTION', async () => {
    const cStart = bStart + bLength;
    fs.truncateSync(file, cStart + 5);
    const err = await expectCode(store.get('c'), ErrorCodes.CORRUPTION);
    expect(err.details).to.deep.include({ file, offset: cStart, key: 'c' });
    expect(await store.get('b')).to.deep.equal(b);
  });

  it('a record whose bytes were replaced by another key\'s record is caught by the key check', async () => {
    // Same length, valid checksum, wrong key: "a" -> "z" with its CRC recomputed.
    const bytes = fs.readFileSync(file);
    const aRecord = Buffer.from(bytes.subarray(H, H + setRecordBytes('a', 'alpha')));
    aRecord.write('z', RECORD_HEADER_BYTES);
    aRecord.writeUInt32LE(crc32(aRecord.subarray(4)), 0);
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, aRecord, 0, aRecord.length, H);
    fs.closeSync(fd);
    const err = await expectCode(store.get('a'), ErrorCodes.CORRUPTION);
    expect(err.details).to.deep.include({ file, offset: H, key: 'a' });
  });
});
