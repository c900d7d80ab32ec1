/**
 * Power mode: the ALICE method. A scripted workload runs on the in-memory medium through the
 * fault-injecting wrapper; at every mutating operation (each write, sync, truncate, create,
 * rename, remove and directory sync, the store's and its recovery's alike) the harness takes
 * the disks a power loss at that moment could leave, recovers a store from each, and checks it:
 *
 * - before the operation: everything unsynced dropped (the worst case); everything kept (a crash
 *   of the process); and random legal mixes: subsets of the unsynced changes, kept in or out of
 *   order, some writes torn at a byte or by sectors;
 * - after a write: that write torn at a random byte, the rest kept or dropped.
 *
 * What must survive depends on the sync mode: after a power loss, in 'always' mode every
 * acknowledged write; in the others, every write a completed sync() covered. When everything
 * unsynced is kept, every acknowledged write must survive, in every mode. Some recoveries are
 * crashed in turn (at each of their own mutating operations), and some recovered stores are
 * written to and reopened, to prove that what recovery repaired stays repaired.
 *
 * A run is deterministic for its seed (in 'interval' mode, up to when the interval timer fires).
 */
import * as fs from 'fs';
import * as path from 'path';
import { isDeepStrictEqual } from 'util';
import { open } from '../../lib';
import type { OpenOptions, Store, SyncMode } from '../../lib';
import { FaultyMedium } from '../../lib/medium/faulty';
import { DROP_UNSYNCED, KEEP_UNSYNCED, MemoryMedium, randomCrash } from '../../lib/medium/memory';
import { Random, seededRandom } from '../../lib/medium/random';
import { Expectation, Recovered, check, readAll } from './check';
import type { Figures } from './figures';
import { ModelState, Step, Workload, WorkloadConfig, runStep } from './workload';

export const DB = '/db';
const CLOCK_BASE = 1_800_000_000_000;
const PROBE_KEY = 'probe/after-recovery';

export interface PowerOptions {
  seed: number;
  sync: SyncMode;
  /** Operations in the workload. */
  ops: number;
  /** Random crash states per boundary, besides "drop all" and "keep all". @default 2 */
  randomStates?: number;
  /** The chance that a recovery is itself crashed at each of its boundaries. @default 0.1 */
  nestedChance?: number;
  /** The chance that a recovered store is written to, and reopened after a power loss. @default 0.25 */
  probeChance?: number;
  /**
   * The chance, per boundary, of also checking a process crash followed by a power loss: the
   * store is reopened on the page cache a killed process leaves, written to, and then the power
   * fails. What the restarted store acknowledged, and what it recovered and served, must survive.
   * @default 0.3
   */
  restartChance?: number;
  /** Where a failing disk is written out for inspection. */
  failDir: string;
  figures: Figures;
  /** How to replay this run, for the failure report. */
  replay: string;
}

interface Snapshot {
  hi: number;
  /** Highest index that must survive a power loss. */
  durable: number;
  /** Highest index that must survive when the page cache survives (everything acknowledged). */
  acked: number;
}

/** Issued steps, the model after each, and what has been acknowledged. */
class Tracker {
  readonly steps: Step[] = [];
  readonly states: ModelState[] = [];
  readonly keyOfTag = new Map<number, string>();
  ackedWriting = -1;
  syncedThrough = -1;
  acked = 0;
  /** Highest index covered by a passing check that required it. */
  verifiedThrough = -1;

  constructor(private readonly sync: SyncMode, private readonly workload: Workload) {}

  issue(): Step {
    const step = this.workload.next();
    this.steps.push(step);
    this.states.push(new Map(this.workload.state));
    const op = step.op;
    if (op.kind === 'set' || op.kind === 'create' || op.kind === 'update') this.keyOfTag.set(op.tag, op.key);
    if (op.kind === 'batch') for (const sub of op.ops) if (sub.type === 'set') this.keyOfTag.set(sub.tag, sub.key);
    return step;
  }

