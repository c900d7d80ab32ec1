/**
 * The `logkv` command line: thin commands over the library (open, get, set, compact, checkStore).
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
import * as fs from 'fs';
import * as path from 'path';
import * as readline from 'readline';
import { parseArgs } from 'util';
import { CheckReport, checkStore } from './check';
import { ErrorCodes, LogkvError } from './errors';
import { RECORD_HEADER_BYTES, TYPE_SET } from './format';
import { hintName } from './hint';
import { defaultDir, open } from './index';
import { fileSystem } from './medium/fs';
import { ProgressBar } from './progress';
import { formatBytes, formatDuration } from './units';
import { scanRecords } from './scan';
import { parseSegmentName, segmentName } from './segment';
import type { BatchOperation, Store } from './store';
import { fromTaggedJson, toTaggedJson } from './tagged-json';

export const EXIT = { OK: 0, FAILED: 1, USAGE: 2, LOCKED: 3 } as const;

/** The streams and environment a command runs with (process's own, or a test's). */
export interface CliIo {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  env: NodeJS.ProcessEnv;
}

export function processIo(): CliIo {
  return { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env };
}

/** A mistake on the command line: exit code 2, with a pointer to --help. */
class UsageError extends Error {
  constructor(message: string, readonly command?: string) {
    super(message);
  }
}

/** A failure whose message is complete as it is: exit code 1. */
class Failure extends Error {}

type OptionSpec = { type: 'string' | 'boolean'; short?: string };
type Values = Record<string, string | boolean | undefined>;

interface Context {
  io: CliIo;
  out: Output;
  dir: string;
  args: string[];
  values: Values;
  json: boolean;
}

interface Command {
  usage: string;
  summary: string;
  help: string;
  options: Record<string, OptionSpec>;
  minArgs: number;
  maxArgs: number;
  run(ctx: Context): Promise<number>;
}

const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  dir: { type: 'string', short: 'd' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
};

/** Open the store without automatic compaction: a command does what it says and nothing more. */
const OPEN_OPTIONS = { autoCompact: false } as const;

const COMMANDS: Record<string, Command> = {
  get: {
    usage: 'get KEY',
    summary: 'print the value of KEY as JSON',
    help: 'Prints the value (pretty JSON; with --json one line {"key","value"}). Exits 1 if the key is missing or expired.',
    options: {},
    minArgs: 1,
    maxArgs: 1,
    run: runGet,
  },
  set: {
    usage: 'set KEY JSON [--ttl MS]',
    summary: 'set KEY to a JSON value',
    help: 'JSON is parsed with the tagged types of `logkv help values`, e.g. \'{"$logkv":"Date","value":"2024-05-01T12:00:00.000Z"}\'.\n' +
      'A value starting with "-" goes after "--": logkv set KEY -- -5\n' +
      '  --ttl MS      expire the key MS milliseconds from now',
    options: { ttl: { type: 'string' } },
    minArgs: 2,
    maxArgs: 2,
    run: runSet,
  },
  delete: {
    usage: 'delete KEY',
    summary: 'delete KEY',
    help: 'Deleting a missing key is not an error; the output says whether there was one.',
    options: {},
    minArgs: 1,
    maxArgs: 1,
    run: runDelete,
  },
  keys: {
    usage: 'keys [--prefix P]',
    summary: 'list live keys, one per line',
    help: 'With --json, one JSON array (exact even for keys that hold newlines).\n  --prefix P    only keys that start with P',
    options: { prefix: { type: 'string' } },
    minArgs: 0,
    maxArgs: 0,
    run: runKeys,
  },
  stats: {
    usage: 'stats',
    summary: 'keys, segments, live/dead/disk bytes, compaction',
    help: 'Opening the store runs recovery; if it cut a torn tail, stats says so.',
    options: {},
    minArgs: 0,
    maxArgs: 0,
    run: runStats,
  },
  check: {
    usage: 'check',
    summary: 'verify every record, value and hint file',
    help: 'Reads every segment and hint file, verifies headers, CRCs and values, and lists each problem\n' +
      'with its file and offset. Changes nothing. Exits 1 if the store is damaged (a torn tail that\n' +
      'open() repairs by itself is reported but is not damage).',
    options: {},
    minArgs: 0,
    maxArgs: 0,
    run: runCheck,
  },
  dump: {
    usage: 'dump [--prefix P]',
    summary: 'write every live key as NDJSON to stdout',
    help: 'One line per key: {"key":K,"value":V,"expiresAt":ms-since-epoch|null}, values rendered as in\n' +
      '`logkv help values`. `logkv load` reads it back.\n  --prefix P    only keys that start with P',
    options: { prefix: { type: 'string' } },
    minArgs: 0,
    maxArgs: 0,
    run: runDump,
  },
  load: {
    usage: 'load [FILE] [--batch-size N]',
    summary: 'set keys from NDJSON (a dump) in FILE or stdin',
    help: 'Reads lines of {"key","value","expiresAt"?} and sets them in atomic batches. Lines whose expiresAt\n' +
      'has passed are skipped. Stops at the first bad line; the batches before it stay loaded.\n' +
      'Shows a progress bar on a terminal.\n  --batch-size N  records per atomic batch (default 1000)',
    options: { 'batch-size': { type: 'string' } },
    minArgs: 0,
    maxArgs: 1,
    run: runLoad,
  },
  compact: {
    usage: 'compact [--dry-run]',
    summary: 'reclaim space from overwritten, deleted and expired records',
    help: 'The same as logkv-compact DIR. Shows a progress bar on a terminal.\n' +
      '  --dry-run     report what would be reclaimed and change nothing',
    options: { 'dry-run': { type: 'boolean' } },
    minArgs: 0,
    maxArgs: 0,
    run: (ctx) => compactAndReport(ctx.io, ctx.out, ctx.dir, ctx.values['dry-run'] === true, ctx.json),
  },
};

