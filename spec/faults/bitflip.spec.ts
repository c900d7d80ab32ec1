/**
 * Flipped bits: the store may refuse to open (LOGKV_CORRUPTION) or refuse to read a damaged
 * record (LOGKV_CORRUPTION), but it never returns a wrong value.
 *
 * One limit is spelled out here rather than hidden: a damaged record in the newest write segment
 * looks exactly like the torn tail a crash leaves, so recovery cuts it and everything after it,
 * and reports the cut in store.recovery.truncated. Those keys read as missing (or as an older
 * value from an earlier segment): docs/durability.md explains why nothing can tell the two apart.
 * The cut bytes are kept in a sidecar file, so the damage destroys nothing.
 */
import { expect } from 'chai';
import { LogkvError, open } from '../../lib';
import type { OpenOptions, Store } from '../../lib';
import { FaultyMedium } from '../../lib/medium/faulty';
import { MemoryMedium } from '../../lib/medium/memory';
import { RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES } from '../../lib/format';

const DIR = '/db';
const SEGMENT_1 = `${DIR}/000000010000.seg`;

interface Built {
  memory: MemoryMedium;
  faulty: FaultyMedium;
  model: Map<string, unknown>;
  options: OpenOptions;
  /** Where each key's newest record is: segment file and offset. */
  newest: Map<string, { file: string; offset: number; length: number }>;
}

/** A store of three segments and a few dozen keys, closed; no keydir snapshot, so open scans. */
async function build(seed: number, options: OpenOptions = {}): Promise<Built> {
  const memory = new MemoryMedium();
  const faulty = new FaultyMedium(memory, { seed });
  const opts: OpenOptions = { medium: faulty, sync: 'never', maxSegmentBytes: 1024, autoCompact: false, cacheBytes: 0, ...options };
  const store = await open(DIR, opts);
  const model = new Map<string, unknown>();
  for (let i = 0; i < 40; i++) {
    const key = `key-${i % 25}`;
    const value = { i, text: 'v'.repeat(10 + (i * 7) % 40) };
    await store.set(key, value);
    model.set(key, value);
  }
  await store.close();
  removeSnapshot(memory);
  return { memory, faulty, model, options: opts, newest: locate(memory) };
}

/** Removes the keydir snapshot a clean close leaves, so open scans every segment. */
function removeSnapshot(memory: MemoryMedium): void {
  for (const file of memory.files()) if (!file.endsWith('.seg')) void memory.remove(file);
}

/** Walks the segments' records (header: crc u32, type u8, flags u8, key length u16, value length u32, expiry u64, version u64). */
function locate(memory: MemoryMedium): Built['newest'] {
  const newest: Built['newest'] = new Map();
  for (const file of memory.files().filter((f) => f.endsWith('.seg'))) {
    const bytes = memory.readFile(file);
    for (let at = SEGMENT_HEADER_BYTES; at < bytes.length;) {
      const keyLength = bytes.readUInt16LE(at + 6);
      const length = RECORD_HEADER_BYTES + keyLength + bytes.readUInt32LE(at + 8);
      newest.set(bytes.toString('utf8', at + RECORD_HEADER_BYTES, at + RECORD_HEADER_BYTES + keyLength), { file, offset: at, length });
      at += length;
    }
  }
  return newest;
}

/** Every key's read: its value, undefined, or the error code. */
async function readEach(store: Store<unknown>, keys: Iterable<string>): Promise<Map<string, unknown>> {
  const out = new Map<string, unknown>();
  for (const key of keys) {
    try {
      out.set(key, await store.get(key));
    } catch (err) {
      out.set(key, { code: (err as LogkvError).code });
    }
  }
  return out;
}

