/**
 * Shared access with format version 2's calls (issue 11 over issue 13): versions, compare-and-set,
 * touch, watch and backup from a client of a shared store, whose owner is another process, and
 * across a takeover. The owner is a child process; the client under test is this process.
 */
import { expect } from 'chai';
import * as path from 'path';
import { ChangeEvent, ErrorCodes, LogkvError, Store, open } from '../lib';
import { roleOf } from '../lib/shared/role';
import { tempDir } from './helpers';
import { killChildren } from './lock-children';
import { Participant } from './shared/participants';

describe('shared access: versions, compare-and-set, touch, watch and backup in a client', function () {
  this.timeout(30_000);
  let processes: Participant[];
  let local: Store<unknown>[] = [];

  before(async () => {
    processes = await Promise.all([Participant.process(), Participant.process()]);
  });
  after(async () => {
    await Promise.all(processes.map((p) => p.exit()));
    await killChildren();
  });
  afterEach(async () => {
    for (const store of local.splice(0)) await store.close().catch(() => undefined);
    const roles = await Promise.all(processes.map(async (p) => [p, p.child!.running ? await p.role() : null] as const));
    for (const [p, role] of roles) if (role === 'client') await p.close();
    for (const [p, role] of roles) if (role === 'owner') await p.close();
    processes = await Promise.all(processes.map(async (p) => (p.child!.running ? p : Participant.process())));
  });

  async function openHere(dir: string): Promise<Store<unknown>> {
    const store = await open(dir, { shared: true, sync: 'never' });
    local.push(store);
    return store;
  }

  async function rejection(promise: Promise<unknown>): Promise<LogkvError> {
    try {
      await promise;
    } catch (err) {
      return err as LogkvError;
    }
    throw new Error('expected a rejection');
  }

  it('writes resolve with their versions, store-wide across processes; getEntry() gives the version a write resolved with', async () => {
    const dir = tempDir();
    expect(await processes[0].open(dir)).to.equal('owner');
    const here = await openHere(dir);
    expect(roleOf(here)).to.equal('client');
    const mine = await here.set('a', 1);
    const owners = await processes[0].must('set', 'a', 2) as number;
    expect(owners).to.equal(mine + 1);
    expect(await here.getEntry('a')).to.deep.equal({ value: 2, version: owners });
    expect(await here.batch([{ type: 'set', key: 'b', value: 1 }, { type: 'delete', key: 'nothing' }, { type: 'delete', key: 'a' }]))
      .to.deep.equal([owners + 1, 0, owners + 2]);
    expect(await here.create('a', 3)).to.equal(owners + 3);
  });

  it('ordered iteration, getMany() and clear() work in a client: ranges over the writes of every process, a clear run by the owner', async () => {
    const dir = tempDir();
    await processes[0].open(dir);
    const here = await openHere(dir);
    expect(roleOf(here)).to.equal('client');
    for (const key of ['user:3', 'user:1', 'item:9']) await here.set(key, key.toUpperCase());
    await processes[0].must('set', 'user:2', 'USER:2');
    const keys: string[] = [];
    for await (const key of here.keys({ prefix: 'user:', reverse: true })) keys.push(key);
    expect(keys).to.deep.equal(['user:3', 'user:2', 'user:1']);
    const entries: Array<[string, unknown]> = [];
    for await (const entry of here.entries({ gt: 'item:9', lte: 'user:2' })) entries.push(entry);
    expect(entries).to.deep.equal([['user:1', 'USER:1'], ['user:2', 'USER:2']]);
    expect(await here.getMany(['user:2', 'none', 'item:9'])).to.deep.equal(['USER:2', undefined, 'ITEM:9']);
    // A write of this process not yet answered is seen by the read that follows it.
    void here.set('user:4', 'USER:4');
    expect(await here.getMany(['user:4'])).to.deep.equal(['USER:4']);
    expect(await here.clear({ prefix: 'user:' })).to.equal(4);
    const left: string[] = [];
    for await (const key of here.keys()) left.push(key);
    expect(left).to.deep.equal(['item:9']);
    expect(await processes[0].must('has', 'user:1')).to.equal(false);
  });

  it('compare-and-set travels the channel: a mismatch rejects LOGKV_VERSION_MISMATCH with its details and writes nothing', async () => {
    const dir = tempDir();
    await processes[0].open(dir);
    const here = await openHere(dir);
    const first = await here.set('k', 'one');
    const second = await processes[0].must('set', 'k', 'two') as number;
    const err = await rejection(here.set('k', 'stale', { ifVersion: first }));
    expect(err.code).to.equal(ErrorCodes.VERSION_MISMATCH);
    expect(err.details).to.deep.include({ key: 'k', ifVersion: first, version: second });
    expect((await rejection(here.delete('k', { ifVersion: first }))).code).to.equal(ErrorCodes.VERSION_MISMATCH);
    expect((await rejection(here.update('missing', 1, { ifVersion: 1 }))).code).to.equal(ErrorCodes.VERSION_MISMATCH);
    const batch = here.batch([{ type: 'set', key: 'b', value: 1 }, { type: 'set', key: 'k', value: 'x', ifVersion: first }]);
    expect((await rejection(batch)).code).to.equal(ErrorCodes.VERSION_MISMATCH);
    expect(await here.has('b')).to.equal(false);
    const third = await here.set('k', 'three', { ifVersion: second });
    expect(third).to.be.greaterThan(second);
    expect(await processes[0].must('get', 'k')).to.equal('three');
    expect(await here.delete('k', { ifVersion: third })).to.equal(true);
  });

  it('read-modify-CAS loops in an owner and two clients lose no update', async () => {
    const dir = tempDir();
    await processes[0].open(dir);
    await processes[1].open(dir);
    const here = await openHere(dir);
    await here.set('counter', 0);
    // This process's loop; the other two run the same loop through their agents, one call at a time.
    const loop = async (call: (method: string, ...args: unknown[]) => Promise<{ ok: boolean; value?: unknown; code?: string }>,
      rounds: number): Promise<void> => {
      for (let done = 0; done < rounds;) {
        const entry = (await call('getEntry', 'counter')).value as { value: number; version: number };
        const answer = await call('set', 'counter', entry.value + 1, { ifVersion: entry.version });
        if (answer.ok) done++;
        else expect(answer.code).to.equal(ErrorCodes.VERSION_MISMATCH);
      }
    };
    const mine = async (method: string, ...args: unknown[]): Promise<{ ok: boolean; value?: unknown; code?: string }> => {
      try {
        const target = here as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
        return { ok: true, value: await target[method](...args) };
      } catch (err) {
        return { ok: false, code: (err as LogkvError).code };
      }
    };
    await Promise.all([
      loop(mine, 15),
      loop((method, ...args) => processes[0].call(method, ...args), 15),
      loop((method, ...args) => processes[1].call(method, ...args), 15),
    ]);
    expect(await here.get('counter')).to.equal(45);
  });

  it('touch() from a client gives a new expiry and a new version, and false for a key that is not live', async () => {
    const dir = tempDir();
    await processes[0].open(dir);
    const here = await openHere(dir);
    const set = await here.set('t', { deep: [1, 2] });
    const before = Date.now();
    expect(await here.touch('t', { ttl: 60_000 })).to.equal(true);
    const entry = (await here.getEntry('t'))!;
    expect(entry.value).to.deep.equal({ deep: [1, 2] });
    expect(entry.version).to.equal(set + 1);
    expect(entry.expiresAt).to.be.within(before + 60_000 - 1000, Date.now() + 60_000 + 1000);
    expect(await processes[0].must('getEntry', 't')).to.deep.equal(entry);
    expect(await here.touch('missing', { ttl: 1000 })).to.equal(false);
    expect((await rejection(here.touch('t', {} as never))).code).to.equal(ErrorCodes.INVALID_ARGUMENT);
  });

  it("a client's watch() sees the writes of every process in commit order, and goes on across a SIGKILL of the owner", async () => {
    const dir = tempDir();
    await processes[0].open(dir, { sync: 'always' });
    await processes[1].open(dir);
    const here = await openHere(dir);
    await here.set('before', 0);
    const watcher = here.watch();
    const events: Array<ChangeEvent<unknown>> = [];
    const collect = async (count: number): Promise<void> => {
      while (events.length < count) events.push((await watcher.next()).value as ChangeEvent<unknown>);
    };
    const versions = [
      await here.set('x', 1),
      await processes[0].must('set', 'y', 2) as number,
      ...(await processes[1].must('batch', [{ type: 'set', key: 'z', value: 3 }, { type: 'delete', key: 'x' }]) as number[]),
      await processes[1].must('touch', 'y', { ttl: 60_000 }) as number,
    ];
    await collect(5);
    expect(events.map((e) => [e.type, e.key, e.type === 'set' ? e.value : null]))
      .to.deep.equal([['set', 'x', 1], ['set', 'y', 2], ['set', 'z', 3], ['delete', 'x', null], ['set', 'y', 2]]);
    expect(events.slice(0, 4).map((e) => e.version)).to.deep.equal(versions.slice(0, 4));
    expect(events[4].version).to.equal(versions[3] + 1);
    expect((events[4] as { expiresAt?: number }).expiresAt).to.be.a('number');

    await processes[0].kill();
    let after: number | undefined;
    while (after === undefined) {
      after = await here.set('after', 4).catch((err: LogkvError) => {
        expect(err.code).to.equal(ErrorCodes.OUTCOME_UNKNOWN);
        return undefined;
      });
    }
    const other = await processes[1].must('set', 'other', 5) as number;
    // Versions go on above every version the dead owner issued, whoever took over.
    expect(after).to.be.greaterThan(events[4].version);
    expect(other).to.be.greaterThan(after);
    await collect(7);
    expect(events.slice(5).map((e) => [e.key, e.version])).to.deep.equal([['after', after], ['other', other]]);
    await watcher.return!();
  });

  it('a watch() made in a client that takes the store over goes on, fed by its own writer; backup() from a client copies the store', async () => {
    const dir = tempDir();
    await processes[0].open(dir);
    const here = await openHere(dir);
    const watcher = here.watch({ prefix: 'w' });
    await processes[0].close();
    await here.set('w1', 1);
    expect(roleOf(here)).to.equal('owner');
    const event = (await watcher.next()).value as ChangeEvent<unknown>;
    expect([event.key, event.type === 'set' ? event.value : null]).to.deep.equal(['w1', 1]);
    await watcher.return!();

    await processes[0].open(dir);
    const client = await processes[0].role();
    expect(client).to.equal('client');
    await processes[0].must('set', 'w2', 2);
    const dest = path.join(tempDir(), 'copy');
    const result = await processes[0].must('backup', dest) as { dir: string };
    expect(result.dir).to.equal(dest);
    const copy = await open(dest);
    try {
      expect(await copy.get('w1')).to.equal(1);
      expect(await copy.get('w2')).to.equal(2);
    } finally {
      await copy.close();
    }
  });
});