const VALUES_HELP = `Values on the command line, in dump files and in output are JSON. Types JSON has no word
for are tagged objects whose "$logkv" member names the type:
  {"$logkv":"undefined"}   {"$logkv":"NaN"}   {"$logkv":"Infinity"}   {"$logkv":"-Infinity"}
  {"$logkv":"BigInt","value":"123456789012345678901"}
  {"$logkv":"Date","value":"2024-05-01T12:00:00.000Z"}
  {"$logkv":"RegExp","source":"^a+$","flags":"i"}
  {"$logkv":"Buffer","base64":"aGVsbG8="}      (and Uint8Array, Float64Array, ... the same way)
  {"$logkv":"Map","entries":[[key,value],...]}   {"$logkv":"Set","values":[...]}
  {"$logkv":"Object","value":{...}}             (a plain object that has a "$logkv" member itself)
Numbers beyond 2^53 lose precision as JSON numbers: use BigInt for exact big integers.
`;

function mainUsage(): string {
  const width = Math.max(...Object.values(COMMANDS).map((c) => c.usage.length));
  const lines = Object.values(COMMANDS).map((c) => `  ${c.usage.padEnd(width)}  ${c.summary}`);
  return `Usage: logkv [--dir DIR] <command> [arguments] [--json]

Commands:
${lines.join('\n')}
  help [COMMAND|values]  show help

Options:
  -d, --dir DIR   the store's directory (default: $LOGKV_DIR, else the platform's data dir + logkv/default)
  --json          machine-readable output
  -h, --help      show help
  --version       print the version

Exit codes: 0 done, 1 failed, 2 usage error, 3 store locked by another process.
`;
}

function commandUsage(name: string): string {
  const command = COMMANDS[name];
  return `Usage: logkv [--dir DIR] ${command.usage} [--json]\n\n${command.summary[0].toUpperCase()}${command.summary.slice(1)}.\n${command.help}\n`;
}