describe('flipped bits', () => {
  it('in a record of a sealed segment: open fails with LOGKV_CORRUPTION naming the file and offset', async () => {
    const b = await build(1);
    // The first record of the oldest segment (overwritten since: open scans it all the same).
    await b.faulty.flipBit(SEGMENT_1, SEGMENT_HEADER_BYTES + 25, 3);
    let caught: unknown;
    await open(DIR, b.options).then((s) => s.close(), (err) => { caught = err; });
    expect(caught).to.be.instanceOf(LogkvError);
    expect((caught as LogkvError).code).to.equal('LOGKV_CORRUPTION');
    expect((caught as LogkvError).details.file).to.equal(SEGMENT_1);
    expect((caught as LogkvError).details.offset).to.equal(SEGMENT_HEADER_BYTES);
  });

  it("in a sealed segment's header: open fails with LOGKV_CORRUPTION", async () => {
    for (let offset = 0; offset < SEGMENT_HEADER_BYTES; offset++) {
      const b = await build(2);
      await b.faulty.flipBit(SEGMENT_1, offset, offset % 8);
      let code: string | undefined;
      await open(DIR, b.options).then((s) => s.close(), (err) => { code = err.code; });
      expect(code, `header byte ${offset}`).to.equal('LOGKV_CORRUPTION');
    }
  });

  it('in any byte of a record, found by a read: that get() rejects LOGKV_CORRUPTION, every other key reads right', async () => {
    const b = await build(3);
    const store = await open(DIR, b.options);
    const [key, where] = [...b.newest][0];
    for (let byte = 0; byte < where.length; byte++) {
      const bit = byte % 8;
      await b.faulty.flipBit(where.file, where.offset + byte, bit);
      const reads = await readEach(store, b.model.keys());
      for (const [k, value] of reads) {
        if (k === key) expect(value, `byte ${byte} flipped`).to.deep.equal({ code: 'LOGKV_CORRUPTION' });
        else expect(value, `${k}, byte ${byte} of ${key} flipped`).to.deep.equal(b.model.get(k));
      }
      await b.faulty.flipBit(where.file, where.offset + byte, bit); // and back
    }
    await store.close();
  });

  it('in the newest segment, at open: cut like a torn tail and reported; never a wrong value', async () => {
    const b = await build(4);
    const files = b.memory.files().filter((f) => f.endsWith('.seg'));
    const last = files[files.length - 1];
    const records = [...b.newest].filter(([, w]) => w.file === last).sort((x, y) => x[1].offset - y[1].offset);
    const [, first] = records[0];
    await b.faulty.flipBit(last, first.offset + 22, 0);
    const damaged = b.memory.readFile(last);
    const store = await open(DIR, b.options);
    expect(store.recovery.truncated?.offset).to.equal(first.offset);
    expect(b.memory.readFile(store.recovery.truncated!.sidecar!)).to.deep.equal(damaged.subarray(first.offset));
    const reads = await readEach(store, b.model.keys());
    for (const [key, value] of reads) {
      if (records.some(([k]) => k === key)) {
        expect(value === undefined || !(value as { code?: string }).code, key).to.equal(true);
        if (value !== undefined) expect(value, `${key}: an older value may show, never a made-up one`).to.have.property('text');
      } else {
        expect(value, key).to.deep.equal(b.model.get(key));
      }
    }
    await store.close();
  });

  it('anywhere, at random: the store refuses to open or to read, or reads right; never a wrong value', async () => {
    let refusedOpen = 0;
    let refusedRead = 0;
    for (let seed = 1; seed <= 150; seed++) {
      const b = await build(seed);
      const files = b.memory.files();
      const file = files[b.faulty.random.int(files.length)];
      const { offset, bit } = await b.faulty.flipRandomBit(file);
      const where = `seed ${seed}: bit ${bit} of byte ${offset} of ${file}`;
      let store: Store<unknown>;
      try {
        store = await open(DIR, b.options);
      } catch (err) {
        expect((err as LogkvError).code, where).to.equal('LOGKV_CORRUPTION');
        refusedOpen++;
        continue;
      }
      const cut = store.recovery.truncated !== undefined;
      for (const [key, value] of await readEach(store, b.model.keys())) {
        if ((value as { code?: string } | undefined)?.code !== undefined) {
          expect(value, `${where}, ${key}`).to.deep.equal({ code: 'LOGKV_CORRUPTION' });
          refusedRead++;
        } else if (value === undefined || !isDeepEqual(value, b.model.get(key))) {
          // Only a cut tail may hide a key's newest value, and only in the newest segment.
          expect(cut, `${where}, ${key} read ${JSON.stringify(value)}`).to.equal(true);
          expect(b.newest.get(key)!.file, where).to.equal(store.recovery.truncated!.file);
        }
      }
      await store.close();
    }
    expect(refusedOpen + refusedRead).to.be.greaterThan(0);
  });
});

function isDeepEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
