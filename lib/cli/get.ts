/** `logkv get KEY`: the value of one key, as JSON. */
import { toTaggedJson } from '../tagged-json';
import { Command, Context, EXIT, Failure } from './command';
import { json } from './output';
import { asUsage, requireStoreDir, withStore } from './with-store';

export const getCommand: Command = {
  usage: 'get KEY',
  summary: 'print the value of KEY as JSON',
  help: 'Prints the value (pretty JSON; with --json one line {"key","value"}). Exits 1 if the key is missing or expired.',
  options: {},
  minArgs: 1,
  maxArgs: 1,
  run: runGet,
};

async function runGet(ctx: Context): Promise<number> {
  requireStoreDir(ctx.dir);
  const key = ctx.args[0];
  const value = await withStore(ctx.dir, (store) => store.get(key).catch((err) => { throw asUsage(err, 'get'); }));
  if (value === undefined) throw new Failure(`key ${json(key)} not found`);
  const rendered = toTaggedJson(value);
  await ctx.out.write(ctx.json ? `${json({ key, value: rendered })}\n` : `${JSON.stringify(rendered, null, 2)}\n`);
  return EXIT.OK;
}
