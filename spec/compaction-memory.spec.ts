/**
 * Compaction's bookkeeping off the JS heap: the chunked list of record sources (lib/sources.ts)
 * and the hint writer's chunks (lib/hint.ts), each across chunk boundaries, with exact values and
 * exact bytes; and the copy writing a full output's records before it starts the next output,
 * rather than holding every output's last slice in memory to the end.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { crc32 } from '../lib/crc';
import { KIND_SEGMENT, SEGMENT_HEADER_BYTES, checkSegmentHeader, encodeSegmentHeader } from '../lib/format';
import { HintWriter, KIND_HINT, readHint, startOfHints } from '../lib/hint';
import { fileSystem } from '../lib/medium/fs';
import type { MediumFile } from '../lib/medium/types';
import { ChunkedU32, RecordSources } from '../lib/sources';
import { dump, fsWith, openFast, tempDir } from './helpers';

describe('ChunkedU32', () => {
  it('keeps every value across chunk boundaries, chunk by chunk', () => {
    const list = new ChunkedU32(3);
    expect([list.length, list.bytes]).to.deep.equal([0, 0]);
    const values = [0, 1, 0xffffffff, 7, 2 ** 31, 12345, 9];
    for (const v of values) list.push(v);
    expect(list.length).to.equal(7);
    expect(list.bytes).to.equal(3 * 3 * 4); // three chunks of three slots
    expect(values.map((_, i) => list.at(i))).to.deep.equal(values);
  });

  it('refuses values that are not unsigned 32-bit integers, and indexes out of range', () => {
    const list = new ChunkedU32(2);
    for (const bad of [-1, 2 ** 32, 1.5, NaN]) expect(() => list.push(bad)).to.throw(RangeError, 'not an unsigned 32-bit integer');
    expect(list.length).to.equal(0);
    list.push(5);
    for (const bad of [-1, 1, 0.5]) expect(() => list.at(bad)).to.throw(RangeError, 'out of range (length 1)');
    expect(() => new ChunkedU32(0)).to.throw(RangeError, 'chunkLength must be a positive integer, received 0');
  });
});

describe('RecordSources', () => {
  it('gives each record its input segment and offset, one run per input, across chunks', () => {
    const sources = new RecordSources(4);
    const records: Array<[number, number]> = [
      [3, 28], [3, 140], [3, 252], [3, 364], [3, 476], // 5 from segment 3: crosses a chunk
      [5, 28], // 1 from segment 5
      [9, 28], [9, 4000], [9, 0xfffffff0], // 3 from segment 9, one at the top of the u32 range
      [0x10001, 2 ** 33], [0x10001, 64], // an offset above 2^32 (the writer never makes one)
    ];
    for (const [segment, offset] of records) sources.push(segment, offset);
    expect([sources.length, sources.runs, sources.bytes]).to.deep.equal([11, 4, 3 * 4 * 4]);
    expect(records.map((_, i) => [sources.segmentAt(i), sources.offsetAt(i)])).to.deep.equal(records);
  });

  it('starts a new run when an input comes back after another one', () => {
    const sources = new RecordSources(2);
    for (const segment of [1, 1, 2, 1]) sources.push(segment, 28);
    expect(sources.runs).to.equal(3);
    expect([0, 1, 2, 3].map((i) => sources.segmentAt(i))).to.deep.equal([1, 1, 2, 1]);
    expect(() => sources.segmentAt(4)).to.throw(RangeError, 'index 4 out of range (length 4)');
  });
});

/** A version-2 hint file built the simplest way, from docs in lib/hint.ts: the reference. */
function referenceHint(id: number, size: number, floor: number,
                       entries: Array<{ key: Buffer; length: number; expiresAt: number; version: number }>): Buffer {
  const fixed = Buffer.alloc(20);
  fixed.writeUInt32LE(size % 2 ** 32, 0);
  fixed.writeUInt32LE(Math.floor(size / 2 ** 32), 4);
  const maxVersion = Math.max(0, ...entries.map((e) => e.version));
  fixed.writeUInt32LE(maxVersion % 2 ** 32, 8);
  fixed.writeUInt32LE(Math.floor(maxVersion / 2 ** 32), 12);
  fixed.writeUInt32LE(entries.length, 16);
  const parts = [encodeSegmentHeader(id, KIND_HINT, floor), fixed];
  for (const e of entries) {
    const head = Buffer.alloc(14);
    head.writeUInt16LE(e.key.length, 0);
    head.writeUInt32LE(e.length, 2);
    head.writeUInt32LE(e.expiresAt % 2 ** 32, 6);
    head.writeUInt32LE(Math.floor(e.expiresAt / 2 ** 32), 10);
    parts.push(head, e.key);
  }
  const body = Buffer.concat(parts);
  const crc = Buffer.alloc(4);
  crc.writeUInt32LE(crc32(body.subarray(SEGMENT_HEADER_BYTES)), 0);
  return Buffer.concat([body, crc]);
}

