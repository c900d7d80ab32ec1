/**
 * The workloads, as run inside a child process: each opens its store, measures, closes, and
 * returns numbers. Setup (filling a store that a read workload then reads) is never timed.
 */
import * as fs from 'fs';
import * as path from 'path';
import { performance } from 'perf_hooks';
import { keyOf, shuffledIndexes, valueOf, type BenchValue } from './data';
import { dirBytes } from './diskusage';
import type { Job, JobName, Metric, WorkloadName } from './protocol';
import { percentile, sortedCopy } from './stats';
import { DRIVERS, type DriverContext, type KV, type Mode, type StoreDriver } from './stores';

/** Writes that are issued together before they are awaited, and the size of a batch. */
export const WINDOW = 1000;
/** The concurrent readers of get-par64 and writers of durable-64. */
export const PARALLEL = 64;

/** A workload's outcome that is not a number: the store cannot take part. */
export class NotApplicable extends Error {
  override name = 'NotApplicable';
}

interface Run {
  job: Job;
  driver: StoreDriver;
  ctx: DriverContext;
  open(mode: Mode, tuning?: Record<string, unknown>): Promise<KV>;
}

type Runner = (run: Run) => Promise<Metric[]>;

function metric(workload: WorkloadName, name: string, value: number, better: Metric['better'], compare = true): Metric {
  return { workload, metric: name, value, better, compare };
}

function opsPerSecond(ops: number, ms: number): number {
  return ms > 0 ? (ops * 1000) / ms : NaN;
}

// ---- shared steps ------------------------------------------------------------------------------

/** Untimed setup: writes keys 0..n-1 at `revision` in batches. */
async function fillUntimed(kv: KV, job: Job, revision: number): Promise<void> {
  for (let start = 0; start < job.n; start += WINDOW) {
    const end = Math.min(job.n, start + WINDOW);
    const entries: Array<[string, BenchValue]> = [];
    for (let i = start; i < end; i++) entries.push([keyOf(i, job.seed), valueOf(i, revision)]);
    await kv.putBatch(entries);
  }
}

/** Puts `order[i]` at `revision` for every i, WINDOW issued at once and then awaited together. */
async function putWindowed(kv: KV, job: Job, order: ArrayLike<number>, revision: number): Promise<void> {
  const pending: Array<Promise<void>> = [];
  for (let start = 0; start < order.length; start += WINDOW) {
    const end = Math.min(order.length, start + WINDOW);
    pending.length = 0;
    for (let i = start; i < end; i++) pending.push(kv.put(keyOf(order[i], job.seed), valueOf(order[i], revision)));
    await Promise.all(pending);
  }
}

/**
 * Reads a sample of keys back and checks them, so that a store that loses or confuses writes
 * fails the benchmark instead of winning it.
 */
async function verify(kv: KV, job: Job, revision: number, samples = 200): Promise<void> {
  const order = shuffledIndexes(job.n, job.seed + 7);
  for (let s = 0; s < Math.min(samples, job.n); s++) {
    const index = order[s];
    const value = (await kv.get(keyOf(index, job.seed))) as BenchValue | undefined;
    const expected = valueOf(index, revision);
    if (value === undefined || value.id !== index || value.ts !== expected.ts) {
      throw new Error(`verification failed: key #${index} read back ${JSON.stringify(value)}`);
    }
  }
}

// ---- write throughput --------------------------------------------------------------------------

const fill: Runner = async ({ job, open }) => {
  const kv = await open('fast');
  const order = Uint32Array.from({ length: job.n }, (_, i) => i);
  const started = performance.now();
  await putWindowed(kv, job, order, 0);
  const elapsedMs = performance.now() - started;
  await verify(kv, job, 0);
  await kv.close();
  return [metric('fill', 'ops/s', opsPerSecond(job.n, elapsedMs), 'higher')];
};

const fillBatch: Runner = async ({ job, open }) => {
  const kv = await open('fast');
  const started = performance.now();
  await fillUntimed(kv, job, 0);
  const elapsedMs = performance.now() - started;
  await verify(kv, job, 0);
  await kv.close();
  return [metric('fill-batch', 'ops/s', opsPerSecond(job.n, elapsedMs), 'higher')];
};

const overwrite: Runner = async ({ job, open }) => {
  const kv = await open('fast');
  await fillUntimed(kv, job, 0);
  const order = shuffledIndexes(job.n, job.seed + 2);
  const started = performance.now();
  await putWindowed(kv, job, order, 1);
  const elapsedMs = performance.now() - started;
  await verify(kv, job, 1);
  await kv.close();
  return [metric('overwrite', 'ops/s', opsPerSecond(job.n, elapsedMs), 'higher')];
};