  ack(step: Step): void {
    this.acked++;
    if (step.writes) this.ackedWriting = Math.max(this.ackedWriting, step.index);
    if (step.op.kind === 'sync') this.syncedThrough = Math.max(this.syncedThrough, step.index);
  }

  snapshot(): Snapshot {
    const durable = this.sync === 'always' ? this.ackedWriting : this.syncedThrough;
    return { hi: this.steps.length - 1, durable, acked: this.ackedWriting };
  }

  expectation(lo: number, hi: number): Expectation {
    return {
      base: lo < 0 ? new Map() : this.states[lo],
      lo,
      pending: this.steps.slice(lo + 1, hi + 1),
      nowCheck: this.workload.nowAt(hi + 1),
      keyOfTag: (tag) => this.keyOfTag.get(tag),
    };
  }

  /** Acknowledged operations at or below `index`. */
  ackedThrough(index: number, acked: ReadonlySet<number>): number {
    let n = 0;
    for (const i of acked) if (i <= index) n++;
    return n;
  }
}

export async function powerRun(options: PowerOptions): Promise<void> {
  const runner = new PowerRunner(options);
  await runner.run();
}

class PowerRunner {
  readonly #o: PowerOptions;
  readonly #random: Random;
  readonly #memory = new MemoryMedium();
  readonly #faulty: FaultyMedium;
  readonly #tracker: Tracker;
  readonly #ackedIndexes = new Set<number>();
  readonly #maxSegmentBytes: number;
  #exploring = false;
  #failedHere = 0;
  #now = CLOCK_BASE;

