/**
 * What a ttl on every key costs: the same store of N keys (16-byte keys, ~100-byte values, the
 * suite's data from tools/bench/data.ts) filled once without and once with `{ ttl }`, and for
 * each: fill and random-get throughput, the time of `store.size`, the open time by the snapshot
 * and by replay, the memory the open store keeps per key, and the longest event-loop stall while
 * every key expires at once. Every step runs in a fresh child process; the table gives the median
 * of `runs` runs of each step, and the ratio of the ttl store to the plain one. The children run
 * the library transpiled to JavaScript on plain node (as tools/bench does): with ts-node, the
 * TypeScript compiler in their heap made every full GC, which large typed-array allocations
 * trigger, cost tens of ms, and those landed on whichever store allocated more.
 *
 *   npx ts-node --transpile-only tools/bench-ttl.ts [--n 1000000] [--runs 3] [--dir DIR] [--commit NAME]
 *
 * The expiry step opens the store with a clock (the `clock` option) that it moves two days ahead,
 * so every key (ttl one day) expires at the same moment: the worst case, and also what a store
 * closed for longer than its ttls sees at open. It then calls `size` once (which counts or purges,
 * depending on the code measured) and watches the event loop with a setImmediate ticker until
 * `size` answers at once, meaning nothing expired is left to purge.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { performance } from 'perf_hooks';
import { open, type Store } from '../lib';
import * as ts from 'typescript';
import { keyOf, shuffledIndexes, valueOf } from './bench/data';

function arg(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? process.argv[at + 1] : fallback;
}

const n = Number(arg('n', '1000000'));
const runs = Number(arg('runs', '3'));
const baseDir = arg('dir', path.join(os.tmpdir(), `logkv-bench-ttl-${n}`));
const SEED = 1;
const DAY_MS = 24 * 3600 * 1000;
const WINDOW = 1000;
const GETS = Math.min(n, 200_000);

type Mode = 'plain' | 'ttl';
type Numbers = Record<string, number>;

const storeOptions = { sync: 'never', autoCompact: false } as const;
const snapshotOf = (dir: string): string => path.join(dir, 'keydir.snapshot');

declare const gc: undefined | (() => void);

/**
 * CPU time of this process (all its threads, user and system), in ms. The machine is shared: a
 * step's wall time includes the time other processes held the cores, its CPU time mostly does not.
 */
function cpuMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}

/**
 * Watches the event loop with a setImmediate ticker: a turn between two ticks is a stall. Each
 * turn is measured by its wall time, and by that time less the main thread's wait for a core
 * (Linux schedstat's run_delay; NaN elsewhere), which is what the turn's own work cost on this
 * shared machine. Process CPU time would count the GC's and the compiler's helper threads, and the
 * thread's own CPU time in schedstat is only as fine as the scheduler tick (4 ms here). A tick
 * allocates nothing: a ticker making garbage at 100,000 turns a second caused the very GC pauses
 * it then measured.
 */
class StallWatch {
  longestMs = 0;
  longestRunMs = 0;
  /** Set by code whose turn is not to be counted (the benchmark's own checks); cleared by the next tick. */
  skipTurn = false;
  #last = performance.now();
  #lastWait: number;
  #ticking = true;
  readonly #fd: number | undefined;
  readonly #buffer = Buffer.alloc(256);

