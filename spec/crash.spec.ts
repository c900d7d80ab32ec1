/**
 * A bounded run of the crash harness, so `npm test` guards it: power mode (every crash boundary
 * of a scripted workload, ALICE-style), io mode (the same with random EIO and ENOSPC, in the
 * workload, compaction and recovery) and kill mode (SIGKILL of a workload process, with racing
 * openers), each sync mode in each. `npm run crashtest -- --duration 30m` is the long soak.
 * And the command line stopped by a signal: it takes its child processes with it.
 */
import { expect } from 'chai';
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { SessionTracker } from '../tools/crash/io';
import { readHolds, overlaps } from '../tools/crash/kill';
import { HarnessResult, SYNC_MODES, report, runHarness } from '../tools/crash/main';
import { ModelState, Step, applyOp } from '../tools/crash/workload';

function verdict(result: HarnessResult, mode: string): string {
  return report(result, mode).join('\n');
}

describe('the crash harness (bounded run)', function () {
  this.timeout(120_000);

  it('power mode: every crash boundary of a workload in each sync mode recovers to an acknowledged state', async () => {
    const result = await runHarness({ mode: 'power', runs: SYNC_MODES.length, ops: 90, seed: 20_241_126 });
    const { figures } = result;
    expect(figures.failed, verdict(result, 'power')).to.equal(false);
    expect(figures.runs).to.equal(3);
    expect(figures.boundaries).to.be.greaterThan(100);
    expect(figures.crashPoints).to.be.greaterThan(figures.boundaries);
    expect(figures.nestedCrashes, 'some recoveries were crashed too').to.be.greaterThan(0);
    expect(figures.tornTailsCut, 'some crashes tore a write').to.be.greaterThan(0);
    expect(figures.opsVerified).to.be.greaterThan(0);
    expect(figures.opsVerified).to.be.at.most(figures.opsAcknowledged);
  });

  it('io mode: crashes combined with random EIO and ENOSPC, in each sync mode, lose nothing acknowledged', async () => {
    const result = await runHarness({ mode: 'io', runs: SYNC_MODES.length, ops: 40, seed: 4 });
    const { figures } = result;
    expect(figures.failed, verdict(result, 'io')).to.equal(false);
    expect(figures.runs).to.equal(3);
    expect(figures.crashPoints).to.be.greaterThan(figures.boundaries);
    expect(figures.injectedErrors, 'errors were injected').to.be.greaterThan(0);
    expect(figures.rejectedCalls, 'some calls were rejected by them').to.be.greaterThan(0);
    expect(figures.retriedOpens, 'some recoveries failed on an injected error and were retried').to.be.greaterThan(0);
    expect(figures.reopens, 'some stores were reopened in place after errors').to.be.greaterThan(0);
    expect(figures.nestedCrashes, 'some crash states were taken while a store recovered').to.be.greaterThan(0);
    expect(figures.opsVerified).to.be.greaterThan(0);
    expect(figures.opsVerified).to.be.at.most(figures.opsAcknowledged);
  });

  it('kill mode: a workload process SIGKILLed in each sync mode loses nothing acknowledged, and never shares the store', async () => {
    const result = await runHarness({ mode: 'kill', runs: 2 * SYNC_MODES.length, seed: 7, maxKillDelayMs: 600, racingChance: 0.5 });
    const { figures } = result;
    expect(figures.failed, verdict(result, 'kill')).to.equal(false);
    expect(figures.runs).to.equal(6);
    expect(figures.kills + figures.cleanExits).to.equal(6);
    expect(figures.kills).to.be.greaterThan(0);
    expect(figures.crashPoints).to.equal(6);
    expect(figures.racingOpens, 'some rounds had a second process racing to open').to.be.greaterThan(0);
    expect(figures.doubleHolders).to.equal(0);
  });
});

const ROOT = path.join(__dirname, '..');
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Linux: a process as /proc shows it; undefined if it is gone (or this is no Linux). */
function procEntry(pid: number): { ppid: number; state: string; cmdline: string } | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so read after the last ')'.
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
    return { ppid: Number(ppid), state, cmdline };
  } catch {
    return undefined;
  }
}