/** Runs `logkv` with `argv` (without node and the script); resolves with the exit code. */
export async function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  const out = new Output(io.stdout);
  let commandName: string | undefined;
  try {
    const parsed = parseCommandLine(argv);
    commandName = parsed.command;
    if (parsed.values.version === true) {
      await out.write(`${packageVersion()}\n`);
      return EXIT.OK;
    }
    if (parsed.command === undefined || parsed.command === 'help') {
      const topic = parsed.args[0];
      if (parsed.command === undefined && parsed.values.help !== true) throw new UsageError('no command given');
      if (topic === 'values') await out.write(VALUES_HELP);
      else if (topic !== undefined && COMMANDS[topic] !== undefined) await out.write(commandUsage(topic));
      else if (topic !== undefined) throw new UsageError(`no help on ${JSON.stringify(topic)}`);
      else await out.write(mainUsage());
      return EXIT.OK;
    }
    const command = COMMANDS[parsed.command];
    if (parsed.values.help === true) {
      await out.write(commandUsage(parsed.command));
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
  // Both lib/cli.ts and the built dist/cli.js sit one level below package.json.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('../package.json') as { version: string }).version;
}

// ---------------------------------------------------------------- parsing

/** A token that is a negative number (`-5`, `-1.5e3`): an argument, not an option. */
const NEGATIVE_NUMBER = /^-(\d|\.\d|Infinity)/;
const ESCAPE = '\u0000negative:';

interface ParsedLine {
  command: string | undefined;
  args: string[];
  values: Values;
}

function parseCommandLine(argv: string[]): ParsedLine {
  // parseArgs would take `-5` for an option: hide negative numbers from it, restore them after.
  const escaped = argv.map((arg) => (NEGATIVE_NUMBER.test(arg) ? ESCAPE + arg : arg));
  const restore = (text: string): string => (text.startsWith(ESCAPE) ? text.slice(ESCAPE.length) : text);

  // First pass, loose: find the command among the positionals, knowing every option that takes a value.
  const allOptions: Record<string, OptionSpec> = { ...GLOBAL_OPTIONS };
  for (const command of Object.values(COMMANDS)) Object.assign(allOptions, command.options);
  const loose = parseArgs({ args: escaped, options: allOptions, allowPositionals: true, strict: false });
  const name = loose.positionals[0];
  if (name !== undefined && name !== 'help' && COMMANDS[name] === undefined) {
    throw new UsageError(`unknown command ${JSON.stringify(restore(name))}`);
  }

  // Second pass, strict: only the global options and the command's own.
  const options = { ...GLOBAL_OPTIONS, ...(name !== undefined && name !== 'help' ? COMMANDS[name].options : {}) };
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({ args: escaped, options, allowPositionals: true, strict: true }) as typeof parsed;
  } catch (err) {
    throw new UsageError(restore((err as Error).message.split('. To specify')[0]), name);
  }
  const values: Values = {};
  for (const [key, value] of Object.entries(parsed.values)) values[key] = typeof value === 'string' ? restore(value) : value;
  return { command: name, args: parsed.positionals.slice(1).map(restore), values };
}

/** Parses a JSON command-line argument into a value, tags included. */
function parseJsonArgument(text: string, what: string): unknown {
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

function positiveNumber(text: string | boolean | undefined, option: string): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (typeof text !== 'string' || text.trim() === '' || !Number.isFinite(value) || value <= 0) {
    throw new UsageError(`--${option} must be a positive number, received ${JSON.stringify(text)}`);
  }
  return value;
}

// ---------------------------------------------------------------- output

/** Thrown when stdout's reader has gone away (EPIPE): stop quietly. */
class OutputClosed extends Error {}

/** stdout with backpressure, so a dump of millions of keys does not pile up in memory. */
class Output {
  #closed = false;

  constructor(readonly stream: CliIo['stdout']) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') this.#closed = true;
    });
  }

  async write(text: string): Promise<void> {
    if (this.#closed) throw new OutputClosed();
    if (!this.stream.write(text)) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          this.stream.off('drain', done);
          this.stream.off('error', done);
          resolve();
        };
        this.stream.on('drain', done);
        this.stream.on('error', done);
      });
      if (this.#closed) throw new OutputClosed();
    }
  }
}

function json(value: unknown): string {
  return JSON.stringify(value);
}

