/**
 * I/O-error mode: power mode's crash exploration, on a medium that also fails random calls.
 *
 * A scripted workload runs on the in-memory medium through the fault-injecting wrapper, which
 * fails each write, fdatasync, truncate, open, rename, remove, directory fsync, read and list
 * with probability `faultRate` (drawn per run), with EIO or ENOSPC; a failing write may leave a
 * prefix of its bytes, and a failing fdatasync may lose the file's unsynced writes for good, as
 * Linux may after a writeback error (docs/durability.md, assumption 5). Compaction runs in the
 * workload, so errors land in it too. Meanwhile, at every mutating operation, the harness takes
 * the disks a power loss there could leave and recovers each, as power mode does; half of those
 * recoveries run with errors injected as well. An open that fails on an injected error is
 * retried without injection (on what the failed attempt left, or after a power loss takes some
 * of it) and must then succeed.
 *
 * After an injected error the runner issues no new call until every call in flight has settled,
 * then asks the store whether it still takes writes (a sync(), with injection paused). A store
 * that refuses (poisoned) has its reads checked, is closed and reopened in place; so is, now and
 * then, one that did not refuse. Each reopened store is checked, and the run goes on from what it
 * holds. What the checker accepts, and why, is in docs/durability.md ("I/O-error mode") and in
 * SessionTracker below.
 *
 * One exception to "no new call": some errors are followed at once by a late call, made while
 * the store is still handling the error (undoing the failed group, repairing the file), if the
 * call is one whose answer and effect do not depend on the keydir (a set, a batch of sets); any
 * other call drawn then waits for the calls in flight to settle. While a late call is about, no
 * crash state is taken (which earlier calls it lands behind is not known until they settle). A
 * late call that the store acknowledges proves the store was not poisoned when it wrote it; so if
 * the store then says it refuses writes, with no error injected since the late call was made,
 * it acknowledged a write after the error that poisoned it, and the run fails.
 *
 * A run is deterministic for its seed (in 'interval' mode, up to when the interval timer fires).
 */
import * as path from 'path';
import { isDeepStrictEqual } from 'util';
import { open } from '../../lib';
import type { OpenOptions, Store, SyncMode } from '../../lib';
import { FaultEvent, FaultyMedium, RandomFaultSource } from '../../lib/medium/faulty';
import { DROP_UNSYNCED, KEEP_UNSYNCED, MemoryMedium, randomCrash } from '../../lib/medium/memory';
import { Random, seededRandom } from '../../lib/medium/random';
import { Expectation, Recovered, check, readAll } from './check';
import type { Figures } from './figures';
import { DB, saveDisk } from './power';
import * as fs from 'fs';
import { ModelState, Step, Workload, WorkloadConfig, applyOp, observe, runStep } from './workload';

const CLOCK_BASE = 1_800_000_000_000;
const PROBE_KEY = 'probe/after-recovery';
/** The codes a call may reject with because of an injected error. */
const IO_CODES: ReadonlySet<string> = new Set(['LOGKV_IO', 'LOGKV_STORE_FULL']);

export interface IoOptions {
  seed: number;
  sync: SyncMode;
  /** Operations in the workload. */
  ops: number;
  /** The chance that each medium call of the workload fails. @default drawn per run, 0.3% to 6% */
  faultRate?: number;
  /** The chance that a recovery from a crash state runs with errors injected too. @default 0.5 */
  recoveryFaultChance?: number;
  /** The chance that each medium call of such a recovery fails. @default drawn per run, 2% to 20% */
  recoveryFaultRate?: number;
  /** Random crash states per boundary, besides "drop all" and "keep all". @default 1 */
  randomStates?: number;
  /** The chance that a recovered store is written to, and reopened after a power loss. @default 0.25 */
  probeChance?: number;
  /** The chance that a store that still takes writes after an error is reopened anyway. @default 0.2 */
  reopenChance?: number;
  /**
   * The chance that an injected error in the workload is followed at once by the workload's next
   * call, made while the store is still handling the error (a late call). @default 0.5
   */
  lateChance?: number;
  /** Where a failing disk is written out for inspection. */
  failDir: string;
  figures: Figures;
  /** How to replay this run, for the failure report. */
  replay: string;
  /** Hears every step of the run (medium calls, injected errors, settled calls, sessions), to study a replay. */
  trace?: (line: string) => void;
}

