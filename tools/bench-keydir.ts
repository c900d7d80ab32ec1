/**
 * The keydir alone (lib/keydir.ts), no store, no I/O: CPU time of N inserts of 16-byte keys (the
 * suite's keys, tools/bench/data.ts) into an empty table, then N lookups of present keys (as
 * strings, as the store's get() does, and as bytes, as replay does), N lookups of missing keys,
 * the same N lookups in a random order (the store's random gets: every column read misses cache),
 * N lookups as the store's get() makes them since the keydir has find() (the record number, then
 * its segment, offset and length from the columns, no Entry; skipped for a keydir without it),
 * N overwrites, and N deletes; and the table's bytes per key after the inserts. Each phase is
 * timed with process.cpuUsage (the machine is shared), `reps` times in one process on fresh
 * tables; the table gives the median. `--module` points at another keydir.ts to compare builds
 * (e.g. an older commit's lib, extracted with `git archive <commit> lib | tar -x -C /tmp/old`).
 *
 *   npx ts-node --transpile-only tools/bench-keydir.ts [--n 1000000] [--reps 5] [--module PATH]
 */
import * as path from 'path';
import { keyOf } from './bench/data';

function arg(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? process.argv[at + 1] : fallback;
}

const n = Number(arg('n', '1000000'));
const reps = Number(arg('reps', '5'));
const modulePath = path.resolve(arg('module', path.join(__dirname, '../lib/keydir')));

function cpuMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1];
}

interface Table {
  get(key: string): unknown;
  find?(key: string): number;
  segmentIdOf?(record: number): number;
  offsetOf?(record: number): number;
  lengthOf?(record: number): number;
  getBytes(bytes: Uint8Array, start: number, length: number): unknown;
  putBytes(bytes: Uint8Array, start: number, length: number, entry: unknown): unknown;
  readonly memoryBytes: number;
  readonly size: number;
}

function main(): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { KeyDir, Entry } = require(modulePath) as {
    KeyDir: new (seed?: number) => Table;
    Entry: new (segmentId: number, offset: number, length: number, expiresAt: number) => unknown;
  };
  const KEY = 16;
  const keys: string[] = [];
  const present = Buffer.alloc(n * KEY);
  const missing = Buffer.alloc(n * KEY);
  for (let i = 0; i < n; i++) {
    keys.push(keyOf(i, 1));
    present.write(keys[i], i * KEY, 'latin1');
    // A letter no hex key starts with: certainly absent.
    missing.write(`z${keys[i].slice(1)}`, i * KEY, 'latin1');
  }
  const entries = Array.from({ length: 64 }, (_, i) => new Entry(1 + (i & 3), i * 128, 120, 0));
  // A fixed shuffle (xorshift from a constant seed), the same for every module compared.
  const shuffled = Uint32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1, x = 0x9e3779b9; i > 0; i--) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    const j = (x >>> 0) % (i + 1);
    [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
  }
  const phases: Record<string, number[]> = { insert: [], getString: [], getRandom: [], findRandom: [], findString: [], getBytes: [], getMissing: [], overwrite: [], delete: [] };
  let bytesPerKey = 0;
  for (let rep = 0; rep < reps; rep++) {
    const table = new KeyDir(1234);
    const time = (name: string, body: () => void) => {
      const started = cpuMs();
      body();
      phases[name].push(cpuMs() - started);
    };
    time('insert', () => { for (let i = 0; i < n; i++) table.putBytes(present, i * KEY, KEY, entries[i & 63]); });
    bytesPerKey = table.memoryBytes / n;
    let found = 0;
    time('getString', () => { for (let i = 0; i < n; i++) if (table.get(keys[i]) !== undefined) found++; });
    time('getRandom', () => { for (let i = 0; i < n; i++) if (table.get(keys[shuffled[i]]) !== undefined) found++; });
    if (table.find !== undefined) {
      let sum = 0;
      time('findRandom', () => {
        for (let i = 0; i < n; i++) {
          const record = table.find!(keys[shuffled[i]]);
          if (record >= 0) sum += table.segmentIdOf!(record) + table.offsetOf!(record) + table.lengthOf!(record);
        }
      });
      time('findString', () => {
        for (let i = 0; i < n; i++) {
          const record = table.find!(keys[i]);
          if (record >= 0) sum += table.segmentIdOf!(record) + table.offsetOf!(record) + table.lengthOf!(record);
        }
      });
      if (sum === 0) throw new Error('findString found nothing');
    }
    time('getBytes', () => { for (let i = 0; i < n; i++) if (table.getBytes(present, i * KEY, KEY) !== undefined) found++; });
    time('getMissing', () => { for (let i = 0; i < n; i++) if (table.getBytes(missing, i * KEY, KEY) !== undefined) found++; });
    time('overwrite', () => { for (let i = 0; i < n; i++) table.putBytes(present, i * KEY, KEY, entries[(i + 1) & 63]); });
    time('delete', () => { for (let i = 0; i < n; i++) table.putBytes(present, i * KEY, KEY, undefined); });
    if (found !== 3 * n || table.size !== 0) throw new Error(`found ${found}, size ${table.size}`);
  }
  console.log(`keydir ${path.relative(process.cwd(), modulePath)}, n ${n}, reps ${reps}: CPU ms, median`);
  console.log('| phase | ms | ns/op |');
  console.log('|---|---:|---:|');
  for (const [name, values] of Object.entries(phases)) {
    if (values.length === 0) continue;
    const ms = median(values);
    console.log(`| ${name} | ${ms.toFixed(0)} | ${((ms * 1e6) / n).toFixed(0)} |`);
  }
  console.log(`| bytes/key after insert | ${bytesPerKey.toFixed(1)} | |`);
}

main();
