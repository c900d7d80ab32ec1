/**
 * The Store as a facade over rooms (issue 10): what the package's root export holds, that the
 * internals are out of a user's reach, and the writer's mayWrite() check before every change it
 * makes to the medium (the hook the lock's lease check plugs into).
 */
import { expect } from 'chai';
import * as path from 'path';
import * as root from '../lib';
import { ErrorCodes, LogkvError, Store, open } from '../lib';
import { HeldLock, buildStore } from '../lib/open';
import { resolveOptions } from '../lib/options';
import * as testing from '../lib/testing';
import { DROP_UNSYNCED, FaultyMedium, MemoryMedium, OperationEvent } from '../lib/testing';
import { expectCode } from './helpers';

describe('the public surface', () => {
  it('the root export holds what applications call and no test instrument', () => {
    expect(Object.keys(root).sort()).to.deep.equal(
      ['ErrorCodes', 'FORMAT_VERSION', 'LogkvError', 'Store', 'checkStore', 'defaultDir', 'dumpLines', 'dumpStore', 'loadStore', 'open']);
  });

  it('logkv/testing holds the media, the crash choosers and the seeded generator', () => {
    expect(Object.keys(testing).sort()).to.deep.equal(
      ['DROP_UNSYNCED', 'FaultyMedium', 'KEEP_UNSYNCED', 'MemoryMedium', 'randomCrash', 'seededRandom', 'writebackError']);
  });

  it('a Store cannot be made except by open(), not even with a look-alike token', () => {
    const Unchecked = Store as unknown as new (...args: unknown[]) => unknown;
    for (const args of [[], [{}], [Symbol('logkv Store'), {}]]) {
      let threw: unknown;
      try {
        new Unchecked(...args);
      } catch (err) {
        threw = err;
      }
      expect(threw).to.be.instanceOf(LogkvError);
      expect((threw as LogkvError).code).to.equal(ErrorCodes.INVALID_ARGUMENT);
    }
  });

  it('a Store has only its public methods: no start, applyRecovered or reserveRecovered to call', async () => {
    expect(Object.getOwnPropertyNames(Store.prototype).sort()).to.deep.equal([
      'backup', 'batch', 'close', 'closed', 'compact', 'constructor', 'create', 'delete', 'dir', 'entries', 'get', 'getEntry',
      'has', 'keys', 'recovery', 'set', 'size', 'stats', 'sync', 'touch', 'update', 'watch',
    ]);
    // And `await using`: Symbol.asyncDispose closes the store.
    expect(Object.getOwnPropertySymbols(Store.prototype)).to.deep.equal([Symbol.asyncDispose]);
    const store = await open('/db', { medium: new MemoryMedium() });
    for (const internal of ['start', 'applyRecovered', 'reserveRecovered']) expect(internal in store).to.equal(false);
    await store.close();
  });
});