type Status = 'issued' | 'acked' | 'rejected' | 'undone';

/**
 * The calls of one store session (an open to its close) and what each settled with; the checker's
 * expectation for a crash at any moment of it.
 *
 * A call that rejected with LOGKV_IO or LOGKV_STORE_FULL after an injected error is 'rejected':
 * the store undid its keydir change and cut its bytes back off the file, unless that repair
 * failed too (then the store is poisoned, and the bytes may still be in the file, so recovery can
 * find the write). So a rejected write may be present after a crash, until something proves the
 * repair held: a later write, or a sync(), that resolved (a poisoned store rejects both). It is
 * then 'undone', and must never come back. Because the runner issues nothing new between an
 * injected error and that proof, rejected writes that are not yet undone are always the newest
 * writes of the session, so the states allowed after a crash are still the prefixes of one list.
 */
export class SessionTracker {
  readonly steps: Step[] = [];
  readonly #status: Status[] = [];
  /** The effective state after each step: what the keydir holds once everything issued settles. */
  readonly #effective: ModelState[] = [];
  ackedWriting: number;
  syncedThrough: number;
  acked = 0;
  readonly ackedIndexes: number[] = [];
  verifiedThrough: number;
  /**
   * Set when a failed fdatasync of a segment lost its writes: acknowledged writes a completed
   * sync did not cover may then be gone without a power loss, so even the states that keep the
   * page cache need only hold what was synced.
   */
  doubted = false;

  constructor(readonly first: number, readonly start: ModelState) {
    this.ackedWriting = this.syncedThrough = this.verifiedThrough = first - 1;
  }

  get hi(): number {
    return this.first + this.steps.length - 1;
  }

  issue(step: Step): void {
    this.steps.push(step);
    this.#status.push('issued');
  }

