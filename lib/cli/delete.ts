/** `logkv delete KEY`: delete one key, saying whether there was one. */
import { Command, Context, EXIT } from './command';
import { json } from './output';
import { asUsage, requireStoreDir, withStore } from './with-store';

export const deleteCommand: Command = {
  usage: 'delete KEY',
  summary: 'delete KEY',
  help: 'Deleting a missing key is not an error; the output says whether there was one.',
  options: {},
  minArgs: 1,
  maxArgs: 1,
  run: runDelete,
};

async function runDelete(ctx: Context): Promise<number> {
  requireStoreDir(ctx.dir);
  const key = ctx.args[0];
  const deleted = await withStore(ctx.dir, (store) => store.delete(key).catch((err) => { throw asUsage(err, 'delete'); }));
  await ctx.out.write(ctx.json ? `${json({ key, deleted })}\n` : deleted ? 'deleted\n' : 'not found: nothing to delete\n');
  return EXIT.OK;
}