  constructor() {
    try {
      this.#fd = fs.openSync(`/proc/${process.pid}/task/${process.pid}/schedstat`, 'r');
    } catch {
      this.#fd = undefined;
    }
    this.#lastWait = this.#waitMs();
    setImmediate(this.#tick);
  }

  /** The longest stalls since the last take(), and a fresh start. */
  take(): { ms: number; runMs: number } {
    const taken = { ms: this.longestMs, runMs: this.longestRunMs };
    this.longestMs = 0;
    this.longestRunMs = 0;
    return taken;
  }

  stop(): void {
    this.#ticking = false;
    if (this.#fd !== undefined) fs.closeSync(this.#fd);
  }

  readonly #tick = (): void => {
    if (!this.#ticking) return;
    const now = performance.now();
    const wait = this.#waitMs();
    if (!this.skipTurn) {
      this.longestMs = Math.max(this.longestMs, now - this.#last);
      this.longestRunMs = Math.max(this.longestRunMs, now - this.#last - (wait - this.#lastWait));
    }
    this.skipTurn = false;
    this.#last = now;
    this.#lastWait = wait;
    setImmediate(this.#tick);
  };

  /** schedstat's second field (ns spent waiting on a run queue), parsed in place, as ms. */
  #waitMs(): number {
    if (this.#fd === undefined) return NaN;
    const length = fs.readSync(this.#fd, this.#buffer, 0, this.#buffer.length, 0);
    let at = this.#buffer.indexOf(0x20) + 1;
    let ns = 0;
    for (; at < length && this.#buffer[at] >= 0x30 && this.#buffer[at] <= 0x39; at++) ns = ns * 10 + this.#buffer[at] - 0x30;
    return ns / 1e6;
  }
}

function settle(): void {
  if (typeof gc !== 'function') throw new Error('the child must run with --expose-gc');
  gc();
  gc();
}

// ---- the steps, each run in a child process ------------------------------------------------------

/** Fills a fresh store, then times random gets and `size`; the close leaves a snapshot. */
async function fillStep(dir: string, mode: Mode): Promise<Numbers> {
  fs.rmSync(dir, { recursive: true, force: true });
  const store = await open(dir, storeOptions);
  const options = mode === 'ttl' ? { ttl: DAY_MS } : undefined;
  const pending: Array<Promise<unknown>> = [];
  let started = performance.now();
  let cpuStarted = cpuMs();
  for (let start = 0; start < n; start += WINDOW) {
    pending.length = 0;
    for (let i = start; i < Math.min(n, start + WINDOW); i++) pending.push(store.set(keyOf(i, SEED), valueOf(i, 0), options));
    await Promise.all(pending);
  }
  const fillMs = performance.now() - started;
  const fillCpuMs = cpuMs() - cpuStarted;

  const order = shuffledIndexes(n, SEED + 1);
  started = performance.now();
  cpuStarted = cpuMs();
  for (let i = 0; i < GETS; i++) {
    const value = (await store.get(keyOf(order[i], SEED))) as { id: number } | undefined;
    if (value?.id !== order[i]) throw new Error(`key #${order[i]} read back wrong`);
  }
  const getMs = performance.now() - started;
  const getCpuMs = cpuMs() - cpuStarted;

  const sizeMs: number[] = [];
  for (let i = 0; i < 5; i++) {
    started = performance.now();
    if (store.size !== n) throw new Error(`size is ${store.size}, expected ${n}`);
    sizeMs.push(performance.now() - started);
  }
  await store.close();
  return {
    fillOps: (n * 1000) / fillMs,
    fillOpsCpu: (n * 1000) / fillCpuMs,
    getOps: (GETS * 1000) / getMs,
    getOpsCpu: (GETS * 1000) / getCpuMs,
    sizeMs: median(sizeMs),
  };
}

/**
 * Opens the store (by whichever path the parent set up), checks it, and measures what the open
 * store keeps. `keep` leaves the snapshot the close writes, for the next snapshot run.
 */
async function openStep(dir: string, keep: boolean): Promise<Numbers> {
  settle();
  const before = process.memoryUsage();
  const started = performance.now();
  const cpuStarted = cpuMs();
  const store = await open(dir, storeOptions);
  const openMs = performance.now() - started;
  const openCpuMs = cpuMs() - cpuStarted;
  settle();
  const after = process.memoryUsage();
  if (store.size !== n) throw new Error(`opened ${store.size} keys, expected ${n}`);
  const snapshot = store.recovery.snapshot ? 1 : 0;
  await store.close();
  if (!keep) fs.rmSync(snapshotOf(dir), { force: true });
  return {
    openMs,
    openCpuMs,
    snapshot,
    // process.memoryUsage().external already includes arrayBuffers (the keydir's typed arrays).
    heapPerKey: (after.heapUsed - before.heapUsed) / n,
    offHeapPerKey: (after.external - before.external) / n,
  };
}

/** Moves the store's clock past every expiry and watches the event loop until all are purged. */
async function expireStep(dir: string): Promise<Numbers> {
  let offsetMs = 0;
  const store = await open(dir, { ...storeOptions, clock: () => Date.now() + offsetMs });
  if (store.size !== n) throw new Error(`opened ${store.size} keys, expected ${n}`);
  const watch = new StallWatch();
  await sleep(1000);
  const idle = watch.take(); // the machine's own noise, with nothing to do

  offsetMs = 2 * DAY_MS;
  const started = performance.now();
  if (store.size !== 0) throw new Error(`size is ${store.size} after every key expired`);
  const firstSizeMs = performance.now() - started;
  // Let the ticker record the turn that held the first size(), then watch the purge alone.
  await new Promise((resolve) => setTimeout(resolve, 0));
  const first = watch.take();
  const purgedMs = await untilPurged(store, started, watch);
  const purge = watch.take();
  watch.stop();
  await store.close();
  fs.rmSync(snapshotOf(dir), { force: true }); // it holds no keys; the next step must replay the log
  return {
    longestStallMs: Math.max(first.ms, purge.ms),
    longestStallRunMs: Math.max(first.runMs, purge.runMs),
    purgeStallMs: purge.ms,
    purgeStallRunMs: purge.runMs,
    idleStallMs: idle.ms,
    idleStallRunMs: idle.runMs,
    firstSizeMs,
    purgedMs,
  };
}

/**
 * The time from `started` until `size` takes under 5 µs: it counts the expired keys still in the
 * index, so it is that fast only once (almost) none is left. Looks every 100 ms, since each look
 * costs O(expired keys left), and flags the turn it looks in (`watch.skipTurn`), so that the stall it
 * causes is not taken for the purge's. Gives up (and throws) after 120 s.
 */
async function untilPurged(store: Store, started: number, watch: StallWatch): Promise<number> {
  for (;;) {
    await sleep(100);
    watch.skipTurn = true;
    void store.size; // the first call after a sleep runs cold (~20 µs here): time the second
    const t0 = performance.now();
    void store.size;
    if (performance.now() - t0 < 0.005) return performance.now() - started;
    if (performance.now() - started > 120_000) throw new Error('expired keys were not purged within 120 s');
  }
}

// ---- the parent --------------------------------------------------------------------------------------

/** This file as JavaScript beside the transpiled library, for the children; set by main(). */
let childScript = '';
/** Where the transpiled files live, and the node_modules they resolve their dependencies from. */
let childEnv: NodeJS.ProcessEnv = process.env;

/**
 * Transpiles lib/, tools/bench/data.ts and this file to JavaScript under a temporary directory
 * (types are tsc's job), keeping their relative paths; returns the directory.
 */
function transpileForChildren(repoRoot: string): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'logkv-bench-ttl-build-'));
  const compilerOptions: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.CommonJS, esModuleInterop: true,
  };
  const emit = (relative: string): void => {
    const source = path.join(repoRoot, relative);
    const output = ts.transpileModule(fs.readFileSync(source, 'utf8'), { compilerOptions, fileName: source });
    const target = path.join(root, relative.replace(/\.ts$/, '.js'));
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, output.outputText);
  };
  const walk = (relative: string): void => {
    for (const entry of fs.readdirSync(path.join(repoRoot, relative), { withFileTypes: true })) {
      const name = path.join(relative, entry.name);
      if (entry.isDirectory()) walk(name);
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) emit(name);
    }
  };
  walk('lib');
  emit(path.join('tools', 'bench', 'data.ts'));
  emit(path.join('tools', 'bench-ttl.ts'));
  fs.copyFileSync(path.join(repoRoot, 'package.json'), path.join(root, 'package.json'));
  return root;
}

function child(step: string, dir: string, mode: Mode, keep = false): Numbers {
  const args = ['--expose-gc', childScript,
    '--child', step, '--dir', dir, '--mode', mode, '--n', String(n), ...(keep ? ['--keep'] : [])];
  const result = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 24, env: childEnv });
  if (result.status !== 0) throw new Error(`${step} (${mode}) failed: ${result.stderr}`);
  return JSON.parse(result.stdout.trim().split('\n').pop()!) as Numbers;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Runs `runs` of each step for both modes, alternating the modes within each round so that a
 * change in the machine's load (it is shared) falls on both alike; returns the medians per mode.
 */