describe('the writer asks mayWrite() before every change to the medium', () => {
  const dir = '/db';
  let refusal: LogkvError | undefined;
  let events: OperationEvent[];
  /** What the lock answers; a test may replace it. */
  let ask = (): LogkvError | undefined => refusal;
  const lock: HeldLock = { release: async () => undefined, mayWrite: () => ask() };

  function refuse(): LogkvError {
    refusal = new LogkvError(ErrorCodes.LOCKED, 'the lease is gone');
    return refusal;
  }

  /** A store over a memory medium whose changes are recorded in `events`, with the test's lock. */
  async function storeOn(memory: MemoryMedium, sync: 'always' | 'never'): Promise<Store<string>> {
    refusal = undefined;
    events = [];
    const medium = new FaultyMedium(memory, { onOperation: (event) => { if (event.phase === 'before') events.push(event); } });
    await medium.mkdirp(dir);
    await medium.syncDir(path.dirname(dir)); // what open() does before it takes the lock
    return buildStore<string>(medium, dir, resolveOptions({ medium, sync, autoCompact: false }), lock);
  }

  /** Changes to files under `dir` recorded since `from`. */
  function changesSince(from: number): string[] {
    return events.slice(from).filter((e) => e.path.startsWith(dir)).map((e) => `${e.op} ${path.basename(e.path)}`);
  }

  for (const sync of ['always', 'never'] as const) {
    it(`refused at the call, nothing is applied or written (${sync})`, async () => {
      const memory = new MemoryMedium();
      const store = await storeOn(memory, sync);
      await store.set('a', '1');
      const refused = refuse();
      const mark = events.length;
      expect(await store.set('b', '2').catch((err: unknown) => err)).to.equal(refused);
      expect(await store.delete('a').catch((err: unknown) => err)).to.equal(refused);
      expect(await store.get('b')).to.equal(undefined);
      expect(await store.get('a')).to.equal('1');
      expect(changesSince(mark)).to.deep.equal([]);
    });

    it(`refused after the call, the group and everything queued after it reject with that error, undone, nothing appended (${sync})`, async () => {
      const memory = new MemoryMedium();
      const store = await storeOn(memory, sync);
      await store.set('a', '1');
      await store.sync();
      const mark = events.length;
      const first = store.set('a', '2').catch((err: unknown) => err);
      const second = store.batch([{ type: 'set', key: 'b', value: '3' }, { type: 'delete', key: 'a' }]).catch((err: unknown) => err);
      const synced = store.sync().catch((err: unknown) => err);
      const refused = refuse(); // the group is handed to the medium after this synchronous code
      expect(await first).to.equal(refused);
      expect(await second).to.equal(refused);
      expect(await synced).to.equal(refused);
      expect(await store.get('a')).to.equal('1');
      expect(await store.has('b')).to.equal(false);
      expect(changesSince(mark)).to.deep.equal([]);

      refusal = undefined; // the lease is back: the store takes writes again
      await store.set('c', '4');
      await store.close();
      const after = await open<string>(dir, { medium: memory.crash(DROP_UNSYNCED) });
      expect([await after.get('a'), await after.get('b'), await after.get('c')]).to.deep.equal(['1', undefined, '4']);
      await after.close();
    });
  }

  it('refused before the first segment file is created: no file is made', async () => {
    const memory = new MemoryMedium();
    const store = await storeOn(memory, 'always');
    const write = store.set('a', '1').catch((err: unknown) => err);
    const refused = refuse();
    expect(await write).to.equal(refused);
    expect(changesSince(0).filter((change) => change.endsWith('.seg'))).to.deep.equal([]);
    expect((await memory.list(dir)).filter((name) => name.endsWith('.seg'))).to.deep.equal([]);
    refusal = undefined;
    await store.set('a', '2');
    expect(await store.get('a')).to.equal('2');
    await store.close();
  });

  it('never asked for a sync: a group written while the lock was ours is made durable, and the next call is refused', async () => {
    const memory = new MemoryMedium();
    const store = await storeOn(memory, 'always');
    await store.set('a', '1');
    let asked = 0;
    const refused = new LogkvError(ErrorCodes.LOCKED, 'the lease ran out mid-group');
    ask = () => (++asked >= 3 ? refused : undefined); // the call, the write; a third ask would be the sync
    try {
      await store.set('a', '2');
      expect(asked).to.equal(2);
      expect(await store.set('b', '3').catch((err: unknown) => err)).to.equal(refused);
      expect(await store.get('a')).to.equal('2');
      expect(await store.get('b')).to.equal(undefined);
      await store.close();
    } finally {
      ask = () => refusal;
    }
  });

  it('close() after a refusal still makes the acknowledged writes durable, writes no snapshot, and resolves', async () => {
    const memory = new MemoryMedium();
    const store = await storeOn(memory, 'never');
    await store.set('a', '1');
    refuse();
    await store.close();
    expect(store.closed).to.equal(true);
    const disk = memory.crash(DROP_UNSYNCED);
    expect((await disk.list(dir)).filter((name) => name.includes('snapshot'))).to.deep.equal([]);
    const reopened = await buildStore<string>(disk, dir, resolveOptions({ medium: disk, autoCompact: false }),
      { release: async () => undefined, mayWrite: () => undefined });
    expect(await reopened.get('a')).to.equal('1');
    await reopened.close();
  });
});
