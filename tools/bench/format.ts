/**
 * Numbers and markdown tables, shared by the benchmark's own output and report.ts. No I/O.
 * Byte sizes are formatted by the library's lib/units.ts, as the command line formats them.
 */
import { formatBytes } from '../../lib/units';
import {
  RAW_STORE,
  WORKLOAD_NAMES,
  type AnyStoreName,
  type BenchResults,
  type ResultRow,
  type WorkloadName,
} from './protocol';

/** Quotes an argument for a POSIX shell where it needs it. */
export function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** Three significant digits, with k / M / G above 10 000: 152340 → '152k', 0.01234 → '0.0123'. */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs >= 1e4) {
    const [scale, suffix] = abs >= 1e9 ? [1e9, 'G'] : abs >= 1e6 ? [1e6, 'M'] : [1e3, 'k'];
    return `${Number((value / scale).toPrecision(3))}${suffix}`;
  }
  if (abs >= 100) return String(Math.round(value));
  if (abs === 0) return '0';
  return String(Number(value.toPrecision(3)));
}

/** 'median (min–max)' over the reps, or just the value for one rep, or why there is none. */
export function formatCell(row: ResultRow | undefined): string {
  if (row === undefined) return '';
  if (row.status !== 'ok' || row.median === null) return row.status;
  if (row.values.length < 2 || row.min === null || row.max === null) return formatNumber(row.median);
  return `${formatNumber(row.median)} (${formatNumber(row.min)}–${formatNumber(row.max)})`;
}

/**
 * logkv / peer for higher-is-better numbers and peer / logkv for lower-is-better ones, so that
 * > 1 always means logkv is better. Null when either is missing, or not positive (a ratio of a
 * number that can be zero or negative, such as a heap that shrank, would say nothing).
 */
export function ratioOf(logkv: ResultRow | undefined, peer: ResultRow | undefined): number | null {
  if (!logkv || !peer || logkv.median === null || peer.median === null) return null;
  if (logkv.status !== 'ok' || peer.status !== 'ok' || !logkv.compare) return null;
  if (!(logkv.median > 0) || !(peer.median > 0)) return null;
  return logkv.better === 'higher' ? logkv.median / peer.median : peer.median / logkv.median;
}

export function formatRatio(ratio: number | null): string {
  if (ratio === null) return '–';
  if (ratio >= 100) return `${Math.round(ratio)}`;
  if (ratio >= 10) return ratio.toFixed(1);
  if (ratio >= 0.1) return ratio.toFixed(2);
  return String(Number(ratio.toPrecision(2)));
}

export function markdownTable(header: readonly string[], rows: readonly string[][], rightAligned = new Set<number>()): string {
  const escape = (cell: string): string => cell.replace(/\|/g, '\\|');
  const lines = [
    `| ${header.map(escape).join(' | ')} |`,
    `| ${header.map((_, i) => (rightAligned.has(i) ? '---:' : '---')).join(' | ')} |`,
    ...rows.map((row) => `| ${row.map(escape).join(' | ')} |`),
  ];
  return lines.join('\n');
}

/** The (workload, metric) pairs of the results, in workload order and then order of first appearance. */
export function metricKeys(results: BenchResults, include: (workload: WorkloadName) => boolean): Array<[WorkloadName, string]> {
  const keys: Array<[WorkloadName, string]> = [];
  const seen = new Set<string>();
  for (const workload of WORKLOAD_NAMES) {
    if (!include(workload)) continue;
    for (const row of results.rows) {
      const id = `${row.workload}\u0000${row.metric}`;
      if (row.workload === workload && !seen.has(id)) {
        seen.add(id);
        keys.push([workload, row.metric]);
      }
    }
  }
  return keys;
}

export function findRow(results: BenchResults, workload: WorkloadName, metric: string, store: AnyStoreName): ResultRow | undefined {
  return results.rows.find((row) => row.workload === workload && row.metric === metric && row.store === store);
}

/** The measured stores, in the order given on the command line, without the fs pseudo-store. */
export function storeColumns(results: BenchResults): AnyStoreName[] {
  return results.options.stores.filter((store) => store !== RAW_STORE);
}

/** Every store's numbers: one row per (workload, metric), one column per store. */
export function resultsTable(results: BenchResults, workloads: (workload: WorkloadName) => boolean = () => true): string {
  const keys = metricKeys(results, (workload) => workload !== 'fdatasync-raw' && workloads(workload));
  // A store that takes no part in these workloads (e.g. a peer in compaction) gets no column.
  const stores = storeColumns(results).filter((store) => keys.some(([workload, metric]) => findRow(results, workload, metric, store)));
  const rows = keys.map(([workload, metric]) => [
    workload,
    metric,
    ...stores.map((store) => formatCell(findRow(results, workload, metric, store))),
  ]);
  const numeric = new Set(stores.map((_, i) => i + 2));
  return markdownTable(['workload', 'metric', ...stores], rows, numeric);
}

