/**
 * Turns the benchmark's JSON into docs/benchmarks.md: the machine, the command that reproduces
 * the numbers, the tables, the ratio chart (inline SVG) and the method with its caveats.
 *
 *   npm run bench -- --report tools/bench/results/bench-....json [--md docs/benchmarks.md] [--svg FILE]
 *   npx ts-node -P tools/bench/tsconfig.json tools/bench/report.ts RESULTS.json [OUT.md]
 */
import * as fs from 'fs';
import * as path from 'path';
import { formatBytes } from '../../lib/units';
import { headerLines, openFloorLine, rawLine, rawShareLine, ratioTable, resultsTable, shellQuote } from './format';
import type { BenchResults, WorkloadName } from './protocol';
import { ratioChart } from './svg';

const SECTIONS: Array<{ title: string; workloads: WorkloadName[] }> = [
  { title: 'Throughput (no fsync per write)', workloads: ['fill', 'fill-batch', 'get-seq1', 'get-par64', 'overwrite'] },
  { title: 'Durable writes', workloads: ['durable-1', 'durable-64'] },
  { title: 'Open and memory', workloads: ['open', 'memory'] },
  { title: 'Disk', workloads: ['disk'] },
  { title: 'Compaction (logkv only)', workloads: ['compaction'] },
];

function method(results: BenchResults): string[] {
  const { options } = results;
  const n = options.n.toLocaleString('en-US');
  return [
    `Every store gets the same ${n} keys (16 hex characters, in an order that looks random to a sorted store) and the same values: an object \`{ id, name, email, tags: [3 strings], score, ts }\`, about 100 bytes as msgpack, stored in each store's natural encoding (logkv, lmdb: their own msgpack; classic-level, better-sqlite3: msgpackr bytes; node-persist, keyv-file: their own JSON). Every measurement runs in a fresh child process (\`node --expose-gc --max-old-space-size=8192\`, plain JavaScript transpiled ahead, so that no compiler sits in the heap); the stores take turns, each rep starting with a different store. Setup (filling the store a read workload reads) is not timed. Reads and overwrites are checked against what was written, so a store that loses writes fails rather than wins.`,
    '',
    '- **fill**: N puts into an empty store, 1000 issued at once and then awaited together, repeated. **fill-batch**: the same in batches of 1000 (one transaction each where the store has them; node-persist and keyv-file have no batch, so their 1000 puts are issued together).',
    '- **get-seq1 / get-par64**: after the store is filled, closed and reopened, every key once in a random order, awaited one at a time, and with 64 reads in flight.',
    '- **overwrite**: N puts to existing keys, in a random order, 1000 in flight.',
    `- **durable-1 / durable-64**: each put resolves only once it is on disk; one writer, and 64 concurrent writers, each putting a new key and awaiting it, for ${options.durableMs} ms or ${options.durableMaxOps.toLocaleString('en-US')} puts, whichever comes first. Latency percentiles are per put. **fdatasync-raw** is the disk's limit without any store: a 128-byte append + fdatasync, and a 128-byte overwrite of a preallocated, synced file + fdatasync, one at a time, with synchronous calls.`,
    '- **open**: a store of N keys, written by another process, its files read once so they are in the page cache; in a fresh process that has loaded the store\'s code, the time from `open()` to the first `get` of an existing key returning.',
    '- **memory**: in that same process, `process.memoryUsage()` after two full GCs before and after open: growth per key of the JS heap plus external memory (buffers and typed arrays, where an index may live instead; compared as one number, and shown apart), and of RSS; and the duration of one full GC (`global.gc()`) before and after open, which is what a large in-memory index costs every major collection.',
    '- **disk**: bytes the store\'s files occupy on disk (allocated blocks, so per-file overhead counts) per key, after filling and closing, after overwriting every key once and closing, and for logkv after `compact()` when the method exists.',
    `- **compaction** (logkv only): the store is filled with N keys and overwritten until its files reach ${formatBytes(options.compactBytes)} (segments of an eighth of that, at most 64 MiB); then one writer's put latency is measured for ${options.compactBaselineMs} ms alone, and again while \`compact()\` runs.`,
    '',
    'Throughput workloads use no fsync per write for any store; the durable ones fsync every acknowledged write for every store that can. The settings:',
    '',
    '| store | throughput workloads | durable workloads |',
    '| --- | --- | --- |',
    ...Object.entries(results.settings).map(([store, s]) => `| ${store} | ${s.fast} | ${s.durable} |`),
    '',
    '### Caveats',
    '',
    '- lmdb and better-sqlite3 read synchronously (lmdb from its memory map, SQLite in the calling thread), so 64 reads in flight are no faster than one for them, and their "latency" is time the event loop is blocked; better-sqlite3 also writes synchronously, so durable-64 is 64 writers taking turns, without group commit.',
    '- Without fsync, fill and overwrite measure how fast a store hands data to the OS; lmdb (noSync), classic-level (sync: false) and SQLite (synchronous=NORMAL) can still flush on their own schedule (LevelDB when it writes a table, SQLite at checkpoints), as logkv does on segment rotation and close.',
    '- lmdb\'s durable puts resolve at commit and then wait for `db.flushed`: the commits of concurrent writers share one flush, which is lmdb\'s own group commit.',
    '- node-persist and keyv-file never fsync, so they are n/a for durable writes. keyv-file keeps every key in memory and rewrites its whole file 100 ms after a set, so its puts take ≥ 100 ms and its writes slow down as the store grows; node-persist writes one file per key, which shows in its disk numbers.',
    '- SQLite uses the table of a typical application (`k TEXT PRIMARY KEY, v BLOB`, a rowid table plus an index); a `WITHOUT ROWID` table would be smaller and faster.',
    '- classic-level compresses with snappy; the values here are small and varied, so it gains little, but its disk numbers include it. Neither LevelDB nor SQLite is compacted or vacuumed before the disk numbers; lmdb never shrinks its file.',
    '- The memory numbers are growth of the whole process, so they include whatever the store caches (LevelDB\'s 8 MiB block cache, lmdb\'s mapped pages in RSS) as well as its index.',
  ];
}

