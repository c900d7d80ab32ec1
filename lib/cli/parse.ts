/** Parsing `logkv`'s command line: the command, its arguments, the global options and its own. */
import { parseArgs } from 'util';
import { Command, OptionSpec, UsageError, Values } from './command';

/** A token that is a negative number (`-5`, `-1.5e3`): an argument, not an option. */
const NEGATIVE_NUMBER = /^-(\d|\.\d|Infinity)/;
const ESCAPE = '\u0000negative:';

export interface ParsedLine {
  /** The command's name, or 'help', or undefined when none was given. */
  command: string | undefined;
  args: string[];
  values: Values;
}

/** Throws a UsageError for an unknown command or an option the command does not take. */
export function parseCommandLine(argv: string[], commands: Record<string, Command>, globalOptions: Record<string, OptionSpec>): ParsedLine {
  // parseArgs would take `-5` for an option: hide negative numbers from it, restore them after.
  const escaped = argv.map((arg) => (NEGATIVE_NUMBER.test(arg) ? ESCAPE + arg : arg));
  const restore = (text: string): string => (text.startsWith(ESCAPE) ? text.slice(ESCAPE.length) : text);

  // First pass, loose: find the command among the positionals, knowing every option that takes a value.
  const allOptions: Record<string, OptionSpec> = { ...globalOptions };
  for (const command of Object.values(commands)) Object.assign(allOptions, command.options);
  const loose = parseArgs({ args: escaped, options: allOptions, allowPositionals: true, strict: false });
  const name = loose.positionals[0];
  if (name !== undefined && name !== 'help' && commands[name] === undefined) {
    throw new UsageError(`unknown command ${JSON.stringify(restore(name))}`);
  }

  // Second pass, strict: only the global options and the command's own.
  const options = { ...globalOptions, ...(name !== undefined && name !== 'help' ? commands[name].options : {}) };
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({ args: escaped, options, allowPositionals: true, strict: true }) as typeof parsed;
  } catch (err) {
    throw new UsageError(restore(parseArgsMessage(err)), name);
  }
  const values: Values = {};
  for (const [key, value] of Object.entries(parsed.values)) values[key] = typeof value === 'string' ? restore(value) : value;
  return { command: name, args: parsed.positionals.slice(1).map(restore), values };
}

/** parseArgs's message without its advice on `--`, which does not apply to logkv's options. */
export function parseArgsMessage(err: unknown): string {
  return (err as Error).message.split('. To specify')[0];
}
