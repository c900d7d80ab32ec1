/** `logkv backup DEST`: a consistent copy of the store in DEST that opens as a store; incremental. */
import * as path from 'path';
import type { BackupResult } from '../backup';
import { ProgressBar } from '../progress';
import type { Store } from '../store';
import { formatBytes, formatDuration } from '../units';
import { Command, Context, EXIT, UsageError } from './command';
import { json } from './output';
import { asUsage, requireStoreDir, withStore } from './with-store';

export const backupCommand: Command = {
  usage: 'backup DEST [--copy]',
  summary: 'copy the store into DEST: a consistent copy that opens as a store',
  help: 'DEST is created if missing. Sealed files are hard-linked when DEST is on the same file system\n' +
    '(a link shares the store\'s disk blocks), copied otherwise. Backing up again into the same DEST\n' +
    'transfers only what changed: new files, and the bytes appended to the segment that was growing.\n' +
    'An interrupted backup leaves DEST marked incomplete (opening it fails, `logkv check` reports it)\n' +
    'until a backup into it completes. DEST must be new, empty, or a backup of this store.\n' +
    'Shows a progress bar on a terminal.\n' +
    '  --copy        copy every byte, linking nothing\n' +
    'Exit codes: 0 done, 1 failed (DEST stays marked incomplete), 2 usage error (DEST refused included),\n' +
    '3 the store or DEST is locked by another process.',
  options: { copy: { type: 'boolean' } },
  minArgs: 1,
  maxArgs: 1,
  run: runBackup,
};

async function runBackup(ctx: Context): Promise<number> {
  requireStoreDir(ctx.dir);
  if (ctx.args[0] === '') throw new UsageError('DEST must be a directory', 'backup');
  const dest = path.resolve(ctx.args[0]);
  const bar = new ProgressBar(ctx.io.stderr, 'backing up');
  let result: BackupResult;
  try {
    result = await withStore(ctx.dir, async (store: Store<unknown>) => {
      try {
        return await store.backup(dest, { link: ctx.values.copy !== true, onProgress: (p) => bar.update(p.bytesDone, p.bytesTotal) });
      } finally {
        bar.finish();
      }
    });
  } catch (err) {
    // A refused destination (the store itself, another store, a directory of other things) is a bad argument.
    throw asUsage(err, 'backup');
  }
  if (ctx.json) {
    await ctx.out.write(`${json({ source: ctx.dir, ...result })}\n`);
    return EXIT.OK;
  }
  const counts = [['linked', result.filesLinked], ['copied', result.filesCopied], ['extended', result.filesExtended],
    ['kept', result.filesKept], ['removed', result.filesRemoved]].filter(([, n]) => n !== 0).map(([what, n]) => `${n} ${what}`);
  await ctx.out.write([
    `backed up ${ctx.dir} into ${dest} in ${formatDuration(result.durationMs)}`,
    `files       ${result.files}${counts.length > 0 ? ` (${counts.join(', ')})` : ''}`,
    `transferred ${formatBytes(result.bytesCopied)}${result.bytesVerified > 0 ? `, verified ${formatBytes(result.bytesVerified)} already there` : ''}`,
  ].join('\n') + '\n');
  return EXIT.OK;
}