// ---------------------------------------------------------------- the store

/** Commands that only read or change existing data fail on a missing directory rather than create it. */
function requireStoreDir(dir: string): void {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(dir);
  } catch {
    throw new Failure(`no store at ${dir} (the directory does not exist)`);
  }
  if (!stat.isDirectory()) throw new Failure(`no store at ${dir} (not a directory)`);
}

/** Opens the store, runs `body`, and closes it whatever happens, so the lock is held no longer than needed. */
async function withStore<T>(dir: string, body: (store: Store<unknown>) => Promise<T>): Promise<T> {
  const store = await open<unknown>(dir, OPEN_OPTIONS);
  let result: T;
  try {
    result = await body(store);
  } catch (err) {
    await store.close().catch(() => undefined);
    throw err;
  }
  await store.close();
  return result;
}

/** Argument errors the store reports (a bad key, value or ttl typed on the command line) are usage errors. */
function asUsage(err: unknown, command: string): unknown {
  if (err instanceof LogkvError && (err.code === ErrorCodes.INVALID_KEY || err.code === ErrorCodes.INVALID_VALUE ||
      err.code === ErrorCodes.INVALID_ARGUMENT)) {
    return new UsageError(`${err.message} [${err.code}]`, command);
  }
  return err;
}

// ---------------------------------------------------------------- commands

async function runGet(ctx: Context): Promise<number> {
  requireStoreDir(ctx.dir);
  const key = ctx.args[0];
  const value = await withStore(ctx.dir, (store) => store.get(key).catch((err) => { throw asUsage(err, 'get'); }));
  if (value === undefined) throw new Failure(`key ${json(key)} not found`);
  const rendered = toTaggedJson(value);
  await ctx.out.write(ctx.json ? `${json({ key, value: rendered })}\n` : `${JSON.stringify(rendered, null, 2)}\n`);
  return EXIT.OK;
}

async function runSet(ctx: Context): Promise<number> {
  const [key, text] = ctx.args;
  const value = parseJsonArgument(text, 'the value');
  const ttl = positiveNumber(ctx.values.ttl, 'ttl');
  await withStore(ctx.dir, (store) => store.set(key, value, ttl === undefined ? undefined : { ttl })
    .catch((err) => { throw asUsage(err, 'set'); }));
  if (ctx.json) await ctx.out.write(`${json({ key, set: true })}\n`);
  return EXIT.OK;
}

async function runDelete(ctx: Context): Promise<number> {
  requireStoreDir(ctx.dir);
  const key = ctx.args[0];
  const deleted = await withStore(ctx.dir, (store) => store.delete(key).catch((err) => { throw asUsage(err, 'delete'); }));
  await ctx.out.write(ctx.json ? `${json({ key, deleted })}\n` : deleted ? 'deleted\n' : 'not found: nothing to delete\n');
  return EXIT.OK;
}

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

interface StatsOutput {
  dir: string;
  keys: number;
  segments: number;
  liveBytes: number;
  deadBytes: number;
  diskBytes: number;
  /** Segments written by compaction (each has a hint file). */
  compactedSegments: number;
  /** When the newest compacted segment was written (ms since the epoch), or null if none. */
  lastCompactionAt: number | null;
  /** What this open's recovery repaired, if anything. */
  recovery: unknown;
}

