/**
 * Owners the pid cannot judge, and owners that lose their lock (docs/locking.md):
 * - another hostname (a child in its own UTS namespace): never taken while its heartbeat runs;
 *   taken over lockStaleMs after it stops (SIGSTOP), and once resumed it never appends again;
 * - another PID namespace on this host, whose pid means nothing here: a live owner is not taken
 *   over (the lock before generations took it: kill(pid, 0) said ESRCH); a dead one is, once its
 *   heartbeat is stale;
 * - an owner whose lock file is removed or succeeded notices within a heartbeat, and its writes
 *   reject LOGKV_LOCK_LOST without touching the files;
 * - an owner whose event loop stalled past its lease but kept its lock just renews it.
 * The namespaces need Linux and root (unshare); elsewhere those specs check only that this is
 * not Linux.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { ErrorCodes } from '../lib';
import { LOCKS_DIR, generationPath, listGenerations, lockTimes, ownRecord, processStartTicks, readOwner } from '../lib/lock';
import { Child, killChildren, startChild } from './lock-children';
import { expectCode, openFast, tempDir } from './helpers';

const HOLDER = 'spec/fixtures/holder.ts';
const OTHER_HOST = 'logkv-other-host';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function inOtherHost(command: string[]): string[] {
  return ['unshare', '--uts', 'sh', '-c', `hostname ${OTHER_HOST} && exec "$0" "$@"`, ...command];
}

/** Runs the child as pid `pid` of a new PID namespace (with its own /proc). */
function inOtherPidNamespace(pid: number): (command: string[]) => string[] {
  // "; true" keeps sh from exec'ing node, so node is forked, and gets the pid after ns_last_pid.
  // --kill-child: SIGKILL of unshare kills sh, the namespace's init, and the kernel then kills
  // every process in the namespace.
  return (command) => ['unshare', '--pid', '--fork', '--mount-proc', '--kill-child', 'sh', '-c',
    `echo ${pid - 1} > /proc/sys/kernel/ns_last_pid && "$0" "$@"; true`, ...command];
}

/** A pid no process has in this namespace. */
function freePid(): number {
  for (let pid = 20_000; ; pid++) if (!fs.existsSync(`/proc/${pid}`)) return pid;
}

/** Every segment file's bytes, to show that nothing was appended. */
function segmentBytes(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of fs.readdirSync(dir).filter((n) => n.endsWith('.seg')).sort()) {
    out[name] = fs.readFileSync(path.join(dir, name)).toString('hex');
  }
  return out;
}

/** Opens `dir` as soon as it can (every 50 ms); the ms it took from `since`. */
async function openWhenFree(dir: string, staleMs: number, since: number, giveUpMs: number): Promise<{ store: Awaited<ReturnType<typeof openFast>>; ms: number }> {
  for (;;) {
    try {
      const store = await openFast(dir, { lockStaleMs: staleMs });
      return { store, ms: Date.now() - since };
    } catch (err) {
      expect((err as { code?: string }).code).to.equal(ErrorCodes.LOCKED);
      if (Date.now() - since > giveUpMs) throw err;
    }
    await sleep(50);
  }
}

/** Tries to open `dir` every 100 ms for `ms`: LOGKV_LOCKED every time. Returns the last error. */
async function refusedThroughout(dir: string, staleMs: number, ms: number): Promise<{ pid?: number; hostname?: string }> {
  const until = Date.now() + ms;
  let details: { pid?: number; hostname?: string } = {};
  while (Date.now() < until) {
    details = (await expectCode(openFast(dir, { lockStaleMs: staleMs }), ErrorCodes.LOCKED)).details;
    await sleep(100);
  }
  return details;
}

async function ready(child: Child): Promise<void> {
  expect(await child.next('ready', 'error')).to.equal('ready');
}

