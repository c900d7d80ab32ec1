/**
 * `logkv check` and open() agree on every kind of damage (issue 9, item 7): each case builds a
 * store's segment files, runs checkStore() and then open() on them, and asserts both the outcome
 * open() has (opens as is, repairs a torn tail or an interrupted creation, or refuses with
 * LOGKV_CORRUPTION) and that check classes the damage the same way: no problem, a notice at the
 * place open() repairs, or corruption at the place open() names.
 *
 * Hint files and the keydir snapshot are left out: open() would trust them and not read the
 * segment, as after a crash they may be missing. (Damage open() does not read is found by reads,
 * and by check: spec/recovery.spec.ts.)
 */
import { expect } from 'chai';
import * as path from 'path';
import { ErrorCodes, LogkvError, open } from '../lib';
import { checkStore } from '../lib/check';
import { FLAG_BATCH_CONT, TYPE_SET, encodeRecord, encodeSegmentHeader } from '../lib/format';
import { fileSystem } from '../lib/medium/fs';
import { MemoryMedium } from '../lib/medium/memory';
import type { Medium } from '../lib/medium/types';
import { cutName, segmentName } from '../lib/segment';
import { expectCode, openFast, tempDir } from './helpers';
import { encodeRecordV1, encodeSegmentHeaderV1 } from './v1';

const DIR = '/db';
const W1 = 0x10000;
const W2 = 0x20000;
const W3 = 0x30000;
/** A compaction output: an id between two write segments. */
const C1 = 0x20001;

/** The path of segment `id`. */
const at = (id: number): string => `${DIR}/${segmentName(id)}`;

/** A SET of `key` to a short string value; `cont` marks a batch record that is not the batch's last. */
function set(key: string, cont = false): Buffer {
  return encodeRecord(TYPE_SET, cont ? FLAG_BATCH_CONT : 0, key, Buffer.from([0xa3, 0x76, 0x61, 0x6c]), 0, 0); // "val", version 0
}

/** A segment of `keys` (each a SET), its header first. */
function seg(id: number, keys: string[]): Buffer {
  return Buffer.concat([encodeSegmentHeader(id), ...keys.map((k) => set(k))]);
}

/** Offset of the `n`th record of a segment built by seg() from keys of the same length as `key`. */
const recordAt = (n: number, key = 'k0'): number => 28 + n * set(key).length;

/** The same in format version 1 (20-byte headers), which this build reads and never writes. */
function setV1(key: string, cont = false): Buffer {
  return encodeRecordV1(TYPE_SET, cont ? FLAG_BATCH_CONT : 0, key, Buffer.from([0xa3, 0x76, 0x61, 0x6c]), 0);
}
function segV1(id: number, keys: string[]): Buffer {
  return Buffer.concat([encodeSegmentHeaderV1(id), ...keys.map((k) => setV1(k))]);
}
const recordAtV1 = (n: number): number => 20 + n * setV1('k0').length;

function flip(bytes: Buffer, offset: number): Buffer {
  const copy = Buffer.from(bytes);
  copy[offset] ^= 0x40;
  return copy;
}

/** What open() does with the store. */
type Outcome =
  | { open: 'as is' }
  /** Opens as is, the records ending where zero padding starts (`offset`), which check notes. */
  | { open: 'keeps padding'; id: number; offset: number }
  /** `kept`: the cut bytes are kept in a sidecar (they are not all zeros, nor an interrupted creation). */
  | { open: 'repairs'; id: number; offset: number; bytes: number; kept: boolean }
  | { open: 'refuses'; id: number; offset: number };

interface Case {
  name: string;
  /** The segment files: id -> bytes. */
  files: Array<[number, Buffer]>;
  expect: Outcome;
  /** The keys open() serves. */
  keys?: string[];
}

const K = ['k0', 'k1', 'k2', 'k3'];
const L = ['l0', 'l1', 'l2'];
const full = seg(W1, K);

