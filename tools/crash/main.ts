/**
 * The crash harness as a library call: runs power mode, I/O-error mode or kill mode until a
 * deadline or a number of runs, and returns the figures. tools/crash.ts is the command line over it, and
 * spec/crash.spec.ts runs it bounded so `npm test` guards it.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { SyncMode } from '../../lib';
import { freshSeed, seededRandom } from '../../lib/medium/random';
import { Figures, reportLines } from './figures';
import { ioRun } from './io';
import { killRun } from './kill';
import { powerRun } from './power';

export const SYNC_MODES: readonly SyncMode[] = ['always', 'interval', 'never'];
export type HarnessMode = 'power' | 'io' | 'kill';
export const HARNESS_MODES: readonly HarnessMode[] = ['power', 'io', 'kill'];

export interface HarnessOptions {
  mode: HarnessMode;
  /** Stop starting new runs after this many ms. */
  durationMs?: number;
  /** Stop after this many runs (power, io: workloads; kill: child processes). */
  runs?: number;
  seed?: number;
  /** One sync mode, or every mode in turn. */
  sync?: SyncMode;
  /** Power and io mode: operations per workload. @default 200 */
  ops?: number;
  /** Kill mode: the longest a child runs before it is killed. @default 1500 */
  maxKillDelayMs?: number;
  /** Kill mode: the chance that a round has racing openers. @default 0.3 */
  racingChance?: number;
  /** Kill mode: racers skip the lock, to prove the double-holder check works. @default false */
  racersSkipLock?: boolean;
  /** Where failing stores are kept. @default a new directory under the OS temp dir */
  failDir?: string;
  /** Progress lines go here. */
  log?: (line: string) => void;
  /** Stop at the first failure instead of running to the deadline. @default false */
  stopOnFailure?: boolean;
}

export interface HarnessResult {
  figures: Figures;
  seed: number;
  failDir: string;
  elapsedMs: number;
}

export async function runHarness(options: HarnessOptions): Promise<HarnessResult> {
  const seed = (options.seed ?? freshSeed()) >>> 0;
  const failDir = options.failDir ?? path.join(os.tmpdir(), `logkv-crash-${options.mode}-${seed}`);
  const figures = new Figures();
  const log = options.log ?? (() => undefined);
  const started = Date.now();
  const deadline = options.durationMs === undefined ? Infinity : started + options.durationMs;
  const goOn = (): boolean => Date.now() < deadline && !(options.stopOnFailure && figures.failed);
  const maxRuns = options.runs ?? Infinity;
  if (deadline === Infinity && maxRuns === Infinity) throw new RangeError('give a duration or a number of runs');
  const modes = options.sync === undefined ? SYNC_MODES : [options.sync];
  let lastReport = started;
  const progress = (force = false): void => {
    if (!force && Date.now() - lastReport < 10_000) return;
    lastReport = Date.now();
    log(`[${((Date.now() - started) / 1000).toFixed(0)}s] runs ${figures.runs}, crash points ${figures.crashPoints}, ` +
      `kills ${figures.kills}, injected errors ${figures.injectedErrors}, acked ${figures.opsAcknowledged}, ` +
      `verified ${figures.opsVerified}, double holders ${figures.doubleHolders}, failures ${figures.failures.length}`);
  };

  if (options.mode === 'power') {
    // Each run has its own seed, derived from the harness seed, so one failing run replays alone.
    for (let run = 0; run < maxRuns && goOn(); run++) {
      const runSeed = (seed + run) >>> 0;
      const sync = modes[run % modes.length];
      await powerRun({
        seed: runSeed,
        sync,
        ops: options.ops ?? 200,
        failDir,
        figures,
        replay: `npm run crashtest -- --mode power --seed ${runSeed} --sync ${sync} --runs 1${options.ops ? ` --ops ${options.ops}` : ''}`,
      });
      progress();
    }
  } else if (options.mode === 'io') {
    // As power mode: each run replays alone from its own seed.
    for (let run = 0; run < maxRuns && goOn(); run++) {
      const runSeed = (seed + run) >>> 0;
      const sync = modes[run % modes.length];
      await ioRun({
        seed: runSeed,
        sync,
        ops: options.ops ?? 200,
        failDir,
        figures,
        replay: `npm run crashtest -- --mode io --seed ${runSeed} --sync ${sync} --runs 1${options.ops ? ` --ops ${options.ops}` : ''}`,
        // LOGKV_CRASH_TRACE=1 prints every step of the run (medium calls, injected errors, settled calls) to stderr.
        trace: process.env.LOGKV_CRASH_TRACE === '1' ? (line) => process.stderr.write(`${line}\n`) : undefined,
      });
      progress();
    }
  } else {
    await killRun({
      seed,
      modes,
      deadline,
      stop: () => options.stopOnFailure === true && figures.failed,
      runs: maxRuns,
      maxKillDelayMs: options.maxKillDelayMs ?? 1500,
      racingChance: options.racingChance,
      racersSkipLock: options.racersSkipLock,
      workDir: path.join(os.tmpdir(), `logkv-crash-kill-work-${seed}-${process.pid}`),
      failDir,
      figures,
      random: seededRandom(seed),
      progress,
    });
  }
  progress(true);
  if (figures.failures.length === 0 && fs.existsSync(failDir) && fs.readdirSync(failDir).length === 0) fs.rmdirSync(failDir);
  return { figures, seed, failDir, elapsedMs: Date.now() - started };
}

/** The report: failures first, then the figures, then the verdict, last. */
export function report(result: HarnessResult, mode: string): string[] {
  const { figures } = result;
  const summary = `${figures.lost} lost, ${figures.wrong} wrong, ${figures.resurrected} resurrected, ` +
    `${figures.failedOpens} failed opens, ${figures.doubleHolders} double holders`;
  return reportLines(figures.failures,
    `logkv crash harness, mode ${mode}, seed ${result.seed}, ${(result.elapsedMs / 60_000).toFixed(1)} min`, figures.lines(),
    figures.failed ? `FAIL: ${summary} (seed ${result.seed}; failing stores under ${result.failDir})` : `PASS: ${summary}`);
}
