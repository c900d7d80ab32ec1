/**
 * The memory one compaction needs: a store of N keys (16-byte keys, ~100-byte values, the suite's
 * data from tools/bench/data.ts), a tenth of them overwritten so the sealed segments hold dead
 * records, then closed and opened again (a clean start), a full GC, and one compact() of every
 * sealed segment (it copies all N live records) while process.memoryUsage() is sampled every
 * `--every` ms. The table gives, over the baseline taken just before compact() (after the GC),
 * the peak growth of the JS heap (heapUsed), of external memory (external: Buffers and typed
 * arrays, which is where arrayBuffers is counted too) and of rss, and the compaction's time.
 * heapUsed counts garbage not yet collected; so every `--live-every` ms (250 by default; 0: never)
 * the bench also runs a full GC and samples what is left: the peak of those is the live heap
 * growth, what compaction itself holds. Those GCs also keep garbage from piling up, so the first
 * column is lower with them than without (--live-every 0 gives the unforced figure).
 *
 *   node --expose-gc -r ts-node/register/transpile-only tools/bench-compaction-heap.ts --n 1000000 [--dir DIR] [--every 5] [--live-every 250] [--keep] [--commit NAME]
 *
 * Run it with --expose-gc: without gc() the baseline holds whatever the fill left for the
 * collector, and the growth it reports is meaningless (it refuses to run). The store's directory
 * is removed at the end unless --keep is given. Peaks are of the samples: a peak shorter than the
 * sampling interval is missed, and between two of compaction's slices no sample can be taken, so
 * the numbers are lower bounds (the slices are short: 1 MiB of input, 20,000 switched records).
 */
import { execSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { performance } from 'perf_hooks';
import { open } from '../lib';
import { keyOf, valueOf } from './bench/data';

declare const gc: undefined | (() => void);

function arg(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? process.argv[at + 1] : fallback;
}

const n = Number(arg('n', '1000000'));
const every = Number(arg('every', '5'));
const dir = arg('dir', path.join(os.tmpdir(), `logkv-bench-compaction-heap-${n}`));
const keep = process.argv.includes('--keep');
/** Every this many ms, a full GC and a sample of what is left: the live heap (0: never). */
const liveEvery = Number(arg('live-every', '250'));
const SEED = 1;
const BATCH = 1000;
const MiB = 1024 * 1024;

function commit(): string {
  const named = arg('commit', '');
  if (named !== '') return named;
  try {
    const root = path.join(__dirname, '..');
    const head = execSync('git rev-parse --short HEAD', { cwd: root, encoding: 'utf8' }).trim();
    const dirty = execSync('git status --porcelain -- lib', { cwd: root, encoding: 'utf8' }).trim() !== '';
    return dirty ? `${head}+dirty` : head;
  } catch {
    return 'unknown';
  }
}

function fullGc(): void {
  for (let i = 0; i < 3; i++) gc!();
}

async function fill(): Promise<void> {
  const store = await open(dir, { sync: 'never', autoCompact: false });
  const write = async (from: number, to: number, revision: number): Promise<void> => {
    for (let i = from; i < to; i += BATCH) {
      const ops = [];
      for (let j = i; j < Math.min(to, i + BATCH); j++) ops.push({ type: 'set' as const, key: keyOf(j, SEED), value: valueOf(j, revision) });
      await store.batch(ops);
    }
  };
  await write(0, n, 0);
  // A tenth overwritten: the sealed segments hold dead records, and compact() has work to do.
  await write(0, Math.ceil(n / 10), 1);
  await store.close();
}

interface Memory { heapUsed: number; external: number; arrayBuffers: number; rss: number }

function sample(): Memory {
  const m = process.memoryUsage();
  return { heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, rss: m.rss };
}

async function main(): Promise<void> {
  if (typeof gc !== 'function') throw new Error('run node with --expose-gc');
  fs.rmSync(dir, { recursive: true, force: true });
  const fillStarted = performance.now();
  await fill();
  const fillSeconds = (performance.now() - fillStarted) / 1000;
  const store = await open(dir, { sync: 'never', autoCompact: false });
  const size = await store.size;
  if (size !== n) throw new Error(`the store holds ${size} keys, expected ${n}`);
  fullGc();
  const base = sample();
  const peak: Memory = { ...base };
  const take = (): void => {
    const m = sample();
    peak.heapUsed = Math.max(peak.heapUsed, m.heapUsed);
    peak.external = Math.max(peak.external, m.external);
    peak.arrayBuffers = Math.max(peak.arrayBuffers, m.arrayBuffers);
    peak.rss = Math.max(peak.rss, m.rss);
  };
  let peakLive = base.heapUsed;
  let peakLiveExternal = base.external;
  const live = (): void => {
    gc!();
    const m = sample();
    peakLive = Math.max(peakLive, m.heapUsed);
    peakLiveExternal = Math.max(peakLiveExternal, m.external);
  };
  const timer = setInterval(take, every);
  const liveTimer = liveEvery > 0 ? setInterval(live, liveEvery) : undefined;
  const started = performance.now();
  const result = await store.compact({ onProgress: take });
  const seconds = (performance.now() - started) / 1000;
  take();
  clearInterval(timer);
  if (liveTimer !== undefined) clearInterval(liveTimer);
  if (result.recordsKept !== n) throw new Error(`compaction kept ${result.recordsKept} records, expected ${n}`);
  const afterSize = await store.size;
  await store.close();
  if (!keep) fs.rmSync(dir, { recursive: true, force: true });
  const mib = (bytes: number): string => (bytes / MiB).toFixed(1);
  const perKey = (bytes: number): string => (bytes / n).toFixed(1);
  const row = {
    n, commit: commit(), node: process.version,
    heapGrowthMiB: mib(peak.heapUsed - base.heapUsed), heapBytesPerKey: perKey(peak.heapUsed - base.heapUsed),
    externalGrowthMiB: mib(peak.external - base.external), externalBytesPerKey: perKey(peak.external - base.external),
    arrayBuffersGrowthMiB: mib(peak.arrayBuffers - base.arrayBuffers),
    liveHeapGrowthMiB: liveEvery > 0 ? mib(peakLive - base.heapUsed) : '-',
    liveExternalGrowthMiB: liveEvery > 0 ? mib(peakLiveExternal - base.external) : '-',
    rssGrowthMiB: mib(peak.rss - base.rss),
    baselineHeapMiB: mib(base.heapUsed), compactSeconds: seconds.toFixed(2), fillSeconds: fillSeconds.toFixed(1),
    recordsKept: result.recordsKept, recordsDropped: result.recordsDropped, sizeAfter: afterSize,
  };
  console.log('| N | commit | peak heap growth MiB (B/key) | peak live heap growth MiB | peak external growth MiB (B/key) | peak live external growth MiB | peak arrayBuffers growth MiB | peak rss growth MiB | compaction s |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  console.log(`| ${n.toLocaleString('en-US')} | ${row.commit} | ${row.heapGrowthMiB} (${row.heapBytesPerKey}) | ${row.liveHeapGrowthMiB} | ` +
    `${row.externalGrowthMiB} (${row.externalBytesPerKey}) | ${row.liveExternalGrowthMiB} | ${row.arrayBuffersGrowthMiB} | ${row.rssGrowthMiB} | ${row.compactSeconds} |`);
  console.log(JSON.stringify(row));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