const CASES: Case[] = [
  { name: 'an intact store', files: [[W1, full], [W2, seg(W2, L)]], expect: { open: 'as is' }, keys: [...K, ...L] },
  // A newest write segment whose creation was interrupted.
  { name: 'newest write segment empty', files: [[W1, full], [W2, Buffer.alloc(0)]], expect: { open: 'as is' }, keys: K },
  { name: 'newest write segment: a torn header, 10 bytes', files: [[W1, full], [W2, encodeSegmentHeader(W2).subarray(0, 10)]],
    expect: { open: 'repairs', id: W2, offset: 0, bytes: 10, kept: false }, keys: K },
  { name: 'newest write segment: 28 bytes, a torn header (CRC fails, non-zero)', files: [[W1, full], [W2, flip(encodeSegmentHeader(W2), 9)]],
    expect: { open: 'repairs', id: W2, offset: 0, bytes: 28, kept: false }, keys: K },
  { name: 'newest write segment: 28 zero bytes', files: [[W1, full], [W2, Buffer.alloc(28)]],
    expect: { open: 'repairs', id: W2, offset: 0, bytes: 28, kept: false }, keys: K },
  { name: 'newest write segment: 4096 zero bytes', files: [[W1, full], [W2, Buffer.alloc(4096)]],
    expect: { open: 'repairs', id: W2, offset: 0, bytes: 4096, kept: false }, keys: K },
  { name: 'newest write segment: a zero header followed by data', files: [[W1, full], [W2, Buffer.concat([Buffer.alloc(28), set('x')])]],
    expect: { open: 'refuses', id: W2, offset: 0 } },
  { name: 'newest write segment: a bad header CRC, with records after it', files: [[W1, full], [W2, flip(seg(W2, L), 9)]],
    expect: { open: 'refuses', id: W2, offset: 0 } },
  // Zero padding (preallocated space) ends a version-2 segment's records, wherever the segment is.
  { name: 'newest write segment: trailing zeros', files: [[W1, Buffer.concat([full, Buffer.alloc(100)])]],
    expect: { open: 'keeps padding', id: W1, offset: full.length }, keys: K },
  { name: 'newest write segment: fewer trailing zeros than a record header', files: [[W1, Buffer.concat([full, Buffer.alloc(5)])]],
    expect: { open: 'keeps padding', id: W1, offset: full.length }, keys: K },
  { name: 'newest write segment: only a header and zeros', files: [[W1, Buffer.concat([encodeSegmentHeader(W1), Buffer.alloc(4096)])]],
    expect: { open: 'keeps padding', id: W1, offset: 28 }, keys: [] },
  { name: 'newest write segment: trailing zeros, then data', files: [[W1, Buffer.concat([full, Buffer.alloc(64), set('x')])]],
    expect: { open: 'repairs', id: W1, offset: full.length, bytes: 64 + set('x').length, kept: true }, keys: K },
  { name: 'newest write segment: an unfinished batch, then zeros', files: [[W1, Buffer.concat([full, set('b0', true), Buffer.alloc(64)])]],
    expect: { open: 'repairs', id: W1, offset: full.length, bytes: set('b0').length + 64, kept: true }, keys: K },
  { name: 'sealed write segment: trailing zeros', files: [[W1, Buffer.concat([full, Buffer.alloc(64)])], [W2, seg(W2, L)]],
    expect: { open: 'keeps padding', id: W1, offset: full.length }, keys: [...K, ...L] },
  { name: 'sealed write segment: trailing zeros, then data', files: [[W1, Buffer.concat([full, Buffer.alloc(64), set('x')])], [W2, seg(W2, L)]],
    expect: { open: 'refuses', id: W1, offset: full.length } },
  { name: 'sealed write segment: an unfinished batch, then zeros', files: [[W1, Buffer.concat([full, set('b0', true), Buffer.alloc(64)])], [W2, seg(W2, L)]],
    expect: { open: 'refuses', id: W1, offset: full.length } },
  { name: 'newest segment a compaction output: trailing zeros', files: [[W1, full], [C1, Buffer.concat([seg(C1, L), Buffer.alloc(30)])]],
    expect: { open: 'keeps padding', id: C1, offset: seg(C1, L).length }, keys: [...K, ...L] },
  // A torn tail of the newest write segment, and damage in it that looks the same.
  { name: 'newest write segment: a bad record mid-file', files: [[W1, flip(full, recordAt(1) + 21)]],
    expect: { open: 'repairs', id: W1, offset: recordAt(1), bytes: full.length - recordAt(1), kept: true }, keys: ['k0'] },
  { name: 'newest write segment: an unfinished batch', files: [[W1, Buffer.concat([full, set('b0', true), set('b1', true)])]],
    expect: { open: 'repairs', id: W1, offset: full.length, bytes: 2 * set('b0').length, kept: true }, keys: K },
  { name: 'newest write segment: a batch whose last record is damaged',
    files: [[W1, flip(Buffer.concat([full, set('b0', true), set('b1')]), full.length + set('b0').length + 21)]],
    expect: { open: 'repairs', id: W1, offset: full.length, bytes: 2 * set('b0').length, kept: true }, keys: K },
  // A sealed write segment: damage there is corruption.
  { name: 'sealed write segment: a bad record mid-file', files: [[W1, flip(full, recordAt(1) + 21)], [W2, seg(W2, L)]],
    expect: { open: 'refuses', id: W1, offset: recordAt(1) } },
  { name: 'sealed write segment: a torn last record', files: [[W1, full.subarray(0, full.length - 3)], [W2, seg(W2, L)]],
    expect: { open: 'refuses', id: W1, offset: recordAt(3) } },
  { name: 'sealed write segment: an unfinished batch', files: [[W1, Buffer.concat([full, set('b0', true)])], [W2, seg(W2, L)]],
    expect: { open: 'refuses', id: W1, offset: full.length } },
  { name: 'sealed write segment: empty', files: [[W1, Buffer.alloc(0)], [W2, seg(W2, L)]],
    expect: { open: 'refuses', id: W1, offset: 0 } },
  { name: 'sealed write segment: a torn header', files: [[W1, encodeSegmentHeader(W1).subarray(0, 10)], [W2, seg(W2, L)]],
    expect: { open: 'refuses', id: W1, offset: 0 } },
  // A compaction output: synced before it was renamed into place, so never torn, even when it
  // is the newest segment (no write came after the compaction). Issue 9, item 4.
  { name: 'newest segment a compaction output: a bad record mid-file', files: [[W1, full], [C1, flip(seg(C1, L), recordAt(1) + 21)]],
    expect: { open: 'refuses', id: C1, offset: recordAt(1) } },
  { name: 'newest segment a compaction output: a torn last record', files: [[W1, full], [C1, seg(C1, L).subarray(0, recordAt(2) + 5)]],
    expect: { open: 'refuses', id: C1, offset: recordAt(2) } },
  { name: 'newest segment a compaction output: a torn header', files: [[W1, full], [C1, encodeSegmentHeader(C1).subarray(0, 10)]],
    expect: { open: 'refuses', id: C1, offset: 0 } },
  { name: 'newest segment a compaction output: all zeros', files: [[W1, full], [C1, Buffer.alloc(4096)]],
    expect: { open: 'refuses', id: C1, offset: 0 } },
  { name: 'newest segment a compaction output: empty', files: [[W1, full], [C1, Buffer.alloc(0)]],
    expect: { open: 'refuses', id: C1, offset: 0 } },
  { name: 'a compaction output with a bad record, before a write segment', files: [[C1, flip(seg(C1, L), recordAt(1) + 21)], [W3, seg(W3, K)]],
    expect: { open: 'refuses', id: C1, offset: recordAt(1) } },
  { name: 'an intact compaction output, then a torn write segment', files: [[C1, seg(C1, L)], [W3, seg(W3, K).subarray(0, recordAt(3) + 7)]],
    expect: { open: 'repairs', id: W3, offset: recordAt(3), bytes: 7, kept: true }, keys: [...L, ...K.slice(0, 3)] },
  // Version 1 segments (read, never written): the same rules, except that zeros are damage there.
  { name: 'version 1: an intact store', files: [[W1, segV1(W1, K)], [W2, segV1(W2, L)]], expect: { open: 'as is' }, keys: [...K, ...L] },
  { name: 'version 1, then version 2', files: [[W1, segV1(W1, K)], [W2, seg(W2, L)]], expect: { open: 'as is' }, keys: [...K, ...L] },
  { name: 'version 1: newest write segment, trailing zeros', files: [[W1, Buffer.concat([segV1(W1, K), Buffer.alloc(100)])]],
    expect: { open: 'repairs', id: W1, offset: segV1(W1, K).length, bytes: 100, kept: false }, keys: K },
  { name: 'version 1: sealed write segment, trailing zeros', files: [[W1, Buffer.concat([segV1(W1, K), Buffer.alloc(64)])], [W2, seg(W2, L)]],
    expect: { open: 'refuses', id: W1, offset: segV1(W1, K).length } },
  { name: 'version 1: newest write segment, a bad record mid-file', files: [[W1, flip(segV1(W1, K), recordAtV1(1) + 21)]],
    expect: { open: 'repairs', id: W1, offset: recordAtV1(1), bytes: segV1(W1, K).length - recordAtV1(1), kept: true }, keys: ['k0'] },
  { name: 'version 1: newest write segment, 20 bytes, a torn header', files: [[W1, flip(encodeSegmentHeaderV1(W1), 9)]],
    expect: { open: 'repairs', id: W1, offset: 0, bytes: 20, kept: false }, keys: [] },
  { name: 'version 1: newest write segment, only its header', files: [[W1, segV1(W1, K)], [W2, encodeSegmentHeaderV1(W2)]],
    expect: { open: 'as is' }, keys: K },
  { name: 'a newest write segment whose header names version 3 (a newer build\'s)', files: [[W1, (() => {
    const bytes = seg(W1, K);
    bytes.writeUInt16LE(3, 4);
    return bytes;
  })()]], expect: { open: 'refuses', id: W1, offset: 4 } },
];

