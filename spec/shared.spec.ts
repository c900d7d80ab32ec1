/**
 * Shared access (issue 11) with real processes and worker threads: one owner and several clients
 * of one store. The participants are started once for the whole file and open a fresh store in
 * each test, so the file stays quick.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { ErrorCodes, LogkvError, Store, open } from '../lib';
import { currentOwner } from '../lib/lock';
import { roleOf } from '../lib/shared/role';
import { expectCode, tempDir } from './helpers';
import { killChildren } from './lock-children';
import { Participant } from './shared/participants';

describe('shared access (processes and threads)', function () {
  this.timeout(30_000);
  let processes: Participant[];
  let thread: Participant;
  let local: Store<unknown>[] = [];

  before(async () => {
    processes = await Promise.all([Participant.process(), Participant.process(), Participant.process(), Participant.process()]);
    thread = await Participant.thread();
  });
  after(async () => {
    await Promise.all(processes.map((p) => p.exit()));
    await thread.exit();
    await killChildren();
  });
  afterEach(async () => {
    for (const store of local.splice(0)) await store.close().catch(() => undefined);
    // Clients first, then the owner: every participant closes whatever it holds.
    const roles = await Promise.all([...processes, thread].map(async (p) => [p, await p.role()] as const));
    for (const [p, role] of roles) if (role === 'client') await p.close();
    for (const [p, role] of roles) if (role === 'owner') await p.close();
  });

  /** Replaces processes that a test killed. */
  async function revive(): Promise<void> {
    processes = await Promise.all(processes.map(async (p) => (p.child!.running ? p : Participant.process())));
  }

  async function openHere(dir: string, options = {}): Promise<Store<unknown>> {
    const store = await open(dir, { shared: true, sync: 'never', ...options });
    local.push(store);
    return store;
  }

  it('one owner, the others clients: writes from every process and thread are read by every other', async () => {
    const dir = tempDir();
    expect(await processes[0].open(dir)).to.equal('owner');
    for (const p of [...processes.slice(1), thread]) expect(await p.open(dir)).to.equal('client');
    const here = await openHere(dir);
    expect(roleOf(here)).to.equal('client');
    const writers = [...processes, thread];
    await Promise.all(writers.map((p, i) => p.must('set', `from-${i}`, { i, kind: p.kind })));
    await here.set('from-here', 'local');
    const expected = [...writers.map((p, i): [string, unknown] => [`from-${i}`, { i, kind: p.kind }]), ['from-here', 'local']]
      .sort((a, b) => (a[0] < b[0] ? -1 : 1));
    for (const p of writers) expect(await p.dump()).to.deep.equal(expected);
    const mine: Array<[string, unknown]> = [];
    for await (const pair of here.entries()) mine.push(pair);
    expect(mine.sort((a, b) => (a[0] < b[0] ? -1 : 1))).to.deep.equal(expected);
    expect(here.size).to.equal(6);
    expect(currentOwner(dir)?.pid).to.equal(processes[0].pid);
  });

  it("a client's calls take effect in the order it made them, and it reads its own writes before they resolve", async () => {
    const dir = tempDir();
    await processes[0].open(dir);
    const here = await openHere(dir);
    const calls: Array<Promise<unknown>> = [];
    for (let i = 0; i < 300; i++) calls.push(here.set('n', i));
    calls.push(here.delete('n'), here.create('n', 'created'), here.update('n', 'updated'));
    // Not awaited: the read waits for this client's writes of the key.
    expect(await here.get('n')).to.equal('updated');
    // Versions in call order: each write of the owner's log gets the next one.
    const versions = await Promise.all(calls);
    expect(versions.slice(0, 300)).to.deep.equal(Array.from({ length: 300 }, (_, i) => (versions[0] as number) + i));
    expect(versions.slice(300)).to.deep.equal([true, (versions[0] as number) + 301, (versions[0] as number) + 302]);
    expect(await processes[0].must('get', 'n')).to.equal('updated');
    // Another client's create right after: the owner has applied ours first.
    await processes[1].open(dir);
    expect((await processes[1].call('create', 'n', 'again')).code).to.equal(ErrorCodes.KEY_EXISTS);
  });

  it('a read sees every write that resolved in another process before the read was called', async () => {
    const dir = tempDir();
    await processes[0].open(dir);
    await processes[1].open(dir);
    const here = await openHere(dir);
    for (let i = 0; i < 50; i++) {
      await processes[i % 2].must('set', 'counter', i);
      expect(await here.get('counter')).to.equal(i);
    }
  });

  it('errors keep their codes and details across the channel; the owner validates what it is sent', async () => {
    const dir = tempDir();
    await processes[0].open(dir, { maxStoreBytes: 64 * 1024 });
    const here = await openHere(dir);
    await here.set('a', 1);
    const exists = await expectCode(here.create('a', 2), ErrorCodes.KEY_EXISTS);
    expect(exists.details.key).to.equal('a');
    expect(exists).to.be.instanceOf(LogkvError);
    expect((await expectCode(here.update('missing', 2), ErrorCodes.KEY_NOT_FOUND)).details.key).to.equal('missing');
    await expectCode(here.set('', 1), ErrorCodes.INVALID_KEY);
    await expectCode(here.set('v', undefined), ErrorCodes.INVALID_VALUE);
    await expectCode(here.set('t', 1, { ttl: -1 }), ErrorCodes.INVALID_ARGUMENT);
    // The owner's own limit: maxStoreBytes is the owner's option.
    await expectCode(here.set('big', 'x'.repeat(80 * 1024)), ErrorCodes.STORE_FULL);
    expect(await here.get('a')).to.equal(1);
    expect(await here.delete('a')).to.equal(true);
    expect(await here.delete('a')).to.equal(false);
  });

  it('a batch from a client is atomic and its deletes count as at the owner', async () => {
    const dir = tempDir();
    await processes[0].open(dir);
    await processes[1].open(dir);
    await processes[1].must('batch', [{ type: 'set', key: 'x', value: 1 }, { type: 'set', key: 'y', value: 2 }]);
    const here = await openHere(dir);
    await here.batch([{ type: 'delete', key: 'x' }, { type: 'set', key: 'z', value: new Map([[1, { deep: [1n] }]]) }]);
    expect(await here.get('z')).to.deep.equal(new Map([[1, { deep: [1n] }]]));
    expect(await processes[0].dump()).to.deep.equal([['y', 2], ['z', {}]]);
    expect(here.size).to.equal(2);
  });

  it("clients read right during and after the owner's compaction, and let go of the removed files", async () => {
    const dir = tempDir();
    await processes[0].open(dir, { maxSegmentBytes: 4096, autoCompact: false });
    const here = await openHere(dir);
    await processes[1].open(dir);
    const expected = new Map<string, string>();
    for (let round = 0; round < 6; round++) {
      const writes: Array<Promise<unknown>> = [];
      for (let i = 0; i < 60; i++) {
        const value = `${round}:${i}:${'x'.repeat(100)}`;
        writes.push(here.set(`k${i}`, value));
        expected.set(`k${i}`, value);
      }
      await Promise.all(writes);
    }
    const segmentsBefore = fs.readdirSync(dir).filter((n) => n.endsWith('.seg')).length;
    expect(segmentsBefore).to.be.greaterThan(5);
    const compaction = processes[1].must('compact');
    // Reads in this client and in another, all the while.
    let reads = 0;
    let done = false;
    void compaction.then(() => { done = true; });
    while (!done || reads < 200) {
      const key = `k${reads % 60}`;
      expect(await here.get(key)).to.equal(expected.get(key));
      reads++;
      if (reads % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    const result = await compaction as { segmentsAfter: number };
    expect(result.segmentsAfter).to.be.lessThan(segmentsBefore);
    await here.set('after', 1);
    expect(Object.fromEntries((await processes[1].dump()))).to.deep.equal({ ...Object.fromEntries(expected), after: 1 });
    expect(await here.get('k7')).to.equal(expected.get('k7'));
    // The client followed the compaction: it no longer holds the input segments.
    const stats = here.stats();
    expect(stats.segments).to.equal(fs.readdirSync(dir).filter((n) => n.endsWith('.seg')).length);
  });

  it('a client that closes leaves the store open for the others; the last one out leaves a snapshot', async () => {
    const dir = tempDir();
    await processes[0].open(dir);
    await processes[1].open(dir);
    const here = await openHere(dir);
    await here.set('a', 1);
    await here.close();
    await expectCode(here.get('a'), ErrorCodes.CLOSED);
    await processes[1].must('set', 'b', 2);
    expect(await processes[0].must('get', 'a')).to.equal(1);
    await processes[1].close();
    await processes[0].close();
    expect(fs.existsSync(path.join(dir, 'keydir.snapshot'))).to.equal(true);
    const again = await open(dir);
    expect(again.recovery.snapshot).to.equal(true);
    expect(again.size).to.equal(2);
    await again.close();
  });

  it('the owner closes with clients left: one takes over, nothing is lost, no call is left unknown', async () => {
    const dir = tempDir();
    await processes[0].open(dir);
    await processes[1].open(dir);
    await processes[2].open(dir);
    const here = await openHere(dir);
    const calls: Array<Promise<string>> = [];
    for (let i = 0; i < 200; i++) calls.push(here.set(`k${i}`, i).then(() => 'ok', (err: LogkvError) => err.code));
    const closing = processes[0].close();
    for (let i = 200; i < 400; i++) calls.push(here.set(`k${i}`, i).then(() => 'ok', (err: LogkvError) => err.code));
    await closing;
    expect(new Set(await Promise.all(calls))).to.deep.equal(new Set(['ok']));
    const roles = [await processes[1].role(), await processes[2].role(), roleOf(here)];
    expect(roles.filter((r) => r === 'owner')).to.have.length(1);
    expect(roles.filter((r) => r === 'client')).to.have.length(2);
    expect(await processes[2].dump()).to.have.length(400);
    expect(fs.existsSync(path.join(dir, 'keydir.snapshot'))).to.equal(false);
  });

  // The owner's stats().diskBytes counts the zero padding it preallocated after the head segment's
  // records (docs/durability.md, "What maxStoreBytes caps"); a client reads the same files, and must
  // count them as they are, whether it met the head segment before the padding or after it.
  it("clients count the owner's padded head segment as the owner does: diskBytes equal the files' bytes everywhere (sync 'always')", async () => {
    const dir = tempDir();
    const options = { sync: 'always' as const, maxSegmentBytes: 64 * 1024 };
    const segmentFiles = (): number => fs.readdirSync(dir).filter((n) => n.endsWith('.seg'))
      .reduce((sum, n) => sum + fs.statSync(path.join(dir, n)).size, 0);
    const diskBytes = async (p: Participant): Promise<number> => ((await p.command({ op: 'stats' })).value as { diskBytes: number }).diskBytes;
    expect(await processes[0].open(dir, options)).to.equal('owner');
    const early = await openHere(dir, options); // joins before the head segment exists
    const value = 'v'.repeat(1000);
    await early.set('k0', value); // the owner's first record brings the padding, up to maxSegmentBytes
    expect(await processes[1].open(dir, options)).to.equal('client'); // joins after it
    expect(await early.get('k0')).to.equal(value);
    expect(segmentFiles()).to.equal(64 * 1024);
    expect([await diskBytes(processes[0]), early.stats().diskBytes, await diskBytes(processes[1])]).to.deep.equal([64 * 1024, 64 * 1024, 64 * 1024]);
    for (let i = 1; i < 100; i++) await early.set(`k${i}`, value); // past one segment: the first is sealed and cut
    expect(await early.get('k99')).to.equal(value);
    expect(await processes[1].must('get', 'k99')).to.equal(value);
    const files = segmentFiles();
    expect(files).to.be.above(64 * 1024);
    expect([await diskBytes(processes[0]), early.stats().diskBytes, await diskBytes(processes[1])]).to.deep.equal([files, files, files]);
    // The owner leaves (cutting the head segment's padding); one of the clients takes over (they
    // race for the lock, either may win), and both count the files as they are.
    await processes[0].close();
    await early.set('after', 1);
    expect([roleOf(early), await processes[1].role()].sort()).to.deep.equal(['client', 'owner']);
    expect(await processes[1].must('get', 'after')).to.equal(1);
    const after = segmentFiles();
    expect([early.stats().diskBytes, await diskBytes(processes[1])]).to.deep.equal([after, after]);
  });

  // The owner preallocates the active segment in 'always' mode and cuts the padding when it seals it;
  // a client that opened the file while it was padded must not take that size for the sealed file's
  // after it takes over (it would cut a file it holds read-only: LOGKV_IO on every write).
  it("a client that followed a padded segment takes over and writes (sync 'always', segments sealed meanwhile)", async () => {
    const dir = tempDir();
    const options = { sync: 'always' as const, maxSegmentBytes: 64 * 1024 };
    await processes[0].open(dir, options);
    const here = await openHere(dir, options);
    await here.set('first', 0);
    expect(await here.get('first')).to.equal(0);
    const value = 'v'.repeat(1000);
    for (let i = 0; i < 200; i++) await here.set(`k${i}`, value);
    expect(await here.get('k199')).to.equal(value);
    await processes[0].close();
    await here.set('after', 1);
    expect(roleOf(here)).to.equal('owner');
    await here.set('k0', 'new');
    expect([await here.get('after'), await here.get('k0'), await here.get('k1'), await here.get('first')]).to.deep.equal([1, 'new', value, 0]);
  });

  it('SIGKILL of the owner while clients write: a client takes over within a second, no acknowledged write is lost', async () => {
    const dir = tempDir();
    await processes[0].open(dir, { sync: 'always' });
    await processes[1].open(dir);
    await processes[2].open(dir);
    const here = await openHere(dir);
    const outcomes = new Map<number, string>();
    let stop = false;
    const writer = (async () => {
      for (let i = 0; !stop; i++) {
        const batch: Array<Promise<void>> = [];
        for (let j = 0; j < 16; j++) {
          const n = i * 16 + j;
          batch.push(here.set(`w${n}`, n).then(() => { outcomes.set(n, 'ok'); }, (err: LogkvError) => { outcomes.set(n, err.code); }));
        }
        await Promise.all(batch);
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 150));
    const killedAt = performance.now();
    await processes[0].kill();
    // The first write acknowledged after the kill.
    let firstAfter = 0;
    for (;;) {
      try {
        await here.set('probe', 1);
        firstAfter = performance.now() - killedAt;
        break;
      } catch (err) {
        expect((err as LogkvError).code).to.equal(ErrorCodes.OUTCOME_UNKNOWN);
      }
    }
    stop = true;
    await writer;
    expect(firstAfter).to.be.lessThan(1000);
    const codes = new Set(outcomes.values());
    for (const code of codes) expect(['ok', ErrorCodes.OUTCOME_UNKNOWN]).to.include(code);
    const owners = [await processes[1].role(), await processes[2].role(), roleOf(here)].filter((r) => r === 'owner');
    expect(owners).to.have.length(1);
    // Every acknowledged write is there, in every participant; an unknown one is there or not, the same everywhere.
    const views = [Object.fromEntries(await processes[1].dump()), Object.fromEntries(await processes[2].dump())];
    const mine: Record<string, unknown> = {};
    for await (const [key, value] of here.entries()) mine[key] = value;
    views.push(mine);
    for (const [n, outcome] of outcomes) {
      const present = views.map((view) => view[`w${n}`] === n);
      if (outcome === 'ok') expect(present, `w${n}`).to.deep.equal([true, true, true]);
      else expect(new Set(present).size, `w${n}`).to.equal(1);
    }
    await revive();
  });

  it('worker threads: an owner thread and client threads of one process', async () => {
    const dir = tempDir();
    const threads = [thread, await Participant.thread(), await Participant.thread()];
    try {
      expect(await threads[0].open(dir)).to.equal('owner');
      expect(await threads[1].open(dir)).to.equal('client');
      expect(await threads[2].open(dir)).to.equal('client');
      await Promise.all(threads.map((t, i) => t.must('set', `t${i}`, i)));
      for (const t of threads) expect(await t.dump()).to.deep.equal([['t0', 0], ['t1', 1], ['t2', 2]]);
      // The owner thread closes: a client thread takes over.
      await threads[0].close();
      await threads[1].must('set', 'later', 1);
      expect(await threads[2].must('get', 'later')).to.equal(1);
      expect([await threads[1].role(), await threads[2].role()].sort()).to.deep.equal(['client', 'owner']);
    } finally {
      for (const t of threads.slice(1)) {
        if (await t.role() === 'client') await t.close();
      }
      for (const t of threads.slice(1)) await t.close();
      await Promise.all(threads.slice(1).map((t) => t.exit()));
    }
  });

  it('the Keyv adapter with shared: true works in every worker of a cluster', async () => {
    const dir = tempDir();
    const workers = processes.slice(0, 3);
    const keyv = (p: Participant, method: string, ...args: unknown[]): Promise<unknown> =>
      p.command({ op: 'keyv', dir, method, args }).then((a) => {
        if (!a.ok) throw new Error(`${method}: ${a.code}`);
        return a.value;
      });
    try {
      await Promise.all(workers.map((p, i) => keyv(p, 'set', `sessions:w${i}`, { worker: i }, 60_000)));
      for (const p of workers) {
        expect(await keyv(p, 'getMany', ['sessions:w0', 'sessions:w1', 'sessions:w2'])).to.deep.equal([{ worker: 0 }, { worker: 1 }, { worker: 2 }]);
      }
      expect(await keyv(workers[1], 'delete', 'sessions:w0')).to.equal(true);
      expect(await keyv(workers[2], 'has', 'sessions:w0')).to.equal(false);
      expect((await keyv(workers[0], 'iterator', 'sessions') as unknown[]).length).to.equal(2);
    } finally {
      for (const p of workers.slice(1)) await keyv(p, 'disconnect');
      await keyv(workers[0], 'disconnect');
    }
  });

  it('without shared, a second opener gets LOGKV_LOCKED naming the owner; a shared opener does too when the owner is not shared', async () => {
    const dir = tempDir();
    await processes[0].open(dir);
    const err = await expectCode(open(dir), ErrorCodes.LOCKED);
    expect(err.details.pid).to.equal(processes[0].pid);
    expect(err.message).to.include('shared: true');
    await processes[0].close();
    const alone = await open(dir, { sync: 'never' });
    local.push(alone);
    expect((await processes[1].command({ op: 'open', dir, options: { lockStaleMs: 1000 } })).code).to.equal(ErrorCodes.LOCKED);
  });
});