// ---- reads -------------------------------------------------------------------------------------

/** Fills, closes and reopens the store, then reads every key once in random order. */
async function readAll(run: Run, workload: WorkloadName, inFlight: number): Promise<Metric[]> {
  const { job } = run;
  const writer = await run.open('fast');
  await fillUntimed(writer, job, 0);
  await writer.close();
  const kv = await run.open('fast');
  const order = shuffledIndexes(job.n, job.seed + 1);
  let next = 0;
  let wrong = 0;
  const reader = async (): Promise<void> => {
    while (next < order.length) {
      const index = order[next++];
      const value = (await kv.get(keyOf(index, job.seed))) as BenchValue | undefined;
      if (value === undefined || value.id !== index) wrong++;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: inFlight }, reader));
  const elapsedMs = performance.now() - started;
  await kv.close();
  if (wrong > 0) throw new Error(`${wrong} of ${job.n} keys read back missing or wrong`);
  return [metric(workload, 'ops/s', opsPerSecond(job.n, elapsedMs), 'higher')];
}

const getSeq1: Runner = (run) => readAll(run, 'get-seq1', 1);
const getPar64: Runner = (run) => readAll(run, 'get-par64', PARALLEL);

// ---- durability --------------------------------------------------------------------------------

/**
 * `writers` loops each put a new key and wait for it to be durable, until the time or the
 * operation budget runs out. Reports throughput and per-put latency.
 */
async function durable(run: Run, workload: WorkloadName, writers: number): Promise<Metric[]> {
  const { job, driver } = run;
  if (driver.noDurableMode !== null) throw new NotApplicable(driver.noDurableMode);
  const kv = await run.open('durable');
  const latenciesMs = new Float64Array(job.durableMaxOps);
  let issued = 0;
  let completed = 0;
  const started = performance.now();
  const deadline = started + job.durableMs;
  const writer = async (): Promise<void> => {
    while (issued < job.durableMaxOps && performance.now() < deadline) {
      const index = issued++;
      const t0 = performance.now();
      await kv.put(keyOf(index, job.seed), valueOf(index, 0));
      latenciesMs[index] = performance.now() - t0;
      completed++;
    }
  };
  await Promise.all(Array.from({ length: writers }, writer));
  const elapsedMs = performance.now() - started;
  await kv.close();
  const sorted = sortedCopy(latenciesMs.subarray(0, issued));
  return [
    metric(workload, 'ops/s', opsPerSecond(completed, elapsedMs), 'higher'),
    metric(workload, 'p50 ms', percentile(sorted, 50), 'lower'),
    metric(workload, 'p99 ms', percentile(sorted, 99), 'lower'),
  ];
}

const durable1: Runner = (run) => durable(run, 'durable-1', 1);
const durable64: Runner = (run) => durable(run, 'durable-64', PARALLEL);

/**
 * The disk's own limit for a durable write, without any store: a 128-byte append followed by
 * fdatasync, and a 128-byte overwrite inside a preallocated, synced file followed by fdatasync
 * (which need not update the file's size). Synchronous calls, one at a time.
 */
async function fdatasyncRaw(job: Job): Promise<Metric[]> {
  const record = Buffer.alloc(128, 0x61);
  const measure = (fd: number, offsetOf: (i: number) => number | null): number => {
    let ops = 0;
    const started = performance.now();
    const deadline = started + job.durableMs;
    while (ops < job.durableMaxOps && performance.now() < deadline) {
      fs.writeSync(fd, record, 0, record.length, offsetOf(ops));
      fs.fdatasyncSync(fd);
      ops++;
    }
    return opsPerSecond(ops, performance.now() - started);
  };

  const appendFd = fs.openSync(path.join(job.dir, 'append.bin'), 'a');
  const appendRate = measure(appendFd, () => null);
  fs.closeSync(appendFd);

  const preallocatedBytes = 1 << 20;
  const overwriteFd = fs.openSync(path.join(job.dir, 'overwrite.bin'), 'w+');
  fs.writeSync(overwriteFd, Buffer.alloc(preallocatedBytes), 0, preallocatedBytes, 0);
  fs.fsyncSync(overwriteFd);
  const slots = preallocatedBytes / record.length;
  const overwriteRate = measure(overwriteFd, (i) => (i % slots) * record.length);
  fs.closeSync(overwriteFd);

  return [
    metric('fdatasync-raw', 'append+fdatasync ops/s', appendRate, 'higher', false),
    metric('fdatasync-raw', 'overwrite+fdatasync ops/s', overwriteRate, 'higher', false),
  ];
}