/** Every prefix of the newest segment's last record: a torn tail, repaired, whatever the length. */
for (let cut = recordAt(3) + 1; cut < full.length; cut++) {
  CASES.push({ name: `newest write segment: the last record cut to ${cut - recordAt(3)} bytes`, files: [[W1, full.subarray(0, cut)]],
    expect: { open: 'repairs', id: W1, offset: recordAt(3), bytes: cut - recordAt(3), kept: true }, keys: K.slice(0, 3) });
}
/** Every prefix of the newest segment's 28-byte header: an interrupted creation, reset. */
for (let cut = 1; cut < 28; cut++) {
  CASES.push({ name: `newest write segment: its header cut to ${cut} bytes`, files: [[W1, full], [W2, encodeSegmentHeader(W2).subarray(0, cut)]],
    expect: { open: 'repairs', id: W2, offset: 0, bytes: cut, kept: false }, keys: K });
}
/** The same for a version-1 segment's last record. */
const fullV1 = segV1(W1, K);
for (let cut = recordAtV1(3) + 1; cut < fullV1.length; cut++) {
  CASES.push({ name: `version 1: newest write segment, the last record cut to ${cut - recordAtV1(3)} bytes`, files: [[W1, fullV1.subarray(0, cut)]],
    expect: { open: 'repairs', id: W1, offset: recordAtV1(3), bytes: cut - recordAtV1(3), kept: true }, keys: K.slice(0, 3) });
}