  /** Records how a call settled; says whether that is allowed. */
  settle(step: Step, result: string, explained: boolean): 'acked' | 'rejected' | 'unexpected' {
    const at = step.index - this.first;
    if (result === step.outcome) {
      this.#status[at] = 'acked';
      this.acked++;
      this.ackedIndexes.push(step.index);
      if (step.writes) this.ackedWriting = Math.max(this.ackedWriting, step.index);
      if (step.op.kind === 'sync') this.syncedThrough = Math.max(this.syncedThrough, step.index);
      return 'acked';
    }
    // A compare-and-set that fails its condition writes nothing, but deciding it reads the key's
    // record from the disk, which an injected read error can fail first.
    // A delete of an expired key writes a tombstone if the key is still in the index (Step.mayWrite).
    // A call that writes nothing answers no sooner than the writes queued before it (Writer.settled),
    // and fails with them: it may reject if an earlier write had not settled when it was made.
    if (explained && IO_CODES.has(result) && (step.writes || step.mayWrite === true || step.op.kind === 'compact' ||
        step.op.kind === 'cas' || this.#restsOnFailedWrite(at))) {
      this.#status[at] = 'rejected';
      this.#effective.length = Math.min(this.#effective.length, at);
      return 'rejected';
    }
    return 'unexpected';
  }

  /** Whether a write made before step `at` was rejected, or has not settled yet. */
  #restsOnFailedWrite(at: number): boolean {
    for (let i = 0; i < at; i++) {
      const step = this.steps[i];
      if ((step.writes || step.mayWrite === true || step.op.kind === 'sync') &&
          (this.#status[i] === 'issued' || this.#status[i] === 'rejected')) return true;
    }
    return false;
  }

  /**
   * A write or sync made after the rejections resolved (or wrote: see #boundary): the store was
   * not poisoned, so each repair held, and the writes rejected before index `before` are gone
   * for good.
   */
  proveRepaired(before = Infinity): void {
    for (let i = 0; i < this.#status.length && this.first + i < before; i++) {
      if (this.#status[i] === 'rejected') this.#status[i] = 'undone';
    }
  }

  /** A sync() or close() resolved after every call settled: every acknowledged write is durable. */
  allSynced(): void {
    this.syncedThrough = Math.max(this.syncedThrough, this.ackedWriting);
  }

  wasAcked(step: Step): boolean {
    return this.#status[step.index - this.first] === 'acked';
  }

  #writes(at: number): boolean {
    const status = this.#status[at];
    return status !== 'undone' && this.steps[at].writes;
  }

  /** The state after step `index` once everything issued settles (rejected steps left out). */
  effective(index: number): ModelState {
    const at = index - this.first;
    if (at < 0) return this.start;
    while (this.#effective.length <= at) {
      const i = this.#effective.length;
      const next = new Map(i === 0 ? this.start : this.#effective[i - 1]);
      if (this.#writes(i) && this.#status[i] !== 'rejected') applyOp(next, this.steps[i].op, this.steps[i].now);
      this.#effective.push(next);
    }
    return this.#effective[at];
  }

  /** Must-survive indexes now: after a power loss, and when the page cache survives. */
  snapshot(sync: SyncMode): { hi: number; durable: number; kept: number } {
    const durable = sync === 'always' ? this.ackedWriting : this.syncedThrough;
    return { hi: this.hi, durable, kept: this.doubted ? durable : this.ackedWriting };
  }

  /**
   * Everything through `lo` must be there; of the steps after it, any prefix of those that write
   * may be (calls that wrote nothing are left out: their answers came from the keydir, and
   * applying them to a prefix that holds a rejected write would change what they did).
   */
  expectation(lo: number, hi: number, nowCheck: number, keyOfTag: (tag: number) => string | undefined): Expectation {
    const pending: Step[] = [];
    for (let index = lo + 1; index <= hi; index++) if (this.#writes(index - this.first)) pending.push(this.steps[index - this.first]);
    return { base: this.effective(lo), lo, pending, nowCheck, keyOfTag };
  }
}

export async function ioRun(options: IoOptions): Promise<void> {
  await new IoRunner(options).run();
}

class IoRunner {
  readonly #o: IoOptions;
  readonly #random: Random;
  readonly #memory = new MemoryMedium();
  readonly #faulty: FaultyMedium;
  readonly #faults: RandomFaultSource;
  readonly #workload: Workload;
  readonly #keyOfTag = new Map<number, string>();
  readonly #maxSegmentBytes: number;
  readonly #recoveryFaultRate: number;
  #tracker = new SessionTracker(0, new Map());
  #exploring = false;
  #probing = false;
  /** Set while the store on the workload's medium is being opened: its boundaries are crashes during recovery. */
  #recovering = false;
  #failedHere = 0;
  #now = CLOCK_BASE;
  /** Injected errors on the workload's medium since the last proof that the store takes writes. */
  #faultsSinceProof = 0;
  /** Injected errors since the runner last waited for every call to settle. */
  #faultsInWindow = 0;
  /** Injected errors on the workload's medium so far, to tell what happened after what. */
  #faultSerial = 0;
  /** The workload's calls in flight. */
  readonly #inflight = new Set<Promise<void>>();
  /** The store the workload runs on, while late calls may be made to it. */
  #lateStore: Store<unknown> | undefined;
  #issued = 0;
  /** A call drawn for a late call that cannot be one: issued once the calls in flight settle. */
  #heldStep: Step | undefined;
  /** Late calls made since the calls in flight last settled, and the fault serial each was made at. */
  readonly #lateSteps: Array<{ step: Step; serial: number }> = [];

  constructor(options: IoOptions) {
    this.#o = options;
    this.#random = seededRandom(options.seed);
    this.#faulty = new FaultyMedium(this.#memory, { seed: this.#random.int(2 ** 32) });
    this.#maxSegmentBytes = this.#random.pick([1024, 2048, 4096, 16384]);
    // Rates spread over an order of magnitude: rare errors let long runs build up between them,
    // frequent ones hit recovery and repairs one after another.
    const faultRate = options.faultRate ?? 0.003 * 20 ** this.#random();
    this.#recoveryFaultRate = options.recoveryFaultRate ?? 0.02 * 10 ** this.#random();
    this.#faults = this.#faulty.failRandomly({ rate: faultRate, lostWritesChance: 0.3, seed: this.#random.int(2 ** 32) });
    this.#faulty.onFault = (event) => this.#onFault(event);
    const config: WorkloadConfig = {
      keys: this.#random.between(6, 24),
      stepMs: 10,
      compaction: true,
      pauses: options.sync === 'interval',
      maxValueChars: 1500,
    };
    this.#workload = new Workload(config, this.#random.int(2 ** 32), { firstIndex: 0, clockBase: CLOCK_BASE });
  }

  #storeOptions(extra: OpenOptions): OpenOptions {
    return { maxSegmentBytes: this.#maxSegmentBytes, autoCompact: false, ...extra };
  }

  #sessionOptions(): OpenOptions {
    return this.#storeOptions({ medium: this.#faulty, sync: this.#o.sync, syncIntervalMs: 1, clock: () => this.#now });
  }

  #onFault(event: FaultEvent): void {
    const figures = this.#o.figures;
    this.#o.trace?.(`injected ${event.code} into ${event.op} of ${event.path}${event.lostWrites ? ', losing its writes' : ''}`);
    figures.injectedErrors++;
    this.#faultSerial++;
    this.#faultsSinceProof++;
    this.#faultsInWindow++;
    // One chance per error, so the errors of a repair get late calls too, not only the first one.
    if (this.#lateStore !== undefined && this.#heldStep === undefined && this.#lateSteps.length < 3 &&
        this.#issued < this.#o.ops && this.#random.chance(this.#o.lateChance ?? 0.5)) {
      // After the caller's synchronous code, as an application's next call would come.
      const store = this.#lateStore;
      queueMicrotask(() => this.#issueLate(store));
    }
    if (event.lostWrites) {
      figures.lostWritebacks++;
      // Only a segment holds acknowledged writes; a lost compaction output or hint is discarded.
      if (event.path.endsWith('.seg')) this.#tracker.doubted = true;
    }
  }

  async run(): Promise<void> {
    const figures = this.#o.figures;
    figures.runs++;
    this.#faulty.onOperation = (event) => {
      if (event.phase === 'before') this.#o.trace?.(`#${event.index} ${event.op} ${event.path}${event.to ? ` -> ${event.to}` : ''}${event.bytes !== undefined ? ` (${event.bytes})` : ''}`);
      return this.#boundary(event.phase, event.op);
    };
    let store = await this.#openSession('first open');
    const window = this.#random.between(1, 8);
    const inflight = this.#inflight;
    while (store !== undefined && this.#failedHere === 0 && (this.#issued < this.#o.ops || this.#heldStep !== undefined)) {
      if (this.#faultsInWindow > 0) {
        await this.#settleAll();
        store = await this.#afterErrors(store);
        continue;
      }
      if (inflight.size >= window) {
        await Promise.race(inflight);
        continue;
      }
      const step = this.#heldStep ?? this.#workload.next();
      if (step === this.#heldStep) {
        // Drawn while the model was out of date: what it answers and writes, on the model now.
        this.#heldStep = undefined;
        Object.assign(step, applyOp(this.#workload.state, step.op, step.now));
      } else {
        this.#issued++;
      }
      this.#tracker.issue(step);
      this.#noteTags(step);
      if (step.op.kind === 'pause') {
        await this.#settleAll();
        await new Promise((resolve) => setTimeout(resolve, (step.op as { ms: number }).ms));
        this.#settle(step, 'ok');
        continue;
      }
      this.#call(store, step);
    }
    await this.#settleAll();
    if (store !== undefined && this.#faultsInWindow > 0) store = await this.#afterErrors(store);
    // The last session ends like any other (its store closed and reopened in place, and checked),
    // then the reopened store is closed without errors, and after a power loss must hold it all.
    if (store !== undefined && this.#failedHere === 0) store = await this.#endSession(store, false);
    this.#faulty.onOperation = undefined;
    this.#faults.cancel();
    if (store !== undefined) {
      // After a failure the store may be one that refuses writes, and its close() may say so.
      const closing = await store.close().then(() => undefined, (err: unknown) => err);
      const hi = this.#tracker.hi;
      if (this.#failedHere === 0 && closing !== undefined) {
        this.#o.figures.failedOps++;
        this.#failure(`close() failed with no error injected: ${describe(closing)}`, []);
      } else if (this.#failedHere === 0) {
        await this.#verify(this.#memory.crash(DROP_UNSYNCED), hi, hi, 'after close', false);
      }
    }
    this.#tally();
  }

  /** Makes the call of `step`, settling it when it settles. */
  #call(store: Store<unknown>, step: Step): void {
    this.#now = step.now;
    const call: Promise<void> = runStep(store, step).then((result) => this.#settle(step, result));
    this.#inflight.add(call);
    this.#lateStore = store;
    void call.finally(() => this.#inflight.delete(call));
  }

  /** Waits until every call in flight, late ones included, has settled; then no late call may come. */
  async #settleAll(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.all([...this.#inflight]);
    this.#lateStore = undefined;
  }

  /** Right after an injected error: the workload's next call, if its answer does not depend on the keydir. */
  #issueLate(store: Store<unknown>): void {
    if (this.#lateStore !== store || this.#failedHere > 0) return;
    const step = this.#workload.next();
    this.#issued++;
    const op = step.op;
    const blind = op.kind === 'set' || (op.kind === 'batch' && op.ops.every((sub) => sub.type === 'set'));
    if (!blind) {
      this.#heldStep = step;
      return;
    }
    this.#o.trace?.(`late call: step ${step.index} ${op.kind}`);
    this.#o.figures.lateCalls++;
    this.#lateSteps.push({ step, serial: this.#faultSerial });
    this.#tracker.issue(step);
    this.#noteTags(step);
    this.#call(store, step);
  }

  #noteTags(step: Step): void {
    const op = step.op;
    if (op.kind === 'set' || op.kind === 'create' || op.kind === 'update') this.#keyOfTag.set(op.tag, op.key);
    if (op.kind === 'batch') for (const sub of op.ops) if (sub.type === 'set') this.#keyOfTag.set(sub.tag, sub.key);
  }

  #settle(step: Step, result: string): void {
    const verdict = this.#tracker.settle(step, result, this.#faultsSinceProof > 0);
    this.#o.trace?.(`step ${step.index} ${step.op.kind}${'key' in step.op ? ` ${step.op.key}` : ''}: ${result} (${verdict})`);
    if (verdict === 'rejected') this.#o.figures.rejectedCalls++;
    if (verdict === 'unexpected') {
      this.#o.figures.failedOps++;
      this.#failure(`operation ${step.index} (${step.op.kind}) settled with ${result}, expected ${step.outcome}` +
        (this.#faultsSinceProof > 0 ? '' : ' (no injected error explains a rejection)'), []);
    } else if (verdict === 'acked' && step.writes && step.op.kind !== 'compact') {
      // A write that resolved proves the store was not poisoned when it was made, which was after
      // every earlier rejection (the runner issues nothing new until the calls in flight settle).
      this.#tracker.proveRepaired(step.index);
    }
  }

  /** Adds the session's acknowledged and verified calls to the figures. */
  #tally(): void {
    const figures = this.#o.figures;
    const tracker = this.#tracker;
    figures.opsAcknowledged += tracker.acked;
    figures.opsVerified += tracker.ackedIndexes.filter((index) => index <= tracker.verifiedThrough).length;
  }

  /**
   * Every call has settled after an injected error. The workload's model becomes what the store
   * holds (rejected writes undone); then a sync() with injection paused tells whether the store
   * still takes writes. If it does not (or now and then anyway), the session ends.
   */
  async #afterErrors(store: Store<unknown>): Promise<Store<unknown> | undefined> {
    this.#faultsInWindow = 0;
    this.#resetModel(this.#tracker.effective(this.#tracker.hi));
    const late = this.#lateSteps.splice(0);
    if (this.#failedHere > 0) return store;
    this.#faults.paused = true;
    this.#probing = true;
    const takesWrites = await store.sync().then(() => true, () => false);
    this.#o.trace?.(`asked whether the store takes writes: ${takesWrites ? 'yes' : 'no, poisoned'}`);
    if (!takesWrites) {
      // A late call acknowledged with no error injected since it was made: the store took it
      // while poisoned, or after the error that poisoned it.
      const taken = late.filter(({ step, serial }) => serial === this.#faultSerial && this.#tracker.wasAcked(step));
      if (taken.length > 0) {
        this.#o.figures.failedOps += taken.length;
        this.#failure(`the store acknowledged call ${taken.map(({ step }) => step.index).join(', ')}, made after an ` +
          'injected error, yet refuses writes since, with no error injected after it', []);
        this.#probing = false;
        this.#faults.paused = false;
        return undefined;
      }
    }
    this.#probing = false;
    this.#faults.paused = false;
    if (takesWrites) {
      this.#tracker.proveRepaired();
      this.#tracker.allSynced();
      this.#faultsSinceProof = 0;
      if (!this.#random.chance(this.#o.reopenChance ?? 0.2)) return store;
    } else {
      this.#o.figures.poisonedStores++;
    }
    return this.#endSession(store, !takesWrites);
  }

  #resetModel(state: ModelState): void {
    this.#workload.state.clear();
    for (const [key, entry] of state) this.#workload.state.set(key, entry);
  }

  /**
   * Closes the session's store (with errors injected) and reopens it in place: what a process
   * restart finds, the page cache intact. A poisoned store's reads are checked first: they must
   * still answer with what was acknowledged.
   */
  async #endSession(store: Store<unknown>, poisoned: boolean): Promise<Store<unknown> | undefined> {
    const figures = this.#o.figures;
    if (poisoned && !(await this.#checkReads(store))) return undefined;
    const closed = await store.close().then(() => true, () => false);
    this.#o.trace?.(`closed the session's store: ${closed ? 'resolved' : 'rejected'}; reopening`);
    if (closed) this.#tracker.allSynced();
    figures.reopens++;
    const hi = this.#tracker.hi;
    this.#now = this.#workload.nowAt(hi + 1);
    const pristine = this.#memory.fork();
    const reopened = await this.#openSession(`reopen after ${poisoned ? 'the store was poisoned' : 'errors'}`, pristine);
    if (reopened === undefined) return undefined;
    // Taken after the open: a failed fdatasync during its recovery may have lost writes too.
    const snap = this.#tracker.snapshot(this.#o.sync);
    const expectation = this.#tracker.expectation(snap.kept, hi, this.#now, this.#keyOf);
    this.#faults.paused = true;
    const recovered = await readAll(reopened);
    this.#faults.paused = false;
    const verdict = check(recovered, expectation);
    figures.crashPoints++;
    figures.add(verdict);
    if (!verdict.ok) {
      await reopened.close().catch(() => undefined);
      this.#failure(`the store reopened after ${poisoned ? 'it was poisoned' : 'errors'} does not match`, verdict.details, pristine, expectation);
      return undefined;
    }
    this.#tracker.verifiedThrough = Math.max(this.#tracker.verifiedThrough, snap.kept);
    this.#tally();
    // The next session starts from what the store holds, which its recovery made durable.
    this.#tracker = new SessionTracker(hi + 1, verdict.matchedState!);
    this.#resetModel(verdict.matchedState!);
    return reopened;
  }

  /** A poisoned store still serves reads: each must be what was acknowledged, or (after lost writebacks) an error. */
  async #checkReads(store: Store<unknown>): Promise<boolean> {
    this.#faults.paused = true;
    const got = await readAll(store);
    this.#faults.paused = false;
    const want = observe(this.#tracker.effective(this.#tracker.hi), this.#now);
    const details: string[] = [];
    for (const key of new Set([...got.keys(), ...want.keys()])) {
      const value = got.get(key);
      const expected = want.get(key);
      if (value !== undefined && 'error' in value && this.#tracker.doubted) continue;
      if (value === undefined || expected === undefined || !('value' in value) || !isDeepStrictEqual(value.value, expected.value)) {
        details.push(`${key}: read ${value === undefined ? 'nothing' : 'error' in value ? value.error : 'a value'}; ` +
          `expected ${expected === undefined ? 'absent' : `tag ${expected.tag}`}`);
      }
    }
    if (details.length === 0) return true;
    this.#o.figures.wrong += details.length;
    this.#failure('a store that refused writes after an error read other than what was acknowledged', details);
    return false;
  }

  /** Opens the store on the workload's medium, errors injected; an open an injected error failed is retried without. */
  async #openSession(what: string, pristine?: MemoryMedium): Promise<Store<unknown> | undefined> {
    const figures = this.#o.figures;
    const faultsBefore = figures.injectedErrors;
    // An error injected into an open that went on anyway explains no later rejection.
    const opened = (store: Store<unknown>): Store<unknown> => {
      this.#recovering = false;
      this.#faultsSinceProof = 0;
      this.#faultsInWindow = 0;
      return store;
    };
    this.#recovering = true;
    try {
      return opened(await open(DB, this.#sessionOptions()));
    } catch (err) {
      if (figures.injectedErrors === faultsBefore) {
        this.#recovering = false;
        figures.failedOpens++;
        this.#failure(`${what}: open failed with no injected error: ${describe(err)}`, [], pristine);
        return undefined;
      }
      figures.retriedOpens++;
    }
    this.#faults.paused = true;
    try {
      return opened(await open(DB, this.#sessionOptions()));
    } catch (err) {
      figures.failedOpens++;
      this.#failure(`${what}: open failed without injected errors, after one failed with them: ${describe(err)}`, [], pristine);
      return undefined;
    } finally {
      this.#faults.paused = false;
      this.#recovering = false;
    }
  }

  #keyOf = (tag: number): string | undefined => this.#keyOfTag.get(tag);

  /** At a boundary: take the possible disks now, synchronously, then recover and check each. */
  async #boundary(phase: 'before' | 'after', op: string): Promise<void> {
    if (this.#exploring || this.#failedHere > 0) return;
    // Which earlier calls a late call lands behind is known only once they settle.
    if (this.#lateSteps.length > 0) return;
    // The store writes while it was asked whether it takes writes: it is not poisoned.
    if (this.#probing) this.#tracker.proveRepaired();
    const snap = this.#tracker.snapshot(this.#o.sync);
    const disks: Array<[string, MemoryMedium, number]> = [];
    if (phase === 'before') {
      disks.push(['everything unsynced dropped', this.#memory.crash(DROP_UNSYNCED), snap.durable]);
      disks.push(['everything unsynced kept', this.#memory.crash(KEEP_UNSYNCED), snap.kept]);
      const count = this.#o.randomStates ?? 1;
      for (let i = 0; i < count; i++) {
        const reorder = this.#random.chance(0.5);
        disks.push([`random ${reorder ? 'reordered' : 'ordered'} state`, this.#memory.crash(randomCrash(this.#random, { reorder })), snap.durable]);
      }
    } else if (op === 'write') {
      disks.push(['last write torn, the rest kept', this.#faulty.diskAfterPowerLoss({ keep: 'all', tearLastWrite: true }), snap.kept]);
      disks.push(['last write torn, the rest dropped', this.#faulty.diskAfterPowerLoss({ tearLastWrite: true }), snap.durable]);
    } else {
      return;
    }
    this.#o.figures.boundaries++;
    if (this.#recovering) this.#o.figures.nestedCrashes++;
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

  /**
   * Recovers a store from `disk`, perhaps with errors injected into the recovery (a failed open
   * is then retried without them, on what it left or after a power loss takes some of that), and
   * checks it against operations lo (must) .. hi (may).
   */
  async #verify(disk: MemoryMedium, lo: number, hi: number, where: string, mayInject: boolean): Promise<boolean> {
    const figures = this.#o.figures;
    figures.crashPoints++;
    const expectation = this.#tracker.expectation(lo, hi, this.#workload.nowAt(hi + 1), this.#keyOf);
    const pristine = disk.fork();
    const recovery = await this.#recover(disk, mayInject, where, expectation, pristine);
    if (recovery === undefined) return false;
    const { store, medium, injected, story } = recovery;
    if (store.recovery.truncated !== undefined) figures.tornTailsCut++;
    const recovered = await readAll(store);
    const verdict = check(recovered, expectation);
    figures.add(verdict);
    if (!verdict.ok) {
      await store.close().catch(() => undefined);
      this.#failure(`check failed (${where}${injected > 0 ? `, recovery with ${injected} injected errors` : ''})`,
        [...story, ...verdict.details], pristine, expectation);
      return false;
    }
    this.#tracker.verifiedThrough = Math.max(this.#tracker.verifiedThrough, lo);
    // A recovery that met errors and went on is always probed: its repairs must be durable.
    if (injected > 0 || this.#random.chance(this.#o.probeChance ?? 0.25)) {
      return this.#probe(store, medium, recovered, expectation, where, pristine);
    }
    const closing = await store.close().then(() => undefined, (err: unknown) => err);
    if (closing !== undefined) {
      figures.failedOps++;
      this.#failure(`closing a recovered store failed (${where}): ${describe(closing)}`, [], pristine, expectation);
      return false;
    }
    return true;
  }

  /**
   * Opens a store on `disk`, perhaps with errors injected into its recovery. An open an injected
   * error failed is retried without injection, on what the failed attempt left or after a power
   * loss takes some of that; an open that fails otherwise is a failure (and undefined returned).
   * Says which medium the store ended up on, how many errors its recovery met, and what happened.
   */
  async #recover(disk: MemoryMedium, mayInject: boolean, where: string, expectation: Expectation, pristine: MemoryMedium):
      Promise<{ store: Store<unknown>; medium: MemoryMedium; injected: number; story: string[] } | undefined> {
    const figures = this.#o.figures;
    const options = (medium: MemoryMedium | FaultyMedium): OpenOptions => this.#storeOptions({ medium, clock: () => expectation.nowCheck });
    const story: string[] = [];
    let injected = 0;
    let lastError: unknown;
    const inject = mayInject && this.#random.chance(this.#o.recoveryFaultChance ?? 0.5);
    if (inject) {
      const faulty = new FaultyMedium(disk, { seed: this.#random.int(2 ** 32) });
      faulty.onFault = (event) => {
        injected++;
        story.push(`recovery: injected ${event.code} into ${event.op} of ${event.path}${event.lostWrites ? ', losing its writes' : ''}`);
        figures.injectedErrors++;
        if (event.lostWrites) figures.lostWritebacks++;
      };
      const source = faulty.failRandomly({ rate: this.#recoveryFaultRate, lostWritesChance: 0.3, seed: this.#random.int(2 ** 32) });
      try {
        return { store: await open(DB, options(faulty)), medium: disk, injected, story };
      } catch (err) {
        lastError = err;
      } finally {
        source.cancel();
      }
      if (injected > 0) {
        figures.retriedOpens++;
        const powerLoss = this.#random.chance(0.5);
        const medium = powerLoss ? disk.crash(randomCrash(this.#random)) : disk;
        story.push(`recovery: open failed with ${describe(lastError)}; retried without errors${powerLoss ? ' after a power loss' : ''}`);
        try {
          return { store: await open(DB, options(medium)), medium, injected, story };
        } catch (err) {
          figures.failedOpens++;
          this.#failure(`open failed without injected errors after one failed with them (${where}): ${describe(err)}`,
            story, pristine, expectation);
          return undefined;
        }
      }
    } else {
      try {
        return { store: await open(DB, options(disk)), medium: disk, injected, story };
      } catch (err) {
        lastError = err;
      }
    }
    figures.failedOpens++;
    this.#failure(`open failed (${inject ? 'no error was injected into it; ' : ''}${where}): ${describe(lastError)}`,
      story, pristine, expectation);
    return undefined;
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
      this.#failure(`writing to a recovered store and reopening failed (${where}): ${describe(err)}`, [], pristine, expectation);
      return false;
    }
    return true;
  }

  #failure(what: string, details: string[], disk?: MemoryMedium, expectation?: Expectation): void {
    this.#failedHere++;
    const figures = this.#o.figures;
    let kept: string | undefined;
    if (disk !== undefined) {
      kept = path.join(this.#o.failDir, `io-seed-${this.#o.seed}-${this.#o.sync}-${figures.failures.length + 1}`);
      saveDisk(disk, kept);
      if (expectation !== undefined) {
        fs.writeFileSync(path.join(kept, 'expectation.json'), JSON.stringify({
          what, details, lo: expectation.lo, nowCheck: expectation.nowCheck,
          base: [...expectation.base], pending: expectation.pending,
        }, null, 1));
      }
    }
    figures.fail({ what: `io, sync ${this.#o.sync}, seed ${this.#o.seed}: ${what}`, replay: this.#o.replay, kept, details });
  }
}

function describe(err: unknown): string {
  const code = (err as { code?: unknown })?.code;
  return `${typeof code === 'string' ? `${code}: ` : ''}${(err as Error)?.message ?? String(err)}`;
}