function measure(): Record<Mode, Numbers> {
  const modes: Mode[] = ['plain', 'ttl'];
  const dirOf = (mode: Mode): string => `${baseDir}-${mode}`;
  const results = new Map<string, Numbers[]>();
  const run = (label: string, mode: Mode, result: Numbers): void => {
    const key = `${label}|${mode}`;
    results.set(key, [...(results.get(key) ?? []), result]);
    console.error(`${mode} ${label}: ${JSON.stringify(result)}`);
  };
  for (let i = 0; i < runs; i++) for (const mode of modes) run('fill', mode, child('fill', dirOf(mode), mode));
  // The last fill's close left a snapshot; every snapshot run leaves the next one.
  for (let i = 0; i < runs; i++) for (const mode of modes) run('snapshot', mode, child('open', dirOf(mode), mode, true));
  for (const mode of modes) fs.rmSync(snapshotOf(dirOf(mode)), { force: true });
  for (let i = 0; i < runs; i++) for (const mode of modes) run('replay', mode, child('open', dirOf(mode), mode, false));
  for (const mode of modes) {
    if ((results.get(`snapshot|${mode}`) ?? []).some((r) => r.snapshot !== 1) ||
        (results.get(`replay|${mode}`) ?? []).some((r) => r.snapshot !== 0)) throw new Error('an open took the wrong path');
  }
  for (let i = 0; i < runs; i++) run('expire', 'ttl', child('expire', dirOf('ttl'), 'ttl'));
  for (const mode of modes) fs.rmSync(dirOf(mode), { recursive: true, force: true });
  const pick = (label: string, mode: Mode, name: string): number => {
    const rows = results.get(`${label}|${mode}`) ?? [];
    return rows.length === 0 ? NaN : median(rows.map((r) => r[name]));
  };
  const numbers = (mode: Mode): Numbers => ({
    fillOps: pick('fill', mode, 'fillOps'),
    fillOpsCpu: pick('fill', mode, 'fillOpsCpu'),
    getOps: pick('fill', mode, 'getOps'),
    getOpsCpu: pick('fill', mode, 'getOpsCpu'),
    sizeMs: pick('fill', mode, 'sizeMs'),
    openSnapshotMs: pick('snapshot', mode, 'openMs'),
    openSnapshotCpuMs: pick('snapshot', mode, 'openCpuMs'),
    openReplayMs: pick('replay', mode, 'openMs'),
    openReplayCpuMs: pick('replay', mode, 'openCpuMs'),
    heapPerKey: pick('snapshot', mode, 'heapPerKey'),
    offHeapPerKey: pick('snapshot', mode, 'offHeapPerKey'),
    longestStallMs: pick('expire', mode, 'longestStallMs'),
    longestStallRunMs: pick('expire', mode, 'longestStallRunMs'),
    purgeStallMs: pick('expire', mode, 'purgeStallMs'),
    purgeStallRunMs: pick('expire', mode, 'purgeStallRunMs'),
    idleStallMs: pick('expire', mode, 'idleStallMs'),
    idleStallRunMs: pick('expire', mode, 'idleStallRunMs'),
    firstSizeMs: pick('expire', mode, 'firstSizeMs'),
    purgedMs: pick('expire', mode, 'purgedMs'),
  });
  return { plain: numbers('plain'), ttl: numbers('ttl') };
}

