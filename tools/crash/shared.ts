/**
 * Shared mode of the crash harness (issue 11): several writer processes share one store
 * (shared-child.ts); the harness SIGKILLs whichever of them owns the store, again and again,
 * starting a fresh writer in its place, while the others go on writing as clients and one of
 * them takes over. At the end of each round the writers close, the store is opened and read, and
 * each writer's journal is checked against it:
 *
 * - lost: a key's last acknowledged write is not what the key holds (and no write of it whose
 *   outcome is unknown explains what it holds);
 * - wrong: a key holds a value no write of it ever carried;
 * - applied twice: a key holds the value of a write older than its last acknowledged one, made by
 *   a call whose outcome was unknown (a call sent again after a failover would do exactly that);
 * - inconsistent: a batch whose outcome was unknown shows in some of its keys and not in others;
 * - read mismatches: a writer read one of its own keys, with no write of it in flight, and did
 *   not get what its last acknowledged write left (read-your-writes, across failovers);
 * - two owners: two writers were the owner at the same time (each notes when it becomes one; a
 *   killed owner's time ends when the kill was sent, a closing one's before it closes);
 * - outcome unknown: calls that rejected LOGKV_OUTCOME_UNKNOWN (or were in flight in a killed
 *   writer), and how many of them turned out present or absent.
 * Any other rejection is a failed operation.
 */
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { open } from '../../lib';
import type { SyncMode } from '../../lib';
import { currentOwner } from '../../lib/lock';
import { Random, freshSeed, seededRandom } from '../../lib/medium/random';
import { buildChild, childEnv } from './build';
import { trackChild } from './children';
import { readAll } from './check';
import { ReportedFailure, figureLines, reportLines } from './figures';
import { SharedChildConfig, SharedOp } from './shared-child';

const REPO = path.resolve(__dirname, '..', '..');

export interface SharedRunOptions {
  seed: number;
  modes: readonly SyncMode[];
  deadline: number;
  rounds: number;
  /** Writer processes at once. @default 4 */
  writers?: number;
  /** How long a round kills owners before the writers close. @default 12000 */
  roundMs?: number;
  workDir: string;
  failDir: string;
  random: Random;
  figures: SharedFigures;
  progress: () => void;
}

export class SharedFigures {
  rounds = 0;
  writerProcesses = 0;
  /** Owners SIGKILLed. */
  kills = 0;
  /** Times a writer became the owner. */
  ownerships = 0;
  opsAcknowledged = 0;
  opsVerified = 0;
  outcomeUnknown = 0;
  unknownPresent = 0;
  unknownAbsent = 0;
  lost = 0;
  wrong = 0;
  appliedTwice = 0;
  inconsistent = 0;
  readMismatches = 0;
  twoOwners = 0;
  failedOps = 0;
  failedRounds = 0;
  readonly failures: ReportedFailure[] = [];

  get failed(): boolean {
    return this.lost + this.wrong + this.appliedTwice + this.inconsistent + this.readMismatches + this.twoOwners +
      this.failedOps + this.failedRounds > 0 || this.failures.length > 0;
  }

  fail(what: string, details: string[]): void {
    if (this.failures.length < 20) this.failures.push({ what, details });
  }

  lines(): string[] {
    return figureLines([
      ['rounds', this.rounds],
      ['writer processes', this.writerProcesses],
      ['owners killed (SIGKILL)', this.kills],
      ['times a writer became the owner', this.ownerships],
      ['operations acknowledged', this.opsAcknowledged],
      ['writes verified', this.opsVerified],
      ['outcome unknown', this.outcomeUnknown],
      ['  of which present', this.unknownPresent],
      ['  of which absent', this.unknownAbsent],
      ['lost', this.lost],
      ['wrong', this.wrong],
      ['applied twice', this.appliedTwice],
      ['inconsistent (unknown batch in part)', this.inconsistent],
      ['read mismatches (read-your-writes)', this.readMismatches],
      ['two owners at once', this.twoOwners],
      ['failed operations', this.failedOps],
      ['failed rounds', this.failedRounds],
    ]);
  }
}