async function build(files: Array<[number, Buffer]>): Promise<MemoryMedium> {
  const medium = new MemoryMedium();
  await medium.mkdirp(DIR);
  for (const [id, bytes] of files) {
    const file = await medium.open(at(id), { create: true });
    await file.write([bytes], 0);
    await file.sync();
    await file.close();
  }
  await medium.syncDir(DIR);
  return medium;
}

describe('check and open() agree', () => {
  for (const c of CASES) {
    it(`${c.name}: open() ${c.expect.open}, and check says so`, async () => {
      const medium = await build(c.files);
      const report = await checkStore(DIR, { medium });
      const corruption = report.problems.filter((p) => p.severity === 'corruption');
      const notices = report.problems.filter((p) => p.severity === 'notice');
      let opened;
      let refused: LogkvError | undefined;
      try {
        opened = await open(DIR, { medium, sync: 'never', autoCompact: false });
      } catch (err) {
        refused = err as LogkvError;
      }
      const e = c.expect;
      if (e.open === 'refuses') {
        expect(refused, 'open() refuses').to.be.instanceOf(LogkvError);
        expect(refused!.code).to.equal(ErrorCodes.CORRUPTION);
        expect(refused!.details).to.deep.include({ file: at(e.id), offset: e.offset });
        expect(report.ok, 'check: not ok').to.equal(false);
        expect(corruption.map((p) => [p.file, p.offset])[0], 'check: the first corruption').to.deep.equal([at(e.id), e.offset]);
        return;
      }
      if (refused !== undefined) throw refused;
      const store = opened!;
      try {
        expect(report.ok, 'check: ok').to.equal(true);
        expect(corruption, 'check: no corruption').to.deep.equal([]);
        if (e.open === 'as is') {
          expect(store.recovery.truncated).to.equal(undefined);
          expect(notices, 'check: nothing to say').to.deep.equal([]);
        } else if (e.open === 'keeps padding') {
          expect(store.recovery.truncated).to.equal(undefined);
          expect(notices.map((p) => [p.file, p.offset]), 'check: a notice where the padding starts').to.deep.equal([[at(e.id), e.offset]]);
          expect(notices[0].problem).to.match(/^zero padding/);
        } else {
          const truncated = { file: at(e.id), offset: e.offset, bytes: e.bytes, ...(e.kept ? { sidecar: `${DIR}/${cutName(e.id, e.offset)}` } : {}) };
          expect(store.recovery.truncated).to.deep.equal({ reason: store.recovery.truncated?.reason, ...truncated });
          expect(notices.map((p) => [p.file, p.offset]), 'check: a notice where open() repairs').to.deep.equal([[at(e.id), e.offset]]);
          if (e.kept) expect(notices[0].problem, 'check: names the sidecar').to.include(cutName(e.id, e.offset));
        }
        const keys: string[] = [];
        for await (const key of store.keys()) keys.push(key);
        expect(keys.sort()).to.deep.equal([...(c.keys ?? [])].sort());
      } finally {
        await store.close();
      }
    });
  }
});