async function runStats(ctx: Context): Promise<number> {
  requireStoreDir(ctx.dir);
  const stats = await withStore(ctx.dir, async (store) => {
    const s = store.stats();
    const hints = compactionTrace(ctx.dir);
    const result: StatsOutput = {
      dir: ctx.dir,
      keys: s.keys,
      segments: s.segments,
      liveBytes: s.liveBytes,
      deadBytes: s.deadBytes,
      diskBytes: s.diskBytes,
      compactedSegments: hints.count,
      // A compaction in this process would be in stats(); a CLI process has run none, so the files tell.
      lastCompactionAt: s.lastCompaction?.finishedAt ?? hints.newestAt,
      recovery: store.recovery,
    };
    return result;
  });
  if (ctx.json) {
    await ctx.out.write(`${json(stats)}\n`);
    return EXIT.OK;
  }
  const bytes = (n: number): string => `${formatBytes(n)} (${n} bytes)`;
  const ratio = stats.diskBytes > 0 ? ` (${Math.round((stats.deadBytes / stats.diskBytes) * 100)}% of disk)` : '';
  const lines = [
    ['store', stats.dir],
    ['keys', String(stats.keys)],
    ['segments', String(stats.segments)],
    ['live bytes', bytes(stats.liveBytes)],
    ['dead bytes', bytes(stats.deadBytes) + ratio],
    ['disk bytes', bytes(stats.diskBytes)],
    ['compaction', stats.compactedSegments === 0 ? 'no compacted segments'
      : `${stats.compactedSegments} compacted segment(s), newest written ${new Date(stats.lastCompactionAt!).toISOString()}`],
  ];
  const recovery = stats.recovery as { truncated?: { file: string; offset: number; bytes: number; reason: string } };
  if (recovery.truncated !== undefined) {
    const t = recovery.truncated;
    lines.push(['recovery', `cut a torn tail of ${t.bytes} bytes (${t.reason}) at ${t.file}:${t.offset}`]);
  }
  await ctx.out.write(lines.map(([name, value]) => `${name.padEnd(11)} ${value}\n`).join(''));
  return EXIT.OK;
}

/** Hint files are written only by compaction, one per output segment: their count and newest time. */
function compactionTrace(dir: string): { count: number; newestAt: number | null } {
  let count = 0;
  let newestAt: number | null = null;
  for (const name of fs.readdirSync(dir)) {
    const id = name.endsWith('.hint') ? parseSegmentName(name.slice(0, -'.hint'.length) + '.seg') : undefined;
    if (id === undefined || name !== hintName(id)) continue;
    count++;
    const mtime = fs.statSync(path.join(dir, name)).mtimeMs;
    newestAt = newestAt === null ? Math.round(mtime) : Math.max(newestAt, Math.round(mtime));
  }
  return { count, newestAt };
}

async function runCheck(ctx: Context): Promise<number> {
  requireStoreDir(ctx.dir);
  const bar = new ProgressBar(ctx.io.stderr, 'checking');
  let report: CheckReport;
  try {
    report = await checkStore(ctx.dir, { onProgress: (done, total) => bar.update(done, total) });
  } finally {
    bar.finish();
  }
  if (ctx.json) {
    await ctx.out.write(`${json(report)}\n`);
  } else {
    for (const p of report.problems) await ctx.out.write(`${p.file}:${p.offset}: ${p.severity}: ${p.problem}\n`);
    const damaged = report.problems.filter((p) => p.severity !== 'notice').length;
    const notices = report.problems.length - damaged;
    const what = `${report.segments} segment(s), ${report.records} records, ${formatBytes(report.bytes)}, ${report.hints} hint file(s)`;
    await ctx.out.write(report.ok
      ? `ok: checked ${what}${notices > 0 ? `; ${notices} notice(s) of things open() handles by itself` : ''}\n`
      : `damaged: ${damaged} problem(s) in ${what}\n`);
  }
  return report.ok ? EXIT.OK : EXIT.FAILED;
}

async function runDump(ctx: Context): Promise<number> {
  requireStoreDir(ctx.dir);
  const prefix = ctx.values.prefix as string | undefined;
  const count = await withStore(ctx.dir, async (store) => {
    const expiries = await readExpiries(store.dir);
    let n = 0;
    for await (const [key, value] of store.entries({ prefix })) {
      await ctx.out.write(`${json({ key, value: toTaggedJson(value), expiresAt: expiries.get(key) ?? null })}\n`);
      n++;
    }
    return n;
  });
  if (ctx.io.stderr.isTTY === true) ctx.io.stderr.write(`dumped ${count} key(s)\n`);
  return EXIT.OK;
}

/**
 * The expiry of every key whose newest record has one, read from the segment files in replay order.
 * The Store does not expose expiries, so `dump` reads them here, while it holds the store open
 * (which has already repaired any torn tail and keeps every other writer out).
 */
