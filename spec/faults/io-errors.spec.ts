/**
 * I/O errors on the real store, injected through the fault-injecting medium. The contract:
 * - a failed write, create or truncate rejects with LOGKV_IO (LOGKV_STORE_FULL for ENOSPC),
 *   writes nothing (what it wrote is cut back off), leaves the keydir as it was, and the next
 *   write succeeds (raft-wal's Append habit);
 * - after a failed fdatasync (or directory sync), what the disk holds is unknown: the call
 *   rejects, and the store refuses every write with LOGKV_IO until it is reopened, which then
 *   finds exactly what was acknowledged;
 * - a failed read rejects that read only.
 */
import { expect } from 'chai';
import { LogkvError, open } from '../../lib';
import type { ErrorCode, OpenOptions, Store, SyncMode } from '../../lib';
import { FaultPlan, FaultyMedium } from '../../lib/medium/faulty';
import { DROP_UNSYNCED, MemoryMedium } from '../../lib/medium/memory';
import { SEGMENT_HEADER_BYTES } from '../../lib/format';

const DIR = '/db';

async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<LogkvError> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  expect(caught, `expected a rejection with ${code}`).to.be.instanceOf(LogkvError);
  expect((caught as LogkvError).code).to.equal(code);
  return caught as LogkvError;
}

async function contents(store: Store<unknown>): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for await (const [key, value] of store.entries()) out[key] = value;
  return out;
}

/** Every file's bytes, to prove a failed call left what was there as it was. */
/**
 * Each file's bytes, in hex; a segment's without the zero padding after its records (space
 * preallocated in 'always' mode, docs/format.md): the padding holds no data, and the repair of a
 * failed write cuts it with the failed bytes.
 */
function files(memory: MemoryMedium): Map<string, string> {
  return new Map(memory.files().map((file) => {
    const hex = memory.readFile(file).toString('hex');
    return [file, file.endsWith('.seg') ? hex.replace(/(00)+$/, '') : hex];
  }));
}

interface Setup {
  memory: MemoryMedium;
  faulty: FaultyMedium;
  store: Store<unknown>;
  model: Record<string, unknown>;
  options: OpenOptions;
}

/** A store holding a=1 and b=[2], synced, or an empty one with no segment file yet. */
async function setup(sync: SyncMode, empty = false): Promise<Setup> {
  const memory = new MemoryMedium();
  const faulty = new FaultyMedium(memory, { seed: 17 });
  const options: OpenOptions = { medium: faulty, sync, maxSegmentBytes: 1024, autoCompact: false, cacheBytes: 0 };
  const store = await open(DIR, options);
  const model: Record<string, unknown> = {};
  if (!empty) {
    await store.set('a', 1);
    await store.set('b', [2]);
    await store.sync();
    model.a = 1;
    model.b = [2];
  }
  return { memory, faulty, store, model, options };
}

interface IoCase {
  name: string;
  sync: SyncMode;
  /** Start from a store with no segment file. */
  empty?: boolean;
  /** Before arming: e.g. fill the segment so the failing write rotates. */
  prepare?: (s: Setup) => Promise<void>;
  fault: FaultPlan;
  /** The failing call; by default set('c', 'x'.repeat(100)). */
  act?: (store: Store<unknown>) => Promise<unknown>;
  code: ErrorCode;
  /** Whether the store refuses writes afterwards, until reopened. */
  poisoned: boolean;
}

const fill = async (s: Setup): Promise<void> => {
  await s.store.set('big', 'x'.repeat(900)); // the next record does not fit: it starts a new segment
  await s.store.sync();
  s.model.big = 'x'.repeat(900);
};