describe('the lock\'s heartbeat', function () {
  this.timeout(60_000);
  afterEach(killChildren);

  describe('an owner with another hostname', () => {
    it('is never taken over while its heartbeat runs', async () => {
      if (process.platform !== 'linux') return expect(process.platform).to.not.equal('linux');
      const dir = tempDir();
      const staleMs = 2500;
      const owner = startChild(HOLDER, [dir, JSON.stringify({ lockStaleMs: staleMs })], inOtherHost);
      await ready(owner);
      expect(readOwner(dir, 1)?.hostname).to.equal(OTHER_HOST);
      const details = await refusedThroughout(dir, staleMs, 2 * staleMs);
      expect(details).to.include({ pid: owner.pid, hostname: OTHER_HOST });
      owner.send('set still-mine');
      expect(await owner.next('set ')).to.equal('set ok');
    });

    it('is taken over lockStaleMs after its heartbeat stops, and once resumed never appends again', async () => {
      if (process.platform !== 'linux') return expect(process.platform).to.not.equal('linux');
      const dir = tempDir();
      const staleMs = 1500;
      const { heartbeatMs, leaseMs } = lockTimes(staleMs);
      const owner = startChild(HOLDER, [dir, JSON.stringify({ lockStaleMs: staleMs })], inOtherHost);
      await ready(owner);
      owner.send('writes'); // a set every 5 ms, until one fails
      await sleep(100);
      await owner.kill('SIGSTOP');
      const stopped = Date.now();

      const { store, ms } = await openWhenFree(dir, staleMs, stopped, 4 * staleMs);
      // Its last heartbeat was at most one interval before it stopped; silence of staleMs is the rule.
      expect(ms).to.be.at.least(staleMs - heartbeatMs - 20);
      expect(ms).to.be.below(staleMs + leaseMs + 2000);
      const atTakeover = segmentBytes(dir);

      await owner.kill('SIGCONT');
      const failed = (await owner.next('writes error')).split(' ');
      expect(failed[2]).to.equal(ErrorCodes.LOCK_LOST);
      owner.send('set after-resume');
      expect(await owner.next('set ')).to.equal(`set error ${ErrorCodes.LOCK_LOST}`);
      await sleep(3 * heartbeatMs);
      expect(segmentBytes(dir)).to.deep.equal(atTakeover);
      // The new owner reads what the old one acknowledged before it stopped.
      expect(await store.get('holder')).to.equal(owner.pid);
      await store.set('new-owner', true);
      await store.close();
    });
  });

  describe('an owner in another PID namespace on this host', () => {
    it('is not taken over while it lives, though its pid is unknown here; once dead, after lockStaleMs', async () => {
      if (process.platform !== 'linux') return expect(process.platform).to.not.equal('linux');
      const dir = tempDir();
      const staleMs = 2500;
      const pid = freePid();
      const owner = startChild(HOLDER, [dir, JSON.stringify({ lockStaleMs: staleMs })], inOtherPidNamespace(pid));
      await ready(owner);
      const record = readOwner(dir, 1)!;
      expect(record.pid).to.equal(pid);
      expect(record.pidNs).to.not.equal(ownRecord(staleMs).pidNs);
      // Here that pid is no process at all: the pid alone would call this owner dead.
      expect(() => process.kill(pid, 0)).to.throw().with.property('code', 'ESRCH');

      expect(await refusedThroughout(dir, staleMs, 2 * staleMs)).to.include({ pid });

      // SIGKILL of the namespace: the owner dies without a chance to release anything.
      await owner.kill('SIGKILL');
      const died = Date.now();
      const { store, ms } = await openWhenFree(dir, staleMs, died, 4 * staleMs);
      expect(ms).to.be.at.least(staleMs - lockTimes(staleMs).heartbeatMs - 20);
      expect(await store.get('holder')).to.equal(pid);
      await store.close();
    });
  });

  describe('an owner that loses its lock', () => {
    const staleMs = 1000;
    const { heartbeatMs, leaseMs } = lockTimes(staleMs);

    for (const { name, lose } of [
      { name: 'its lock file is removed', lose: (dir: string, gen: number) => fs.rmSync(generationPath(dir, gen)) },
      { name: 'the whole LOCKS directory is removed', lose: (dir: string) => fs.rmSync(path.join(dir, LOCKS_DIR), { recursive: true }) },
      { name: 'its lock file is replaced', lose: (dir: string, gen: number) => {
        fs.rmSync(generationPath(dir, gen));
        fs.writeFileSync(generationPath(dir, gen), JSON.stringify(ownRecord(staleMs)));
      } },
      { name: 'another process took the next generation', lose: (dir: string, gen: number) => {
        fs.writeFileSync(generationPath(dir, gen + 1), JSON.stringify({ ...ownRecord(staleMs), pid: 1, startTicks: processStartTicks(1) }));
      } },
    ]) {
      it(`notices within a heartbeat when ${name}: writes reject LOGKV_LOCK_LOST, and nothing reaches the files`, async () => {
        const dir = tempDir();
        const store = await openFast(dir, { lockStaleMs: staleMs });
        await store.set('before', 1);
        const generation = listGenerations(dir).pop()!;
        lose(dir, generation);
        // By then the heartbeat has run, and in any case the lease is old enough that a write checks.
        await sleep(Math.max(2 * heartbeatMs, leaseMs / 2 + 20));
        const files = segmentBytes(dir);
        const err = await expectCode(store.set('after', 2), ErrorCodes.LOCK_LOST);
        if (name.startsWith('another')) expect(err.details.pid).to.equal(1);
        await expectCode(store.batch([{ type: 'delete', key: 'before' }]), ErrorCodes.LOCK_LOST);
        await expectCode(store.delete('before'), ErrorCodes.LOCK_LOST);
        expect(await store.get('before')).to.equal(1);
        await store.close();
        // Close wrote no snapshot either: a lost owner's index may be stale for the new owner.
        expect(segmentBytes(dir)).to.deep.equal(files);
        expect(fs.readdirSync(dir).filter((n) => n.includes('snapshot'))).to.deep.equal([]);
      });
    }

    it('an owner whose event loop stalled past its lease, but kept its lock, renews it at the next write', async () => {
      const dir = tempDir();
      const store = await openFast(dir, { lockStaleMs: staleMs });
      const until = Date.now() + leaseMs + 200;
      while (Date.now() < until) { /* no timer runs: the heartbeat is late */ }
      await store.set('after-stall', 1);
      expect(await store.get('after-stall')).to.equal(1);
      await store.close();
    });
  });
});
