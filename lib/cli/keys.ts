/** `logkv keys [--prefix P]`: the live keys, one per line or as one JSON array. */
import { Command, Context, EXIT } from './command';
import { json } from './output';
import { requireStoreDir, withStore } from './with-store';

export const keysCommand: Command = {
  usage: 'keys [--prefix P]',
  summary: 'list live keys, one per line',
  help: 'With --json, one JSON array (exact even for keys that hold newlines).\n  --prefix P    only keys that start with P',
  options: { prefix: { type: 'string' } },
  minArgs: 0,
  maxArgs: 0,
  run: runKeys,
};

async function runKeys(ctx: Context): Promise<number> {
  requireStoreDir(ctx.dir);
  const prefix = ctx.values.prefix as string | undefined;
  await withStore(ctx.dir, async (store) => {
    let first = true;
    if (ctx.json) await ctx.out.write('[');
    for await (const key of store.keys({ prefix })) {
      await ctx.out.write(ctx.json ? `${first ? '' : ','}${json(key)}` : `${key}\n`);
      first = false;
    }
    if (ctx.json) await ctx.out.write(']\n');
  });
  return EXIT.OK;
}