  constructor(options: PowerOptions) {
    this.#o = options;
    this.#random = seededRandom(options.seed);
    this.#faulty = new FaultyMedium(this.#memory, { seed: this.#random.int(2 ** 32) });
    this.#maxSegmentBytes = this.#random.pick([1024, 2048, 4096, 16384]);
    const config: WorkloadConfig = {
      keys: this.#random.between(6, 24),
      stepMs: 10,
      compaction: true,
      pauses: options.sync === 'interval',
      maxValueChars: 1500,
    };
    const workload = new Workload(config, this.#random.int(2 ** 32), { firstIndex: 0, clockBase: CLOCK_BASE });
    this.#tracker = new Tracker(options.sync, workload);
  }

  #storeOptions(extra: OpenOptions): OpenOptions {
    return { maxSegmentBytes: this.#maxSegmentBytes, autoCompact: false, ...extra };
  }

  async run(): Promise<void> {
    const figures = this.#o.figures;
    figures.runs++;
    this.#faulty.onOperation = (event) => this.#boundary(event.phase, event.op);
    const store = await open(DB, this.#storeOptions({ medium: this.#faulty, sync: this.#o.sync, syncIntervalMs: 1, clock: () => this.#now }));
    const compactable = typeof (store as { compact?: unknown }).compact === 'function';
    const window = this.#random.between(1, 8);
    const inflight = new Set<Promise<void>>();
    for (let n = 0; n < this.#o.ops && this.#failedHere === 0; n++) {
      while (inflight.size >= window) await Promise.race(inflight);
      const step = this.#tracker.issue();
      if (step.op.kind === 'pause') {
        await Promise.all(inflight);
        await new Promise((resolve) => setTimeout(resolve, (step.op as { ms: number }).ms));
        this.#ack(step, 'ok');
        continue;
      }
      if (step.op.kind === 'compact' && !compactable) { this.#ack(step, 'ok'); continue; }
      this.#now = step.now;
      const call: Promise<void> = runStep(store, step).then((result) => this.#ack(step, result));
      inflight.add(call);
      void call.finally(() => inflight.delete(call));
    }
    await Promise.all(inflight);
    await store.close();
    this.#faulty.onOperation = undefined;
    // After close() everything is durable, in every mode.
    const hi = this.#tracker.steps.length - 1;
    if (this.#failedHere === 0) await this.#verify(this.#memory.crash(DROP_UNSYNCED), hi, hi, 'after close', true);
    figures.opsAcknowledged += this.#tracker.acked;
    figures.opsVerified += this.#tracker.ackedThrough(this.#tracker.verifiedThrough, this.#ackedIndexes);
  }

  #ack(step: Step, result: string): void {
    if (result !== step.outcome) {
      this.#o.figures.failedOps++;
      this.#failure(`operation ${step.index} (${step.op.kind}) settled with ${result}, expected ${step.outcome}`, []);
      return;
    }
    this.#ackedIndexes.add(step.index);
    this.#tracker.ack(step);
  }

  /** At a boundary: take the possible disks now, synchronously, then recover and check each. */
  async #boundary(phase: 'before' | 'after', op: string): Promise<void> {
    if (this.#exploring || this.#failedHere > 0) return;
    const snap = this.#tracker.snapshot();
    const disks: Array<[string, MemoryMedium, number]> = [];
    if (phase === 'before') {
      disks.push(['everything unsynced dropped', this.#memory.crash(DROP_UNSYNCED), snap.durable]);
      disks.push(['everything unsynced kept', this.#memory.crash(KEEP_UNSYNCED), snap.acked]);
      if (this.#random.chance(this.#o.restartChance ?? 0.3)) {
        disks.push(['process killed, restarted and written to, then power lost', this.#memory.fork(), snap.acked]);
      }
      const count = this.#o.randomStates ?? 2;
      for (let i = 0; i < count; i++) {
        const reorder = this.#random.chance(0.5);
        disks.push([`random ${reorder ? 'reordered' : 'ordered'} state`, this.#memory.crash(randomCrash(this.#random, { reorder })), snap.durable]);
      }
    } else if (op === 'write') {
      disks.push(['last write torn, the rest kept', this.#faulty.diskAfterPowerLoss({ keep: 'all', tearLastWrite: true }), snap.acked]);
      disks.push(['last write torn, the rest dropped', this.#faulty.diskAfterPowerLoss({ tearLastWrite: true }), snap.durable]);
    } else {
      return;
    }
    this.#o.figures.boundaries++;
    this.#exploring = true;
    try {
      for (const [label, disk, lo] of disks) {
        const where = `${label}, ${phase} ${op} #${this.#faulty.mutations}`;
        if (!(await this.#verify(disk, lo, snap.hi, where, true))) break;
      }
    } finally {
      this.#exploring = false;
    }
  }

  /** Recovers a store from `disk` and checks it against operations lo (must) .. hi (may). */
  async #verify(disk: MemoryMedium, lo: number, hi: number, where: string, mayNest: boolean): Promise<boolean> {
    const figures = this.#o.figures;
    figures.crashPoints++;
    const expectation = this.#tracker.expectation(lo, hi);
    const pristine = disk.fork();
    // A disk with unsynced changes is a restart after a kill: it goes on to a power loss below.
    const unsynced = disk.unsynced();
    const restarted = unsynced.dataChanges + unsynced.entryChanges > 0;
    let medium: MemoryMedium | FaultyMedium = disk;
    let nestedFailed = false;
    // (A power loss during a restart's recovery may take what the killed process left unsynced,
    // which the restart's expectation counts on: that case is the power-loss states themselves.)
    if (mayNest && !restarted && this.#random.chance(this.#o.nestedChance ?? 0.1)) {
      // Crash the recovery too, at each of its own boundaries.
      const nested = new FaultyMedium(disk, { seed: this.#random.int(2 ** 32) });
      nested.onOperation = async (event) => {
        if (event.phase !== 'before' || nestedFailed) return;
        figures.nestedCrashes++;
        const again = disk.crash(this.#random.chance(0.5) ? DROP_UNSYNCED : randomCrash(this.#random));
        nestedFailed = !(await this.#verify(again, lo, hi, `${where}, then again during recovery before ${event.op}`, false));
      };
      medium = nested;
    }
    let store: Store<unknown>;
    try {
      store = await open(DB, this.#storeOptions({ medium, clock: () => expectation.nowCheck }));
    } catch (err) {
      figures.failedOpens++;
      this.#failure(`open failed (${where}): ${(err as Error).message}`, [], pristine, expectation);
      return false;
    }
    if (medium instanceof FaultyMedium) medium.onOperation = undefined;
    if (nestedFailed) {
      await store.close().catch(() => undefined);
      return false;
    }
    if (store.recovery.truncated !== undefined) figures.tornTailsCut++;
    const recovered = await readAll(store);
    const verdict = check(recovered, expectation);
    figures.add(verdict);
    if (!verdict.ok) {
      await store.close().catch(() => undefined);
      this.#failure(`check failed (${where})`, verdict.details, pristine, expectation);
      return false;
    }
    this.#tracker.verifiedThrough = Math.max(this.#tracker.verifiedThrough, lo);
    if (restarted || this.#random.chance(this.#o.probeChance ?? 0.25)) {
      return this.#probe(store, disk, recovered, expectation, where, pristine);
    }
    await store.close();
    return true;
  }

  /**
   * Writes to a recovered store and, once the write is acknowledged (synced: these stores run in
   * 'always' mode), cuts the power: a reopen must see the recovered state and the write. This
   * proves recovery's repairs, and whatever it built on, durable.
   */
  async #probe(store: Store<unknown>, disk: MemoryMedium, recovered: Recovered, expectation: Expectation, where: string,
               pristine: MemoryMedium): Promise<boolean> {
    const figures = this.#o.figures;
    try {
      await store.set(PROBE_KEY, 'written after recovery');
      const afterPowerLoss = disk.crash(DROP_UNSYNCED);
      await store.close();
      const reopened = await open(DB, this.#storeOptions({ medium: afterPowerLoss, clock: () => expectation.nowCheck }));
      const again = await readAll(reopened);
      await reopened.close();
      const probe = again.get(PROBE_KEY);
      again.delete(PROBE_KEY);
      if (probe === undefined || !isDeepStrictEqual(probe, { value: 'written after recovery' }) || !isDeepStrictEqual(again, recovered)) {
        figures.wrong++;
        this.#failure(`after a write to the recovered store and a power loss, the store differs (${where})`,
          [`recovered ${recovered.size} keys, after the power loss ${again.size} (+ probe ${probe === undefined ? 'missing' : 'present'})`],
          pristine, expectation);
        return false;
      }
    } catch (err) {
      figures.failedOpens++;
      this.#failure(`writing to a recovered store and reopening failed (${where}): ${(err as Error).message}`, [], pristine, expectation);
      return false;
    }
    return true;
  }

  #failure(what: string, details: string[], disk?: MemoryMedium, expectation?: Expectation): void {
    this.#failedHere++;
    const figures = this.#o.figures;
    let kept: string | undefined;
    if (disk !== undefined) {
      kept = path.join(this.#o.failDir, `power-seed-${this.#o.seed}-${this.#o.sync}-${figures.failures.length + 1}`);
      saveDisk(disk, kept);
      if (expectation !== undefined) {
        fs.writeFileSync(path.join(kept, 'expectation.json'), JSON.stringify({
          what, details, lo: expectation.lo, nowCheck: expectation.nowCheck,
          base: [...expectation.base], pending: expectation.pending,
        }, null, 1));
      }
    }
    figures.fail({ what: `power, sync ${this.#o.sync}, seed ${this.#o.seed}: ${what}`, replay: this.#o.replay, kept, details });
  }
}

/** Writes a memory disk's files under `dir`, so a failing state can be inspected with real tools. */
export function saveDisk(disk: MemoryMedium, dir: string): void {
  for (const file of disk.files()) {
    const target = path.join(dir, 'disk', file);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, disk.readFile(file));
  }
  fs.mkdirSync(dir, { recursive: true });
}