const CASES: IoCase[] = [
  ...(['never', 'always'] as const).flatMap((sync): IoCase[] => [
    { name: `a failed write (${sync})`, sync, fault: { op: 'write' }, code: 'LOGKV_IO', poisoned: false },
    { name: `a write failing with ENOSPC (${sync})`, sync, fault: { op: 'write', code: 'ENOSPC' }, code: 'LOGKV_STORE_FULL', poisoned: false },
    ...[1, 19, 20, 21, 60].map((writtenBytes): IoCase => ({
      name: `a write failing after ${writtenBytes} of its bytes reached the file (${sync})`,
      sync, fault: { op: 'write', writtenBytes }, code: 'LOGKV_IO', poisoned: false,
    })),
    { name: `a failed batch (${sync})`, sync, fault: { op: 'write' }, code: 'LOGKV_IO', poisoned: false,
      act: (store) => store.batch([{ type: 'set', key: 'c', value: 3 }, { type: 'delete', key: 'a' }]) },
    { name: `a failed delete (${sync})`, sync, fault: { op: 'write' }, code: 'LOGKV_IO', poisoned: false,
      act: (store) => store.delete('a') },
    { name: `a failed create of the first segment file (${sync})`, sync, empty: true,
      fault: { op: 'open', creating: true }, code: 'LOGKV_IO', poisoned: false },
    { name: `a failed create of the next segment file (${sync})`, sync, prepare: fill,
      fault: { op: 'open', creating: true }, code: 'LOGKV_IO', poisoned: false },
    { name: `a full disk while creating the next segment file (${sync})`, sync, prepare: fill,
      fault: { op: 'open', creating: true, code: 'ENOSPC' }, code: 'LOGKV_STORE_FULL', poisoned: false },
    { name: `a failed truncate of a new segment file (${sync})`, sync, prepare: fill,
      fault: { op: 'truncate', path: '000000020000.seg' }, code: 'LOGKV_IO', poisoned: false },
    { name: `a failed header write of a new segment file (${sync})`, sync, prepare: fill,
      fault: { op: 'write', path: '000000020000.seg', writtenBytes: 7 }, code: 'LOGKV_IO', poisoned: false },
    { name: `a failed fdatasync of a new segment's header (${sync})`, sync, prepare: fill,
      fault: { op: 'sync', path: '000000020000.seg' }, code: 'LOGKV_IO', poisoned: true },
    { name: `a failed directory sync of a new segment (${sync})`, sync, prepare: fill,
      fault: { op: 'syncDir' }, code: 'LOGKV_IO', poisoned: true },
    { name: `a failed repair: the truncate after a failed write fails too (${sync})`, sync,
      prepare: async (s) => { s.faulty.failNext('truncate'); },
      fault: { op: 'write', writtenBytes: 30 }, code: 'LOGKV_IO', poisoned: true },
  ]),
  { name: "a failed store.sync() ('never')", sync: 'never', fault: { op: 'sync' }, code: 'LOGKV_IO', poisoned: true,
    act: (store) => store.sync(),
    // Something for the sync to do: a write, acknowledged before the sync in 'never' mode.
    prepare: async (s) => {
      await s.store.set('acked', 3);
      s.model.acked = 3;
    } },
  { name: "a failed fdatasync of a write ('always')", sync: 'always', fault: { op: 'sync' }, code: 'LOGKV_IO', poisoned: true },
  { name: "an fdatasync failing with ENOSPC ('always')", sync: 'always', fault: { op: 'sync', code: 'ENOSPC' },
    code: 'LOGKV_STORE_FULL', poisoned: true },
];

