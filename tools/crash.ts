/**
 * The crash-recovery harness, from the command line:
 *
 *   npm run crashtest -- --minutes N [--mode kill|power|shared] [--seed S] [--sync always|interval|never]
 *                        [--runs N] [--ops N] [--keep DIR]
 *
 * --mode power  crashes a scripted workload at every write/sync/rename boundary of the in-memory
 *               medium and recovers from every disk a power loss could leave (the ALICE method);
 * --mode kill   SIGKILLs a workload process on a real directory at random moments;
 * --mode shared several writer processes share a store (issue 11); the owner is SIGKILLed again
 *               and again while the others write as clients and take over (tools/crash/shared.ts);
 * no --mode     runs power and kill, half the time each.
 *
 * It prints its figures last and exits 1 if anything was lost, wrong, resurrected or failed to
 * open, keeping the failing stores (under --keep, or a directory it names) and printing the seed.
 */
import { SYNC_MODES, report, runHarness } from './crash/main';
import { runSharedHarness, sharedReport } from './crash/shared';
import type { SyncMode } from '../lib';

interface Args {
  minutes?: number;
  mode?: 'kill' | 'power' | 'shared';
  seed?: number;
  sync?: SyncMode;
  runs?: number;
  ops?: number;
  keep?: string;
}

function usage(problem: string): never {
  process.stderr.write(`${problem}\nusage: npm run crashtest -- --minutes N [--mode kill|power|shared] [--seed S] ` +
    '[--sync always|interval|never] [--runs N] [--ops N] [--keep DIR]\n');
  process.exit(64);
}

function parse(argv: string[]): Args {
  const args: Args = {};
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i];
    const value = argv[++i];
    if (value === undefined) usage(`${name} needs a value`);
    const number = (): number => {
      const n = Number(value);
      if (!Number.isFinite(n) || n < 0) usage(`${name} takes a non-negative number, received ${value}`);
      return n;
    };
    switch (name) {
      case '--minutes': args.minutes = number(); break;
      case '--seed': args.seed = number(); break;
      case '--runs': args.runs = number(); break;
      case '--ops': args.ops = number(); break;
      case '--keep': args.keep = value; break;
      case '--mode':
        if (value !== 'kill' && value !== 'power' && value !== 'shared') usage(`--mode is kill, power or shared, received ${value}`);
        args.mode = value;
        break;
      case '--sync':
        if (!SYNC_MODES.includes(value as SyncMode)) usage(`--sync is always, interval or never, received ${value}`);
        args.sync = value as SyncMode;
        break;
      default:
        usage(`unknown argument ${name}`);
    }
  }
  if (args.minutes === undefined && args.runs === undefined) usage('give --minutes or --runs');
  return args;
}

async function main(): Promise<void> {
  const args = parse(process.argv.slice(2));
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
  const modes: Array<'kill' | 'power'> = args.mode === undefined ? ['power', 'kill'] : [args.mode as 'kill' | 'power'];
  const durationMs = args.minutes === undefined ? undefined : (args.minutes * 60_000) / modes.length;
  const log = (line: string): void => { process.stderr.write(line + '\n'); };
  let failed = false;
  const lines: string[] = [];
  for (const mode of modes) {
    const result = await runHarness({
      mode, durationMs, runs: args.runs, seed: args.seed, sync: args.sync, ops: args.ops, failDir: args.keep, log,
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