/** One writer incarnation: its config, process and what its journal said. */
interface Writer {
  config: SharedChildConfig;
  process: ChildProcess;
  exited: Promise<void>;
  /** Date.now() when the harness sent it SIGKILL. */
  killedAt?: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function sharedRun(o: SharedRunOptions): Promise<void> {
  fs.mkdirSync(o.workDir, { recursive: true });
  const script = path.join(path.dirname(buildChild(path.join(o.workDir, 'js'))), 'shared-child.js');
  try {
    for (let round = 0; round < o.rounds && Date.now() < o.deadline; round++) {
      const sync = o.modes[round % o.modes.length];
      const dir = path.join(o.workDir, `store-${round}`);
      const ok = await sharedRound(o, script, dir, round, sync);
      if (!ok) {
        o.figures.failedRounds++;
        const kept = path.join(o.failDir, `shared-round-${round}`);
        fs.mkdirSync(o.failDir, { recursive: true });
        fs.cpSync(path.join(o.workDir, `round-${round}`), kept, { recursive: true });
        const failure = o.figures.failures[o.figures.failures.length - 1];
        if (failure !== undefined && failure.kept === undefined) failure.kept = kept;
      }
      fs.rmSync(path.join(o.workDir, `round-${round}`), { recursive: true, force: true });
      o.progress();
    }
  } finally {
    fs.rmSync(o.workDir, { recursive: true, force: true });
  }
}

async function sharedRound(o: SharedRunOptions, script: string, storeDir: string, round: number, sync: SyncMode): Promise<boolean> {
  const { random, figures } = o;
  const roundDir = path.join(o.workDir, `round-${round}`);
  const dir = path.join(roundDir, 'store');
  void storeDir;
  fs.mkdirSync(dir, { recursive: true });
  const writers: Writer[] = [];
  let incarnation = 0;
  const start = (): Writer => {
    const n = incarnation++;
    const config: SharedChildConfig = {
      dir, prefix: `w${n}`, journal: path.join(roundDir, `w${n}.journal`), seed: random.int(2 ** 32), sync,
      window: random.between(1, 12), keys: 10, maxValueChars: random.pick([40, 400, 2000]),
    };
    const configPath = path.join(roundDir, `w${n}.json`);
    fs.writeFileSync(configPath, JSON.stringify(config));
    const child = trackChild(spawn(process.execPath, [script, configPath], { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'], env: childEnv() }));
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr = (stderr + chunk).slice(-2000); });
    const exited = new Promise<void>((resolve) => child.once('exit', (code, signal) => {
      // SIGTERM: a writer started a moment before the round ended, told to stop before it could listen for it.
      if (signal !== 'SIGKILL' && signal !== 'SIGTERM' && code !== 0) figures.fail(`round ${round}: writer ${config.prefix} exited with ${signal ?? code}`, stderr.split('\n').slice(-8));
      resolve();
    }));
    figures.writerProcesses++;
    const writer: Writer = { config, process: child, exited };
    writers.push(writer);
    return writer;
  };
  const count = o.writers ?? 4;
  let live = Array.from({ length: count }, start);
  const roundEnds = Date.now() + (o.roundMs ?? 12_000);
  await sleep(300);
  while (Date.now() < roundEnds && Date.now() < o.deadline) {
    await sleep(random.between(100, 600));
    const owner = currentOwner(dir);
    const victim = live.find((w) => w.process.pid === owner?.pid && w.process.exitCode === null && w.process.signalCode === null);
    if (victim === undefined) continue;
    victim.killedAt = Date.now();
    victim.process.kill('SIGKILL');
    await victim.exited;
    figures.kills++;
    live = live.filter((w) => w !== victim).concat(start());
  }
  // The writers finish: each lets its calls settle and closes the store.
  for (const w of live) w.process.kill('SIGTERM');
  const stopped = await Promise.race([Promise.all(live.map((w) => w.exited)).then(() => true), sleep(60_000).then(() => false)]);
  if (!stopped) {
    for (const w of live) w.process.kill('SIGKILL');
    await Promise.all(live.map((w) => w.exited));
    figures.fail(`round ${round} (sync ${sync}): writers did not close within a minute`, []);
    return false;
  }
  figures.rounds++;
  return verifyRound(o, dir, writers, round, sync);
}

interface Journal {
  ops: Map<number, SharedOp>;
  outcomes: Map<number, string>;
  mismatches: string[];
  ownedFrom: number[];
  ownedUntil: number[];
  closed: boolean;
}

function readJournal(file: string): Journal {
  const journal: Journal = { ops: new Map(), outcomes: new Map(), mismatches: [], ownedFrom: [], ownedUntil: [], closed: false };
  const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  // Each line is written whole with one write before the writer goes on, so a line is a fact;
  // only the text after the last newline can be cut short by a kill.
  for (const line of text.split('\n').slice(0, -1)) {
    if (line === '') continue;
    const space = line.indexOf(' ');
    const tag = space < 0 ? line : line.slice(0, space);
    const rest = space < 0 ? '' : line.slice(space + 1);
    if (tag === 's') {
      const at = rest.indexOf(' ');
      try {
        journal.ops.set(Number(rest.slice(0, at)), JSON.parse(rest.slice(at + 1)) as SharedOp);
      } catch {
        // a torn last line
      }
    } else if (tag === 'a') {
      const [index, outcome] = rest.split(' ');
      journal.outcomes.set(Number(index), outcome);
    } else if (tag === 'x') {
      journal.mismatches.push(rest);
    } else if (tag === 'o') {
      journal.ownedFrom.push(Number(rest));
    } else if (tag === 'c') {
      journal.ownedUntil.push(Number(rest));
    } else if (tag === 'closed') {
      journal.closed = true;
    }
  }
  return journal;
}

/** What op `index` leaves in `key`: a value, or null for absent. */
function effectOn(op: SharedOp, key: string): string | null | undefined {
  if (op.kind === 'set') return op.key === key ? op.value : undefined;
  if (op.kind === 'delete') return op.key === key ? null : undefined;
  if (op.kind !== 'batch') return undefined;
  let effect: string | null | undefined;
  for (const sub of op.ops) if (sub.key === key) effect = sub.type === 'set' ? sub.value : null;
  return effect;
}

/**
 * Outcomes of calls that wrote. A delete that resolved false wrote nothing and promises nothing
 * durable (as in one process: it may answer from an earlier delete still being written).
 */
const APPLIED = new Set(['ok', 'true']);

async function verifyRound(o: SharedRunOptions, dir: string, writers: Writer[], round: number, sync: SyncMode): Promise<boolean> {
  const { figures } = o;
  const before = { ...figures } as Record<string, unknown>;
  const what = `round ${round} (sync ${sync}, seed ${o.seed})`;
  let stored: Map<string, { value: unknown } | { error: string }>;
  try {
    const store = await open(dir, { autoCompact: false });
    stored = await readAll(store);
    await store.close();
  } catch (err) {
    figures.fail(`${what}: opening the store after the round failed: ${(err as Error).message}`, []);
    return false;
  }
  const prefixes = new Set(writers.map((w) => w.config.prefix));
  const details: string[] = [];
  for (const [key, got] of stored) {
    if (!prefixes.has(key.slice(0, key.indexOf(':')))) {
      figures.wrong++;
      details.push(`wrong: ${key} was never written`);
    } else if ('error' in got) {
      figures.wrong++;
      details.push(`wrong: reading ${key} failed with ${got.error}`);
    }
  }
  const owned: Array<[number, number, string]> = [];
  for (const writer of writers) {
    const journal = readJournal(writer.config.journal);
    figures.readMismatches += journal.mismatches.length;
    for (const m of journal.mismatches.slice(0, 5)) details.push(`read mismatch in ${writer.config.prefix}: ${m}`);
    figures.ownerships += journal.ownedFrom.length;
    journal.ownedFrom.forEach((from, i) => {
      const until = journal.ownedUntil[i] ?? writer.killedAt ?? Infinity;
      owned.push([from, until, writer.config.prefix]);
    });
    checkWriter(figures, writer, journal, stored, details);
  }
  owned.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < owned.length; i++) {
    if (owned[i][0] < owned[i - 1][1]) {
      figures.twoOwners++;
      details.push(`two owners: ${owned[i - 1][2]} from ${owned[i - 1][0]} until ${owned[i - 1][1]}, ${owned[i][2]} from ${owned[i][0]}`);
    }
  }
  const changed = ['lost', 'wrong', 'appliedTwice', 'inconsistent', 'readMismatches', 'twoOwners', 'failedOps']
    .some((name) => (figures as unknown as Record<string, number>)[name] !== before[name]);
  if (changed) figures.fail(`${what}: the store does not match the journals`, details);
  return !changed;
}

/** Checks one writer's keys in the final store against its journal. */
function checkWriter(figures: SharedFigures, writer: Writer, journal: Journal, stored: Map<string, { value: unknown } | { error: string }>,
                     details: string[]): void {
  const prefix = writer.config.prefix;
  const indexes = [...journal.ops.keys()].sort((a, b) => a - b);
  const status = new Map<number, 'applied' | 'unknown' | 'failed'>();
  for (const index of indexes) {
    const outcome = journal.outcomes.get(index);
    if (outcome === 'false') {
      figures.opsAcknowledged++;
      status.set(index, 'failed'); // wrote nothing: not a write the store must show
    } else if (outcome !== undefined && APPLIED.has(outcome)) {
      status.set(index, 'applied');
      figures.opsAcknowledged++;
    } else if (outcome === undefined || outcome === 'LOGKV_OUTCOME_UNKNOWN') {
      status.set(index, 'unknown');
      figures.outcomeUnknown++;
    } else if (outcome !== 'false') {
      status.set(index, 'failed');
      figures.failedOps++;
      details.push(`failed: ${prefix} call ${index} (${journal.ops.get(index)!.kind}) rejected ${outcome}`);
    }
  }
  const keys = new Set<string>();
  for (const op of journal.ops.values()) {
    if (op.kind === 'set' || op.kind === 'delete') keys.add(op.key);
    if (op.kind === 'batch') for (const sub of op.ops) keys.add(sub.key);
  }
  /** Unknown calls whose effect shows in at least one key: they were applied. */
  const present = new Set<number>();
  const finalOf = (key: string): string | null => {
    const got = stored.get(key);
    return got === undefined || !('value' in got) ? null : (got.value as string);
  };
  for (const key of keys) {
    const touching = indexes.filter((i) => effectOn(journal.ops.get(i)!, key) !== undefined && status.get(i) !== 'failed');
    let last = -1;
    for (const i of touching) if (status.get(i) === 'applied') last = i;
    const final = finalOf(key);
    const lastEffect = last < 0 ? null : effectOn(journal.ops.get(last)!, key)!;
    // An unknown call after the last acknowledged one may show instead; a value (not an absence) proves it applied.
    const by = touching.find((i) => i > last && status.get(i) === 'unknown' && effectOn(journal.ops.get(i)!, key) === final);
    if (final === lastEffect || by !== undefined) {
      if (final !== lastEffect && final !== null) present.add(by!);
      if (last >= 0) figures.opsVerified++;
      continue;
    }
    const producer = final === null ? undefined : touching.find((i) => effectOn(journal.ops.get(i)!, key) === final);
    if (producer === undefined && final !== null) {
      figures.wrong++;
      details.push(`wrong: ${key} holds a value no write of it carried`);
    } else if (producer !== undefined && status.get(producer) === 'unknown') {
      figures.appliedTwice++;
      details.push(`applied twice: ${key} holds call ${producer}'s value, older than its last acknowledged call ${last}`);
    } else {
      figures.lost++;
      details.push(`lost: ${key} holds ${final === null ? 'nothing' : `call ${producer}'s value`}; its last acknowledged call is ${last}`);
    }
  }
  // An unknown batch is all there or not at all: where it shows, every key it set that no later
  // call changed must hold its value.
  for (const index of indexes) {
    if (status.get(index) !== 'unknown') continue;
    const op = journal.ops.get(index)!;
    if (op.kind === 'sync' || op.kind === 'compact') continue;
    if (!present.has(index)) {
      // A value it left shows it applied; an absence does not (a key the batch sets and then deletes
      // is absent whether or not it applied).
      if (op.kind === 'batch' && op.ops.some((sub) => sub.type === 'set' && finalOf(sub.key) !== null &&
          finalOf(sub.key) === effectOn(op, sub.key))) present.add(index);
    }
    if (present.has(index)) figures.unknownPresent++;
    else figures.unknownAbsent++;
    if (!present.has(index) || op.kind !== 'batch') continue;
    for (const key of new Set(op.ops.map((sub) => sub.key))) {
      // A later call of the key explains what it holds if it was applied, or may have been.
      const later = indexes.some((i) => i > index && effectOn(journal.ops.get(i)!, key) !== undefined &&
        (status.get(i) === 'applied' || present.has(i) || (status.get(i) === 'unknown' && effectOn(journal.ops.get(i)!, key) === finalOf(key))));
      if (!later && finalOf(key) !== effectOn(op, key)) {
        figures.inconsistent++;
        details.push(`inconsistent: ${prefix} batch ${index} shows in some keys but not in ${key}`);
      }
    }
  }
}

export function sharedReport(figures: SharedFigures, seed: number, minutes: number, failDir: string): string[] {
  return reportLines(figures.failures, `logkv crash harness, mode shared, seed ${seed}, ${minutes.toFixed(1)} min`, figures.lines(),
    figures.failed ? `FAIL (seed ${seed}; failing rounds under ${failDir})` : 'PASS');
}

export interface SharedHarnessOptions {
  durationMs?: number;
  rounds?: number;
  seed?: number;
  sync?: SyncMode;
  writers?: number;
  roundMs?: number;
  failDir?: string;
  log?: (line: string) => void;
}

/** Runs shared mode until a deadline or a number of rounds; the figures and the verdict. */
export async function runSharedHarness(options: SharedHarnessOptions): Promise<{ figures: SharedFigures; seed: number; failDir: string; elapsedMs: number }> {
  const seed = (options.seed ?? freshSeed()) >>> 0;
  const failDir = options.failDir ?? path.join(os.tmpdir(), `logkv-crash-shared-${seed}`);
  const figures = new SharedFigures();
  const started = Date.now();
  const log = options.log ?? (() => undefined);
  let lastReport = started;
  const deadline = options.durationMs === undefined ? Infinity : started + options.durationMs;
  const rounds = options.rounds ?? Infinity;
  if (deadline === Infinity && rounds === Infinity) throw new RangeError('give a duration or a number of rounds');
  await sharedRun({
    seed, modes: options.sync === undefined ? ['always', 'interval', 'never'] : [options.sync], deadline, rounds,
    writers: options.writers, roundMs: options.roundMs,
    workDir: path.join(os.tmpdir(), `logkv-crash-shared-work-${seed}-${process.pid}`), failDir, random: seededRandom(seed), figures,
    progress: () => {
      if (Date.now() - lastReport < 10_000) return;
      lastReport = Date.now();
      log(`[${((Date.now() - started) / 1000).toFixed(0)}s] rounds ${figures.rounds}, kills ${figures.kills}, ` +
        `acked ${figures.opsAcknowledged}, unknown ${figures.outcomeUnknown}, failures ${figures.failures.length}`);
    },
  });
  if (figures.failures.length === 0 && fs.existsSync(failDir) && fs.readdirSync(failDir).length === 0) fs.rmdirSync(failDir);
  return { figures, seed, failDir, elapsedMs: Date.now() - started };
}
