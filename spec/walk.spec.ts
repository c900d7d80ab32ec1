/**
 * The segment walker (lib/walk.ts): records in order, each checked; batches visited whole or not
 * at all; the same records whatever the slice budget; 'stop' at the first bad record or 'report'
 * it and resume at the next good one; the record layout chosen by the file header's version
 * (version 1's records read as version 0); zero padding ends a version-2 segment's records.
 */
import { expect } from 'chai';
import { ErrorCodes, LogkvError } from '../lib';
import { crc32 } from '../lib/crc';
import { FLAG_BATCH_CONT, TYPE_DELETE, TYPE_SET, encodeRecord, encodeSegmentHeader } from '../lib/format';
import { MemoryMedium } from '../lib/medium/memory';
import type { MediumFile } from '../lib/medium/types';
import { Damage, SegmentWalker, WalkOptions, WalkOutcome } from '../lib/walk';
import { prng, randomBytes } from './helpers';
import { encodeRecordV1, encodeSegmentHeaderV1 } from './v1';

const ID = 0x10000;
const FILE = '/db/000000010000.seg';

/** One record to build: a SET (with a value) or a DELETE, alone or continuing a batch. */
interface Rec {
  key: string;
  value?: Buffer;
  cont?: boolean;
  expiresAt?: number;
}

/** Records of version 2 get versions 1, 2, 3... in the order they are encoded within a segment. */
function encode(rec: Rec, version = 0, formatVersion = 2): Buffer {
  const type = rec.value === undefined ? TYPE_DELETE : TYPE_SET;
  const flags = rec.cont === true ? FLAG_BATCH_CONT : 0;
  return formatVersion === 1 ? encodeRecordV1(type, flags, rec.key, rec.value, rec.expiresAt ?? 0)
    : encodeRecord(type, flags, rec.key, rec.value, rec.expiresAt ?? 0, version);
}

/** A segment's bytes: its header, then the records; and each record's offset. */
function segment(recs: Rec[], formatVersion = 2): { bytes: Buffer; offsets: number[] } {
  const parts = [formatVersion === 1 ? encodeSegmentHeaderV1(ID) : encodeSegmentHeader(ID)];
  const offsets: number[] = [];
  let at = parts[0].length;
  for (const rec of recs) {
    const bytes = encode(rec, offsets.length + 1, formatVersion);
    offsets.push(at);
    parts.push(bytes);
    at += bytes.length;
  }
  return { bytes: Buffer.concat(parts), offsets };
}

async function fileOf(bytes: Buffer): Promise<MediumFile> {
  const medium = new MemoryMedium();
  await medium.mkdirp('/db');
  const file = await medium.open(FILE, { create: true });
  await file.write([bytes], 0);
  return file;
}

interface Walked {
  visits: Array<{ offset: number; key: string; type: number; expiresAt: number; length: number; version: number }>;
  outcome: WalkOutcome;
  damages: Damage[];
}

/** Walks `bytes` as a segment, `budgetBytes` at a time, collecting every visit. */
async function walk(bytes: Buffer, options: WalkOptions = {}, budgetBytes = Infinity): Promise<Walked> {
  const file = await fileOf(bytes);
  const damages: Damage[] = [];
  const walker = SegmentWalker.forSegment(file, FILE, ID, bytes.length, { ...options, onDamage: (d) => damages.push(d) });
  const visits: Walked['visits'] = [];
  let slices = 0;
  while (!walker.walk((offset, header, buf, pos) => {
    visits.push({
      offset, type: header.type, expiresAt: header.expiresAt, length: header.totalLength, version: header.version,
      key: buf.toString('utf8', pos + header.headerLength, pos + header.headerLength + header.keyLength),
    });
  }, budgetBytes)) {
    slices++;
    expect(slices, 'a walk that never ends').to.be.lessThan(bytes.length + 2);
  }
  return { visits, outcome: walker.outcome!, damages };
}

const value = (n: number): Buffer => Buffer.from([0xa1, 0x61 + (n % 26)]); // msgpack "a".."z"

const MIXED: Rec[] = [
  { key: 'a', value: value(0) },
  { key: 'b', value: value(1), expiresAt: 1_700_000_000_000 },
  { key: 'b1', value: value(2), cont: true },
  { key: 'b2', cont: true },
  { key: 'b3', value: value(3) },
  { key: 'c' },
  { key: 'd', value: randomBytes(prng(1), 3000) },
  { key: 'e', value: value(4) },
];