describe('HintWriter chunks', () => {
  // First chunk 64 bytes (48 of them the fixed part), later ones up to 128: 24-byte entries (10-byte
  // keys) fill them 0, 5, 5, ... at a time; a 314-byte entry gets a chunk of its own size.
  const small = (i: number): Buffer => Buffer.from(`key-${String(i).padStart(6, '0')}`);
  const entries = [
    ...Array.from({ length: 12 }, (_, i) => ({ key: small(i), length: 100 + i, expiresAt: i === 3 ? 2 ** 40 + 5 : 0, version: i })),
    { key: Buffer.alloc(300, 0x61), length: 1000, expiresAt: 0, version: 2 ** 40 },
    { key: small(99), length: 200, expiresAt: 1_700_000_000_000, version: 1 },
  ];
  const segmentSize = SEGMENT_HEADER_BYTES + entries.reduce((sum, e) => sum + e.length, 0);

  function written(): HintWriter {
    const writer = new HintWriter(64, 128);
    for (const e of entries) {
      // The key sits inside a larger buffer, as it does in a record.
      const record = Buffer.concat([Buffer.alloc(7), e.key, Buffer.alloc(3)]);
      writer.add(record, 7, e.key.length, e.length, e.expiresAt, e.version);
    }
    return writer;
  }

  it('starts a chunk when an entry does not fit, never copies one, and writes the bytes of one buffer', () => {
    const writer = written();
    // chunk 0: none; 1, 2: five each; 3: two; 4: the 314-byte entry; 5: the last.
    expect([writer.count, writer.chunks]).to.deep.equal([14, 6]);
    const parts = writer.finish(0x20001, segmentSize, 77);
    expect(parts.map((p) => p.length)).to.deep.equal([48, 120, 120, 48, 314, 24, 4]);
    expect(Buffer.concat(parts)).to.deep.equal(referenceHint(0x20001, segmentSize, 77, entries));
  });

  it('walks every entry back across the chunks, in slices, with each record offset', () => {
    const writer = written();
    const seen: Array<[string, number, number, number]> = [];
    const cursor = startOfHints();
    let slices = 0;
    let more = true;
    while (more) {
      more = writer.walk(cursor, 4, (buf, start, length, entry) => {
        seen.push([buf.toString('latin1', start, start + length), entry.offset, entry.length, entry.expiresAt]);
        expect(entry.segmentId).to.equal(0x20001);
      }, 0x20001);
      slices++;
    }
    expect(slices).to.equal(4);
    let offset = SEGMENT_HEADER_BYTES;
    const expected = entries.map((e) => {
      const row: [string, number, number, number] = [e.key.toString('latin1'), offset, e.length, e.expiresAt];
      offset += e.length;
      return row;
    });
    expect(seen).to.deep.equal(expected);
  });

  it('writes a file that readHint accepts, giving back every entry', async () => {
    const dir = tempDir();
    try {
      const file = path.join(dir, 'h.hint');
      fs.writeFileSync(file, Buffer.concat(written().finish(0x20001, segmentSize, 77)));
      const handle = await fileSystem.open(file, { readOnly: true });
      const segmentHeader = checkSegmentHeader(encodeSegmentHeader(0x20001, KIND_SEGMENT, 77), 'x.seg', 0x20001, KIND_SEGMENT);
      const keys: string[] = [];
      const result = readHint(handle, file, 0x20001, segmentSize, segmentHeader, (buf, start, length) => {
        keys.push(buf.toString('latin1', start, start + length));
      });
      await handle.close();
      expect(result).to.equal(2 ** 40);
      expect(keys).to.deep.equal(entries.map((e) => e.key.toString('latin1')));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('with no entry, finishes as one buffer of the fixed part and its CRC', () => {
    const parts = new HintWriter().finish(7, SEGMENT_HEADER_BYTES, 1);
    expect(parts.map((p) => p.length)).to.deep.equal([48, 4]);
    expect(Buffer.concat(parts)).to.deep.equal(referenceHint(7, SEGMENT_HEADER_BYTES, 1, []));
  });
});

describe('readHint refuses a hint whose checksum holds but whose contents do not fit its segment', () => {
  // A hint with a good CRC can still be wrong (written by a bug, or for another segment): each
  // check must refuse it before anything is visited, so that open scans the segment instead.
  // The reason strings are readHint's return values: they tell which check refused.
  const ID = 0x20001;
  const FLOOR = 77;
  const key = (i: number): Buffer => Buffer.from(`key-${i}`);
  const entries = [0, 1, 2].map((i) => ({ key: key(i), length: 60 + i, expiresAt: 0, version: 100 + i }));
  const segmentSize = SEGMENT_HEADER_BYTES + entries.reduce((sum, e) => sum + e.length, 0);
  const segmentHeader = checkSegmentHeader(encodeSegmentHeader(ID, KIND_SEGMENT, FLOOR), 'x.seg', ID, KIND_SEGMENT);

  /** `hint` with its CRC made right again after `patch` changed its bytes. */
  const patched = (hint: Buffer, patch: (b: Buffer) => void): Buffer => {
    const copy = Buffer.from(hint);
    patch(copy);
    copy.writeUInt32LE(crc32(copy.subarray(SEGMENT_HEADER_BYTES, copy.length - 4)), copy.length - 4);
    return copy;
  };
  /** readHint over `bytes` held in memory (it only sizes and reads its file); [result, entries visited]. */
  const read = (bytes: Buffer, header = segmentHeader, size = segmentSize, readable = bytes.length): [number | string, number] => {
    const file = {
      sizeSync: () => bytes.length,
      readSync: (buf: Uint8Array, offset: number, length: number, position: number) =>
        Buffer.from(bytes.subarray(0, readable)).copy(buf, offset, position, Math.min(readable, position + length)),
    } as unknown as MediumFile;
    let visited = 0;
    const result = readHint(file, 'x.hint', ID, size, header, () => { visited++; });
    return [result, visited];
  };
  const good = referenceHint(ID, segmentSize, FLOOR, entries);
  const FIXED = SEGMENT_HEADER_BYTES + 20;

  it('the unpatched hint is read whole (the cases below differ from it only where they say)', () => {
    expect(read(good)).to.deep.equal([102, 3]);
    expect(read(patched(good, () => undefined))).to.deep.equal([102, 3]);
  });

  it('refuses each kind of misfit, visiting nothing', () => {
    const cases: Array<[string, [number | string, number]]> = [
      ['truncated', read(good, segmentHeader, segmentSize, good.length - 1)],
      ['a version 2 hint for a version 1 segment', read(good, { ...segmentHeader, version: 1 })],
      ['version floor 78, the segment says 77', read(referenceHint(ID, segmentSize, 78, entries))],
      [`describes a segment of ${segmentSize} bytes, found ${segmentSize + 1}`, read(good, segmentHeader, segmentSize + 1)],
      // The highest version at 2^53 (its high word at 36 + 4).
      ['implausible highest version', read(patched(good, (b) => b.writeUInt32LE(0x200000, SEGMENT_HEADER_BYTES + 12)))],
      // One entry more than the file holds, one fewer.
      ['entries overrun the file', read(patched(good, (b) => b.writeUInt32LE(4, FIXED - 4)))],
      ['trailing bytes', read(patched(good, (b) => b.writeUInt32LE(2, FIXED - 4)))],
      // The first entry's key length 0; its record length below a header and its key; its expiry's
      // high word past 2^53.
      ['entries overrun the file', read(patched(good, (b) => b.writeUInt16LE(0, FIXED)))],
      ['implausible record length', read(patched(good, (b) => b.writeUInt32LE(28 + 4, FIXED + 2)))],
      ['implausible expiry', read(patched(good, (b) => b.writeUInt32LE(0x200000, FIXED + 10)))],
      // Record lengths that sum to a size other than the one the hint (rightly) describes.
      ['record lengths do not add up to the segment size', read(patched(good, (b) => b.writeUInt32LE(61, FIXED + 2)))],
    ];
    for (const [reason, outcome] of cases) expect(outcome, reason).to.deep.equal([reason, 0]);
  });
});

describe('compaction copy: a full output is written out before the next one starts', () => {
  it('writes each output\'s records before it writes anything of the next output', async () => {
    const writes: Array<{ file: string; position: number }> = [];
    const medium = fsWith({
      write(file, _chunks, position, write) {
        if (file.endsWith('.seg.tmp')) writes.push({ file: path.basename(file), position });
        return write();
      },
    });
    const dir = tempDir('compact-flush');
    const store = await openFast(dir, { maxSegmentBytes: 4096, autoCompact: false, medium });
    const model: Array<[string, unknown]> = [];
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 60; i++) await store.set(`key-${String(i).padStart(3, '0')}`, `round ${round} ${'x'.repeat(100)}`);
    }
    for (let i = 0; i < 60; i++) model.push([`key-${String(i).padStart(3, '0')}`, `round 1 ${'x'.repeat(100)}`]);
    const result = await store.compact();
    expect(result.recordsKept).to.equal(60);
    const outputs = [...new Set(writes.map((w) => w.file))];
    expect(outputs.length).to.be.greaterThan(2); // ~9.5 KB of records in 4 KB outputs
    for (let k = 0; k + 1 < outputs.length; k++) {
      // Records go at positions past the header; the header is written at 0 when the output
      // starts, and again (with the version floor) once the copy is done.
      const lastRecordWrite = writes.map((w, i) => (w.file === outputs[k] && w.position > 0 ? i : -1)).reduce((a, b) => Math.max(a, b));
      const nextStarts = writes.findIndex((w) => w.file === outputs[k + 1]);
      expect(lastRecordWrite, `${outputs[k]} before ${outputs[k + 1]}`).to.be.lessThan(nextStarts);
    }
    expect(await dump(store)).to.deep.equal(model);
    await store.close();
  });
});