/** The command that measures the same things again and writes this report, without local paths. */
function reproduceCommand(results: BenchResults, jsonName: string): string {
  if (!Array.isArray(results.argv)) return results.command; // Files written before argv was kept.
  const kept: string[] = [];
  const outputs = new Set(['--json', '--md', '--svg', '--dir']);
  for (let i = 0; i < results.argv.length; i++) {
    const arg = results.argv[i];
    const flag = arg.includes('=') ? arg.slice(0, arg.indexOf('=')) : arg;
    if (outputs.has(flag)) {
      if (!arg.includes('=')) i++; // Skip its value too.
      continue;
    }
    kept.push(arg);
  }
  return ['npm run bench --', ...kept.map(shellQuote), '--json', shellQuote(jsonName), '--md', 'docs/benchmarks.md'].join(' ');
}

/** Renders the results as the markdown of docs/benchmarks.md (SVG chart inline). */
export function renderReport(results: BenchResults, jsonName: string): string {
  const { options } = results;
  const lines: string[] = [
    '# Benchmarks',
    '',
    `<!-- Generated by tools/bench/report.ts from ${jsonName}. Do not edit: run the commands below again. -->`,
    '',
  ];
  if (options.n < 1_000_000 || options.reps < 3) {
    lines.push(
      `> **A small run** (N = ${options.n.toLocaleString('en-US')}, ${options.reps} rep(s)): it shows the harness works; its numbers are not the ones to quote.`,
      '',
    );
  }
  lines.push(...headerLines(results), '', '## Reproduce', '', '```sh', 'npm ci', reproduceCommand(results, jsonName), '```', '');
  lines.push('The peers are installed on demand into `tools/bench/node_modules` from `tools/bench/package-lock.json` (`npm ci --prefix tools/bench`); the library itself depends on none of them.', '');

  const chart = ratioChart(results);
  if (chart) {
    lines.push('## logkv / peer', '', 'Each bar is logkv\'s number against one peer\'s (median of the reps), on a log scale: right of 1 means logkv is better by that factor, left means worse.', '', chart, ratioTable(results), '');
  }

  for (const section of SECTIONS) {
    const present = results.rows.some((row) => section.workloads.includes(row.workload));
    if (!present) continue;
    lines.push(`## ${section.title}`, '', resultsTable(results, (workload) => section.workloads.includes(workload)), '');
    if (section.workloads.includes('durable-1')) {
      const raw = rawLine(results);
      if (raw) lines.push([raw, rawShareLine(results)].filter(Boolean).join(' '), '');
    }
    if (section.workloads.includes('open')) {
      const floor = openFloorLine(results);
      if (floor) lines.push(floor, '');
    }
  }

  const problems = results.rows.filter((row) => row.status !== 'ok' && row.message);
  if (problems.length > 0) {
    lines.push('Cells without a number: **n/a**, the store has no such mode; **unavailable**, it could not be loaded; **error** or **timeout**, it failed or did not finish in time:', '');
    const seen = new Set<string>();
    for (const row of problems) {
      const line = `- ${row.store}, ${row.workload}: ${row.status}: ${(row.message ?? '').split('\n')[0]}`;
      if (!seen.has(line)) lines.push(line);
      seen.add(line);
    }
    lines.push('');
  }

  lines.push('## Method', '', ...method(results), '');
  return lines.join('\n');
}

const repoRoot = path.resolve(__dirname, '..', '..');

/**
 * Writes the report of the results in `jsonPath` to `mdPath`, and the chart alone to `svgPath`
 * if one is given.
 */
export function writeReport(results: BenchResults, jsonPath: string, mdPath: string, svgPath: string | null): void {
  const jsonName = path.relative(repoRoot, path.resolve(jsonPath));
  fs.mkdirSync(path.dirname(mdPath), { recursive: true });
  fs.writeFileSync(mdPath, renderReport(results, jsonName));
  if (svgPath !== null) {
    const chart = ratioChart(results);
    if (chart) fs.writeFileSync(svgPath, chart);
  }
}

if (require.main === module) {
  const [jsonPath, mdPath] = process.argv.slice(2);
  if (!jsonPath) {
    process.stderr.write('usage: report.ts RESULTS.json [OUT.md]\n');
    process.exit(2);
  }
  const results = JSON.parse(fs.readFileSync(jsonPath, 'utf8')) as BenchResults;
  writeReport(results, jsonPath, mdPath ?? path.join(repoRoot, 'docs', 'benchmarks.md'), null);
}
