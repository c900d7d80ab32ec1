/**
 * Kill mode: a workload child process runs on a real directory and is SIGKILLed at a random
 * moment; the store is reopened and checked. A SIGKILL takes the process but not the kernel, so
 * everything the child handed to the OS survives: in every sync mode, every acknowledged write
 * must be there, whole, and every batch all or nothing.
 *
 * Rounds follow each other on the same directory (each recovery is the next round's starting
 * point, and each round starts from the state the check found), until the directory is retired
 * for a fresh one. Most kills land at a random moment of the workload; some during the child's
 * recovery; a few rounds run to their end and close cleanly.
 *
 * In some rounds one to three racers (child.ts, role 'racer') start while the workload process
 * holds the store, shortly before or after it is killed, and call open() until the lock lets them
 * in. Every process records when it holds the store in a journal (child.ts, recordHold); after
 * the round, no two holds may overlap: the "double holders" figure.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { open } from '../../lib';
import type { Store, SyncMode } from '../../lib';
import type { Random } from '../../lib/medium/random';
import { check, readAll } from './check';
import type { ChildConfig, RacerConfig } from './child';
import type { Figures } from './figures';
import { buildChild, childEnv } from './build';
import { trackChild } from './children';
import { ModelState, Step, Workload, WorkloadConfig } from './workload';

const REPO = path.resolve(__dirname, '..', '..');
const CLOCK_BASE = 1_800_000_000_000;
/** A directory is retired after this many rounds or bytes, so recovery stays quick. */
const ROUNDS_PER_DIR = 25;
const BYTES_PER_DIR = 48 * 1024 * 1024;
/** Each round copies its directory first, for a failure report, unless it is larger than this. */
const KEEP_BEFORE_BYTES = 16 * 1024 * 1024;

export interface KillOptions {
  seed: number;
  modes: readonly SyncMode[];
  deadline: number;
  /** Says when to stop early (at a failure, if asked to). */
  stop?: () => boolean;
  runs: number;
  maxKillDelayMs: number;
  workDir: string;
  failDir: string;
  figures: Figures;
  random: Random;
  progress: () => void;
  /** The chance that a round has racers. @default 0.3 */
  racingChance?: number;
  /** Racers open without the lock: only to prove the double-holder check catches two holders. */
  racersSkipLock?: boolean;
}

/** One store directory's life across rounds. */
interface Life {
  dir: string;
  state: ModelState;
  nextIndex: number;
  clockBase: number;
  rounds: number;
  keyOfTag: Map<number, string>;
}

export async function killRun(o: KillOptions): Promise<void> {
  fs.mkdirSync(o.workDir, { recursive: true });
  const child = buildChild(path.join(o.workDir, 'js'));
  let lives = 0;
  const newLife = (): Life => ({
    dir: path.join(o.workDir, `store-${++lives}`), state: new Map(), nextIndex: 0, clockBase: CLOCK_BASE, rounds: 0, keyOfTag: new Map(),
  });
  let life = newLife();
  try {
    for (let round = 0; round < o.runs && Date.now() < o.deadline && !o.stop?.(); round++) {
      if (life.rounds >= ROUNDS_PER_DIR || directoryBytes(life.dir) > BYTES_PER_DIR) {
        fs.rmSync(life.dir, { recursive: true, force: true });
        life = newLife();
      }
      // The directory as the round found it, so a failure can be studied from its start.
      const before = path.join(o.workDir, 'before-round');
      fs.rmSync(before, { recursive: true, force: true });
      if (fs.existsSync(life.dir) && directoryBytes(life.dir) < KEEP_BEFORE_BYTES) fs.cpSync(life.dir, before, { recursive: true });
      const ok = await killRound(o, life, child, o.modes[round % o.modes.length]);
      if (!ok) {
        const kept = path.join(o.failDir, `kill-${path.basename(life.dir)}-round-${life.rounds}`);
        fs.mkdirSync(o.failDir, { recursive: true });
        fs.cpSync(life.dir, path.join(kept, 'after'), { recursive: true });
        if (fs.existsSync(before)) fs.cpSync(before, path.join(kept, 'before'), { recursive: true });
        for (const name of ['round.json', 'acks.json', 'holds.journal']) {
          if (fs.existsSync(path.join(o.workDir, name))) fs.copyFileSync(path.join(o.workDir, name), path.join(kept, name));
        }
        const failure = o.figures.failures[o.figures.failures.length - 1];
        if (failure !== undefined && failure.kept === undefined) failure.kept = kept;
        fs.rmSync(life.dir, { recursive: true, force: true });
        life = newLife();
      }
      o.progress();
    }
  } finally {
    fs.rmSync(o.workDir, { recursive: true, force: true });
  }
}

