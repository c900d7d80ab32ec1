/**
 * What every `logkv` command is and shares: its description for the dispatcher (lib/cli/main.ts),
 * the context it runs in, the exit codes, the two kinds of failure it reports, and the parsing of
 * values typed on the command line.
 */
import type { Output } from './output';
import { fromTaggedJson } from '../tagged-json';

/** Exit codes, the same for every command. */
export const EXIT = { OK: 0, FAILED: 1, USAGE: 2, LOCKED: 3 } as const;

/** The streams and environment a command runs with (process's own, or a test's). */
export interface CliIo {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  env: NodeJS.ProcessEnv;
}

/** A mistake on the command line: exit code 2, with a pointer to the command's --help. */
export class UsageError extends Error {
  constructor(message: string, readonly command?: string) {
    super(message);
  }
}

/** A failure whose message is complete as it is: exit code 1. */
export class Failure extends Error {}

export type OptionSpec = { type: 'string' | 'boolean'; short?: string };
export type Values = Record<string, string | boolean | undefined>;

/** What a command gets: the parsed command line, the store's directory and where to write. */
export interface Context {
  io: CliIo;
  out: Output;
  dir: string;
  args: string[];
  values: Values;
  json: boolean;
}

/** One command: its help, the options and arguments it takes, and what it does. */
export interface Command {
  usage: string;
  summary: string;
  help: string;
  options: Record<string, OptionSpec>;
  minArgs: number;
  maxArgs: number;
  /** Runs the command; resolves with the exit code, or throws a UsageError, Failure or LogkvError. */
  run(ctx: Context): Promise<number>;
}

/** Parses a JSON command-line argument into a value, tags included. */
export function parseJsonArgument(text: string, what: string): unknown {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${what} is not JSON: ${(err as Error).message}` +
      (/^[A-Za-z]/.test(text) ? ` (a string needs JSON quotes: '"${text}"')` : ''));
  }
  try {
    return fromTaggedJson(json);
  } catch (err) {
    throw new UsageError(`${what}: ${(err as Error).message}`);
  }
}

/** The value of a numeric option, undefined if it was not given. */
export function positiveNumber(text: string | boolean | undefined, option: string): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (typeof text !== 'string' || text.trim() === '' || !Number.isFinite(value) || value <= 0) {
    throw new UsageError(`--${option} must be a positive number, received ${JSON.stringify(text)}`);
  }
  return value;
}
