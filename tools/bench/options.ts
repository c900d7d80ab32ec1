/**
 * The benchmark's command line: every option with its default, parsed and validated in one place.
 */
import * as path from 'path';
import {
  RAW_STORE,
  STORE_NAMES,
  WORKLOAD_NAMES,
  type AnyStoreName,
  type WorkloadName,
} from './protocol';

export interface BenchOptions {
  /** Keys per store. @default 1_000_000 */
  n: number;
  /** Repetitions of every measurement; medians and min–max are reported. @default 3 */
  reps: number;
  stores: AnyStoreName[];
  workloads: WorkloadName[];
  /** Seed of every key, value and random order. @default 1 */
  seed: number;
  /** Where the JSON results are written. @default tools/bench/results/bench-<date>.json */
  json: string;
  /** If set, docs-style markdown (report.ts) is written here after the run. */
  md: string | null;
  /** If set, no benchmark runs: the JSON at this path is rendered to `md`. */
  report: string | null;
  /** If set, the ratio chart is also written to this file as SVG. */
  svg: string | null;
  /** Where stores write; must be on the disk being measured (not tmpfs). @default tools/bench/.data */
  dir: string;
  /** Duration of each durable and fdatasync measurement. @default 3000 */
  durableMs: number;
  /** Operation cap of each durable measurement. @default 100000 */
  durableMaxOps: number;
  /** Size the compaction workload grows its store to. @default 1 GiB */
  compactBytes: number;
  /** Baseline put-latency measurement before compaction. @default 2000 */
  compactBaselineMs: number;
  /** A child still running after this long is killed and reported as a timeout. @default 900 */
  timeoutS: number;
  /** Install the peers into tools/bench/node_modules if missing. @default true */
  install: boolean;
  help: boolean;
}

export const USAGE = `usage: npm run bench -- [options]

  --n N                    keys per store (default 1000000)
  --reps R                 repetitions; tables show median (min–max) (default 3)
  --stores a,b,...         ${STORE_NAMES.join(',')} (default all; '${RAW_STORE}' runs fdatasync-raw)
  --workloads a,b,...      ${WORKLOAD_NAMES.join(',')} (default all)
  --json FILE              results JSON (default tools/bench/results/bench-<date>.json)
  --md FILE                also render the report (e.g. docs/benchmarks.md)
  --svg FILE               also write the ratio chart as a standalone SVG file
  --report FILE            render an existing results JSON to --md (default docs/benchmarks.md); runs nothing
  --dir DIR                data directory, on the disk to measure (default tools/bench/.data)
  --seed S                 seed of keys, values and orders (default 1)
  --durable-ms MS          duration of each durable / fdatasync measurement (default 3000)
  --durable-max-ops K      cap on operations of one durable measurement (default 100000)
  --compact-bytes SIZE     store size for the compaction workload, e.g. 64MiB (default 1GiB)
  --compact-baseline-ms MS put latency measured before compacting (default 2000)
  --timeout-s S            kill a child after S seconds and report a timeout (default 900)
  --no-install             do not install missing peers
`;

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1e3, kb: 1e3, kib: 1024, m: 1e6, mb: 1e6, mib: 1024 ** 2, g: 1e9, gb: 1e9, gib: 1024 ** 3 };

/** Parses '1GiB', '64MiB', '500000', '1e6' into bytes. */
export function parseSize(text: string, option: string): number {
  const match = /^([0-9]+(?:\.[0-9]+)?(?:e[0-9]+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = match ? SIZE_UNITS[match[2].toLowerCase()] : undefined;
  if (!match || unit === undefined) throw new UsageError(`${option} must be a size like 64MiB or 1GiB; received '${text}'`);
  return Math.round(Number(match[1]) * unit);
}

function parseCount(text: string, option: string, min: number): number {
  const value = Number(text.replace(/_/g, ''));
  if (!Number.isInteger(value) || value < min) {
    throw new UsageError(`${option} must be an integer ≥ ${min}; received '${text}'`);
  }
  return value;
}

function parseList<T extends string>(text: string, option: string, allowed: readonly T[]): T[] {
  const names = text.split(',').map((name) => name.trim()).filter((name) => name.length > 0);
  for (const name of names) {
    if (!(allowed as readonly string[]).includes(name)) {
      throw new UsageError(`${option} takes names from ${allowed.join(', ')}; received '${name}'`);
    }
  }
  if (names.length === 0) throw new UsageError(`${option} needs at least one name`);
  return [...new Set(names)] as T[];
}

export class UsageError extends Error {
  override name = 'UsageError';
}

/** Parses argv (without node and the script). Throws UsageError with a message naming the option. */
export function parseOptions(argv: readonly string[], benchDir: string, now: Date): BenchOptions {
  const stamp = now.toISOString().replace(/[:.]/g, '-').replace(/-\d+Z$/, 'Z');
  const options: BenchOptions = {
    n: 1_000_000,
    reps: 3,
    stores: [...STORE_NAMES, RAW_STORE],
    workloads: [...WORKLOAD_NAMES],
    seed: 1,
    json: path.join(benchDir, 'results', `bench-${stamp}.json`),
    md: null,
    report: null,
    svg: null,
    dir: path.join(benchDir, '.data'),
    durableMs: 3000,
    durableMaxOps: 100_000,
    compactBytes: 1024 ** 3,
    compactBaselineMs: 2000,
    timeoutS: 900,
    install: true,
    help: false,
  };
  let storesGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string => {
      const next = inline ?? argv[++i];
      if (next === undefined) throw new UsageError(`${flag} needs a value`);
      return next;
    };
    switch (flag) {
      case '--n': options.n = parseCount(value(), flag, 1); break;
      case '--reps': options.reps = parseCount(value(), flag, 1); break;
      case '--stores': options.stores = parseList<AnyStoreName>(value(), flag, [...STORE_NAMES, RAW_STORE]); storesGiven = true; break;
      case '--workloads': options.workloads = parseList(value(), flag, WORKLOAD_NAMES); break;
      case '--json': options.json = path.resolve(value()); break;
      case '--md': options.md = path.resolve(value()); break;
      case '--svg': options.svg = path.resolve(value()); break;
      case '--report': options.report = path.resolve(value()); break;
      case '--dir': options.dir = path.resolve(value()); break;
      case '--seed': options.seed = parseCount(value(), flag, 0); break;
      case '--durable-ms': options.durableMs = parseCount(value(), flag, 1); break;
      case '--durable-max-ops': options.durableMaxOps = parseCount(value(), flag, 1); break;
      case '--compact-bytes': options.compactBytes = parseSize(value(), flag); break;
      case '--compact-baseline-ms': options.compactBaselineMs = parseCount(value(), flag, 1); break;
      case '--timeout-s': options.timeoutS = parseCount(value(), flag, 1); break;
      case '--no-install': options.install = false; break;
      case '--help': case '-h': options.help = true; break;
      default: throw new UsageError(`unknown option '${arg}'`);
    }
  }
  // The raw fdatasync measurement is the physical limit the durable workloads are read against:
  // its pseudo-store comes along whenever the workload runs, even if --stores did not name it.
  if (storesGiven && options.workloads.includes('fdatasync-raw') && !options.stores.includes(RAW_STORE)) {
    options.stores.push(RAW_STORE);
  }
  return options;
}
