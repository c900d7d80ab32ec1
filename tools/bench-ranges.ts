/**
 * Ordered keys at the store level (issue 12), as a program that prints tables:
 *
 *   1. this branch with the ordered index on (an iteration before the fill builds it) against
 *      main's code (the merge base, without it): fill, random gets, open from the snapshot (which
 *      carries the index) and by replay (which leaves it to the next iteration), the index's memory;
 *   2. a scan of 1,000 entries from a random start: logkv entries(), LogkvLevel's iterator,
 *      lmdb getRange() and a classic-level iterator.
 *
 *   npx ts-node --transpile-only tools/bench-ranges.ts [--n 1000000] [--reps 3] [--scans 300]
 *       [--gets 200000] [--main <git ref>|unordered] [--dir DIR] [--only compare|scan] [--scan-stores a,b]
 *
 * `--main unordered` compares against this commit's own code with the index never asked for (no
 * iteration before the fill): the cost of ordering once the index is on main, where a merge base
 * would carry the index too.
 *
 * Each measurement runs in a fresh `node --expose-gc` child on JavaScript transpiled ahead (the
 * library of each variant, this file, tools/bench/data.ts) under node_modules/.cache, so no
 * TypeScript compiler sits in its heap; variants take turns, each rep starting with a different
 * one. Cells are medians of the reps (min–max). Keys, values and orders are the store
 * benchmark's (tools/bench/data.ts): 16 random hex characters, ~100-byte objects. Writes are not
 * fsynced (sync 'never', lmdb noSync, classic-level sync: false). The peers come from
 * tools/bench/node_modules (`npm ci --prefix tools/bench`) or main's copy of it.
 */
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import { createRequire } from 'module';
import * as os from 'os';
import * as path from 'path';
import { performance } from 'perf_hooks';

const REPO = path.resolve(__dirname, '..');
const WINDOW = 1000;
const SCAN_KEYS = 1000;

function arg(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? process.argv[at + 1] : fallback;
}

type Row = Record<string, number>;

// ---------------------------------------------------------------- children

interface Job {
  kind: 'compare' | 'scan';
  store: string;
  n: number;
  gets: number;
  scans: number;
  dir: string;
  peers: string;
  /** Iterate once before the fill, so the ordered index is kept from the first key. */
  ordered: boolean;
}

/** Modules a child loads: the variant's library, relative to this file's transpiled copy. */
/* eslint-disable @typescript-eslint/no-require-imports */
function library(): { open: (dir: string, options: Record<string, unknown>) => Promise<any> } {
  return require('../lib/index');
}
function benchData(): typeof import('./bench/data') {
  return require('./bench/data');
}
/* eslint-enable @typescript-eslint/no-require-imports */

async function compareJob(job: Job): Promise<Row> {
  const { open } = library();
  const { keyOf, valueOf, shuffledIndexes } = benchData();
  const options = { sync: 'never', autoCompact: false };
  const row: Row = {};
  global.gc?.();
  const buffersBefore = process.memoryUsage().arrayBuffers;
  let store = await open(job.dir, options);
  // Asks for order once, so this branch keeps the ordered index from the first key on (it is
  // built by the first iteration); on main this iterates an empty store.
  if (job.ordered) await store.keys({ limit: 1 }).next();
  // CPU time beside wall time: on a machine shared with other work, a process's own CPU time
  // varies far less than the wall clock.
  const cpuMs = (since: NodeJS.CpuUsage) => { const used = process.cpuUsage(since); return (used.user + used.system) / 1000; };
  let cpu = process.cpuUsage();
  let started = performance.now();
  const pending: Array<Promise<void>> = [];
  for (let start = 0; start < job.n; start += WINDOW) {
    pending.length = 0;
    for (let i = start; i < Math.min(job.n, start + WINDOW); i++) pending.push(store.set(keyOf(i, 1), valueOf(i, 0)));
    await Promise.all(pending);
  }
  row['fill ops/s'] = (job.n * 1000) / (performance.now() - started);
  row['fill CPU µs/op'] = (cpuMs(cpu) * 1000) / job.n;
  global.gc?.();
  row['external bytes/key'] = (process.memoryUsage().arrayBuffers - buffersBefore) / job.n;
  const order = shuffledIndexes(job.n, 7);
  const gets = Math.min(job.gets, job.n);
  cpu = process.cpuUsage();
  started = performance.now();
  for (let i = 0; i < gets; i++) {
    if ((await store.get(keyOf(order[i], 1))) === undefined) throw new Error('a key went missing');
  }
  row['get ops/s'] = (gets * 1000) / (performance.now() - started);
  row['get CPU µs/op'] = (cpuMs(cpu) * 1000) / gets;
  await store.close();
  cpu = process.cpuUsage();
  started = performance.now();
  store = await open(job.dir, options);
  row['open (snapshot) ms'] = performance.now() - started;
  row['open (snapshot) CPU ms'] = cpuMs(cpu);
  if (store.recovery.snapshot !== true) throw new Error('the snapshot was not used');
  await store.close();
  fs.rmSync(path.join(job.dir, 'keydir.snapshot'), { force: true });
  cpu = process.cpuUsage();
  started = performance.now();
  store = await open(job.dir, options);
  row['open (replay) ms'] = performance.now() - started;
  row['open (replay) CPU ms'] = cpuMs(cpu);
  await store.close();
  return row;
}