describe('check and the lock', () => {
  it('a directory that does not exist: LOGKV_IO, as before it took the lock first', async () => {
    const dir = path.join(tempDir('check-missing'), 'not-there');
    const err = await expectCode(checkStore(dir), ErrorCodes.IO);
    expect(err.details.file).to.equal(dir);
  });

  it('takes the store\'s lock before it lists the directory', async () => {
    const dir = tempDir('check-lock');
    const store = await openFast(dir);
    await store.set('a', 1);
    await store.close();
    // While check lists the directory, an open() must find the store locked.
    let duringList: string | undefined;
    const medium: Medium = {
      isFileSystem: true,
      mkdirp: (d) => fileSystem.mkdirp(d),
      open: (f, o) => fileSystem.open(f, o),
      rename: (a, b) => fileSystem.rename(a, b),
      remove: (f) => fileSystem.remove(f),
      syncDir: (d) => fileSystem.syncDir(d),
      async list(d: string): Promise<string[]> {
        try {
          await (await openFast(dir)).close();
          duringList = 'opened';
        } catch (err) {
          duringList = (err as LogkvError).code;
        }
        return fileSystem.list(d);
      },
    };
    const report = await checkStore(dir, { medium });
    expect(report.ok).to.equal(true);
    expect(duringList).to.equal(ErrorCodes.LOCKED);
  });
});
