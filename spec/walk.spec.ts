/**
 * The segment walker (lib/walk.ts): records in order, each checked; batches visited whole or not
 * at all; the same records whatever the slice budget; 'stop' at the first bad record or 'report'
 * it and resume at the next good one; the record layout chosen by the file header's version.
 */
import { expect } from 'chai';
import { ErrorCodes, LogkvError } from '../lib';
import { crc32 } from '../lib/crc';
import { FLAG_BATCH_CONT, TYPE_DELETE, TYPE_SET, encodeRecord, encodeSegmentHeader } from '../lib/format';
import { MemoryMedium } from '../lib/medium/memory';
import type { MediumFile } from '../lib/medium/types';
import { Damage, SegmentWalker, WalkOptions, WalkOutcome } from '../lib/walk';
import { prng, randomBytes } from './helpers';

const ID = 0x10000;
const FILE = '/db/000000010000.seg';

/** One record to build: a SET (with a value) or a DELETE, alone or continuing a batch. */
interface Rec {
  key: string;
  value?: Buffer;
  cont?: boolean;
  expiresAt?: number;
}

function encode(rec: Rec): Buffer {
  return encodeRecord(rec.value === undefined ? TYPE_DELETE : TYPE_SET, rec.cont === true ? FLAG_BATCH_CONT : 0,
    rec.key, rec.value, rec.expiresAt ?? 0);
}

/** A segment's bytes: its header, then the records; and each record's offset. */
function segment(recs: Rec[]): { bytes: Buffer; offsets: number[] } {
  const parts = [encodeSegmentHeader(ID)];
  const offsets: number[] = [];
  let at = 20;
  for (const rec of recs) {
    const bytes = encode(rec);
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
  visits: Array<{ offset: number; key: string; type: number; expiresAt: number; length: number }>;
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
      offset, type: header.type, expiresAt: header.expiresAt, length: header.totalLength,
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
        expect(visits[6].length).to.equal(encode(MIXED[6]).length);
        expect(outcome).to.deep.equal({ cleanEnd: bytes.length, damage: undefined, unfinishedBatch: undefined, records: MIXED.length });
        expect(damages).to.deep.equal([]);
      });
    }

    it('an empty segment (a header only) visits nothing and is whole', async () => {
      const { bytes } = segment([]);
      const { visits, outcome } = await walk(bytes);
      expect(visits).to.deep.equal([]);
      expect(outcome.cleanEnd).to.equal(20);
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
        expect(outcome.damage, where).to.deep.equal({ offset: last, reason: cut - last < 20 ? 'truncated header' : 'truncated record' });
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
      { name: 'the key', byte: 20, reason: 'checksum mismatch' },
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
      bytes[offsets[3] + 20] ^= 0x01;
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
      bytes[offsets[0] + 22] ^= 0x01; // the value of 'a'
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
      bytes[offsets[4] + 20] ^= 0x01; // the batch's last record
      const { visits, damages, outcome } = await walk(bytes, { policy: 'report' });
      expect(visits.map((v) => v.key)).to.deep.equal(['a', 'b', 'c', 'd', 'e']);
      expect(damages).to.deep.equal([{ offset: offsets[4], reason: 'checksum mismatch', next: offsets[5] }]);
      expect(outcome.cleanEnd).to.equal(offsets[2]);
      expect(outcome.unfinishedBatch).to.equal(undefined);
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
});