/** The pids of the running (not zombie) processes /proc shows that match `test`. */
function processesWhere(test: (entry: { ppid: number; cmdline: string }) => boolean): number[] {
  const pids: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const entry = procEntry(Number(name));
    if (entry !== undefined && entry.state !== 'Z' && test(entry)) pids.push(Number(name));
  }
  return pids;
}

describe('the crash harness stopped by a signal', function () {
  // About 5 s: most of it is ts-node and the harness transpiling the writer before it starts them.
  this.timeout(60_000);
  const SEED = 20_250_101;
  let harness: ChildProcess | undefined;
  let workDir: string | undefined;

  afterEach(async () => {
    // Whatever the outcome, nothing this spec started outlives it (the writers by their command
    // line, which names the harness's work directory: a writer orphaned by a failure has no parent).
    if (harness !== undefined && harness.exitCode === null && harness.signalCode === null) harness.kill('SIGKILL');
    if (workDir !== undefined) {
      for (const pid of processesWhere((p) => p.cmdline.includes(workDir!))) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone since
        }
      }
      await sleep(200);
      fs.rmSync(workDir, { recursive: true, force: true });
    }
    harness = workDir = undefined;
  });

  it('SIGTERM in shared mode: every writer process is SIGKILLed and the harness exits 143', async () => {
    if (!fs.existsSync(`/proc/${process.pid}/stat`)) return expect(process.platform).to.not.equal('linux');
    let stderr = '';
    const child = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', 'tools/crash.ts', '--mode', 'shared', '--runs', '1',
      '--seed', String(SEED)], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    harness = child;
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr = (stderr + chunk).slice(-4000); });
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('exit', (code, signal) => resolve([code, signal])));
    // The writers run `node <work dir>/js/tools/crash/shared-child.js <config>` (tools/crash/shared.ts).
    workDir = path.join(os.tmpdir(), `logkv-crash-shared-work-${SEED}-${child.pid}`);
    const isWriter = (p: { cmdline: string }): boolean => p.cmdline.includes(workDir!) && p.cmdline.includes('shared-child.js');

    // Every writer the harness was seen to run, until it has its four at once.
    const seen = new Set<number>();
    for (const deadline = Date.now() + 45_000; ;) {
      const writers = processesWhere((p) => p.ppid === child.pid && isWriter(p));
      for (const pid of writers) seen.add(pid);
      if (writers.length >= 4) break;
      expect(child.exitCode, `the harness exited before it had 4 writers: ${stderr}`).to.equal(null);
      expect(Date.now(), `the harness had no 4 writers in 45 s: ${stderr}`).to.be.below(deadline);
      await sleep(50);
    }

    child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const [code, signal] = await Promise.race([exited, new Promise<[string, null]>((resolve) => {
      timer = setTimeout(() => resolve(['no exit in 15 s', null]), 15_000);
    })]);
    clearTimeout(timer);
    expect([code, signal], stderr).to.deep.equal([128 + os.constants.signals.SIGTERM, null]);
    // SIGKILL takes a moment to land; a killed writer is a zombie until it is reaped, and counts as gone.
    const alive = (pid: number): boolean => {
      const p = procEntry(pid);
      return p !== undefined && p.state !== 'Z' && isWriter(p);
    };
    const remaining = (): { seenAlive: number[]; writers: number[] } => ({ seenAlive: [...seen].filter(alive), writers: processesWhere(isWriter) });
    let left = remaining();
    for (const deadline = Date.now() + 5000; left.seenAlive.length + left.writers.length > 0 && Date.now() < deadline;) {
      await sleep(50);
      left = remaining();
    }
    expect(seen.size).to.be.at.least(4);
    expect(left).to.deep.equal({ seenAlive: [], writers: [] });
  });
});

