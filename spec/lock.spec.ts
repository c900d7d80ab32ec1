/**
 * One owner at a time, across real processes: a second open rejects LOGKV_LOCKED naming the
 * owner's pid; when the owner dies without closing (SIGKILL), the next open succeeds at once;
 * a live owner is never displaced. Then the lock's files, made by hand: every state an owner can
 * leave them in, and how open() judges each (docs/locking.md).
 */
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ErrorCodes } from '../lib';
import {
  LEGACY_LOCK_NAME, LEGACY_OWNER_NAME, LEGACY_TAKEOVER_NAME, LOCKS_DIR, OwnerRecord, generationPath, listGenerations,
  lockTimes, ownRecord, processStartTicks, readOwner,
} from '../lib/lock';
import { seededRandom } from '../lib/medium/random';
import { killChildren, startChild } from './lock-children';
import { expectCode, openFast, tempDir } from './helpers';

const HOLDER = 'spec/fixtures/holder.ts';

function startHolder(dir: string, options: object = {}): ReturnType<typeof startChild> {
  return startChild(HOLDER, [dir, JSON.stringify(options)]);
}

/** The pid of a process that has exited. */
function deadPid(): number {
  return spawnSync('true').pid!;
}

/** Writes generation `generation` of `dir`'s lock as an owner with `owner` would have, its heartbeat `ageMs` old. */
function writeGeneration(dir: string, generation: number, owner: Partial<OwnerRecord> | string, ageMs = 0): void {
  fs.mkdirSync(path.join(dir, LOCKS_DIR), { recursive: true });
  const file = generationPath(dir, generation);
  fs.writeFileSync(file, typeof owner === 'string' ? owner : JSON.stringify({ ...ownRecord(30_000), ...owner }));
  const when = new Date(Date.now() - ageMs);
  fs.utimesSync(file, when, when);
}

/** The record of the store's current owner. */
function currentOwner(dir: string): OwnerRecord | undefined {
  return readOwner(dir, listGenerations(dir).pop()!);
}