async function readExpiries(dir: string): Promise<Map<string, number>> {
  const expiries = new Map<string, number>();
  const ids = (await fileSystem.list(dir)).map(parseSegmentName).filter((id): id is number => id !== undefined)
    .sort((a, b) => a - b);
  for (const id of ids) {
    const handle = await fileSystem.open(path.join(dir, segmentName(id)), { readOnly: true });
    try {
      scanRecords(handle, handle.sizeSync(), (_offset, header, buf, pos) => {
        const key = buf.toString('utf8', pos + RECORD_HEADER_BYTES, pos + RECORD_HEADER_BYTES + header.keyLength);
        if (header.type === TYPE_SET && header.expiresAt !== 0) expiries.set(key, header.expiresAt);
        else expiries.delete(key);
      });
    } finally {
      await handle.close();
    }
  }
  return expiries;
}

/** One NDJSON line of a dump. */
interface DumpLine {
  key: string;
  value: unknown;
  expiresAt?: number | null;
}

async function runLoad(ctx: Context): Promise<number> {
  const batchSize = positiveNumber(ctx.values['batch-size'], 'batch-size') ?? 1000;
  if (!Number.isInteger(batchSize)) throw new UsageError('--batch-size must be a whole number', 'load');
  const file = ctx.args[0];
  let input: NodeJS.ReadableStream;
  let totalBytes: number | undefined;
  if (file === undefined || file === '-') {
    if (ctx.io.stdin.isTTY === true) throw new UsageError('load reads NDJSON from a FILE or from a pipe; give a FILE', 'load');
    input = ctx.io.stdin;
    totalBytes = regularFileSize(0, ctx.io.stdin === process.stdin);
  } else {
    try {
      totalBytes = fs.statSync(file).size;
    } catch (err) {
      throw new Failure(`cannot read ${file}: ${(err as Error).message}`);
    }
    input = fs.createReadStream(file);
  }
  const started = Date.now();
  const bar = new ProgressBar(ctx.io.stderr, 'loading');
  const result = { loaded: 0, skippedExpired: 0, lines: 0 };
  try {
    await withStore(ctx.dir, (store) => loadLines(store, input, batchSize, result, (bytes) => bar.update(bytes, totalBytes)));
  } finally {
    bar.finish();
  }
  const durationMs = Date.now() - started;
  await ctx.out.write(ctx.json ? `${json({ ...result, durationMs })}\n`
    : `loaded ${result.loaded} record(s) from ${result.lines} line(s)` +
      `${result.skippedExpired > 0 ? `, skipped ${result.skippedExpired} already expired` : ''} in ${formatDuration(durationMs)}\n`);
  return EXIT.OK;
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

const MAX_BATCH_BYTES = 8 * 1024 * 1024;

async function loadLines(store: Store<unknown>, input: NodeJS.ReadableStream, batchSize: number,
                         result: { loaded: number; skippedExpired: number; lines: number },
                         progress: (bytes: number) => void): Promise<void> {
  const lines = readline.createInterface({ input, crlfDelay: Infinity });
  let batch: Array<BatchOperation<unknown>> = [];
  let batchBytes = 0;
  let batchFirstLine = 1;
  let bytesRead = 0;
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    try {
      await store.batch(batch);
    } catch (err) {
      const where = `the batch of lines ${batchFirstLine}-${result.lines}`;
      const message = err instanceof LogkvError ? `${err.message} [${err.code}]` : (err as Error).message;
      throw new Failure(`${where} was rejected, nothing of it written: ${message}; ${result.loaded} record(s) before it are loaded`);
    }
    result.loaded += batch.length;
    batch = [];
    batchBytes = 0;
    batchFirstLine = result.lines + 1;
  };
  for await (const line of lines) {
    result.lines++;
    bytesRead += Buffer.byteLength(line) + 1;
    if (line.trim() === '') continue;
    let record: DumpLine;
    try {
      record = parseDumpLine(line);
    } catch (err) {
      throw new Failure(`line ${result.lines}: ${(err as Error).message}; ${result.loaded} record(s) before its batch are loaded`);
    }
    if (record.expiresAt != null && record.expiresAt <= Date.now()) {
      result.skippedExpired++;
    } else {
      batch.push(record.expiresAt != null
        ? { type: 'set', key: record.key, value: record.value, expiresAt: record.expiresAt }
        : { type: 'set', key: record.key, value: record.value });
      batchBytes += line.length;
    }
    if (batch.length >= batchSize || batchBytes >= MAX_BATCH_BYTES) await flush();
    progress(bytesRead);
  }
  await flush();
  progress(bytesRead);
}

