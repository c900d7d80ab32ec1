/**
 * How long a hot backup of a large store takes, linked and copied, first and incremental, and
 * what it does to the latency of puts made while it runs. Prints a table.
 *
 *   npx ts-node --transpile-only tools/bench-backup.ts [--gib 1] [--sync always,never] [--dir DIR] [--other-fs DIR]
 *
 * The store (`--gib` GiB of 1 KiB values, filled with sync 'never' and closed) is opened with each
 * sync mode in turn; one writer then puts 1 KiB values to random keys, one at a time (each
 * awaited) and at most one per millisecond (an application's steady load, not a flood that
 * would make the store grow by gigabytes while it is backed up), and the table gives the puts'
 * latency while each backup runs, next to the same writer with no backup ("no backup"). Rows: a first backup that links (same file system), a first
 * backup that copies (link: false), an incremental backup into each after ~1 MiB more of puts,
 * and a first copy onto another file system (`--other-fs`, default /dev/shm when it exists:
 * link(2) fails with EXDEV there, so it copies). The page cache is warm (the store was just
 * written): a cold cache adds the disk's read time to every copy and verification. "loop max"
 * is the longest the event loop was held (perf_hooks' event loop delay): a put that waited
 * longer than that waited for the disk (its own fdatasync, or in 'never' mode a write(2) that
 * waited for the file system's journal), not for the backup's JavaScript.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { monitorEventLoopDelay } from 'perf_hooks';
import { BackupResult, SyncMode, Store, open } from '../lib';
import { formatBytes } from '../lib/units';

function arg(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? process.argv[at + 1] : fallback;
}

const GIB = Number(arg('gib', '1'));
const MODES = arg('sync', 'always,never').split(',') as SyncMode[];
const ROOT = arg('dir', path.join(os.tmpdir(), 'logkv-bench-backup'));
const OTHER_FS = arg('other-fs', fs.existsSync('/dev/shm') ? '/dev/shm' : '');
const VALUE_BYTES = 1024;
const KEYS = Math.ceil((GIB * 1024 ** 3) / (VALUE_BYTES + 40));

function key(i: number): string {
  return `key:${String(i).padStart(12, '0')}`;
}

function value(i: number): Buffer {
  const buf = Buffer.alloc(VALUE_BYTES, i & 0xff);
  buf.writeUInt32LE(i >>> 0, 0);
  return buf;
}

async function fill(dir: string): Promise<number> {
  fs.rmSync(dir, { recursive: true, force: true });
  const store = await open(dir, { sync: 'never', autoCompact: false });
  for (let i = 0; i < KEYS; i += 1000) {
    const writes: Array<Promise<unknown>> = [];
    for (let j = i; j < Math.min(KEYS, i + 1000); j++) writes.push(store.set(key(j), value(j)));
    await Promise.all(writes);
  }
  const bytes = store.stats().diskBytes;
  await store.close();
  return bytes;
}

/** Puts at most one per this many ms. */
const PUT_INTERVAL_MS = 1;

/** A writer putting one value at a time, paced; latencies of the puts made between start() and stop(). */
class Writer {
  #running = false;
  #latencies: number[] = [];
  #done: Promise<void> = Promise.resolve();
  #n = 0;

  constructor(private readonly store: Store<unknown>) {}

  start(): void {
    this.#running = true;
    this.#latencies = [];
    this.#done = (async () => {
      let next = performance.now();
      while (this.#running) {
        const i = Math.floor(Math.random() * KEYS);
        const began = performance.now();
        await this.store.set(key(i), value(i + ++this.#n));
        this.#latencies.push(performance.now() - began);
        next += PUT_INTERVAL_MS;
        const wait = next - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        else next = performance.now();
      }
    })();
  }

  async stop(): Promise<number[]> {
    this.#running = false;
    await this.#done;
    return this.#latencies.sort((a, b) => a - b);
  }
}

interface Row {
  sync: SyncMode;
  what: string;
  result?: BackupResult;
  ms: number;
  latencies: number[];
  loopMaxMs: number;
}

