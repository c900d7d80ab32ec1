/** `logkv dump [--prefix P]`: every live key as NDJSON on stdout (lib/dump.ts's dumpStore). */
import { dumpStore } from '../dump';
import { Command, Context, EXIT } from './command';
import { OutputClosed } from './output';
import { requireStoreDir, withStore } from './with-store';

export const dumpCommand: Command = {
  usage: 'dump [--prefix P]',
  summary: 'write every live key as NDJSON to stdout',
  help: 'One line per key: {"key":K,"value":V,"expiresAt":ms-since-epoch|null}, values rendered as in\n' +
    '`logkv help values`. `logkv load` reads it back.\n  --prefix P    only keys that start with P',
  options: { prefix: { type: 'string' } },
  minArgs: 0,
  maxArgs: 0,
  run: runDump,
};

async function runDump(ctx: Context): Promise<number> {
  requireStoreDir(ctx.dir);
  const prefix = ctx.values.prefix as string | undefined;
  const { keys } = await withStore(ctx.dir, (store) => dumpStore(store, ctx.io.stdout, { prefix }).catch((err) => {
    // A reader that went away (`logkv dump | head`) has all it wanted: stop quietly.
    throw ctx.out.closed ? new OutputClosed() : err;
  }));
  if (ctx.io.stderr.isTTY === true) ctx.io.stderr.write(`dumped ${keys} key(s)\n`);
  return EXIT.OK;
}