/** A store to scan: fill it, then read `SCAN_KEYS` entries from a start key. */
interface Scannable {
  fill(entries: Array<[string, unknown]>): Promise<void>;
  scan(start: string): Promise<number>;
  close(): Promise<void>;
}

async function scannable(job: Job): Promise<Scannable> {
  const peer = createRequire(path.join(job.peers, 'package.json'));
  if (job.store === 'logkv' || job.store === 'logkv keys()') {
    const store = await library().open(job.dir, { sync: 'never', autoCompact: false });
    const keysOnly = job.store === 'logkv keys()';
    return {
      fill: (entries) => store.batch(entries.map(([key, value]) => ({ type: 'set', key, value }))),
      async scan(start) {
        let n = 0;
        // keys() reads no value: the index's own cost, without a read per entry.
        if (keysOnly) for await (const key of store.keys({ gte: start, limit: SCAN_KEYS })) n += key.length > 0 ? 1 : 0;
        else for await (const entry of store.entries({ gte: start, limit: SCAN_KEYS })) if (entry[1] !== undefined) n++;
        return n;
      },
      close: () => store.close(),
    };
  }
  const { Packr } = peer('msgpackr') as { Packr: new (options: Record<string, unknown>) => { pack(v: unknown): Buffer; unpack(b: Uint8Array): unknown } };
  const packr = new Packr({ useRecords: false });
  if (job.store === 'logkv/level') {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { LogkvLevel } = require('../lib/level');
    const db = new LogkvLevel(job.dir, { valueEncoding: 'view', logkv: { sync: 'never', autoCompact: false } });
    await db.open();
    return {
      fill: (entries) => db.batch(entries.map(([key, value]) => ({ type: 'put', key, value: packr.pack(value) }))),
      async scan(start) {
        const entries = await db.iterator({ gte: start, limit: SCAN_KEYS }).all();
        for (const entry of entries) packr.unpack(entry[1]);
        return entries.length;
      },
      close: () => db.close(),
    };
  }
  if (job.store === 'lmdb') {
    const { open } = peer('lmdb');
    const db = open({ path: path.join(job.dir, 'data.mdb'), encoding: 'msgpack', compression: false, noSync: true });
    return {
      fill: (entries) => db.batch(() => { for (const [key, value] of entries) void db.put(key, value); }),
      async scan(start) {
        let n = 0;
        for (const { value } of db.getRange({ start, limit: SCAN_KEYS })) if (value !== undefined) n++;
        return n;
      },
      close: () => db.close(),
    };
  }
  const { ClassicLevel } = peer('classic-level');
  const db = new ClassicLevel(job.dir, { keyEncoding: 'utf8', valueEncoding: 'view' });
  await db.open();
  return {
    fill: (entries) => db.batch(entries.map(([key, value]) => ({ type: 'put', key, value: packr.pack(value) })), { sync: false }),
    async scan(start) {
      const entries = await db.iterator({ gte: start, limit: SCAN_KEYS }).all();
      for (const entry of entries) packr.unpack(entry[1]);
      return entries.length;
    },
    close: () => db.close(),
  };
}