describe('I/O errors', () => {
  for (const c of CASES) {
    it(`${c.name}: rejects with ${c.code}, writes nothing, and ${c.poisoned ? 'the store refuses writes until reopened' : 'the next write succeeds'}`, async () => {
      const s = await setup(c.sync, c.empty);
      await c.prepare?.(s);
      const before = files(s.memory);
      const sizeBefore = s.store.size;
      s.faulty.fail(c.fault);
      // A write of 'c' (c is not in the model: it must never appear).
      await expectCode((c.act ?? ((store) => store.set('c', 'x'.repeat(100))))(s.store), c.code);
      s.faulty.clearFaults();

      // The keydir is as it was.
      expect(await contents(s.store)).to.deep.equal(s.model);
      expect(s.store.size).to.equal(sizeBefore);
      // Nothing was written: every file that was there holds what it held; a file made for the
      // failed write holds at most a segment header.
      const after = files(s.memory);
      if (!c.poisoned || c.fault.op !== 'write') {
        for (const [file, bytes] of before) expect(after.get(file), file).to.equal(bytes);
      }
      for (const [file, bytes] of after) if (!before.has(file)) expect(bytes.length / 2, file).to.be.at.most(SEGMENT_HEADER_BYTES);

      if (c.poisoned) {
        await expectCode(s.store.set('d', 4), 'LOGKV_IO');
        await expectCode(s.store.delete('a'), 'LOGKV_IO');
        await expectCode(s.store.sync(), 'LOGKV_IO');
        expect(await s.store.get('a'), 'reads go on').to.equal(s.model.a);
      } else {
        await s.store.set('d', 4);
        s.model.d = 4;
        expect(await s.store.get('d')).to.equal(4);
        await s.store.sync();
      }
      await s.store.close().catch(() => undefined);

      // Reopened, it holds exactly what was acknowledged, and takes writes again.
      const reopened = await open(DIR, { ...s.options, medium: s.memory });
      expect(await contents(reopened)).to.deep.equal(s.model);
      await reopened.set('e', 5);
      await reopened.close();
      // And what it holds is durable.
      const afterPowerLoss = await open(DIR, { medium: s.memory.crash(DROP_UNSYNCED) });
      expect(await contents(afterPowerLoss)).to.deep.equal({ ...s.model, e: 5 });
      await afterPowerLoss.close();
    });
  }

  it('a failed write rejects every write queued behind it, and undoes them all', async () => {
    const s = await setup('never');
    s.faulty.failNext('write');
    const calls = [s.store.set('a', 'new'), s.store.delete('b'), s.store.set('c', 3), s.store.batch([{ type: 'set', key: 'd', value: 4 }])];
    expect(await s.store.get('a'), 'reads see queued writes').to.equal('new');
    for (const call of calls) await expectCode(call, 'LOGKV_IO');
    expect(await contents(s.store)).to.deep.equal(s.model);
    await s.store.set('c', 3);
    expect(await contents(s.store)).to.deep.equal({ ...s.model, c: 3 });
    await s.store.close();
  });

  it('a write queued while a failed write is being undone is rejected or applied whole, never half', async () => {
    const s = await setup('always');
    s.faulty.failNext('sync');
    const failing = s.store.set('a', 'lost');
    const settled = await Promise.allSettled([failing, s.store.set('c', 3)]);
    expect(settled.map((r) => r.status)).to.deep.equal(['rejected', 'rejected']);
    expect(await contents(s.store)).to.deep.equal(s.model);
    await s.store.close().catch(() => undefined);
  });

  it('a failed read rejects that read with LOGKV_IO, and the next read succeeds', async () => {
    const s = await setup('never');
    s.faulty.failNext('read');
    await expectCode(s.store.get('a'), 'LOGKV_IO');
    expect(await s.store.get('a')).to.equal(1);
    await s.store.set('c', 3);
    await s.store.close();
  });

  it('a failed background sync in interval mode makes the next write reject until reopened', async () => {
    const memory = new MemoryMedium();
    const faulty = new FaultyMedium(memory, { seed: 5 });
    const store = await open(DIR, { medium: faulty, sync: 'interval', syncIntervalMs: 5 });
    await store.set('first', 0); // creates the segment file, whose header is synced
    faulty.failNext('sync');
    await store.set('a', 1);
    await new Promise((resolve) => setTimeout(resolve, 40));
    expect(faulty.calls.sync).to.be.greaterThan(0);
    await expectCode(store.set('b', 2), 'LOGKV_IO');
    await store.close().catch(() => undefined);
    const reopened = await open(DIR, { medium: memory });
    expect(await reopened.get('a')).to.equal(1);
    await reopened.set('b', 2);
    await reopened.close();
  });

  it('a failed final sync makes close() reject with LOGKV_IO; the store reopens with what was acknowledged', async () => {
    const s = await setup('never');
    await s.store.set('c', 3);
    s.faulty.failNext('sync');
    await expectCode(s.store.close(), 'LOGKV_IO');
    const reopened = await open(DIR, { medium: s.memory });
    expect(await contents(reopened)).to.deep.equal({ ...s.model, c: 3 });
    await reopened.close();
  });

  it('open() rejects with LOGKV_IO when the directory cannot be read, and opens once it can', async () => {
    const s = await setup('never');
    await s.store.close();
    s.faulty.fail({ op: 'list', nth: 1, sticky: true });
    await expectCode(open(DIR, s.options), 'LOGKV_IO');
    s.faulty.clearFaults();
    const reopened = await open(DIR, s.options);
    expect(await contents(reopened)).to.deep.equal(s.model);
    await reopened.close();
  });
});
