/**
 * logkv's benchmark: logkv against lmdb, classic-level, better-sqlite3, node-persist and keyv-file
 * on the same keys, values and orders. Prints markdown tables on stdout, progress on stderr, and
 * writes the numbers as JSON for report.ts (docs/benchmarks.md).
 *
 *   npm run bench -- [--n 1000000] [--stores logkv,lmdb,...] [--workloads ...] [--reps 3] [--json out.json]
 *   npm run bench -- --report out.json [--md docs/benchmarks.md]
 *
 * Each measurement runs in a fresh child process (child.ts) so that one store's heap, caches and
 * native threads never weigh on another's numbers; reps interleave the stores, each rep starting
 * with a different one, so that drift in the machine spreads over all of them.
 */
import { fork, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { buildForChildren, type Build } from './build';
import { warmPageCache } from './diskusage';
import { renderSummary, shellQuote } from './format';
import { ensurePeers, installedVersions } from './install';
import { logkvVersion, machineInfo } from './machine';
import { parseOptions, UsageError, USAGE, type BenchOptions } from './options';
import {
  jobOf,
  JOBS_THAT_FILL,
  RAW_STORE,
  workloadApplies,
  type Absence,
  type AnyStoreName,
  type BenchResults,
  type Job,
  type JobName,
  type JobReply,
  type Metric,
  type ResultRow,
  type WorkloadName,
} from './protocol';
import { writeReport } from './report';
import { spread } from './stats';
import { DRIVERS, logkvEntry } from './stores';

const benchDir = __dirname;
const repoRoot = path.resolve(benchDir, '..', '..');

function log(line: string): void {
  process.stderr.write(line + '\n');
}

/** The child running now, so that an interrupt can end it. */
let currentChild: ChildProcess | null = null;

/** Runs one job in a fresh `node --expose-gc` child and waits for its reply (or its death). */
function runChild(build: Build, job: Job, timeoutS: number): Promise<JobReply> {
  return new Promise((resolve) => {
    const child = fork(build.childScript, [], {
      cwd: repoRoot,
      // A generous heap limit, the same for every store, so that no store fails at 1M keys on a
      // default limit; --expose-gc for the memory workload's timed full collections.
      execArgv: ['--expose-gc', '--max-old-space-size=8192'],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    currentChild = child;
    let output = '';
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString()).slice(-4000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    let settled = false;
    const settle = (reply: JobReply): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(reply);
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      settle({ ok: false, status: 'timeout', message: `did not finish within ${timeoutS} s` });
    }, timeoutS * 1000);
    child.on('message', (reply: JobReply) => settle(reply));
    child.on('exit', (code, signal) => {
      currentChild = null;
      settle({ ok: false, status: 'error', message: `child exited (${signal ?? code}) without replying:\n${output}` });
    });
    child.send(job);
  });
}

/** Samples of one (workload, store, metric) over the reps. */
interface Samples {
  first: Metric;
  store: AnyStoreName;
  values: number[];
}

/** The workloads a job measures: `reopen` measures both open and memory. */
function workloadsOfJob(jobName: JobName, selected: readonly WorkloadName[]): WorkloadName[] {
  return selected.filter((workload) => jobOf(workload) === jobName);
}

async function runAll(options: BenchOptions, build: Build, available: (store: AnyStoreName) => string | null): Promise<ResultRow[]> {
  const samples = new Map<string, Samples>();
  const absent = new Map<string, { status: Absence; message: string; workloads: WorkloadName[] }>();
  const jobNames = [...new Set(options.workloads.map(jobOf))];
  // A store that could not write N keys within the timeout once will not in the next job either:
  // the jobs that need that are skipped rather than each waiting out the timeout again.
  const fillTimedOut = new Map<AnyStoreName, string>();

  for (const jobName of jobNames) {
    const workloads = workloadsOfJob(jobName, options.workloads);
    const stores = options.stores.filter((store) => workloads.some((workload) => workloadApplies(workload, store)));
    for (let rep = 0; rep < options.reps; rep++) {
      const order = stores.map((_, i) => stores[(i + rep) % stores.length]);
      for (const store of order) {
        const absentKey = `${jobName}|${store}`;
        if (absent.has(absentKey)) continue; // A timeout, an error or n/a is not tried again.
        const reason = available(store);
        const noDurable = store !== RAW_STORE && jobName.startsWith('durable') ? DRIVERS[store].noDurableMode : null;
        let reply: JobReply;
        const timedOutIn = JOBS_THAT_FILL.has(jobName) ? fillTimedOut.get(store) : undefined;
        if (reason !== null) {
          reply = { ok: false, status: 'unavailable', message: reason };
        } else if (noDurable !== null) {
          reply = { ok: false, status: 'n/a', message: noDurable };
        } else if (timedOutIn !== undefined) {
          reply = { ok: false, status: 'timeout', message: `skipped: writing ${options.n} keys already timed out in ${timedOutIn}` };
        } else {
          reply = await measure(options, build, jobName, store, rep);
          if (!reply.ok && reply.status === 'timeout' && JOBS_THAT_FILL.has(jobName)) fillTimedOut.set(store, jobName);
        }
        if (reply.ok) {
          // A job may measure more workloads than were asked for (reopen: open and memory).
          for (const m of reply.metrics.filter((metric) => options.workloads.includes(metric.workload))) {
            const key = `${m.workload}|${store}|${m.metric}`;
            const entry = samples.get(key) ?? { first: m, store, values: [] };
            entry.values.push(m.value);
            samples.set(key, entry);
          }
        } else {
          absent.set(absentKey, { status: reply.status, message: reply.message, workloads });
          log(`  ${reply.status}: ${reply.message.split('\n')[0]}`);
        }
      }
    }
  }
  return toRows(samples, absent, options);
}

/** Runs a job (and, for `reopen`, the `prepare` job it needs) for one store and rep. */
async function measure(options: BenchOptions, build: Build, jobName: JobName, store: AnyStoreName, rep: number): Promise<JobReply> {
  const dir = path.join(options.dir, `${store}-${jobName}-r${rep + 1}`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const job: Job = {
    job: jobName,
    store,
    dir,
    n: options.n,
    seed: options.seed,
    durableMs: options.durableMs,
    durableMaxOps: options.durableMaxOps,
    compactBytes: options.compactBytes,
    compactBaselineMs: options.compactBaselineMs,
    buildRoot: build.root,
    benchDir,
  };
  const started = Date.now();
  try {
    if (jobName === 'reopen') {
      const prepared = await runChild(build, { ...job, job: 'prepare' }, options.timeoutS);
      if (!prepared.ok) return prepared;
      // "Warm page cache": the store's files are read once, so that open measures the store, not the disk.
      warmPageCache(dir);
    }
    const reply = await runChild(build, job, options.timeoutS);
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    const summary = reply.ok ? reply.metrics.map((m) => `${m.metric} ${Number(m.value.toPrecision(4))}`).join(', ') : reply.status;
    log(`[rep ${rep + 1}/${options.reps}] ${jobName.padEnd(13)} ${store.padEnd(14)} ${summary} (${seconds} s)`);
    return reply;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function toRows(samples: Map<string, Samples>, absent: Map<string, { status: Absence; message: string; workloads: WorkloadName[] }>, options: BenchOptions): ResultRow[] {
  const rows: ResultRow[] = [];
  for (const { first, store, values } of samples.values()) {
    const { median, min, max } = spread(values);
    rows.push({ workload: first.workload, store, metric: first.metric, better: first.better, compare: first.compare, status: 'ok', values, median, min, max });
  }
  // A store with no numbers gets a row, saying why, for every metric another store has.
  for (const [key, { status, message, workloads }] of absent) {
    const store = key.slice(key.indexOf('|') + 1) as AnyStoreName;
    for (const workload of workloads) {
      if (!workloadApplies(workload, store)) continue;
      const models = rows.filter((row) => row.workload === workload && row.status === 'ok' && row.store !== RAW_STORE);
      const metrics = [...new Map(models.map((row) => [row.metric, row])).values()];
      const templates = metrics.length > 0 ? metrics : [{ metric: '–', better: 'higher' as const, compare: false }];
      for (const template of templates) {
        if (rows.some((row) => row.workload === workload && row.store === store && row.metric === template.metric)) continue;
        rows.push({ workload, store, metric: template.metric, better: template.better, compare: template.compare, status, values: [], median: null, min: null, max: null, message });
      }
    }
  }
  const storeOrder = (store: AnyStoreName): number => options.stores.indexOf(store);
  return rows.sort((a, b) => storeOrder(a.store) - storeOrder(b.store));
}

async function main(argv: string[]): Promise<number> {
  const options = parseOptions(argv, benchDir, new Date());
  if (options.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (options.report !== null) {
    const results = JSON.parse(fs.readFileSync(options.report, 'utf8')) as BenchResults;
    const md = options.md ?? path.join(repoRoot, 'docs', 'benchmarks.md');
    writeReport(results, options.report, md, options.svg);
    log(`wrote ${path.relative(process.cwd(), md)}`);
    return 0;
  }

  const peers = options.stores.filter((store): store is Exclude<AnyStoreName, 'logkv' | 'fs'> => store !== 'logkv' && store !== RAW_STORE);
  const versions = options.install ? ensurePeers(benchDir, peers, log) : installedVersions(benchDir, peers);
  fs.mkdirSync(options.dir, { recursive: true });
  const machine = machineInfo(options.dir);
  if (/^tmpfs\b/.test(machine.disk)) log(`warning: ${options.dir} is on tmpfs: durable and disk numbers will not be a disk's`);

  const build = buildForChildren(repoRoot);
  const interrupt = (): void => {
    currentChild?.kill('SIGKILL');
    build.remove();
    process.exit(130);
  };
  process.once('SIGINT', interrupt);
  const logkvPresent = fs.existsSync(logkvEntry(build.root));
  const available = (store: AnyStoreName): string | null => {
    if (store === RAW_STORE) return null;
    if (store === 'logkv') return logkvPresent ? null : 'lib/index.ts does not exist yet';
    return versions[store] ? null : `${store} is not installed in tools/bench/node_modules`;
  };

  const date = new Date().toISOString();
  let rows: ResultRow[];
  try {
    rows = await runAll(options, build, available);
  } finally {
    process.removeListener('SIGINT', interrupt);
    build.remove();
  }

  const rootManifest = (name: string): string => {
    try {
      return (JSON.parse(fs.readFileSync(path.join(repoRoot, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      return 'unknown';
    }
  };
  const packages: Record<string, string> = { logkv: logkvVersion(repoRoot) };
  for (const peer of peers) packages[peer] = versions[peer] ?? 'not installed';
  packages.msgpackr = `${rootManifest('msgpackr')} (values of classic-level and better-sqlite3)`;

  const settings: BenchResults['settings'] = {};
  for (const store of options.stores) {
    settings[store] = store === RAW_STORE ? { fast: 'n/a', durable: 'fs.writeSync + fs.fdatasyncSync, one at a time' } : DRIVERS[store].settings;
  }
  const results: BenchResults = {
    schema: 1,
    date,
    command: ['npm run bench --', ...argv.map(shellQuote)].join(' ').replace(/ --$/, ''),
    argv,
    options: {
      n: options.n,
      reps: options.reps,
      seed: options.seed,
      stores: options.stores,
      workloads: options.workloads,
      durableMs: options.durableMs,
      durableMaxOps: options.durableMaxOps,
      compactBytes: options.compactBytes,
      compactBaselineMs: options.compactBaselineMs,
      timeoutS: options.timeoutS,
    },
    machine,
    packages,
    settings,
    rows,
    notes: [],
  };
  fs.mkdirSync(path.dirname(options.json), { recursive: true });
  fs.writeFileSync(options.json, JSON.stringify(results, null, 2) + '\n');
  process.stdout.write(renderSummary(results));
  log(`wrote ${path.relative(process.cwd(), options.json)}`);
  if (options.md !== null) {
    writeReport(results, options.json, options.md, options.svg);
    log(`wrote ${path.relative(process.cwd(), options.md)}`);
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof UsageError) {
      log(`${error.message}\n\n${USAGE}`);
      process.exit(2);
    }
    log(error instanceof Error ? error.stack ?? error.message : String(error));
    process.exit(1);
  },
);