function report(plain: Numbers, ttl: Numbers): void {
  const commit = arg('commit', '') || spawnSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', cwd: __dirname }).stdout?.trim() || 'unknown';
  console.log(`\nTTL store vs plain store: ${n.toLocaleString('en-US')} keys of 16 bytes, ~100-byte values, ttl one day;`);
  console.log(`medians of ${runs} runs, each step in a fresh process (open: warm page cache)`);
  console.log(`${os.cpus()[0].model}, ${os.cpus().length} cores, Node ${process.version}, commit ${commit}, ${new Date().toISOString()}\n`);
  const count = (x: number): string => Math.round(x).toLocaleString('en-US');
  const rows: Array<[string, string, (x: number) => string]> = [
    ['fill (1000 sets in flight), ops/s', 'fillOps', count],
    ['  the same, ops per CPU-second', 'fillOpsCpu', count],
    [`random get (${GETS.toLocaleString('en-US')}, one at a time), ops/s`, 'getOps', count],
    ['  the same, ops per CPU-second', 'getOpsCpu', count],
    ['`size`, ms per call', 'sizeMs', (x) => x.toFixed(3)],
    ['open by the snapshot, ms', 'openSnapshotMs', (x) => x.toFixed(0)],
    ['  the same, CPU ms', 'openSnapshotCpuMs', (x) => x.toFixed(0)],
    ['open by replay, ms', 'openReplayMs', (x) => x.toFixed(0)],
    ['  the same, CPU ms', 'openReplayCpuMs', (x) => x.toFixed(0)],
    ['JS heap after open, B/key', 'heapPerKey', (x) => x.toFixed(1)],
    ['off-heap after open, B/key', 'offHeapPerKey', (x) => x.toFixed(1)],
    ['every key expires: longest event-loop stall until all are purged, ms', 'longestStallMs', (x) => x.toFixed(1)],
    ['  the same, less the wait for a core, ms', 'longestStallRunMs', (x) => x.toFixed(1)],
    ['  the first `size` after the expiry (counts them), ms', 'firstSizeMs', (x) => x.toFixed(1)],
    ['  longest stall after that first `size` (the purge), ms', 'purgeStallMs', (x) => x.toFixed(1)],
    ['  the same, less the wait for a core, ms', 'purgeStallRunMs', (x) => x.toFixed(1)],
    ['  longest stall in 1 s with nothing to do, before the expiry, ms', 'idleStallMs', (x) => x.toFixed(1)],
    ['  the same, less the wait for a core, ms', 'idleStallRunMs', (x) => x.toFixed(1)],
    ['  until every expired key is purged, ms', 'purgedMs', (x) => x.toFixed(0)],
  ];
  console.log('| measure | no ttl | ttl on every key | ttl / no ttl |');
  console.log('|---|---:|---:|---:|');
  for (const [label, name, format] of rows) {
    const a = plain[name];
    const b = ttl[name];
    const ratio = Number.isFinite(a) && Number.isFinite(b) && a !== 0 ? `${(b / a).toFixed(2)}×` : '';
    console.log(`| ${label} | ${Number.isFinite(a) ? format(a) : '–'} | ${Number.isFinite(b) ? format(b) : '–'} | ${ratio} |`);
  }
}

async function main(): Promise<void> {
  if (process.argv.includes('--child')) {
    const step = arg('child', '');
    const dir = arg('dir', '');
    const mode = arg('mode', 'plain') as Mode;
    const result = step === 'fill' ? await fillStep(dir, mode)
      : step === 'open' ? await openStep(dir, process.argv.includes('--keep'))
      : await expireStep(dir);
    process.stdout.write(JSON.stringify(result) + '\n');
    return;
  }
  const repoRoot = path.join(__dirname, '..');
  const build = transpileForChildren(repoRoot);
  childScript = path.join(build, 'tools', 'bench-ttl.js');
  childEnv = { ...process.env, NODE_PATH: path.join(repoRoot, 'node_modules') };
  try {
    const { plain, ttl } = measure();
    report(plain, ttl);
  } finally {
    fs.rmSync(build, { recursive: true, force: true });
  }
}

void main();
