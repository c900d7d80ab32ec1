/** `logkv load [FILE] [--batch-size N]`: set keys from an NDJSON dump (lib/dump.ts's loadStore). */
import * as fs from 'fs';
import { loadStore, LoadResult } from '../dump';
import { LogkvError } from '../errors';
import { ProgressBar } from '../progress';
import { formatDuration } from '../units';
import { Command, Context, EXIT, Failure, UsageError, positiveNumber } from './command';
import { json } from './output';
import { withStore } from './with-store';

export const loadCommand: Command = {
  usage: 'load [FILE] [--batch-size N]',
  summary: 'set keys from NDJSON (a dump) in FILE or stdin',
  help: 'Reads lines of {"key","value","expiresAt"?} and sets them in atomic batches. Lines whose expiresAt\n' +
    'has passed are skipped. Stops at the first bad line; the batches before it stay loaded.\n' +
    'Shows a progress bar on a terminal.\n  --batch-size N  records per atomic batch (default 1000)',
  options: { 'batch-size': { type: 'string' } },
  minArgs: 0,
  maxArgs: 1,
  run: runLoad,
};

async function runLoad(ctx: Context): Promise<number> {
  const batchSize = positiveNumber(ctx.values['batch-size'], 'batch-size');
  if (batchSize !== undefined && !Number.isInteger(batchSize)) throw new UsageError('--batch-size must be a whole number', 'load');
  const { input, totalBytes } = openInput(ctx);
  const started = Date.now();
  const bar = new ProgressBar(ctx.io.stderr, 'loading');
  let result: LoadResult;
  try {
    result = await withStore(ctx.dir, (store) => loadStore(store, input, { batchSize, onProgress: (p) => bar.update(p.bytes, totalBytes) }));
  } catch (err) {
    // loadStore's message names the line or batch and what was loaded before it: it is complete as it is.
    throw err instanceof LogkvError && typeof err.details.loaded === 'number' ? new Failure(err.message) : err;
  } finally {
    bar.finish();
  }
  const durationMs = Date.now() - started;
  await ctx.out.write(ctx.json ? `${json({ ...result, durationMs })}\n`
    : `loaded ${result.loaded} record(s) from ${result.lines} line(s)` +
      `${result.skippedExpired > 0 ? `, skipped ${result.skippedExpired} already expired` : ''} in ${formatDuration(durationMs)}\n`);
  return EXIT.OK;
}

/** FILE, or stdin when it is not a terminal; with the input's size when it is a regular file, for the progress bar. */
function openInput(ctx: Context): { input: NodeJS.ReadableStream; totalBytes: number | undefined } {
  const file = ctx.args[0];
  if (file === undefined || file === '-') {
    if (ctx.io.stdin.isTTY === true) throw new UsageError('load reads NDJSON from a FILE or from a pipe; give a FILE', 'load');
    return { input: ctx.io.stdin, totalBytes: regularFileSize(0, ctx.io.stdin === process.stdin) };
  }
  let totalBytes: number;
  try {
    totalBytes = fs.statSync(file).size;
  } catch (err) {
    throw new Failure(`cannot read ${file}: ${(err as Error).message}`);
  }
  return { input: fs.createReadStream(file), totalBytes };
}

function regularFileSize(fd: number, isProcessStdin: boolean): number | undefined {
  if (!isProcessStdin) return undefined;
  try {
    const stat = fs.fstatSync(fd);
    return stat.isFile() ? stat.size : undefined;
  } catch {
    return undefined;
  }
}