function directoryBytes(dir: string): number {
  if (!fs.existsSync(dir)) return 0;
  return fs.readdirSync(dir).reduce((sum, name) => sum + fs.statSync(path.join(dir, name)).size, 0);
}

interface ChildRun {
  pid: number;
  acks: Map<number, string>;
  killed: boolean;
  /** process.hrtime when the SIGKILL was sent: the child was alive, and held what it held, until then. */
  killedAt?: bigint;
  closed: boolean;
  exit: string;
  stderr: string;
}

/**
 * Runs a child on the directory, kills it per the round's plan, and collects its reports.
 * `onReady` is called when the child says it has opened the store.
 */
function runChild(script: string, configPath: string, killAfter: 'opening' | 'ready' | undefined, delayMs: number,
                  onReady?: () => void): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = trackChild(spawn(process.execPath, [script, configPath], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], env: childEnv() }));
    const run: ChildRun = { pid: child.pid ?? -1, acks: new Map(), killed: false, closed: false, exit: '', stderr: '' };
    let pending = '';
    let timer: NodeJS.Timeout | undefined;
    const kill = (): void => {
      run.killedAt = process.hrtime.bigint();
      run.killed = child.kill('SIGKILL');
    };
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (data: string) => {
      pending += data;
      let newline: number;
      while ((newline = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        if (line.startsWith('a ')) {
          const [, index, result] = line.split(' ');
          run.acks.set(Number(index), result);
        } else if (line === 'closed') {
          run.closed = true;
        } else {
          if (line === 'ready') onReady?.();
          if (line === killAfter && timer === undefined) timer = setTimeout(kill, delayMs);
        }
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (data: string) => { run.stderr = (run.stderr + data).slice(-4000); });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (timer !== undefined) clearTimeout(timer);
      run.killed = signal === 'SIGKILL';
      run.exit = signal ?? `exit code ${code}`;
      resolve(run);
    });
  });
}

interface RacerRun {
  held: boolean;
  exit: string;
  stderr: string;
}

/** Runs a racer: it opens the store once the lock lets it, holds it a while, and closes it. */
function runRacer(script: string, configPath: string): Promise<RacerRun> {
  return new Promise((resolve, reject) => {
    const child = trackChild(spawn(process.execPath, [script, configPath], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], env: childEnv() }));
    const run: RacerRun = { held: false, exit: '', stderr: '' };
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (data: string) => { if (data.includes('held')) run.held = true; });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (data: string) => { run.stderr = (run.stderr + data).slice(-4000); });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      run.exit = signal ?? `exit code ${code}`;
      resolve(run);
    });
  });
}

export interface Hold {
  pid: number;
  start: bigint;
  /** Its release line, or when it was killed; undefined if it died some other way. */
  end: bigint | undefined;
}

/**
 * The holds a round's journal records. A process holds the store from before its 'hold' line to
 * after its 'release' line or its death, so each [start, end] here lies within a true hold, and
 * two that overlap are two processes that held the store at once. A killed process's hold ends
 * no earlier than its kill was sent; one that died otherwise is counted from its line alone.
 */
export function readHolds(journal: string, killedAt: Map<number, bigint>): Hold[] {
  const holds: Hold[] = [];
  const open = new Map<number, Hold>();
  const text = fs.existsSync(journal) ? fs.readFileSync(journal, 'utf8') : '';
  for (const line of text.split('\n')) {
    const [pidText, event, time] = line.split(' ');
    if (time === undefined) continue;
    const pid = Number(pidText);
    if (event === 'hold') {
      const hold: Hold = { pid, start: BigInt(time), end: undefined };
      holds.push(hold);
      open.set(pid, hold);
    } else if (event === 'release' && open.has(pid)) {
      open.get(pid)!.end = BigInt(time);
      open.delete(pid);
    }
  }
  for (const [pid, hold] of open) hold.end = killedAt.get(pid) ?? hold.start;
  return holds;
}

