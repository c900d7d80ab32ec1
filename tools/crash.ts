/**
 * The crash-recovery harness, from the command line:
 *
 *   npm run crashtest -- (--minutes N | --duration 30m | --runs N) [--mode power|io|kill|shared] [--seed S]
 *                        [--sync always|interval|never] [--ops N] [--keep DIR] [--stop-on-failure]
 *
 * --mode power  crashes a scripted workload at every write/sync/rename boundary of the in-memory
 *               medium and recovers from every disk a power loss could leave (the ALICE method);
 * --mode io     the same, with the medium failing random calls with EIO or ENOSPC too, in the
 *               workload, in compaction and in recovery;
 * --mode kill   SIGKILLs a workload process on a real directory at random moments, with a second
 *               process racing to open the store in some rounds;
 * --mode shared several writer processes share a store (issue 11); the owner is SIGKILLed again
 *               and again while the others write as clients and take over (tools/crash/shared.ts);
 * no --mode     runs power, io and kill, a third of the time each.
 *
 * It prints its figures last and exits 1 if anything was lost, wrong, resurrected or failed to
 * open, or two processes held the store at once, keeping the failing stores (under --keep, or a
 * directory it names) and printing the seed and a replay command. Stopped by SIGTERM or SIGINT, it
 * SIGKILLs every child process it started (kill and shared mode) and exits with 128 + the signal's
 * number (tools/crash/children.ts).
 */
import { HARNESS_MODES, HarnessMode, SYNC_MODES, report, runHarness } from './crash/main';
import { killChildrenOnSignals } from './crash/children';
import { runSharedHarness, sharedReport } from './crash/shared';
import type { SyncMode } from '../lib';

interface Args {
  minutes?: number;
  mode?: HarnessMode | 'shared';
  seed?: number;
  sync?: SyncMode;
  runs?: number;
  ops?: number;
  keep?: string;
  stopOnFailure?: boolean;
}

function usage(problem: string): never {
  process.stderr.write(`${problem}\nusage: npm run crashtest -- (--minutes N | --duration 30m | --runs N) ` +
    '[--mode power|io|kill|shared] [--seed S] [--sync always|interval|never] [--ops N] [--keep DIR] [--stop-on-failure]\n');
  process.exit(64);
}

function parse(argv: string[]): Args {
  const args: Args = {};
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i];
    if (name === '--stop-on-failure') {
      args.stopOnFailure = true;
      continue;
    }
    const value = argv[++i];
    if (value === undefined) usage(`${name} needs a value`);
    const number = (): number => {
      const n = Number(value);
      if (!Number.isFinite(n) || n < 0) usage(`${name} takes a non-negative number, received ${value}`);
      return n;
    };
    switch (name) {
      case '--minutes': args.minutes = number(); break;
      case '--duration': {
        // 90s, 30m, 2h, or a bare number of minutes.
        const match = /^(\d+(?:\.\d+)?)([smh]?)$/.exec(value);
        if (match === null) usage(`--duration takes a time such as 90s, 30m or 2h, received ${value}`);
        args.minutes = Number(match[1]) * ({ s: 1 / 60, m: 1, h: 60, '': 1 } as Record<string, number>)[match[2]];
        break;
      }
      case '--seed': args.seed = number(); break;
      case '--runs': args.runs = number(); break;
      case '--ops': args.ops = number(); break;
      case '--keep': args.keep = value; break;
      case '--mode':
        if (value !== 'shared' && !HARNESS_MODES.includes(value as HarnessMode)) usage(`--mode is power, io, kill or shared, received ${value}`);
        args.mode = value as HarnessMode | 'shared';
        break;
      case '--sync':
        if (!SYNC_MODES.includes(value as SyncMode)) usage(`--sync is always, interval or never, received ${value}`);
        args.sync = value as SyncMode;
        break;
      default:
        usage(`unknown argument ${name}`);
    }
  }
  if (args.minutes === undefined && args.runs === undefined) usage('give --minutes, --duration or --runs');
  return args;
}

async function main(): Promise<void> {
  const args = parse(process.argv.slice(2));
  killChildrenOnSignals();
  if (args.mode === 'shared') {
    const log = (line: string): void => { process.stderr.write(line + '\n'); };
    const result = await runSharedHarness({
      durationMs: args.minutes === undefined ? undefined : args.minutes * 60_000, rounds: args.runs, seed: args.seed, sync: args.sync,
      failDir: args.keep, log,
    });
    process.stdout.write(sharedReport(result.figures, result.seed, result.elapsedMs / 60_000, result.failDir).join('\n') + '\n');
    process.exitCode = result.figures.failed ? 1 : 0;
    return;
  }
  const modes: readonly HarnessMode[] = args.mode === undefined ? HARNESS_MODES : [args.mode];
  const durationMs = args.minutes === undefined ? undefined : (args.minutes * 60_000) / modes.length;
  const log = (line: string): void => { process.stderr.write(line + '\n'); };
  let failed = false;
  const lines: string[] = [];
  for (const mode of modes) {
    const result = await runHarness({
      mode, durationMs, runs: args.runs, seed: args.seed, sync: args.sync, ops: args.ops, failDir: args.keep, log,
      stopOnFailure: args.stopOnFailure,
    });
    failed ||= result.figures.failed;
    lines.push(...report(result, `${mode}${args.sync ? `, sync ${args.sync}` : ', every sync mode'}`), '');
  }
  process.stdout.write(lines.join('\n'));
  process.exitCode = failed ? 1 : 0;
}

main().catch((err: unknown) => {
  process.stderr.write(`crash harness failed: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(2);
});
