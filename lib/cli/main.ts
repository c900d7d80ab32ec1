/**
 * The `logkv` command line: thin commands over the library (open, get, set, compact, checkStore,
 * dumpStore, loadStore, backup). This file is the dispatcher; each command lives in a file of its own.
 *
 *   logkv [--dir DIR] <command> [arguments] [--json]
 *
 * Exit codes, for every command: 0 done, 1 failed (the message says why), 2 usage error (a bad
 * option, argument or JSON value on the command line), 3 the store is locked by another process
 * (the message names its pid). Every command opens the store only for as long as it works and
 * closes it (releasing the lock) before it exits.
 *
 * Values go in and out as JSON, with the types JSON lacks rendered as tagged objects
 * (lib/tagged-json.ts), so `dump` then `load` gives back every value exactly.
 */
import * as path from 'path';
import { parseArgs } from 'util';
import { ErrorCodes, LogkvError } from '../errors';
import { defaultDir } from '../index';
import { backupCommand } from './backup';
import { checkCommand } from './check';
import { CliIo, Command, EXIT, Failure, OptionSpec, UsageError } from './command';
import { COMPACT_USAGE, compactAndReport, compactCommand } from './compact';
import { deleteCommand } from './delete';
import { dumpCommand } from './dump';
import { getCommand } from './get';
import { VALUES_HELP, commandUsage, mainUsage } from './help';
import { keysCommand } from './keys';
import { loadCommand } from './load';
import { Output, OutputClosed } from './output';
import { parseArgsMessage, parseCommandLine } from './parse';
import { setCommand } from './set';
import { statsCommand } from './stats';

export { EXIT } from './command';
export type { CliIo } from './command';

export function processIo(): CliIo {
  return { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env };
}

const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  dir: { type: 'string', short: 'd' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
};

/** The commands, in the order `logkv --help` lists them. */
const COMMANDS: Record<string, Command> = {
  get: getCommand,
  set: setCommand,
  delete: deleteCommand,
  keys: keysCommand,
  stats: statsCommand,
  check: checkCommand,
  dump: dumpCommand,
  load: loadCommand,
  compact: compactCommand,
  backup: backupCommand,
};

/** Runs `logkv` with `argv` (without node and the script); resolves with the exit code. */
export async function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  const out = new Output(io.stdout);
  let commandName: string | undefined;
  try {
    const parsed = parseCommandLine(argv, COMMANDS, GLOBAL_OPTIONS);
    commandName = parsed.command;
    if (parsed.values.version === true) {
      await out.write(`${packageVersion()}\n`);
      return EXIT.OK;
    }
    if (parsed.command === undefined || parsed.command === 'help') {
      const topic = parsed.args[0];
      if (parsed.command === undefined && parsed.values.help !== true) throw new UsageError('no command given');
      if (topic === 'values') await out.write(VALUES_HELP);
      else if (topic !== undefined && COMMANDS[topic] !== undefined) await out.write(commandUsage(COMMANDS[topic]));
      else if (topic !== undefined) throw new UsageError(`no help on ${JSON.stringify(topic)}`);
      else await out.write(mainUsage(COMMANDS));
      return EXIT.OK;
    }
    const command = COMMANDS[parsed.command];
    if (parsed.values.help === true) {
      await out.write(commandUsage(command));
      return EXIT.OK;
    }
    if (parsed.args.length < command.minArgs || parsed.args.length > command.maxArgs) {
      throw new UsageError(`${parsed.command} takes ${describeArgs(command)}, received ${parsed.args.length}`, parsed.command);
    }
    const dirValue = parsed.values.dir;
    if (dirValue === '') throw new UsageError('--dir needs a directory');
    const dir = path.resolve(typeof dirValue === 'string' ? dirValue : defaultDir(io.env));
    return await command.run({ io, out, dir, args: parsed.args, values: parsed.values, json: parsed.values.json === true });
  } catch (err) {
    return reportError(io, err, commandName);
  }
}

/** `logkv-compact DIR [--dry-run] [--json]` (also tools/compact.ts); resolves with the exit code. */
export async function compactMain(argv: string[], io: CliIo = processIo()): Promise<number> {
  const out = new Output(io.stdout);
  try {
    let parsed;
    try {
      parsed = parseArgs({
        args: argv,
        options: { 'dry-run': { type: 'boolean' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
        allowPositionals: true,
        strict: true,
      });
    } catch (err) {
      throw new UsageError(parseArgsMessage(err));
    }
    if (parsed.values.help === true) {
      await out.write(COMPACT_USAGE);
      return EXIT.OK;
    }
    if (parsed.positionals.length !== 1 || parsed.positionals[0] === '') {
      throw new UsageError(parsed.positionals.length === 0 ? 'give the store directory: logkv-compact DIR' : 'give one directory');
    }
    return await compactAndReport(io, out, path.resolve(parsed.positionals[0]), parsed.values['dry-run'] === true,
      parsed.values.json === true);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`logkv-compact: ${err.message}\nRun 'logkv-compact --help' for usage.\n`);
      return EXIT.USAGE;
    }
    return reportError(io, err, 'compact', 'logkv-compact');
  }
}

function describeArgs(command: Command): string {
  const { minArgs: min, maxArgs: max } = command;
  const count = (n: number): string => `${n} argument${n === 1 ? '' : 's'}`;
  if (min === max) return min === 0 ? 'no arguments' : count(min);
  return `${min} to ${count(max)}`;
}

/** Maps an error to its message and exit code. */
function reportError(io: CliIo, err: unknown, command: string | undefined, program = 'logkv'): number {
  if (err instanceof OutputClosed) return EXIT.OK; // the reader went away (`logkv dump | head`)
  if (err instanceof UsageError) {
    const help = err.command ?? command;
    const hint = help !== undefined && COMMANDS[help] !== undefined ? `logkv ${help} --help` : 'logkv --help';
    io.stderr.write(`${program}: ${err.message}\nRun '${hint}' for usage.\n`);
    return EXIT.USAGE;
  }
  if (err instanceof LogkvError && err.code === ErrorCodes.LOCKED) {
    io.stderr.write(`${program}: ${lockedMessage(err)}\n`);
    return EXIT.LOCKED;
  }
  if (err instanceof Failure) {
    io.stderr.write(`${program}: ${err.message}\n`);
    return EXIT.FAILED;
  }
  if (err instanceof LogkvError) {
    io.stderr.write(`${program}: ${err.message} [${err.code}]\n`);
    return EXIT.FAILED;
  }
  io.stderr.write(`${program}: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  return EXIT.FAILED;
}

export function lockedMessage(err: LogkvError): string {
  const pid = err.details.pid;
  const file = typeof err.details.file === 'string' ? err.details.file : 'the store';
  const owner = typeof pid === 'number' ? `process ${pid}` : 'another process that is starting up';
  return `the store at ${file} is locked by ${owner}; it can be used when that process closes it [${ErrorCodes.LOCKED}]`;
}

function packageVersion(): string {
  // Both lib/cli/main.ts and the built dist/cli/main.js sit two levels below package.json.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('../../package.json') as { version: string }).version;
}
