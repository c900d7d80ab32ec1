/** `logkv compact [--dry-run]` and the `logkv-compact DIR` program: reclaim space, report before and after. */
import { ProgressBar } from '../progress';
import type { Store } from '../store';
import { formatBytes, formatDuration } from '../units';
import { CliIo, Command, EXIT } from './command';
import { Output, json } from './output';
import { requireStoreDir, withStore } from './with-store';

export const compactCommand: Command = {
  usage: 'compact [--dry-run]',
  summary: 'reclaim space from overwritten, deleted and expired records',
  help: 'The same as logkv-compact DIR. Shows a progress bar on a terminal.\n' +
    '  --dry-run     report what would be reclaimed and change nothing',
  options: { 'dry-run': { type: 'boolean' } },
  minArgs: 0,
  maxArgs: 0,
  run: (ctx) => compactAndReport(ctx.io, ctx.out, ctx.dir, ctx.values['dry-run'] === true, ctx.json),
};

/** Opens the store, compacts it (or reports what it would reclaim), prints the result, closes. */
export async function compactAndReport(io: CliIo, out: Output, dir: string, dryRun: boolean, asJson: boolean): Promise<number> {
  requireStoreDir(dir);
  const bar = new ProgressBar(io.stderr, dryRun ? 'measuring' : 'compacting');
  const { result, keys } = await withStore(dir, async (store: Store<unknown>) => {
    try {
      const done = await store.compact({ dryRun, onProgress: (p) => bar.update(p.bytesDone, p.bytesTotal) });
      return { result: done, keys: store.size };
    } finally {
      bar.finish();
    }
  });
  if (asJson) {
    await out.write(`${json({ dir, ...result, dryRun, liveKeys: keys })}\n`);
    return EXIT.OK;
  }
  const rows: Array<[string, string, string]> = [
    ['segments', String(result.segmentsBefore), String(result.segmentsAfter)],
    ['disk bytes', formatBytes(result.bytesBefore), formatBytes(result.bytesAfter)],
  ];
  const lines = [
    dryRun ? `dry run: compacting ${dir} would reclaim ${formatBytes(result.bytesBefore - result.bytesAfter)}; nothing was changed`
      : `compacted ${dir} in ${formatDuration(result.durationMs)}, reclaimed ${formatBytes(result.bytesBefore - result.bytesAfter)}`,
    `${''.padEnd(12)}${'before'.padStart(12)}${(dryRun ? 'would be' : 'after').padStart(12)}`,
    ...rows.map(([name, before, after]) => `${name.padEnd(12)}${before.padStart(12)}${after.padStart(12)}`),
    `live keys   ${String(keys).padStart(12)}`,
    `records kept ${result.recordsKept}, dead records dropped ${result.recordsDropped}`,
  ];
  await out.write(lines.join('\n') + '\n');
  return EXIT.OK;
}

/** The help of `logkv-compact`, the same command as a program of its own. */
export const COMPACT_USAGE = `Usage: logkv-compact DIR [--dry-run] [--json]

Compacts the logkv store in DIR: rewrites its sealed segments keeping only live records, and
prints segments and disk bytes before and after, live keys, dead records dropped and the time taken.
Shows a progress bar on a terminal.

  --dry-run   report what would be reclaimed and change nothing
  --json      print one JSON object
  -h, --help  show this help

Exit codes: 0 done, 1 failed (nothing lost), 2 usage error, 3 store locked by another process.
`;
