/**
 * The ordered index's costs (lib/ordered.ts), at the keydir level: puts of new keys with and
 * without the index (random keys, as the store benchmark's keyOf() makes them, and sequential
 * ones), overwrites, removals, the bulk build at open (a sort) and its alternative (loading the
 * index's bytes), seek + scan of 1,000 keys from random starts, and bytes per key.
 *
 *   npx ts-node --transpile-only tools/bench-ordered.ts [--n 1000000] [--reps 3] [--capacity 64]
 *
 * Each rep runs in a fresh process; cells are the median of the reps, in wall time and in CPU
 * time of the process (on a machine shared with other work, CPU time varies less). Keys are 16
 * bytes, encoded once into one buffer and put through KeyDir.putBytes(), as the store puts the
 * key bytes of an encoded record, so the comparison is not diluted by string encoding.
 */
import { spawnSync } from 'child_process';
import * as os from 'os';
import { Entry, KeyDir } from '../lib/keydir';
import { keyOf, mix32 } from './bench/data';

function arg(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? process.argv[at + 1] : fallback;
}

const n = Number(arg('n', '1000000'));
const reps = Number(arg('reps', '3'));
const capacity = Number(arg('capacity', '64'));
const KEY_BYTES = 16;
const SCANS = 1000;
const SCAN_KEYS = 1000;

/** One measurement: wall and CPU milliseconds. */
interface Timing {
  wallMs: number;
  cpuMs: number;
}

function time(run: () => void): Timing {
  (globalThis as { gc?: () => void }).gc?.();
  const cpu = process.cpuUsage();
  const started = performance.now();
  run();
  const wallMs = performance.now() - started;
  const used = process.cpuUsage(cpu);
  return { wallMs, cpuMs: (used.user + used.system) / 1000 };
}

/** `count` keys of 16 bytes in one buffer: the store benchmark's random hex keys, or `key:` and 12 digits. */
function encodeKeys(count: number, sequential: boolean): Buffer {
  const keys = Buffer.alloc(count * KEY_BYTES);
  for (let i = 0; i < count; i++) {
    keys.write(sequential ? `key:${String(i).padStart(12, '0')}` : keyOf(i, 42), i * KEY_BYTES, 'latin1');
  }
  return keys;
}