async function scanJob(job: Job): Promise<Row> {
  const { keyOf, valueOf, prng } = benchData();
  const store = await scannable(job);
  for (let start = 0; start < job.n; start += WINDOW) {
    const entries: Array<[string, unknown]> = [];
    for (let i = start; i < Math.min(job.n, start + WINDOW); i++) entries.push([keyOf(i, 1), valueOf(i, 0)]);
    await store.fill(entries);
  }
  const random = prng(3);
  const times: number[] = [];
  let total = 0;
  // A few scans to warm up (caches, JIT), then the measured ones.
  for (let s = -20; s < job.scans; s++) {
    const start = Math.floor(random() * 0xffffffff).toString(16).padStart(8, '0');
    const started = performance.now();
    const n = await store.scan(start);
    if (s >= 0) {
      times.push(performance.now() - started);
      total += n;
    }
  }
  await store.close();
  times.sort((a, b) => a - b);
  return {
    'scan median ms': times[times.length >> 1],
    'scan p99 ms': times[Math.min(times.length - 1, Math.floor(times.length * 0.99))],
    'entries/s': (total * 1000) / times.reduce((a, b) => a + b, 0),
  };
}

// ---------------------------------------------------------------- parent

/** Transpiles `sourceRoot`'s lib/ with this file and tools/bench/data.ts into `to`. */
function build(sourceRoot: string, to: string): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const ts = require('typescript') as typeof import('typescript');
  const options = { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.CommonJS, esModuleInterop: true };
  const emit = (from: string, file: string) => {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, ts.transpileModule(fs.readFileSync(from, 'utf8'), { compilerOptions: options, fileName: from }).outputText);
  };
  const walk = (from: string, into: string) => {
    for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
      const source = path.join(from, entry.name);
      if (entry.isDirectory()) walk(source, path.join(into, entry.name));
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) emit(source, path.join(into, entry.name.replace(/\.ts$/, '.js')));
    }
  };
  fs.rmSync(to, { recursive: true, force: true });
  walk(path.join(sourceRoot, 'lib'), path.join(to, 'lib'));
  emit(path.join(REPO, 'tools', 'bench', 'data.ts'), path.join(to, 'tools', 'bench', 'data.js'));
  emit(__filename, path.join(to, 'tools', 'bench-ranges.js'));
  fs.copyFileSync(path.join(REPO, 'package.json'), path.join(to, 'package.json'));
  return path.join(to, 'tools', 'bench-ranges.js');
}

/** main's lib/ at `ref`, from git (no checkout), under `to`. */
function exportRef(ref: string, to: string): void {
  fs.rmSync(to, { recursive: true, force: true });
  fs.mkdirSync(to, { recursive: true });
  const tar = execFileSync('git', ['-C', REPO, 'archive', ref, 'lib'], { maxBuffer: 1 << 28 });
  execFileSync('tar', ['-x', '-C', to], { input: tar });
}

function runChild(script: string, job: Job): Row {
  fs.rmSync(job.dir, { recursive: true, force: true });
  fs.mkdirSync(job.dir, { recursive: true });
  const result = spawnSync(process.execPath, ['--expose-gc', '--max-old-space-size=8192', script, '--child', JSON.stringify(job)],
    { encoding: 'utf8', timeout: 1_800_000 });
  fs.rmSync(job.dir, { recursive: true, force: true });
  if (result.status !== 0) throw new Error(`${job.kind} ${job.store} failed: ${result.stderr || result.stdout}`);
  return JSON.parse(result.stdout.trim().split('\n').pop()!) as Row;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length % 2 === 1 ? sorted[sorted.length >> 1] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
}

function cell(values: number[]): string {
  const digits = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2));
  if (values.length === 1) return digits(values[0]);
  return `${digits(median(values))} (${digits(Math.min(...values))}–${digits(Math.max(...values))})`;
}

