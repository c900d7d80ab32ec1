/** `logkv set KEY JSON [--ttl MS]`: set one key to a value typed as (tagged) JSON. */
import { Command, Context, EXIT, parseJsonArgument, positiveNumber } from './command';
import { json } from './output';
import { asUsage, withStore } from './with-store';

export const setCommand: Command = {
  usage: 'set KEY JSON [--ttl MS]',
  summary: 'set KEY to a JSON value',
  help: 'JSON is parsed with the tagged types of `logkv help values`, e.g. \'{"$logkv":"Date","value":"2024-05-01T12:00:00.000Z"}\'.\n' +
    'A value starting with "-" goes after "--": logkv set KEY -- -5\n' +
    '  --ttl MS      expire the key MS milliseconds from now',
  options: { ttl: { type: 'string' } },
  minArgs: 2,
  maxArgs: 2,
  run: runSet,
};

/** Unlike the commands that read, set creates the store if there is none: it is how a store begins. */
async function runSet(ctx: Context): Promise<number> {
  const [key, text] = ctx.args;
  const value = parseJsonArgument(text, 'the value');
  const ttl = positiveNumber(ctx.values.ttl, 'ttl');
  await withStore(ctx.dir, (store) => store.set(key, value, ttl === undefined ? undefined : { ttl })
    .catch((err) => { throw asUsage(err, 'set'); }));
  if (ctx.json) await ctx.out.write(`${json({ key, set: true })}\n`);
  return EXIT.OK;
}
