/**
 * One owner at a time, across real processes: a second open rejects LOGKV_LOCKED naming the
 * owner's pid; when the owner dies without closing (SIGKILL), the next open succeeds at once;
 * a live owner is never displaced.
 */
import { expect } from 'chai';
import { ChildProcess, spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ErrorCodes } from '../lib';
import { LOCK_NAME, OWNER_NAME, TAKEOVER_NAME } from '../lib/lock';
import { expectCode, openFast, tempDir } from './helpers';

const HOLDER = path.join(__dirname, 'fixtures', 'holder.ts');
const children: ChildProcess[] = [];

interface Holder {
  child: ChildProcess;
  /** Resolves with the first stdout line that starts with one of `prefixes`. */
  line(...prefixes: string[]): Promise<string>;
  exited: Promise<void>;
}

function startHolder(dir: string): Holder {
  const child = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', HOLDER, dir], {
    cwd: path.join(__dirname, '..'),
    stdio: ['pipe', 'pipe', 'inherit'],
    // No coverage from the holders: c8 merging their partial coverage of lib/ into this process's
    // skews the report (lines this process ran show as unrun). What they run is run here too.
    env: { ...process.env, NODE_V8_COVERAGE: '' },
  });
  children.push(child);
  let output = '';
  const waiters: Array<() => void> = [];
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    output += chunk;
    for (const wake of waiters.splice(0)) wake();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const line = (...prefixes: string[]): Promise<string> => new Promise((resolve, reject) => {
    const check = (): void => {
      const found = output.split('\n').find((l) => prefixes.some((p) => l.startsWith(p)));
      if (found !== undefined) resolve(found);
      else if (child.exitCode !== null || child.signalCode !== null) reject(new Error(`holder exited; output: ${output}`));
      else waiters.push(check);
    };
    child.once('exit', () => { for (const wake of waiters.splice(0)) wake(); });
    check();
  });
  return { child, line, exited };
}

/** The pid of a process that has exited. */
function deadPid(): number {
  const result = spawnSync(process.execPath, ['-e', '0']);
  return result.pid!;
}

afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }
  }
});

describe('the lock', function () {
  this.timeout(30_000);

  it('a second process gets LOGKV_LOCKED naming the owner; after SIGKILL of the owner, open succeeds at once', async () => {
    const dir = tempDir();
    const owner = startHolder(dir);
    expect(await owner.line('ready', 'error')).to.equal('ready');

    const err = await expectCode(openFast(dir), ErrorCodes.LOCKED);
    expect(err.details.pid).to.equal(owner.child.pid);

    // A third process is refused too, and names the same owner.
    const other = startHolder(dir);
    expect(await other.line('ready', 'error')).to.equal(`error ${ErrorCodes.LOCKED} ${owner.child.pid}`);
    await other.exited;
    expect(other.child.exitCode).to.equal(2);

    // The refused opens did not disturb the owner's lock.
    expect(JSON.parse(fs.readFileSync(path.join(dir, OWNER_NAME), 'utf8')).pid).to.equal(owner.child.pid);

    owner.child.kill('SIGKILL');
    await owner.exited;
    const started = Date.now();
    const store = await openFast(dir);
    expect(Date.now() - started).to.be.below(2000);
    // What the owner wrote reached the OS before it said "ready", so it survived the kill.
    expect(await store.get('holder')).to.equal(owner.child.pid);
    expect(JSON.parse(fs.readFileSync(path.join(dir, OWNER_NAME), 'utf8')).pid).to.equal(process.pid);
    await store.close();
  });

  it('after the owner closes, another process opens the store', async () => {
    const dir = tempDir();
    const owner = startHolder(dir);
    expect(await owner.line('ready', 'error')).to.equal('ready');
    owner.child.stdin!.write('close\n');
    expect(await owner.line('closed')).to.equal('closed');
    await owner.exited;
    expect(fs.existsSync(path.join(dir, OWNER_NAME))).to.equal(false);
    expect(fs.existsSync(path.join(dir, LOCK_NAME))).to.equal(false);
    const store = await openFast(dir);
    expect(await store.get('holder')).to.equal(owner.child.pid);
    await store.close();
  });

  it('another process is refused while this one holds the store', async () => {
    const dir = tempDir();
    const store = await openFast(dir);
    const other = startHolder(dir);
    expect(await other.line('ready', 'error')).to.equal(`error ${ErrorCodes.LOCKED} ${process.pid}`);
    await other.exited;
    await store.set('still', 'mine');
    await store.close();
  });
});