// ---- open and memory ---------------------------------------------------------------------------

/** Setup for `reopen`, in its own process: fill and close. */
const prepare: Runner = async ({ job, open }) => {
  const kv = await open('fast');
  await fillUntimed(kv, job, 0);
  await kv.close();
  return [];
};

declare const gc: undefined | (() => void);

function fullGc(): number {
  if (typeof gc !== 'function') throw new Error('the child must run with --expose-gc');
  const started = performance.now();
  gc();
  return performance.now() - started;
}

/** logkv's keydir snapshot, which a cleanly closed store leaves (lib/snapshot.ts). */
const SNAPSHOT_FILE = 'keydir.snapshot';

/**
 * The floor of a snapshot open: the time to read the store's snapshot file, whole, into fresh
 * memory of its size (one buffer, synchronous reads), in the same fresh process as the open and
 * just before it, so that both find the file in the page cache alike; undefined if the store left
 * no snapshot (the peers). The buffer is dropped and collected before the memory baseline.
 */
function snapshotRead(dir: string): { ms: number; cpuMs: number } | undefined {
  const file = path.join(dir, SNAPSHOT_FILE);
  if (!fs.existsSync(file)) return undefined;
  const started = performance.now();
  const startedCpu = process.cpuUsage();
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const buf = Buffer.allocUnsafeSlow(size);
    for (let done = 0; done < size;) {
      const n = fs.readSync(fd, buf, done, size - done, done);
      if (n === 0) throw new Error(`${file} shrank while it was read`);
      done += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return { ms: performance.now() - started, cpuMs: cpuMs(process.cpuUsage(startedCpu)) };
}

function cpuMs(usage: NodeJS.CpuUsage): number {
  return (usage.user + usage.system) / 1000;
}

/**
 * In a fresh process whose only other work was loading the store's module: the time from open()
 * to the first get of an existing key returning, and what the open store keeps in memory.
 */
const reopen: Runner = async ({ job, open }) => {
  const floor = snapshotRead(job.dir);
  // Settle the heap before the baseline; the second collection is the one that is timed.
  fullGc();
  const gcBeforeMs = fullGc();
  const before = process.memoryUsage();

  const started = performance.now();
  const startedCpu = process.cpuUsage();
  const kv = await open('fast');
  const first = (await kv.get(keyOf(0, job.seed))) as BenchValue | undefined;
  const openMs = performance.now() - started;
  const openCpuMs = cpuMs(process.cpuUsage(startedCpu));
  if (first === undefined || first.id !== 0) throw new Error('the first key is missing after open');

  fullGc();
  const gcAfterMs = fullGc();
  const after = process.memoryUsage();
  // The store stays referenced until here, so that it is what the numbers above measured.
  await verify(kv, job, 0);
  await kv.close();

  return [
    metric('open', 'ms', openMs, 'lower'),
    // CPU time (every thread of the process), beside wall time: on a loaded machine it is the steadier of the two.
    metric('open', 'cpu ms', openCpuMs, 'lower', false),
    ...(floor === undefined ? [] : [
      metric('open', 'snapshot read ms (floor)', floor.ms, 'lower', false),
      metric('open', 'open / floor', openMs / floor.ms, 'lower', false),
      metric('open', 'snapshot read cpu ms (floor)', floor.cpuMs, 'lower', false),
      metric('open', 'open / floor, cpu', openCpuMs / floor.cpuMs, 'lower', false),
    ]),
    // An index may live on the JS heap or in buffers outside it (external): compared is the sum.
    metric('memory', 'heap+external B/key', (after.heapUsed + after.external - before.heapUsed - before.external) / job.n, 'lower'),
    metric('memory', 'heap B/key', (after.heapUsed - before.heapUsed) / job.n, 'lower', false),
    metric('memory', 'external B/key', (after.external - before.external) / job.n, 'lower', false),
    metric('memory', 'RSS B/key', (after.rss - before.rss) / job.n, 'lower'),
    metric('memory', 'full GC ms before open', gcBeforeMs, 'lower', false),
    metric('memory', 'full GC ms after open', gcAfterMs, 'lower'),
  ];
};

// ---- disk --------------------------------------------------------------------------------------

const disk: Runner = async ({ job, open }) => {
  const bytesPerKey = (): number => dirBytes(job.dir).allocated / job.n;
  let kv = await open('fast');
  await fillUntimed(kv, job, 0);
  await kv.close();
  const afterFill = bytesPerKey();

  kv = await open('fast');
  await putWindowed(kv, job, shuffledIndexes(job.n, job.seed + 2), 1);
  await kv.close();
  const afterOverwrite = bytesPerKey();

  const metrics = [
    metric('disk', 'B/key after fill', afterFill, 'lower'),
    metric('disk', 'B/key after overwrite', afterOverwrite, 'lower'),
  ];
  kv = await open('fast');
  if (kv.compact) {
    await kv.compact();
    await verify(kv, job, 1);
    await kv.close();
    metrics.push(metric('disk', 'B/key after compact', bytesPerKey(), 'lower', false));
  } else {
    await kv.close();
  }
  return metrics;
};

// ---- compaction --------------------------------------------------------------------------------

/**
 * Grows a store to `compactBytes` by overwriting its N keys, then measures one writer's put
 * latency, first alone (baseline) and then while compact() runs.
 */
const compaction: Runner = async ({ job, open }) => {
  // Segments of at most an eighth of the store (and at most the 64 MiB default), so that a small
  // test store still has sealed segments for compaction to rewrite.
  // Automatic compaction is off, or it would keep the store from growing to the size asked for.
  const maxSegmentBytes = Math.max(1 << 20, Math.min(64 << 20, Math.floor(job.compactBytes / 8)));
  const kv = await open('fast', { maxSegmentBytes, autoCompact: false });
  if (!kv.compact) {
    await kv.close();
    throw new NotApplicable('store.compact() does not exist');
  }
  await fillUntimed(kv, job, 0);
  let revision = 0;
  const random = shuffledIndexes(job.n, job.seed + 3);
  let bytesBefore = dirBytes(job.dir).apparent;
  while (bytesBefore < job.compactBytes) {
    revision++;
    await fillUntimed(kv, job, revision);
    const grown = dirBytes(job.dir).apparent;
    // A guard against looping forever should something reclaim space as fast as it is written.
    if (grown <= bytesBefore) throw new Error(`the store stopped growing at ${grown} bytes`);
    bytesBefore = grown;
  }

  let cursor = 0;
  const putLatencies = async (until: () => boolean): Promise<Float64Array> => {
    const latencies: number[] = [];
    while (!until()) {
      const index = random[cursor++ % random.length];
      const t0 = performance.now();
      await kv.put(keyOf(index, job.seed), valueOf(index, revision + 1));
      latencies.push(performance.now() - t0);
    }
    return sortedCopy(latencies);
  };

  const baselineEnd = performance.now() + job.compactBaselineMs;
  const baseline = await putLatencies(() => performance.now() >= baselineEnd);

  let compacted = false;
  const compactStarted = performance.now();
  const compacting = kv.compact().finally(() => {
    compacted = true;
  });
  const during = await putLatencies(() => compacted);
  await compacting;
  const compactMs = performance.now() - compactStarted;
  await kv.close();
  const bytesAfter = dirBytes(job.dir).apparent;

  const mb = 1024 * 1024;
  return [
    metric('compaction', 'compact s', compactMs / 1000, 'lower', false),
    metric('compaction', 'MiB before', bytesBefore / mb, 'lower', false),
    metric('compaction', 'MiB after', bytesAfter / mb, 'lower', false),
    metric('compaction', 'puts during', during.length, 'higher', false),
    metric('compaction', 'p50 ms during', percentile(during, 50), 'lower', false),
    metric('compaction', 'p99 ms during', percentile(during, 99), 'lower', false),
    metric('compaction', 'max ms during', percentile(during, 100), 'lower', false),
    metric('compaction', 'p99 ms baseline', percentile(baseline, 99), 'lower', false),
    metric('compaction', 'max ms baseline', percentile(baseline, 100), 'lower', false),
  ];
};

const RUNNERS: Record<Exclude<JobName, 'fdatasync-raw'>, Runner> = {
  fill,
  'fill-batch': fillBatch,
  'get-seq1': getSeq1,
  'get-par64': getPar64,
  overwrite,
  'durable-1': durable1,
  'durable-64': durable64,
  prepare,
  reopen,
  disk,
  compaction,
};

/** Runs one job in this process and returns its numbers. */
export async function runJob(job: Job): Promise<Metric[]> {
  if (job.job === 'fdatasync-raw') return fdatasyncRaw(job);
  if (job.store === 'fs') throw new Error(`the fs pseudo-store only runs fdatasync-raw, not ${job.job}`);
  const driver = DRIVERS[job.store];
  const ctx: DriverContext = { benchDir: job.benchDir, buildRoot: job.buildRoot };
  // Load the store's code before anything is timed, so that no number includes module loading.
  driver.load(ctx);
  return RUNNERS[job.job]({ job, driver, ctx, open: (mode, tuning) => driver.open(job.dir, mode, ctx, tuning) });
}