describe('the lock', function () {
  this.timeout(30_000);
  // Inside the suite, not at the top of the file: a root hook runs after every test of the whole
  // run, and would kill the child processes other spec files keep across their tests (spec/shared).
  afterEach(killChildren);

  it('a second process gets LOGKV_LOCKED naming the owner; after SIGKILL of the owner, open succeeds at once', async () => {
    const dir = tempDir();
    const owner = startHolder(dir);
    expect(await owner.next('ready', 'error')).to.equal('ready');

    const err = await expectCode(openFast(dir), ErrorCodes.LOCKED);
    expect(err.details.pid).to.equal(owner.pid);
    expect(err.details.hostname).to.equal(os.hostname());

    // A third process is refused too, and names the same owner.
    const other = startHolder(dir);
    expect(await other.next('ready', 'error')).to.equal(`error ${ErrorCodes.LOCKED} ${owner.pid}`);
    await other.exited;
    expect(other.process.exitCode).to.equal(2);

    // The refused opens did not disturb the owner's lock.
    expect(listGenerations(dir)).to.deep.equal([1]);
    expect(currentOwner(dir)?.pid).to.equal(owner.pid);

    await owner.kill('SIGKILL');
    const started = Date.now();
    const store = await openFast(dir);
    expect(Date.now() - started).to.be.below(2000);
    // What the owner wrote reached the OS before it said "ready", so it survived the kill.
    expect(await store.get('holder')).to.equal(owner.pid);
    // The dead owner's generation was succeeded, then cleaned up.
    expect(listGenerations(dir)).to.deep.equal([2]);
    expect(currentOwner(dir)?.pid).to.equal(process.pid);
    await store.close();
  });

  it('after the owner closes, its lock file is empty (free) and another process opens the store', async () => {
    const dir = tempDir();
    const owner = startHolder(dir);
    expect(await owner.next('ready', 'error')).to.equal('ready');
    owner.send('close');
    expect(await owner.next('closed')).to.equal('closed');
    await owner.exited;
    expect(fs.statSync(generationPath(dir, 1)).size).to.equal(0);
    const store = await openFast(dir);
    expect(await store.get('holder')).to.equal(owner.pid);
    await store.close();
  });

  it('another process is refused while this one holds the store', async () => {
    const dir = tempDir();
    const store = await openFast(dir);
    const other = startHolder(dir);
    expect(await other.next('ready', 'error')).to.equal(`error ${ErrorCodes.LOCKED} ${process.pid}`);
    await other.exited;
    await store.set('still', 'mine');
    await store.close();
  });

  it('a stopped owner on this host is alive: never displaced, however long its heartbeat stands still', async () => {
    const dir = tempDir();
    const staleMs = 1000;
    const owner = startHolder(dir, { lockStaleMs: staleMs });
    expect(await owner.next('ready', 'error')).to.equal('ready');
    await owner.kill('SIGSTOP');
    await new Promise((resolve) => setTimeout(resolve, 2 * staleMs));
    const err = await expectCode(openFast(dir, { lockStaleMs: staleMs }), ErrorCodes.LOCKED);
    expect(err.details.pid).to.equal(owner.pid);
    await owner.kill('SIGCONT');
    // Its lease ran out while it was stopped; its next write renews it, as nobody took the lock.
    owner.send('set again');
    expect(await owner.next('set ')).to.equal('set ok');
  });

  it('an owner killed at any moment of taking the lock never makes the next open wait', async function () {
    this.timeout(120_000);
    const random = seededRandom(9);
    for (let round = 0; round < 16; round++) {
      const dir = tempDir();
      const owner = startHolder(dir);
      await owner.next('opening');
      // Land before, while or after it takes the lock (the directory syncs before it take a while).
      await new Promise((resolve) => setTimeout(resolve, random.int(100)));
      await owner.kill('SIGKILL');
      const started = Date.now();
      const store = await openFast(dir);
      expect(Date.now() - started, `round ${round}`).to.be.below(1000);
      await store.close();
    }
  });

  it('the heartbeat timer does not keep a process alive, and stops at close()', async () => {
    const dir = tempDir();
    const idle = startHolder(dir, { idle: true, lockStaleMs: 1000 });
    expect(await idle.next('ready', 'error')).to.equal('ready');
    await idle.exited;
    expect(idle.process.exitCode).to.equal(0);

    const store = await openFast(dir, { lockStaleMs: 1000 });
    const file = generationPath(dir, listGenerations(dir).pop()!);
    const beat = fs.statSync(file).mtimeMs;
    await new Promise((resolve) => setTimeout(resolve, 3 * lockTimes(1000).heartbeatMs));
    expect(fs.statSync(file).mtimeMs).to.be.above(beat);
    await store.close();
    const closed = fs.statSync(file);
    await new Promise((resolve) => setTimeout(resolve, 3 * lockTimes(1000).heartbeatMs));
    expect(fs.statSync(file).mtimeMs).to.equal(closed.mtimeMs);
    expect(closed.size).to.equal(0);
  });
});

describe('the lock within one process', () => {
  afterEach(killChildren);
  it('a second open() of the same directory rejects LOGKV_LOCKED with this pid, until close', async () => {
    const dir = tempDir();
    const first = await openFast(dir);
    const err = await expectCode(openFast(dir), ErrorCodes.LOCKED);
    expect(err.details.pid).to.equal(process.pid);
    // Another spelling of the same directory is the same store.
    await expectCode(openFast(path.join(dir, '..', path.basename(dir))), ErrorCodes.LOCKED);
    const link = path.join(tempDir(), 'link');
    fs.symlinkSync(dir, link);
    await expectCode(openFast(link), ErrorCodes.LOCKED);
    // The refused opens changed nothing: the first store works on.
    await first.set('k', 1);
    await first.close();
    const second = await openFast(dir);
    expect(await second.get('k')).to.equal(1);
    await second.close();
  });

  it('concurrent open() calls of one directory: exactly one wins', async () => {
    const dir = tempDir();
    const results = await Promise.allSettled([openFast(dir), openFast(dir), openFast(dir)]);
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
    expect(won).to.have.length(1);
    expect(lost.map((r) => r.reason.code)).to.deep.equal([ErrorCodes.LOCKED, ErrorCodes.LOCKED]);
    await (won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof openFast>>>).value.close();
  });
});