describe('the lock within one process', () => {
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

  it('a lock left by a dead process is taken over at once', async () => {
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, LOCK_NAME));
    fs.writeFileSync(path.join(dir, OWNER_NAME), JSON.stringify({ pid: deadPid(), hostname: os.hostname() }));
    const store = await openFast(dir);
    expect(JSON.parse(fs.readFileSync(path.join(dir, OWNER_NAME), 'utf8')).pid).to.equal(process.pid);
    await store.close();
  });

  it('a lock whose pid now belongs to another process (a different start time) is taken over', async () => {
    if (!fs.existsSync(`/proc/${process.pid}/stat`)) return expect(process.platform).to.not.equal('linux');
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, LOCK_NAME));
    // This process is alive, but it is not the process that took the lock.
    fs.writeFileSync(path.join(dir, OWNER_NAME),
      JSON.stringify({ pid: process.pid, hostname: os.hostname(), startTicks: '1' }));
    const store = await openFast(dir);
    await store.close();
  });

  it('a dead owner whose lock another live process is taking over: LOGKV_LOCKED naming the taker', async () => {
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, LOCK_NAME));
    fs.writeFileSync(path.join(dir, OWNER_NAME), JSON.stringify({ pid: deadPid(), hostname: os.hostname() }));
    fs.mkdirSync(path.join(dir, TAKEOVER_NAME));
    fs.writeFileSync(path.join(dir, TAKEOVER_NAME, 'owner'), JSON.stringify({ pid: 1, hostname: os.hostname() }));
    const err = await expectCode(openFast(dir), ErrorCodes.LOCKED);
    expect(err.details.pid).to.equal(1);
    // Nothing was moved: the taker finishes its takeover undisturbed.
    expect(fs.existsSync(path.join(dir, LOCK_NAME))).to.equal(true);
    expect(fs.existsSync(path.join(dir, TAKEOVER_NAME))).to.equal(true);
  });

  it('a takeover lock left by a process that died taking over is removed, and the store opens', async () => {
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, LOCK_NAME));
    fs.writeFileSync(path.join(dir, OWNER_NAME), JSON.stringify({ pid: deadPid(), hostname: os.hostname() }));
    fs.mkdirSync(path.join(dir, TAKEOVER_NAME));
    fs.writeFileSync(path.join(dir, TAKEOVER_NAME, 'owner'), JSON.stringify({ pid: deadPid(), hostname: os.hostname() }));
    const store = await openFast(dir);
    expect(JSON.parse(fs.readFileSync(path.join(dir, OWNER_NAME), 'utf8')).pid).to.equal(process.pid);
    expect(fs.existsSync(path.join(dir, TAKEOVER_NAME))).to.equal(false);
    await store.close();
  });

  it('many processes opening a dead owner\'s store at once: exactly one wins', async function () {
    this.timeout(60_000);
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, LOCK_NAME));
    fs.writeFileSync(path.join(dir, OWNER_NAME), JSON.stringify({ pid: deadPid(), hostname: os.hostname() }));
    const holders = Array.from({ length: 5 }, () => startHolder(dir));
    const outcomes = await Promise.all(holders.map((h) => h.line('ready', 'error')));
    expect(outcomes.filter((line) => line === 'ready')).to.have.length(1);
    for (const line of outcomes.filter((l) => l !== 'ready')) expect(line.split(' ')[1]).to.equal('LOGKV_LOCKED');
    expect(fs.existsSync(path.join(dir, TAKEOVER_NAME))).to.equal(false);
  });

  it('a lock held by a live process is never displaced', async () => {
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, LOCK_NAME));
    // pid 1 is always alive (and may belong to another user: EPERM still means alive).
    fs.writeFileSync(path.join(dir, OWNER_NAME), JSON.stringify({ pid: 1, hostname: os.hostname() }));
    const err = await expectCode(openFast(dir), ErrorCodes.LOCKED);
    expect(err.details.pid).to.equal(1);
    expect(fs.existsSync(path.join(dir, LOCK_NAME))).to.equal(true);
  });

  it('a lock held from another host is never displaced', async () => {
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, LOCK_NAME));
    fs.writeFileSync(path.join(dir, OWNER_NAME), JSON.stringify({ pid: deadPid(), hostname: `not-${os.hostname()}` }));
    const err = await expectCode(openFast(dir), ErrorCodes.LOCKED);
    expect(typeof err.details.pid).to.equal('number');
  });

  it('a fresh lock without an owner file (an owner starting up) is respected', async () => {
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, LOCK_NAME));
    const err = await expectCode(openFast(dir), ErrorCodes.LOCKED);
    expect(err.details.pid).to.equal(undefined);
  });

  it('an old lock without an owner file (an owner that died starting up) is taken over', async () => {
    const dir = tempDir();
    const lock = path.join(dir, LOCK_NAME);
    fs.mkdirSync(lock);
    const old = new Date(Date.now() - 60_000);
    fs.utimesSync(lock, old, old);
    const store = await openFast(dir);
    await store.close();
  });

  it('an unreadable owner file counts as no owner', async () => {
    const dir = tempDir();
    const lock = path.join(dir, LOCK_NAME);
    fs.mkdirSync(lock);
    fs.writeFileSync(path.join(dir, OWNER_NAME), '{"pid": "not a number"');
    await expectCode(openFast(dir), ErrorCodes.LOCKED);
    const old = new Date(Date.now() - 60_000);
    fs.utimesSync(lock, old, old);
    const store = await openFast(dir);
    await store.close();
  });
});