/** logkv against every peer, for every number where a comparison means something. */
export function ratioTable(results: BenchResults): string {
  const peers = storeColumns(results).filter((store) => store !== 'logkv');
  const keys = metricKeys(results, () => true).filter(([workload, metric]) => findRow(results, workload, metric, 'logkv')?.compare);
  const rows = keys.map(([workload, metric]) => {
    const logkv = findRow(results, workload, metric, 'logkv');
    return [workload, metric, ...peers.map((peer) => formatRatio(ratioOf(logkv, findRow(results, workload, metric, peer))))];
  });
  const numeric = new Set(peers.map((_, i) => i + 2));
  return markdownTable(['workload', 'metric', ...peers.map((peer) => `vs ${peer}`)], rows, numeric);
}

/** The fdatasync-raw numbers, as one line; empty when the workload did not run. */
export function rawLine(results: BenchResults): string {
  const rows = results.rows.filter((row) => row.store === RAW_STORE && row.workload === 'fdatasync-raw');
  if (rows.length === 0) return '';
  return `Disk limit (fdatasync-raw, no store): ${rows.map((row) => `${row.metric} ${formatCell(row)}`).join('; ')}.`;
}

/** The snapshot-open floor (reopen): the time to read logkv's snapshot file, and open's multiple of it; empty without it. */
export function openFloorLine(results: BenchResults): string {
  const floor = findRow(results, 'open', 'snapshot read ms (floor)', 'logkv');
  const ratio = findRow(results, 'open', 'open / floor', 'logkv');
  if (!floor?.median || !ratio?.median) return '';
  const cpuFloor = findRow(results, 'open', 'snapshot read cpu ms (floor)', 'logkv');
  const cpuRatio = findRow(results, 'open', 'open / floor, cpu', 'logkv');
  const cpu = cpuFloor?.median && cpuRatio?.median ? ` In CPU time (all threads): ${formatCell(cpuFloor)} ms, and open ${formatCell(cpuRatio)}× that.` : '';
  return `Open floor (reading logkv's keydir.snapshot into fresh memory, no store, in the open's own process just before it): ` +
    `${formatCell(floor)} ms; logkv's open takes ${formatCell(ratio)}× that (each rep's ratio from its own run).${cpu}`;
}

/** How close logkv's single durable writer comes to the disk's own append+fdatasync rate. */
export function rawShareLine(results: BenchResults): string {
  const raw = findRow(results, 'fdatasync-raw', 'append+fdatasync ops/s', RAW_STORE);
  const logkv = findRow(results, 'durable-1', 'ops/s', 'logkv');
  if (!raw?.median || !logkv?.median) return '';
  return `logkv's durable-1 rate is ${Math.round((100 * logkv.median) / raw.median)}% of the disk's append+fdatasync rate.`;
}

/** Machine, software and parameters, as markdown lines. */
export function headerLines(results: BenchResults): string[] {
  const { machine, options } = results;
  const packages = Object.entries(results.packages).map(([name, version]) => `${name} ${version}`).join(', ');
  return [
    `- Date: ${results.date}`,
    `- Machine: ${machine.cpu}, ${machine.cores} cores, ${formatBytes(machine.ramBytes)} RAM; data on ${machine.disk}`,
    `- OS: ${machine.os} (${machine.kernel}); Node ${machine.node}`,
    `- Packages: ${packages}`,
    `- N = ${options.n.toLocaleString('en-US')} keys of 16 bytes, ~100-byte values; ${options.reps} rep(s), cells show median (min–max)`,
    '- Ratios are logkv / peer for throughput and peer / logkv for times and bytes: **> 1 means logkv is better**',
  ];
}

/** What the benchmark prints on stdout at the end of a run. */
export function renderSummary(results: BenchResults): string {
  const parts = [`# logkv benchmark`, '', ...headerLines(results), '', '## Results', '', resultsTable(results)];
  const raw = rawLine(results);
  if (raw) parts.push('', [raw, rawShareLine(results)].filter(Boolean).join(' '));
  if (results.options.stores.includes('logkv') && results.options.stores.length > 1) {
    parts.push('', '## logkv / peer (> 1: logkv is better)', '', ratioTable(results));
  }
  const problems = results.rows.filter((row) => row.status !== 'ok' && row.status !== 'n/a' && row.message);
  if (problems.length > 0) {
    parts.push('', '## Problems', '');
    const seen = new Set<string>();
    for (const row of problems) {
      const line = `- ${row.store} ${row.workload}: ${row.status}: ${(row.message ?? '').split('\n')[0]}`;
      if (!seen.has(line)) parts.push(line);
      seen.add(line);
    }
  }
  return parts.join('\n') + '\n';
}