/** Runs each variant `reps` times, taking turns, and prints a table of medians. */
function measure(title: string, variants: Array<[string, string, Job]>, reps: number, ratioOf?: [string, string]): void {
  const results = new Map<string, Row[]>(variants.map(([name]) => [name, []]));
  for (let rep = 0; rep < reps; rep++) {
    for (let k = 0; k < variants.length; k++) {
      const [name, script, job] = variants[(rep + k) % variants.length];
      process.stderr.write(`${title}: rep ${rep + 1}/${reps} ${name}\n`);
      results.get(name)!.push(runChild(script, job));
    }
  }
  const metrics = Object.keys(results.get(variants[0][0])![0]);
  const names = variants.map(([name]) => name);
  const lines = [`\n### ${title}\n`, `| metric | ${names.join(' | ')} |${ratioOf ? ` ${ratioOf[0]} / ${ratioOf[1]} |` : ''}`,
    `|---|${names.map(() => '---:|').join('')}${ratioOf ? '---:|' : ''}`];
  for (const metric of metrics) {
    const cells = names.map((name) => cell(results.get(name)!.map((row) => row[metric])));
    let ratio = '';
    if (ratioOf) {
      const [a, b] = ratioOf.map((name) => median(results.get(name)!.map((row) => row[metric])));
      ratio = ` ${(a / b).toFixed(2)} |`;
    }
    lines.push(`| ${metric} | ${cells.join(' | ')} |${ratio}`);
  }
  process.stdout.write(lines.join('\n') + '\n');
}

function main(): void {
  const n = Number(arg('n', '1000000'));
  const reps = Number(arg('reps', '3'));
  const only = arg('only', '');
  const cache = path.join(REPO, 'node_modules', '.cache', 'logkv-bench-ranges');
  const dataDir = arg('dir', path.join(REPO, 'tools', 'bench', '.data', 'ranges'));
  const peers = [path.join(REPO, 'tools', 'bench'), '/work/main/tools/bench']
    .find((dir) => fs.existsSync(path.join(dir, 'node_modules', 'lmdb')));
  if (peers === undefined) throw new Error('no peers: run npm ci --prefix tools/bench');
  const mainRef = arg('main', execFileSync('git', ['-C', REPO, 'merge-base', 'HEAD', 'main'], { encoding: 'utf8' }).trim());
  const commit = execFileSync('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  const here = build(REPO, path.join(cache, 'ordered'));
  const job = (kind: Job['kind'], store: string): Job => ({
    kind, store, n, gets: Number(arg('gets', '200000')), scans: Number(arg('scans', '300')),
    dir: path.join(dataDir, store.replace(/[^a-z-]/g, '-')), peers, ordered: true,
  });
  process.stdout.write(`bench-ranges: N = ${n}, ${reps} reps, commit ${commit} against ${mainRef === 'unordered' ? 'itself unordered' : `main ${mainRef.slice(0, 7)}`}; ` +
    `${os.cpus().length} cores (${os.cpus()[0]?.model.trim()}), Node ${process.version}, ${new Date().toISOString()}\n`);
  if (only !== 'scan' && mainRef === 'unordered') {
    measure('The ordered index on against the same code without it (never asked for order)', [
      ['ordered', here, job('compare', 'logkv')],
      ['unordered', here, { ...job('compare', 'logkv-unordered'), ordered: false }],
    ], reps, ['ordered', 'unordered']);
  } else if (only !== 'scan') {
    exportRef(mainRef, path.join(cache, 'main-src'));
    const base = build(path.join(cache, 'main-src'), path.join(cache, 'main'));
    measure('The ordered index on (this branch) against main', [
      ['ordered', here, job('compare', 'logkv')],
      ['main', base, job('compare', 'logkv-main')],
    ], reps, ['ordered', 'main']);
  }
  if (only !== 'compare') {
    measure(`Scan of ${SCAN_KEYS} entries from a random start (keys and values decoded)`,
      arg('scan-stores', 'logkv,logkv keys(),logkv/level,lmdb,classic-level').split(',').map((store) => [store, here, job('scan', store)] as [string, string, Job]), reps);
  }
}

if (process.argv[2] === '--child') {
  const job = JSON.parse(process.argv[3]) as Job;
  (job.kind === 'compare' ? compareJob(job) : scanJob(job)).then(
    (row) => process.stdout.write(JSON.stringify(row) + '\n'),
    (err) => { process.stderr.write(`${(err as Error).stack}\n`); process.exit(1); },
  );
} else {
  main();
}