describe('segment walker', () => {
  describe('a whole segment', () => {
    for (const budget of [1, 7, 20, 100, 1000, Infinity]) {
      it(`visits every record in order, with its fields, in slices of ${budget} bytes`, async () => {
        const { bytes, offsets } = segment(MIXED);
        const { visits, outcome, damages } = await walk(bytes, {}, budget);
        expect(visits.map((v) => v.key)).to.deep.equal(MIXED.map((r) => r.key));
        expect(visits.map((v) => v.offset)).to.deep.equal(offsets);
        expect(visits.map((v) => v.type)).to.deep.equal(MIXED.map((r) => (r.value === undefined ? TYPE_DELETE : TYPE_SET)));
        expect(visits[1].expiresAt).to.equal(1_700_000_000_000);
        expect(visits.map((v) => v.version)).to.deep.equal(MIXED.map((_, i) => i + 1));
        expect(visits[6].length).to.equal(encode(MIXED[6]).length);
        expect(outcome).to.deep.equal({ cleanEnd: bytes.length, damage: undefined, unfinishedBatch: undefined, records: MIXED.length });
        expect(damages).to.deep.equal([]);
      });
    }

    it('an empty segment (a header only) visits nothing and is whole', async () => {
      const { bytes } = segment([]);
      const { visits, outcome } = await walk(bytes);
      expect(visits).to.deep.equal([]);
      expect(outcome.cleanEnd).to.equal(28);
    });

    it('a version-1 segment: records with the 20-byte header, each read as version 0', async () => {
      const { bytes, offsets } = segment(MIXED, 1);
      expect(offsets[0]).to.equal(20);
      for (const budget of [7, Infinity]) {
        const { visits, outcome } = await walk(bytes, {}, budget);
        expect(visits.map((v) => v.key)).to.deep.equal(MIXED.map((r) => r.key));
        expect(visits.map((v) => v.offset)).to.deep.equal(offsets);
        expect(visits.map((v) => v.version)).to.deep.equal(MIXED.map(() => 0));
        expect(visits[1].expiresAt).to.equal(1_700_000_000_000);
        expect(outcome).to.deep.equal({ cleanEnd: bytes.length, damage: undefined, unfinishedBatch: undefined, records: MIXED.length });
      }
    });

    it('a batch larger than the 1 MiB read chunk is visited whole, from the walker\'s buffer', async () => {
      const recs: Rec[] = [{ key: 'before', value: value(1) }];
      for (let i = 0; i < 40; i++) recs.push({ key: `batch-${i}`, value: randomBytes(prng(i), 60_000), cont: i < 39 });
      recs.push({ key: 'after', value: value(2) });
      const { bytes } = segment(recs);
      expect(bytes.length).to.be.greaterThan(2 * 1024 * 1024);
      for (const budget of [Infinity, 100_000]) {
        const { visits, outcome } = await walk(bytes, {}, budget);
        expect(visits.map((v) => v.key), `budget ${budget}`).to.deep.equal(recs.map((r) => r.key));
        expect(outcome.cleanEnd).to.equal(bytes.length);
      }
    });

    it('reads the record layout the file header names: a version it has no layout for is LOGKV_CORRUPTION', async () => {
      const { bytes } = segment(MIXED);
      bytes.writeUInt16LE(9, 4);
      bytes.writeUInt32LE(crc32(bytes.subarray(0, 16)), 16);
      const file = await fileOf(bytes);
      let caught: unknown;
      try {
        SegmentWalker.forSegment(file, FILE, ID, bytes.length);
      } catch (err) {
        caught = err;
      }
      expect(caught).to.be.instanceOf(LogkvError);
      expect((caught as LogkvError).code).to.equal(ErrorCodes.CORRUPTION);
      expect((caught as LogkvError).details).to.deep.include({ file: FILE, offset: 4, version: 9 });
    });
  });

  describe("damage, with 'stop'", () => {
    it('the last record cut at every length: the walk stops there and everything before it was visited', async () => {
      const { bytes, offsets } = segment(MIXED);
      const last = offsets[offsets.length - 1];
      for (let cut = last + 1; cut < bytes.length; cut++) {
        const { visits, outcome, damages } = await walk(bytes.subarray(0, cut));
        const where = `cut at ${cut}`;
        expect(visits.map((v) => v.key), where).to.deep.equal(MIXED.slice(0, -1).map((r) => r.key));
        expect(outcome.cleanEnd, where).to.equal(last);
        expect(outcome.damage, where).to.deep.equal({ offset: last, reason: cut - last < 28 ? 'truncated header' : 'truncated record' });
        expect(damages, where).to.have.length(1);
      }
    });

    it('a batch cut at every length: none of it is visited, and the whole part ends where the batch begins', async () => {
      const { bytes, offsets } = segment(MIXED.slice(0, 5));
      const batchStart = offsets[2];
      for (let cut = batchStart + 1; cut < bytes.length; cut++) {
        const { visits, outcome } = await walk(bytes.subarray(0, cut));
        const where = `cut at ${cut}`;
        expect(visits.map((v) => v.key), where).to.deep.equal(['a', 'b']);
        expect(outcome.cleanEnd, where).to.equal(batchStart);
        // Open once its first record was read whole; before that, only a bad record is seen.
        expect(outcome.unfinishedBatch, where).to.equal(cut >= offsets[3] ? batchStart : undefined);
      }
      // Cut at a record boundary inside the batch: no bad record, only an unfinished batch.
      const { outcome } = await walk(bytes.subarray(0, offsets[4]));
      expect(outcome).to.deep.equal({ cleanEnd: batchStart, damage: undefined, unfinishedBatch: batchStart, records: 2 });
    });

    const flips: Array<{ name: string; byte: number; reason: Damage['reason'] }> = [
      { name: 'the CRC', byte: 0, reason: 'checksum mismatch' },
      { name: 'the type', byte: 4, reason: 'implausible header' },
      { name: 'the flags', byte: 5, reason: 'implausible header' },
      { name: 'the version', byte: 20, reason: 'checksum mismatch' },
      { name: 'the version\'s high byte (past 2^53 - 1)', byte: 27, reason: 'implausible header' },
      { name: 'the key', byte: 28, reason: 'checksum mismatch' },
    ];
    for (const flip of flips) {
      it(`a flipped byte in ${flip.name} of a middle record: stops there, as '${flip.reason}'`, async () => {
        const { bytes, offsets } = segment(MIXED);
        bytes[offsets[5] + flip.byte] ^= 0xff;
        const { visits, outcome } = await walk(bytes);
        expect(visits.map((v) => v.key)).to.deep.equal(['a', 'b', 'b1', 'b2', 'b3']);
        expect(outcome.damage).to.deep.equal({ offset: offsets[5], reason: flip.reason });
        expect(outcome.cleanEnd).to.equal(offsets[5]);
      });
    }

    it('damage inside a batch: the batch is not visited, the whole part ends at its start', async () => {
      const { bytes, offsets } = segment(MIXED);
      bytes[offsets[3] + 28] ^= 0x01;
      const { visits, outcome } = await walk(bytes);
      expect(visits.map((v) => v.key)).to.deep.equal(['a', 'b']);
      expect(outcome.damage).to.deep.equal({ offset: offsets[3], reason: 'checksum mismatch' });
      expect(outcome.cleanEnd).to.equal(offsets[2]);
      expect(outcome.unfinishedBatch).to.equal(offsets[2]);
    });
  });

  describe("damage, with 'report'", () => {
    it('resumes at the next good record and visits the rest; the whole part still ends at the first damage', async () => {
      const { bytes, offsets } = segment(MIXED);
      bytes[offsets[0] + 30] ^= 0x01; // the value of 'a'
      bytes[offsets[5] + 4] = 9; // the type of 'c'
      const { visits, outcome, damages } = await walk(bytes, { policy: 'report' });
      expect(visits.map((v) => v.key)).to.deep.equal(['b', 'b1', 'b2', 'b3', 'd', 'e']);
      expect(damages).to.deep.equal([
        { offset: offsets[0], reason: 'checksum mismatch', next: offsets[1] },
        { offset: offsets[5], reason: 'implausible header', next: offsets[6] },
      ]);
      expect(outcome.cleanEnd).to.equal(offsets[0]);
      expect(outcome.records).to.equal(6);
    });

    it('a batch broken by damage is not visited; records after it are', async () => {
      const { bytes, offsets } = segment(MIXED);
      bytes[offsets[4] + 28] ^= 0x01; // the batch's last record
      const { visits, damages, outcome } = await walk(bytes, { policy: 'report' });
      expect(visits.map((v) => v.key)).to.deep.equal(['a', 'b', 'c', 'd', 'e']);
      expect(damages).to.deep.equal([{ offset: offsets[4], reason: 'checksum mismatch', next: offsets[5] }]);
      expect(outcome.cleanEnd).to.equal(offsets[2]);
      expect(outcome.unfinishedBatch).to.equal(undefined);
    });

    it('zero padding after a damage is no second damage', async () => {
      const { bytes, offsets } = segment(MIXED);
      bytes[offsets[6] + 28] ^= 0x01; // the key of 'd'
      const { damages, outcome } = await walk(Buffer.concat([bytes, Buffer.alloc(100)]), { policy: 'report' });
      expect(damages).to.deep.equal([{ offset: offsets[6], reason: 'checksum mismatch', next: offsets[7] }]);
      expect(outcome.cleanEnd).to.equal(offsets[6]);
      expect(outcome.paddingFrom).to.equal(bytes.length);
    });

    it('garbage to the end: reported once, with nothing to resume at', async () => {
      const { bytes } = segment(MIXED);
      const garbage = randomBytes(prng(3), 500);
      const { visits, damages, outcome } = await walk(Buffer.concat([bytes, garbage]), { policy: 'report' });
      expect(visits).to.have.length(MIXED.length);
      expect(damages.map((d) => [d.offset, d.next])).to.deep.equal([[bytes.length, undefined]]);
      expect(outcome.cleanEnd).to.equal(bytes.length);
    });
  });

  describe('zero padding', () => {
    for (const zeros of [1, 27, 28, 29, 4096, 2 * 1024 * 1024]) {
      it(`${zeros} zero bytes after the last record end the records there, with no damage`, async () => {
        const { bytes } = segment(MIXED);
        const padded = Buffer.concat([bytes, Buffer.alloc(zeros)]);
        for (const policy of ['stop', 'report'] as const) {
          const { visits, outcome, damages } = await walk(padded, { policy }, zeros > 4096 ? Infinity : 50);
          expect(visits.map((v) => v.key)).to.deep.equal(MIXED.map((r) => r.key));
          expect(outcome).to.deep.equal({
            cleanEnd: bytes.length, damage: undefined, unfinishedBatch: undefined, records: MIXED.length, paddingFrom: bytes.length,
          });
          expect(damages).to.deep.equal([]);
        }
      });
    }

    it('a segment of a header and zeros holds no record', async () => {
      const { bytes } = segment([]);
      const { visits, outcome } = await walk(Buffer.concat([bytes, Buffer.alloc(300)]));
      expect(visits).to.deep.equal([]);
      expect(outcome).to.deep.include({ cleanEnd: 28, paddingFrom: 28, damage: undefined });
    });

    it('zeros followed by a byte that is not zero are damage', async () => {
      const { bytes } = segment(MIXED);
      const padded = Buffer.concat([bytes, Buffer.alloc(100), Buffer.from([1])]);
      const { outcome } = await walk(padded);
      expect(outcome).to.deep.include({ cleanEnd: bytes.length, damage: { offset: bytes.length, reason: 'implausible header' } });
      expect(outcome.paddingFrom).to.equal(undefined);
    });

    it('zeros inside a batch leave it unfinished: the whole part ends at its start', async () => {
      const { bytes, offsets } = segment(MIXED.slice(0, 4));
      const { visits, outcome } = await walk(Buffer.concat([bytes, Buffer.alloc(64)]));
      expect(visits.map((v) => v.key)).to.deep.equal(['a', 'b']);
      expect(outcome).to.deep.include({ cleanEnd: offsets[2], unfinishedBatch: offsets[2], paddingFrom: bytes.length, damage: undefined });
    });

    it('a version-1 segment has no padding: zeros after its records are damage', async () => {
      const { bytes } = segment(MIXED, 1);
      const { outcome } = await walk(Buffer.concat([bytes, Buffer.alloc(100)]));
      expect(outcome).to.deep.include({ cleanEnd: bytes.length, damage: { offset: bytes.length, reason: 'implausible header' } });
      expect(outcome.paddingFrom).to.equal(undefined);
    });
  });
});