/** A permutation of 0..count-1, seeded. */
function shuffled(count: number, seed: number): Uint32Array {
  const order = Uint32Array.from({ length: count }, (_, i) => i);
  for (let i = count - 1; i > 0; i--) {
    const j = mix32(i ^ seed) % (i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

type Row = Record<string, Timing | number>;

/** One rep: every measurement, in this process. */
function child(): Row {
  const row: Row = {};
  const entry = new Entry(1, 0, 120, 0);
  const random = encodeKeys(n, false);
  const sequential = encodeKeys(n, true);
  const fill = (keydir: KeyDir, keys: Buffer) => {
    for (let i = 0; i < n; i++) keydir.putBytes(keys, i * KEY_BYTES, KEY_BYTES, entry);
  };
  const overwriteOrder = shuffled(n, 7);
  const removeOrder = shuffled(n, 9).subarray(0, n >>> 1);
  // Alternate which variant goes first, so warm-up favours neither.
  const variants = Number(process.env.BENCH_REP ?? 0) % 2 === 0 ? [false, true] : [true, false];
  for (const ordered of variants) {
    const tag = ordered ? 'with' : 'without';
    const options = ordered ? { ordered: { nodeCapacity: capacity } } : {};
    let keydir = new KeyDir(options);
    row[`put random keys, ${tag}`] = time(() => fill(keydir, random));
    if (ordered) row['bytes/key after random puts'] = keydir.ordered!.memoryBytes / n;
    row[`overwrite, ${tag}`] = time(() => {
      for (const i of overwriteOrder) keydir.putBytes(random, i * KEY_BYTES, KEY_BYTES, entry);
    });
    row[`remove half, ${tag}`] = time(() => {
      for (const i of removeOrder) keydir.putBytes(random, i * KEY_BYTES, KEY_BYTES, undefined);
    });
    keydir = new KeyDir(options);
    row[`put sequential keys, ${tag}`] = time(() => fill(keydir, sequential));
    if (ordered) row['bytes/key after sequential puts'] = keydir.ordered!.memoryBytes / n;
  }
  const keydir = new KeyDir();
  fill(keydir, random);
  row['bulk build (sort), with'] = time(() => keydir.orderKeys({ nodeCapacity: capacity }));
  row['bytes/key after bulk build'] = keydir.ordered!.memoryBytes / n;
  const saved = Buffer.concat(keydir.ordered!.toBytes());
  row['saved index bytes/key'] = saved.length / n;
  const loaded = KeyDir.fromBytes(Buffer.concat(keydir.toBytes()));
  row['load saved index, with'] = time(() => loaded.orderKeys({}, saved));
  row['keydir bytes/key (without the index)'] = (keydir.memoryBytes - keydir.ordered!.memoryBytes) / n;
  // Seek + scan from random starts: random keys (most not present) as `gte` bounds.
  const starts = Array.from({ length: SCANS }, (_, i) => Buffer.from(keyOf(n + i, 4242), 'latin1'));
  let scanned = 0;
  row[`seek + scan ${SCAN_KEYS} records (cursor), with`] = time(() => {
    for (const gte of starts) {
      const cursor = keydir.ordered!.cursor({ gte, limit: SCAN_KEYS });
      while (cursor.next() >= 0) scanned++;
    }
  });
  row[`seek + scan ${SCAN_KEYS} keys as strings (range()), with`] = time(() => {
    for (const gte of starts) for (const key of keydir.range({ gte: gte.toString('latin1'), limit: SCAN_KEYS })) scanned += key.length > 0 ? 1 : 0;
  });
  if (scanned < SCANS * SCAN_KEYS) throw new Error(`scans came up short: ${scanned}`);
  return row;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function main(): void {
  const rows: Row[] = [];
  for (let rep = 0; rep < reps; rep++) {
    const result = spawnSync(process.execPath, ['--expose-gc', '--max-old-space-size=8192', '-r', 'ts-node/register/transpile-only', __filename,
      '--child', '--n', String(n), '--capacity', String(capacity)], { encoding: 'utf8', env: { ...process.env, BENCH_REP: String(rep) }, maxBuffer: 1 << 24 });
    if (result.status !== 0) throw new Error(`rep ${rep} failed: ${result.stderr}`);
    rows.push(JSON.parse(result.stdout.trim().split('\n').pop()!));
    process.stderr.write(`rep ${rep + 1}/${reps} done (load average ${os.loadavg()[0].toFixed(1)})\n`);
  }
  const names = Object.keys(rows[0]);
  const perOp: Record<string, number> = { 'remove half': n / 2, 'seek + scan': SCANS };
  const opsOf = (name: string) => Object.entries(perOp).find(([prefix]) => name.startsWith(prefix))?.[1] ?? n;
  const cell = (name: string, pick: (t: Timing) => number): number => median(rows.map((row) => pick(row[name] as Timing)));
  console.log(`N = ${n.toLocaleString('en-US')}, node capacity ${capacity}, ${reps} reps (median), ${os.cpus().length} cores, ` +
    `${os.cpus()[0]?.model ?? ''}, Node ${process.version}, load average at the end ${os.loadavg()[0].toFixed(1)}\n`);
  console.log('| measurement | wall: µs/op | CPU: µs/op | CPU: ops/s |');
  console.log('|---|---:|---:|---:|');
  for (const name of names.filter((name) => typeof rows[0][name] === 'object')) {
    const ops = opsOf(name);
    const wall = cell(name, (t) => t.wallMs) * 1000 / ops;
    const cpu = cell(name, (t) => t.cpuMs) * 1000 / ops;
    const whole = name.startsWith('bulk') || name.startsWith('load');
    console.log(whole
      ? `| ${name} | ${cell(name, (t) => t.wallMs).toFixed(1)} ms | ${cell(name, (t) => t.cpuMs).toFixed(1)} ms | |`
      : `| ${name} | ${wall.toFixed(3)} | ${cpu.toFixed(3)} | ${Math.round(1e6 / cpu).toLocaleString('en-US')} |`);
  }
  console.log('\n| ratio (CPU time): with / without the index | |\n|---|---:|');
  for (const op of ['put random keys', 'put sequential keys', 'overwrite', 'remove half']) {
    const without = cell(`${op}, without`, (t) => t.cpuMs);
    const withIndex = cell(`${op}, with`, (t) => t.cpuMs);
    console.log(`| ${op}: rate | ${(without / withIndex).toFixed(2)}× |`);
  }
  console.log('\n| memory | bytes/key |\n|---|---:|');
  for (const name of names.filter((name) => typeof rows[0][name] === 'number')) {
    console.log(`| ${name} | ${median(rows.map((row) => row[name] as number)).toFixed(2)} |`);
  }
}

if (process.argv.includes('--child')) process.stdout.write(JSON.stringify(child()) + '\n');
else main();
