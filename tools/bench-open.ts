/**
 * How fast a store opens, by the three paths open() can take: replaying every record (after a
 * crash, with no hint files), loading hint files (compacted segments, after a crash), and
 * loading the keydir snapshot a clean close leaves. Each open runs in a fresh process, on a warm
 * page cache; the table gives the median of the runs and its ratio to the replay.
 *
 *   npx ts-node --transpile-only tools/bench-open.ts [--n 1000000] [--runs 5] [--dir DIR]
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { open } from '../lib';

function arg(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? process.argv[at + 1] : fallback;
}

const n = Number(arg('n', '1000000'));
const runs = Number(arg('runs', '5'));
const dir = arg('dir', path.join(os.tmpdir(), `logkv-bench-open-${n}`));

/** Opens the store in a fresh process; prints {ms, snapshot, hinted, records, keys}. */
async function child(): Promise<void> {
  const started = performance.now();
  const store = await open(dir, { sync: 'never', autoCompact: false });
  const ms = performance.now() - started;
  const { snapshot, hinted, records } = store.recovery;
  const keys = store.size;
  // Leave no snapshot behind, so the next run takes the path the parent set up.
  await store.close();
  fs.rmSync(path.join(dir, 'keydir.snapshot'), { force: true });
  process.stdout.write(JSON.stringify({ ms, snapshot, hinted, records, keys }) + '\n');
}

async function fill(): Promise<void> {
  fs.rmSync(dir, { recursive: true, force: true });
  const store = await open(dir, { sync: 'never', autoCompact: false });
  for (let i = 0; i < n; i += 1000) {
    const writes: Array<Promise<unknown>> = [];
    for (let j = i; j < Math.min(n, i + 1000); j++) {
      writes.push(store.set(`key:${String(j).padStart(12, '0')}`, { id: j, name: `user ${j}`, tags: ['a', 'b'], pad: 'x'.repeat(40) }));
    }
    await Promise.all(writes);
  }
  await store.close();
}

function openInChild(): { ms: number; snapshot: boolean; hinted: number; records: number; keys: number } {
  const result = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', __filename, '--child', '--dir', dir, '--n', String(n)],
    { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`child failed: ${result.stderr}`);
  return JSON.parse(result.stdout.trim().split('\n').pop()!);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function measure(label: string, prepare: () => void): { label: string; ms: number; min: number; max: number; how: string } {
  const times: number[] = [];
  let how = '';
  for (let i = 0; i < runs; i++) {
    prepare();
    const r = openInChild();
    if (r.keys !== n) throw new Error(`${label}: opened ${r.keys} keys, expected ${n}`);
    how = r.snapshot ? 'snapshot' : r.hinted > 0 ? `${r.hinted} hinted segments` : `${r.records} records replayed`;
    times.push(r.ms);
  }
  return { label, ms: median(times), min: Math.min(...times), max: Math.max(...times), how };
}

async function main(): Promise<void> {
  if (process.argv.includes('--child')) return child();
  await fill();
  fs.rmSync(path.join(dir, 'keydir.snapshot'), { force: true }); // the fill's close left one
  const noHints = () => { for (const f of fs.readdirSync(dir)) if (f.endsWith('.hint')) fs.rmSync(path.join(dir, f)); };
  const replayLog = measure('replay the log (no hints, no snapshot)', () => undefined);
  // Compact, so every segment gets a hint file.
  const store = await open(dir, { sync: 'never', autoCompact: false });
  await store.compact();
  await store.close();
  fs.rmSync(path.join(dir, 'keydir.snapshot'), { force: true });
  const hints = measure('load hint files (after compaction)', () => undefined);
  const replayCompacted = measure('replay the compacted log (hints removed)', noHints);
  const snapshot = measure('load the keydir snapshot (after a clean close)', () => {
    spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e',
      `require('./lib').open(${JSON.stringify(dir)}, { sync: 'never', autoCompact: false }).then((s) => s.close())`], { encoding: 'utf8' });
  });
  const rows = [replayLog, replayCompacted, hints, snapshot];
  console.log(`\nOpening ${n.toLocaleString('en-US')} keys (~100-byte values), ${runs} runs each, fresh process, warm page cache`);
  console.log(`${os.cpus()[0].model}, ${os.cpus().length} cores, Node ${process.version}, ${new Date().toISOString()}\n`);
  console.log('| path | median ms | min–max ms | how | vs replay of the same log |');
  console.log('|---|---:|---:|---|---:|');
  for (const r of rows) {
    const base = r === replayLog ? replayLog.ms : replayCompacted.ms;
    console.log(`| ${r.label} | ${r.ms.toFixed(0)} | ${r.min.toFixed(0)}–${r.max.toFixed(0)} | ${r.how} | ${(base / r.ms).toFixed(1)}× |`);
  }
}

void main();