describe('the lock files as owners leave them', () => {
  afterEach(killChildren);
  it('a lock left by a dead process is taken over at once', async () => {
    const dir = tempDir();
    writeGeneration(dir, 1, { pid: deadPid() });
    const store = await openFast(dir);
    expect(listGenerations(dir)).to.deep.equal([2]);
    expect(currentOwner(dir)?.pid).to.equal(process.pid);
    await store.close();
  });

  it('a lock whose pid now belongs to another process (a different start time) is taken over', async () => {
    if (!fs.existsSync(`/proc/${process.pid}/stat`)) return expect(process.platform).to.not.equal('linux');
    const dir = tempDir();
    // This process is alive, but it is not the process that took the lock.
    writeGeneration(dir, 1, { pid: process.pid, startTicks: '1' });
    const store = await openFast(dir);
    await store.close();
  });

  it('a lock from an earlier boot of this host is taken over at once, whatever its pid', async () => {
    if (!fs.existsSync('/proc/sys/kernel/random/boot_id')) return expect(process.platform).to.not.equal('linux');
    const dir = tempDir();
    writeGeneration(dir, 1, { pid: 1, startTicks: processStartTicks(1), bootId: 'an-earlier-boot' });
    const store = await openFast(dir);
    await store.close();
  });

  it('a lock held by a live process is never displaced, with its start time or without', async () => {
    const dir = tempDir();
    // pid 1 is always alive (and may belong to another user: EPERM still means alive).
    writeGeneration(dir, 1, { pid: 1, startTicks: processStartTicks(1) });
    const err = await expectCode(openFast(dir), ErrorCodes.LOCKED);
    expect(err.details.pid).to.equal(1);
    // Without a start time the pid cannot prove it is the same process: its fresh heartbeat does.
    writeGeneration(dir, 1, { pid: 1, startTicks: undefined });
    expect((await expectCode(openFast(dir), ErrorCodes.LOCKED)).details.pid).to.equal(1);
    expect(listGenerations(dir)).to.deep.equal([1]);
  });

  it('a dead owner already succeeded by a live one: LOGKV_LOCKED naming the live one, nothing moved', async () => {
    const dir = tempDir();
    writeGeneration(dir, 1, { pid: deadPid() });
    writeGeneration(dir, 2, { pid: 1, startTicks: processStartTicks(1) });
    const err = await expectCode(openFast(dir), ErrorCodes.LOCKED);
    expect(err.details.pid).to.equal(1);
    expect(listGenerations(dir)).to.deep.equal([1, 2]);
  });

  it('many processes opening a dead owner\'s store at once: exactly one wins', async function () {
    this.timeout(60_000);
    const dir = tempDir();
    writeGeneration(dir, 1, { pid: deadPid() });
    const holders = Array.from({ length: 5 }, () => startHolder(dir));
    const outcomes = await Promise.all(holders.map((h) => h.next('ready', 'error')));
    expect(outcomes.filter((line) => line === 'ready')).to.have.length(1);
    for (const line of outcomes.filter((l) => l !== 'ready')) expect(line.split(' ')[1]).to.equal(ErrorCodes.LOCKED);
    expect(listGenerations(dir)).to.deep.equal([2]);
  });

  it('an empty lock file (released, or emptied by a power loss) is free: taken at once', async () => {
    for (const content of ['', '\0'.repeat(180)]) {
      const dir = tempDir();
      writeGeneration(dir, 4, content);
      const store = await openFast(dir);
      expect(listGenerations(dir)).to.deep.equal([5]);
      await store.close();
    }
  });

  it('a temporary file left by a taker killed before it named its generation is ignored, and removed once old', async () => {
    const dir = tempDir();
    writeGeneration(dir, 1, { pid: deadPid() });
    const old = path.join(dir, LOCKS_DIR, 'tmp-1-old');
    const fresh = path.join(dir, LOCKS_DIR, 'tmp-1-fresh');
    fs.writeFileSync(old, JSON.stringify(ownRecord(30_000)));
    fs.writeFileSync(fresh, JSON.stringify(ownRecord(30_000)));
    const hourAgo = new Date(Date.now() - 3600_000);
    fs.utimesSync(old, hourAgo, hourAgo);
    const store = await openFast(dir);
    // A fresh one may be another opener's, between writing its record and naming it.
    expect(fs.readdirSync(path.join(dir, LOCKS_DIR)).sort()).to.deep.equal(['2', 'tmp-1-fresh']);
    await store.close();
  });

  it('an unreadable record: the heartbeat decides (fresh: LOCKED; stale: taken after watching it a lease)', async () => {
    const dir = tempDir();
    const staleMs = 1000;
    writeGeneration(dir, 1, '{"pid": "not a number"');
    const err = await expectCode(openFast(dir, { lockStaleMs: staleMs }), ErrorCodes.LOCKED);
    expect(err.details.pid).to.equal(undefined);
    writeGeneration(dir, 1, '{"pid": "not a number"', staleMs);
    const started = Date.now();
    const store = await openFast(dir, { lockStaleMs: staleMs });
    expect(Date.now() - started).to.be.at.least(lockTimes(staleMs).leaseMs - 5);
    expect(listGenerations(dir)).to.deep.equal([2]);
    await store.close();
  });

  it('a stale owner that beats again just as it is taken over: the taker waits out its lease before it owns', async () => {
    const dir = tempDir();
    const staleMs = 1000;
    const { leaseMs } = lockTimes(staleMs);
    writeGeneration(dir, 1, { hostname: 'elsewhere', staleMs }, staleMs);
    // Right as the taker names generation 2, after it watched generation 1 stand still, the owner
    // comes back and writes a heartbeat: it may have checked for generation 2 just before.
    // The module object itself (`import * as` gives a read-only view of it).
    const nodeFs = require('fs') as typeof fs;
    const realLink = nodeFs.linkSync;
    nodeFs.linkSync = (from: fs.PathLike, to: fs.PathLike): void => {
      if (String(to) === generationPath(fs.realpathSync(dir), 2)) fs.appendFileSync(generationPath(dir, 1), '\n0000000000000001');
      realLink(from, to);
    };
    const started = Date.now();
    try {
      const store = await openFast(dir, { lockStaleMs: staleMs });
      await store.close();
    } finally {
      nodeFs.linkSync = realLink;
    }
    // A lease of watching, then a lease of waiting.
    expect(Date.now() - started).to.be.at.least(2 * leaseMs - 5);
  });

  it('an owner\'s longer lockStaleMs is honoured by a taker with a shorter one', async () => {
    const dir = tempDir();
    writeGeneration(dir, 1, { pid: 1, hostname: 'elsewhere', staleMs: 10_000 }, 2000);
    const err = await expectCode(openFast(dir, { lockStaleMs: 1000 }), ErrorCodes.LOCKED);
    expect(err.details.hostname).to.equal('elsewhere');
  });

  it('a lock of the logkv before generations: a live owner here refuses the open; a dead one\'s files are removed', async () => {
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, LEGACY_LOCK_NAME));
    fs.writeFileSync(path.join(dir, LEGACY_OWNER_NAME),
      JSON.stringify({ pid: 1, hostname: os.hostname(), startTicks: processStartTicks(1) }));
    expect((await expectCode(openFast(dir), ErrorCodes.LOCKED)).details.pid).to.equal(1);

    fs.writeFileSync(path.join(dir, LEGACY_OWNER_NAME), JSON.stringify({ pid: deadPid(), hostname: os.hostname() }));
    fs.mkdirSync(path.join(dir, LEGACY_TAKEOVER_NAME));
    const store = await openFast(dir);
    for (const name of [LEGACY_LOCK_NAME, LEGACY_OWNER_NAME, LEGACY_TAKEOVER_NAME]) {
      expect(fs.existsSync(path.join(dir, name)), name).to.equal(false);
    }
    await store.close();
  });
});