/** Pairs of holds that overlap, described. */
export function overlaps(holds: Hold[]): string[] {
  const found: string[] = [];
  for (let i = 0; i < holds.length; i++) {
    for (let j = i + 1; j < holds.length; j++) {
      const [a, b] = [holds[i], holds[j]];
      if (a.start < b.end! && b.start < a.end!) {
        found.push(`process ${a.pid} held the store from ${a.start} to ${a.end} ns and process ${b.pid} from ${b.start} to ${b.end} ns`);
      }
    }
  }
  return found;
}

/**
 * Opens the store a killed child left. A child killed between taking the lock and naming itself
 * in LOCK.owner leaves a lock nobody can tell from one being taken right now; lib/lock.ts takes
 * it over once it is OWNERLESS_STALE_MS old, so wait that out (and count it).
 */
async function openAfterKill(dir: string, nowCheck: number, figures: Figures): Promise<Store<unknown>> {
  const giveUp = Date.now() + 15_000;
  for (let waited = false; ; waited = true) {
    try {
      const store = await open(dir, { clock: () => nowCheck, autoCompact: false });
      if (waited) figures.lockWaits++;
      return store;
    } catch (err) {
      if ((err as { code?: string }).code !== 'LOGKV_LOCKED' || Date.now() > giveUp) throw err;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

async function killRound(o: KillOptions, life: Life, child: string, sync: SyncMode): Promise<boolean> {
  const { random, figures } = o;
  const roundSeed = random.int(2 ** 32);
  const workloadConfig: WorkloadConfig = { keys: 48, stepMs: 10, compaction: true, pauses: true, maxValueChars: 3000 };
  const plan = random();
  const clean = plan < 0.1;
  const journal = path.join(o.workDir, 'holds.journal');
  fs.rmSync(journal, { force: true });
  const config: ChildConfig = {
    dir: life.dir,
    journal,
    sync,
    syncIntervalMs: random.pick([5, 20, 100]),
    maxSegmentBytes: random.pick([4096, 16384, 65536, 1024 * 1024]),
    seed: roundSeed,
    window: random.between(1, 16),
    firstIndex: life.nextIndex,
    clockBase: life.clockBase,
    workload: workloadConfig,
    state: [...life.state],
    opLimit: clean ? random.between(20, 400) : 1e9,
  };
  const configPath = path.join(o.workDir, 'round.json');
  fs.writeFileSync(configPath, JSON.stringify(config));
  // Most kills land while the workload runs; some while the child recovers the store.
  const killAfter = clean ? undefined : plan < 0.2 ? 'opening' : 'ready';
  const delayMs = killAfter === 'opening' ? random.int(40) : random.int(o.maxKillDelayMs);
  // Racers start while the workload process holds the store (killed during its recovery, it
  // might not have its owner record written yet, and a racer would wait that lock's staleness
  // out), at moments spread over the kill delay and a little past it.
  const racerCount = killAfter !== 'opening' && random.chance(o.racingChance ?? 0.3) ? random.between(1, 3) : 0;
  const racerPlans = Array.from({ length: racerCount }, () => ({ delayMs: random.int(delayMs + 100), holdMs: 20 + random.int(200) }));
  const racers: Array<Promise<RacerRun>> = [];
  const startRacers = (): void => {
    racerPlans.forEach((plan, i) => {
      const racerConfig: RacerConfig = {
        role: 'racer', dir: life.dir, journal, clock: config.clockBase, holdMs: plan.holdMs, giveUpMs: 5000,
        skipLock: o.racersSkipLock,
      };
      const racerPath = path.join(o.workDir, `racer-${i}.json`);
      fs.writeFileSync(racerPath, JSON.stringify(racerConfig));
      racers.push(new Promise((resolve) => setTimeout(resolve, plan.delayMs)).then(() => runRacer(child, racerPath)));
    });
  };
  const run = await runChild(child, configPath, killAfter, delayMs, startRacers);
  const racerRuns = await Promise.all(racers);
  figures.racingOpens += racerRuns.length;
  figures.racersHeld += racerRuns.filter((racer) => racer.held).length;
  fs.writeFileSync(path.join(o.workDir, 'acks.json'), JSON.stringify({ exit: run.exit, acks: [...run.acks] }));
  figures.runs++;
  life.rounds++;
  const describeRound = `kill, sync ${sync}, round seed ${roundSeed} (harness seed ${o.seed}), ` +
    `${killAfter === undefined ? 'clean run' : `killed ${delayMs} ms after '${killAfter}'`}`;
  const replay = `npm run crashtest -- --mode kill --seed ${o.seed} --sync ${sync} (timing-dependent: the seed fixes the operations, not when the kill lands)`;
  // First: two holders may well have damaged it, and that is the finding.
  const doubles = overlaps(readHolds(journal, new Map(run.killedAt === undefined ? [] : [[run.pid, run.killedAt]])));
  if (doubles.length > 0) {
    figures.doubleHolders += doubles.length;
    figures.fail({ what: `${describeRound}: two processes held the store at once (${racerCount} racers)`, replay, details: doubles });
    return false;
  }
  if (run.killed) figures.kills++;
  else if (run.closed && run.exit === 'exit code 0') figures.cleanExits++;
  else {
    figures.failedOps++;
    figures.fail({ what: `${describeRound}: the child ended with ${run.exit}`, replay, details: run.stderr.split('\n').slice(-15) });
    return false;
  }

  // Regenerate the round's operations, and check what each settled with.
  const workload = new Workload(workloadConfig, roundSeed, { firstIndex: config.firstIndex, clockBase: config.clockBase, state: life.state });
  let maxReported = config.firstIndex - 1;
  for (const index of run.acks.keys()) if (index > maxReported) maxReported = index;
  // A call starts only once an earlier one has reported, so at most `window` calls go unreported.
  const hi = run.closed ? maxReported : Math.max(maxReported, config.firstIndex + run.acks.size + config.window - 1);
  const steps: Step[] = [];
  let lo = config.firstIndex - 1;
  const mismatches: string[] = [];
  while (workload.nextIndex <= hi) {
    const step = workload.next();
    steps.push(step);
    const op = step.op;
    if (op.kind === 'set' || op.kind === 'create' || op.kind === 'update') life.keyOfTag.set(op.tag, op.key);
    if (op.kind === 'batch') for (const sub of op.ops) if (sub.type === 'set') life.keyOfTag.set(sub.tag, sub.key);
    const result = run.acks.get(step.index);
    if (result === undefined) continue;
    if (result !== step.outcome) mismatches.push(`operation ${step.index} (${op.kind}) settled with ${result}, expected ${step.outcome}`);
    else if (step.writes) lo = Math.max(lo, step.index);
  }
  figures.opsAcknowledged += run.acks.size;
  if (mismatches.length > 0) {
    figures.failedOps += mismatches.length;
    figures.fail({ what: `${describeRound}: calls settled other than the model says`, replay, details: mismatches });
    return false;
  }
  // The state every acknowledged write leaves: replay the round's operations up to lo.
  const base = new Workload(workloadConfig, roundSeed, { firstIndex: config.firstIndex, clockBase: config.clockBase, state: life.state });
  while (base.nextIndex <= lo) base.next();
  const nowCheck = workload.nowAt(hi + 1);
  const expectation = {
    base: base.state, lo, pending: steps.slice(lo + 1 - config.firstIndex), nowCheck, keyOfTag: (tag: number) => life.keyOfTag.get(tag),
  };

  for (const racer of racerRuns) {
    if (racer.exit !== 'exit code 0') {
      figures.failedOpens++;
      figures.fail({ what: `${describeRound}: a racing opener ended with ${racer.exit}`, replay, details: racer.stderr.split('\n').slice(-15) });
      return false;
    }
  }

  figures.crashPoints++;
  let store: Store<unknown>;
  try {
    store = await openAfterKill(life.dir, nowCheck, figures);
  } catch (err) {
    figures.failedOpens++;
    figures.fail({ what: `${describeRound}: reopening failed: ${(err as Error).message}`, replay, details: [] });
    return false;
  }
  if (store.recovery.truncated !== undefined) figures.tornTailsCut++;
  const verdict = check(await readAll(store), expectation);
  await store.close();
  figures.add(verdict);
  if (!verdict.ok) {
    figures.fail({ what: `${describeRound}: the reopened store does not match`, replay, details: verdict.details });
    return false;
  }
  let verified = 0;
  for (const index of run.acks.keys()) if (index <= lo) verified++;
  figures.opsVerified += verified;
  life.state = verdict.matchedState!;
  life.nextIndex = hi + 1;
  life.clockBase = nowCheck;
  return true;
}
