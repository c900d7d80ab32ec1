/**
 * What the parent (main.ts) and a child (child.ts) say to each other, and the catalogue of stores
 * and workloads. No I/O here, so that report.ts can use it without loading any store.
 */

export const STORE_NAMES = [
  'logkv',
  'lmdb',
  'classic-level',
  'better-sqlite3',
  'node-persist',
  'keyv-file',
] as const;
export type StoreName = (typeof STORE_NAMES)[number];

/** The pseudo-store of the fdatasync-raw workload: the file system itself. */
export const RAW_STORE = 'fs';
export type AnyStoreName = StoreName | typeof RAW_STORE;

export const WORKLOAD_NAMES = [
  'fill',
  'fill-batch',
  'get-seq1',
  'get-par64',
  'overwrite',
  'durable-1',
  'durable-64',
  'fdatasync-raw',
  'open',
  'memory',
  'disk',
  'compaction',
] as const;
export type WorkloadName = (typeof WORKLOAD_NAMES)[number];

/**
 * A unit of work run in one fresh child process. `open` and `memory` are measured by one job
 * (`reopen`) in a process that did nothing else, on a store that a `prepare` job filled and closed.
 */
export type JobName = Exclude<WorkloadName, 'open' | 'memory'> | 'reopen' | 'prepare';

/** What the parent sends a child, as JSON in the first message on its IPC channel. */
export interface Job {
  job: JobName;
  store: AnyStoreName;
  /** A directory of the store's own, empty for every job but `reopen` (which finds `prepare`'s). */
  dir: string;
  /** Number of keys. */
  n: number;
  seed: number;
  /** How long each durable and fdatasync measurement runs. */
  durableMs: number;
  /** A cap on the operations of one durable measurement, to bound the bytes it writes. */
  durableMaxOps: number;
  /** The size the compaction workload grows its store to before compacting. */
  compactBytes: number;
  /** How long the compaction workload measures puts without compaction, as a baseline. */
  compactBaselineMs: number;
  /** The root of the transpiled library (holds lib/index.js). */
  buildRoot: string;
  /** tools/bench itself: peers are loaded from its node_modules. */
  benchDir: string;
}

export type Better = 'higher' | 'lower';

/** One number a job measured. */
export interface Metric {
  workload: WorkloadName;
  /** What was measured, with its unit, e.g. 'ops/s', 'p99 ms', 'B/key after fill'. */
  metric: string;
  value: number;
  better: Better;
  /** False for numbers that are context rather than a comparison (e.g. GC time before open). */
  compare: boolean;
}

/** Why a store has no number for a workload. */
export type Absence = 'n/a' | 'unavailable' | 'error' | 'timeout';

/** What a child sends back: either metrics, or why there are none. */
export type JobReply =
  | { ok: true; metrics: Metric[]; notes: string[] }
  | { ok: false; status: Absence; message: string };

/** One row of the results: one metric of one workload of one store over all reps. */
export interface ResultRow {
  workload: WorkloadName;
  store: AnyStoreName;
  metric: string;
  better: Better;
  compare: boolean;
  status: 'ok' | Absence;
  /** One value per rep that produced one. */
  values: number[];
  median: number | null;
  min: number | null;
  max: number | null;
  message?: string;
}

/** The whole JSON file the benchmark writes and report.ts reads. */
export interface BenchResults {
  schema: 1;
  date: string;
  /** The command that produced this file, to reproduce it. */
  command: string;
  /** Its arguments after `npm run bench --`. */
  argv: string[];
  options: {
    n: number;
    reps: number;
    seed: number;
    stores: AnyStoreName[];
    workloads: WorkloadName[];
    durableMs: number;
    durableMaxOps: number;
    compactBytes: number;
    compactBaselineMs: number;
    timeoutS: number;
  };
  machine: MachineInfo;
  /** Package name → version ('logkv' carries the git commit too). */
  packages: Record<string, string>;
  /** Store → the settings it ran with, fast and durable. */
  settings: Record<string, { fast: string; durable: string }>;
  rows: ResultRow[];
  notes: string[];
}

export interface MachineInfo {
  cpu: string;
  cores: number;
  ramBytes: number;
  os: string;
  kernel: string;
  node: string;
  /** File system type and device of the data directory. */
  disk: string;
}

/** Which workloads a store does not take part in at all (not even as n/a). */
export function workloadApplies(workload: WorkloadName, store: AnyStoreName): boolean {
  if (workload === 'fdatasync-raw') return store === RAW_STORE;
  if (store === RAW_STORE) return false;
  if (workload === 'compaction') return store === 'logkv';
  return true;
}

/** The jobs that must write N keys before they measure anything (so cannot finish if that cannot). */
export const JOBS_THAT_FILL: ReadonlySet<JobName> = new Set<JobName>([
  'fill', 'fill-batch', 'get-seq1', 'get-par64', 'overwrite', 'reopen', 'prepare', 'disk', 'compaction',
]);

/** The job that measures a workload. */
export function jobOf(workload: WorkloadName): JobName {
  return workload === 'open' || workload === 'memory' ? 'reopen' : workload;
}
