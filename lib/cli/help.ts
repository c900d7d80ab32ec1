/** The help texts of `logkv`: the main usage, each command's, and how values map to JSON. */
import type { Command } from './command';

export const VALUES_HELP = `Values on the command line, in dump files and in output are JSON. Types JSON has no word
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

/** `logkv --help`: every command with its summary, the global options and the exit codes. */
export function mainUsage(commands: Record<string, Command>): string {
  const width = Math.max(...Object.values(commands).map((c) => c.usage.length));
  const lines = Object.values(commands).map((c) => `  ${c.usage.padEnd(width)}  ${c.summary}`);
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

/** `logkv COMMAND --help`. */
export function commandUsage(command: Command): string {
  return `Usage: logkv [--dir DIR] ${command.usage} [--json]\n\n${command.summary[0].toUpperCase()}${command.summary.slice(1)}.\n${command.help}\n`;
}
