/**
 * Scale: a store of N keys (default 20,000,000, more than a single JS Map can hold) fills, opens,
 * serves reads and compacts. Prints one table row per step with its time and the process memory.
 *
 *   node --max-old-space-size=8192 -r ts-node/register/transpile-only tools/bench-scale.ts [--n 20000000] [--dir DIR]
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { open } from '../lib';

function arg(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? process.argv[at + 1] : fallback;
}

const n = Number(arg('n', '20000000'));
const dir = arg('dir', path.join(os.tmpdir(), `logkv-bench-scale-${n}`));
const rows: string[] = [];

function mib(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(0);
}

function row(step: string, ms: number, detail: string): void {
  const m = process.memoryUsage();
  // process.memoryUsage().external already includes arrayBuffers (the keydir's typed arrays).
  rows.push(`| ${step} | ${(ms / 1000).toFixed(1)} | ${mib(m.heapUsed)} | ${mib(m.external)} | ${mib(m.rss)} | ${detail} |`);
  console.error(rows[rows.length - 1]);
}

const key = (i: number): string => `key:${String(i).padStart(12, '0')}`;

async function main(): Promise<void> {
  fs.rmSync(dir, { recursive: true, force: true });
  let started = performance.now();
  let store = await open(dir, { sync: 'never', autoCompact: false });
  for (let i = 0; i < n; i += 1000) {
    const writes: Array<Promise<unknown>> = [];
    for (let j = i; j < Math.min(n, i + 1000); j++) writes.push(store.set(key(j), { id: j, pad: 'x'.repeat(60) }));
    await Promise.all(writes);
  }
  // Overwrite a tenth, so compaction has something to drop.
  for (let i = 0; i < n; i += 10_000) {
    const writes: Array<Promise<unknown>> = [];
    for (let j = i; j < Math.min(n, i + 1000); j++) writes.push(store.set(key(j), { id: j, again: true }));
    await Promise.all(writes);
  }
  row('fill + overwrite a tenth', performance.now() - started, `${store.size.toLocaleString('en-US')} keys, ${mib(store.stats().diskBytes)} MiB on disk`);
  started = performance.now();
  await store.close();
  row('close (writes the snapshot)', performance.now() - started, '');

  started = performance.now();
  store = await open(dir, { sync: 'never', autoCompact: false });
  row('open', performance.now() - started, store.recovery.snapshot ? 'from the snapshot' : `${store.recovery.records} records replayed`);

  started = performance.now();
  const reads = 200_000;
  let seed = 1;
  for (let i = 0; i < reads; i++) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    const j = seed % n;
    const value = (await store.get(key(j))) as { id: number } | undefined;
    if (value?.id !== j) throw new Error(`wrong value for ${key(j)}`);
  }
  row(`${reads.toLocaleString('en-US')} random gets`, performance.now() - started, `${Math.round(reads / ((performance.now() - started) / 1000)).toLocaleString('en-US')} gets/s`);

  started = performance.now();
  const result = await store.compact();
  row('compact', performance.now() - started, `${result.recordsKept.toLocaleString('en-US')} kept, ${result.recordsDropped.toLocaleString('en-US')} dropped, ${mib(result.bytesBefore)} -> ${mib(result.bytesAfter)} MiB`);
  const check = (await store.get(key(n - 1))) as { id: number };
  if (check.id !== n - 1 || store.size !== n) throw new Error('wrong state after compaction');
  await store.close();
  fs.rmSync(path.join(dir, 'keydir.snapshot'));
  started = performance.now();
  store = await open(dir, { sync: 'never', autoCompact: false });
  row('open from hint files (no snapshot)', performance.now() - started, `${store.recovery.hinted} hinted segments`);
  await store.close();

  console.log(`\nScale: ${n.toLocaleString('en-US')} keys, ${os.cpus()[0].model}, ${os.cpus().length} cores, Node ${process.version}, ${new Date().toISOString()}\n`);
  console.log('| step | seconds | heap MiB | external MiB | RSS MiB | detail |');
  console.log('|---|---:|---:|---:|---:|---|');
  for (const r of rows) console.log(r);
  fs.rmSync(dir, { recursive: true, force: true });
}

void main();
