/**
 * The harness's tally, and how it is printed: figures last, so a log's tail tells the result.
 * Every mode's report (main.ts, shared.ts) is laid out by reportLines() below.
 */
import type { Verdict } from './check';

export interface Failure {
  /** What failed, in a line. */
  what: string;
  /** How to replay it. */
  replay: string;
  /** Where the failing store was kept, if it was. */
  kept?: string;
  details: string[];
}

/** A failure as a report prints it; shared mode's carry no replay line. */
export type ReportedFailure = Pick<Failure, 'what' | 'kept' | 'details'> & { replay?: string };

/** How many of a failure's details a report prints; the rest are counted. */
const DETAILS_SHOWN = 12;

/** Rows of figures as "name  value" lines, the names padded to one width. */
export function figureLines(rows: ReadonlyArray<readonly [string, number]>): string[] {
  const width = Math.max(...rows.map(([name]) => name.length));
  return rows.map(([name, value]) => `${name.padEnd(width)}  ${value}`);
}

/**
 * A report: each failure (what, its first details, where it was kept, how to replay it), then the
 * `title` line, the figures, and the verdict last, so a log's tail tells the result.
 */
export function reportLines(failures: readonly ReportedFailure[], title: string, figures: string[], verdict: string): string[] {
  const lines: string[] = [];
  for (const failure of failures) {
    lines.push(`FAILURE ${failure.what}`);
    for (const detail of failure.details.slice(0, DETAILS_SHOWN)) lines.push(`    ${detail}`);
    if (failure.details.length > DETAILS_SHOWN) lines.push(`    ... and ${failure.details.length - DETAILS_SHOWN} more`);
    if (failure.kept !== undefined) lines.push(`    kept for inspection: ${failure.kept}`);
    if (failure.replay !== undefined) lines.push(`    replay: ${failure.replay}`);
  }
  lines.push(title, ...figures, verdict);
  return lines;
}

export class Figures {
  /** Power mode: workload runs; kill mode: child processes started. */
  runs = 0;
  /** Power mode: mutating operations at which crash states were taken. */
  boundaries = 0;
  /** Post-crash disks (power) or directories (kill) recovered and checked. */
  crashPoints = 0;
  /** Crashes during a recovery, checked again. */
  nestedCrashes = 0;
  /** Kill mode: children killed with SIGKILL. */
  kills = 0;
  /** Kill mode: children that finished their operations and closed. */
  cleanExits = 0;
  opsAcknowledged = 0;
  opsVerified = 0;
  /** Kill mode: reopens that waited for an ownerless lock to go stale (a child killed mid-lock). */
  lockWaits = 0;
  /** Recoveries that cut a torn tail: shows the crashes hit mid-write. */
  tornTailsCut = 0;
  /** I/O mode: calls the medium failed with an injected EIO or ENOSPC (the workload's and recoveries'). */
  injectedErrors = 0;
  /** I/O mode: of those, failed fdatasyncs that also lost the file's unsynced writes (fsyncgate). */
  lostWritebacks = 0;
  /** I/O mode: calls that rejected with LOGKV_IO or LOGKV_STORE_FULL because of an injected error. */
  rejectedCalls = 0;
  /** I/O mode: stores found refusing writes after a failure (poisoned), then closed and reopened. */
  poisonedStores = 0;
  /** I/O mode: stores closed and reopened in place (poisoned or not), the reopened one checked. */
  reopens = 0;
  /** I/O mode: opens that failed on an injected error and were retried without one. */
  retriedOpens = 0;
  /** I/O mode: calls made while the store was still handling an injected error. */
  lateCalls = 0;
  /** Kill mode: rounds where a second process raced to open the store while the first held it. */
  racingOpens = 0;
  /** Kill mode: of those, racers that got the store (after its holder died or closed). */
  racersHeld = 0;
  /** Kill mode: pairs of processes whose holds of the store overlapped in time. */
  doubleHolders = 0;
  lost = 0;
  wrong = 0;
  resurrected = 0;
  inconsistent = 0;
  failedOpens = 0;
  /** Calls that settled other than the model says (an unexpected rejection, a wrong result). */
  failedOps = 0;
  readonly failures: Failure[] = [];

  add(verdict: Verdict): void {
    this.lost += verdict.lost;
    this.wrong += verdict.wrong;
    this.resurrected += verdict.resurrected;
    this.inconsistent += verdict.inconsistent;
  }

  get failed(): boolean {
    return this.lost + this.wrong + this.resurrected + this.inconsistent + this.failedOpens + this.failedOps + this.doubleHolders > 0 ||
      this.failures.length > 0;
  }

  fail(failure: Failure): void {
    // Keep the first few in full; a broken engine fails thousands of crash points alike.
    if (this.failures.length < 20) this.failures.push(failure);
  }

  /** The figures as "name  value" lines, the verdict last. */
  lines(): string[] {
    return figureLines([
      ['workload runs / child processes', this.runs],
      ['crash boundaries', this.boundaries],
      ['crash points explored', this.crashPoints],
      ['crashes during recovery', this.nestedCrashes],
      ['process kills (SIGKILL)', this.kills],
      ['clean exits', this.cleanExits],
      ['reopens that waited out an ownerless lock', this.lockWaits],
      ['operations acknowledged', this.opsAcknowledged],
      ['operations verified', this.opsVerified],
      ['torn tails cut by recovery', this.tornTailsCut],
      ['injected I/O errors (EIO, ENOSPC)', this.injectedErrors],
      ['  of them fdatasyncs that lost writes', this.lostWritebacks],
      ['calls rejected by an injected error', this.rejectedCalls],
      ['stores poisoned, then reopened', this.poisonedStores],
      ['stores reopened in place and checked', this.reopens],
      ['opens failed by an injected error, retried', this.retriedOpens],
      ['calls made while an error was handled', this.lateCalls],
      ['racing opens (a second process opening)', this.racingOpens],
      ['  of them got the store', this.racersHeld],
      ['lost', this.lost],
      ['wrong', this.wrong],
      ['resurrected', this.resurrected],
      ['inconsistent (torn batch, not a prefix)', this.inconsistent],
      ['failed opens', this.failedOpens],
      ['failed operations', this.failedOps],
      ['double holders', this.doubleHolders],
    ]);
  }
}