function parseDumpLine(line: string): DumpLine {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch (err) {
    throw new Error(`not JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not a JSON object');
  const record = parsed as Record<string, unknown>;
  for (const name of Object.keys(record)) {
    if (name !== 'key' && name !== 'value' && name !== 'expiresAt') throw new Error(`unknown member ${json(name)}`);
  }
  if (typeof record.key !== 'string') throw new Error('"key" must be a string');
  if (!Object.prototype.hasOwnProperty.call(record, 'value')) throw new Error('"value" is missing');
  const expiresAt = record.expiresAt;
  if (expiresAt !== undefined && expiresAt !== null &&
      (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt) || expiresAt <= 0)) {
    throw new Error('"expiresAt" must be a time in ms since the epoch, or null');
  }
  return { key: record.key, value: fromTaggedJson(record.value), expiresAt };
}

// ---------------------------------------------------------------- compaction (logkv compact, logkv-compact)


/** Opens the store, compacts it (or reports what it would reclaim), prints the result, closes. */
async function compactAndReport(io: CliIo, out: Output, dir: string, dryRun: boolean, asJson: boolean): Promise<number> {
  requireStoreDir(dir);
  const bar = new ProgressBar(io.stderr, dryRun ? 'measuring' : 'compacting');
  const { result, keys } = await withStore(dir, async (store: Store<unknown>) => {
    try {
      const done = await store.compact({ dryRun, onProgress: (p) => bar.update(p.bytesDone, p.bytesTotal) });
      return { result: done, keys: store.size };
    } finally {
      bar.finish();
    }
  });
  if (asJson) {
    await out.write(`${json({ dir, ...result, dryRun, liveKeys: keys })}\n`);
    return EXIT.OK;
  }
  const rows: Array<[string, string, string]> = [
    ['segments', String(result.segmentsBefore), String(result.segmentsAfter)],
    ['disk bytes', formatBytes(result.bytesBefore), formatBytes(result.bytesAfter)],
  ];
  const lines = [
    dryRun ? `dry run: compacting ${dir} would reclaim ${formatBytes(result.bytesBefore - result.bytesAfter)}; nothing was changed`
      : `compacted ${dir} in ${formatDuration(result.durationMs)}, reclaimed ${formatBytes(result.bytesBefore - result.bytesAfter)}`,
    `${''.padEnd(12)}${'before'.padStart(12)}${(dryRun ? 'would be' : 'after').padStart(12)}`,
    ...rows.map(([name, before, after]) => `${name.padEnd(12)}${before.padStart(12)}${after.padStart(12)}`),
    `live keys   ${String(keys).padStart(12)}`,
    `records kept ${result.recordsKept}, dead records dropped ${result.recordsDropped}`,
  ];
  await out.write(lines.join('\n') + '\n');
  return EXIT.OK;
}

const COMPACT_USAGE = `Usage: logkv-compact DIR [--dry-run] [--json]

Compacts the logkv store in DIR: rewrites its sealed segments keeping only live records, and
prints segments and disk bytes before and after, live keys, dead records dropped and the time taken.
Shows a progress bar on a terminal.

  --dry-run   report what would be reclaimed and change nothing
  --json      print one JSON object
  -h, --help  show this help

Exit codes: 0 done, 1 failed (nothing lost), 2 usage error, 3 store locked by another process.
`;

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
      throw new UsageError((err as Error).message.split('. To specify')[0]);
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