describe('the kill-mode hold journal', () => {
  const journal = (lines: string[]): string => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'logkv-holds-')), 'holds.journal');
    fs.writeFileSync(file, lines.map((line) => line + '\n').join(''));
    return file;
  };

  it('holds that follow each other are no double holders', () => {
    const holds = readHolds(journal(['1 hold 100', '1 release 200', '2 hold 300', '3 hold 500', '3 release 600']), new Map([[2, 400n]]));
    expect(holds.map((h) => [h.pid, h.start, h.end])).to.deep.equal([[1, 100n, 200n], [2, 300n, 400n], [3, 500n, 600n]]);
    expect(overlaps(holds)).to.deep.equal([]);
  });

  it('a hold that begins before the last holder released, or was killed, is a double holder', () => {
    expect(overlaps(readHolds(journal(['1 hold 100', '2 hold 150', '1 release 200', '2 release 300']), new Map()))).to.have.length(1);
    // Process 1 was killed at 400: it held the store until then at least.
    expect(overlaps(readHolds(journal(['1 hold 100', '2 hold 350', '2 release 500']), new Map([[1, 400n]])))).to.have.length(1);
    expect(overlaps(readHolds(journal(['1 hold 100', '2 hold 450', '2 release 500']), new Map([[1, 400n]])))).to.have.length(0);
  });
});

describe('the workload model: which calls may write', () => {
  const value = { tag: 1, filler: '' };
  const state = (): ModelState => new Map([
    ['live', { value, tag: 1, expiresAt: 0, writtenAt: 1 }],
    ['expired', { value, tag: 2, expiresAt: 1000, writtenAt: 2 }],
  ]);

  // The store writes a tombstone for a delete of an expired key it still indexes (store.ts), and the
  // sweeper may have purged it first: the io checker must allow an injected error to reject it.
  it('a delete of an expired key writes nothing visible but may write a tombstone', () => {
    expect(applyOp(state(), { kind: 'delete', key: 'expired' }, 2000)).to.deep.equal({ outcome: 'false', writes: false, mayWrite: true });
    expect(applyOp(state(), { kind: 'delete', key: 'absent' }, 2000)).to.deep.equal({ outcome: 'false', writes: false, mayWrite: false });
    expect(applyOp(state(), { kind: 'delete', key: 'live' }, 2000)).to.deep.equal({ outcome: 'true', writes: true });
  });

  it('a batch that deletes only an expired key may write; one the batch itself emptied first may not', () => {
    const del = (key: string) => ({ type: 'delete' as const, key });
    expect(applyOp(state(), { kind: 'batch', ops: [del('expired')] }, 2000)).to.deep.equal({ outcome: 'ok', writes: false, mayWrite: true });
    expect(applyOp(state(), { kind: 'batch', ops: [del('absent'), del('absent')] }, 2000)).to.deep.equal({ outcome: 'ok', writes: false, mayWrite: false });
    expect(applyOp(state(), { kind: 'batch', ops: [del('live'), del('expired')] }, 2000)).to.deep.equal({ outcome: 'ok', writes: true, mayWrite: false });
  });
});

describe('the io checker: a call that writes nothing fails with the writes it rests on', () => {
  // The store answers such a call (a delete of a key a queued delete took out) no sooner than the
  // writes queued before it, and rejects it if they fail (Writer.settled): an injected error that
  // rejects the queued write rejects it too, and only then.
  const write: Step = { index: 0, now: 0, op: { kind: 'delete', key: 'k' }, outcome: 'true', writes: true };
  const noWrite: Step = { index: 1, now: 0, op: { kind: 'delete', key: 'k' }, outcome: 'false', writes: false, mayWrite: false };

  it('may reject while an earlier write it may rest on has not settled, or was rejected', () => {
    const pending = new SessionTracker(0, new Map());
    pending.issue(write);
    pending.issue(noWrite);
    expect(pending.settle(noWrite, 'LOGKV_IO', true)).to.equal('rejected');

    const rejected = new SessionTracker(0, new Map());
    rejected.issue(write);
    rejected.issue(noWrite);
    expect(rejected.settle(write, 'LOGKV_STORE_FULL', true)).to.equal('rejected');
    expect(rejected.settle(noWrite, 'LOGKV_STORE_FULL', true)).to.equal('rejected');
  });

  it('may not once every earlier write was acknowledged, nor with no injected error to explain it', () => {
    const acked = new SessionTracker(0, new Map());
    acked.issue(write);
    acked.issue(noWrite);
    expect(acked.settle(write, 'true', true)).to.equal('acked');
    expect(acked.settle(noWrite, 'LOGKV_IO', true)).to.equal('unexpected');

    const unexplained = new SessionTracker(0, new Map());
    unexplained.issue(write);
    unexplained.issue(noWrite);
    expect(unexplained.settle(noWrite, 'LOGKV_IO', false)).to.equal('unexpected');
  });
});