function quantile(sorted: number[], q: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function measure(store: Store<unknown>, sync: SyncMode, what: string, run?: () => Promise<BackupResult>): Promise<Row> {
  const writer = new Writer(store);
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  writer.start();
  const began = performance.now();
  let result: BackupResult | undefined;
  if (run === undefined) await new Promise((resolve) => setTimeout(resolve, 3000));
  else result = await run();
  const ms = performance.now() - began;
  loop.disable();
  return { sync, what, result, ms, latencies: await writer.stop(), loopMaxMs: loop.max / 1e6 };
}

/** About 1 MiB of puts, so the incremental backups have something to transfer. */
async function putMore(store: Store<unknown>): Promise<void> {
  const writes: Array<Promise<unknown>> = [];
  for (let i = 0; i < 1000; i++) writes.push(store.set(key(i), value(i + 7)));
  await Promise.all(writes);
}

async function main(): Promise<void> {
  fs.mkdirSync(ROOT, { recursive: true });
  const dir = path.join(ROOT, 'store');
  process.stderr.write(`filling ${GIB} GiB (${KEYS} keys of ${VALUE_BYTES} bytes)...\n`);
  const bytes = await fill(dir);
  const rows: Row[] = [];
  for (const sync of MODES) {
    const store = await open(dir, { sync, autoCompact: false });
    const linked = path.join(ROOT, `linked-${sync}`);
    const copied = path.join(ROOT, `copied-${sync}`);
    const other = OTHER_FS === '' ? '' : fs.mkdtempSync(path.join(OTHER_FS, 'logkv-bench-backup-'));
    for (const d of [linked, copied]) fs.rmSync(d, { recursive: true, force: true });
    process.stderr.write(`sync '${sync}'...\n`);
    rows.push(await measure(store, sync, 'no backup (3 s)'));
    rows.push(await measure(store, sync, 'first, link', () => store.backup(linked)));
    rows.push(await measure(store, sync, 'first, copy', () => store.backup(copied, { link: false })));
    await putMore(store);
    rows.push(await measure(store, sync, 'incremental, link', () => store.backup(linked)));
    rows.push(await measure(store, sync, 'incremental, copy', () => store.backup(copied, { link: false })));
    if (other !== '') {
      rows.push(await measure(store, sync, `first, other fs (${OTHER_FS})`, () => store.backup(other)));
      fs.rmSync(other, { recursive: true, force: true });
    }
    await store.close();
    for (const d of [linked, copied]) fs.rmSync(d, { recursive: true, force: true });
  }
  fs.rmSync(ROOT, { recursive: true, force: true });
  print(bytes, rows);
}

function print(bytes: number, rows: Row[]): void {
  const header = ['sync', 'backup', 'time', 'linked', 'copied', 'transferred', 'verified', 'puts', 'put p50', 'put p99', 'put max', 'loop max'];
  const lines = rows.map((r) => [
    r.sync, r.what, `${(r.ms / 1000).toFixed(2)} s`,
    r.result === undefined ? '' : String(r.result.filesLinked),
    r.result === undefined ? '' : String(r.result.filesCopied + r.result.filesExtended),
    r.result === undefined ? '' : formatBytes(r.result.bytesCopied),
    r.result === undefined ? '' : formatBytes(r.result.bytesVerified),
    String(r.latencies.length),
    `${quantile(r.latencies, 0.5).toFixed(2)} ms`, `${quantile(r.latencies, 0.99).toFixed(2)} ms`,
    `${(r.latencies[r.latencies.length - 1] ?? NaN).toFixed(1)} ms`, `${r.loopMaxMs.toFixed(1)} ms`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const row = (cells: string[]): string => `| ${cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`;
  console.log(`logkv hot backup of a ${formatBytes(bytes)} store (${KEYS} keys of ${VALUE_BYTES} bytes), ${new Date().toISOString().slice(0, 10)}, ` +
    `Node ${process.version}, ${os.cpus().length} CPUs, warm page cache`);
  console.log(row(header));
  console.log(`|${widths.map((w, i) => (i < 2 ? ':' : '-') + '-'.repeat(w) + (i < 2 ? '-' : ':')).join('|')}|`);
  for (const l of lines) console.log(row(l));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
