/** What the numbers were measured on: the machine, and the version of everything measured. */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { MachineInfo } from './protocol';

function run(command: string, args: string[], cwd?: string): string | null {
  try {
    return execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

function osName(): string {
  try {
    const release = fs.readFileSync('/etc/os-release', 'utf8');
    const pretty = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(release);
    if (pretty) return pretty[1];
  } catch {
    // Not Linux, or no os-release: fall back to the kernel's name.
  }
  return `${os.type()} ${os.release()}`;
}

/** The file system type and device that hold `dir` (where the stores write). */
function diskOf(dir: string): string {
  const found = run('findmnt', ['-n', '-o', 'FSTYPE,SOURCE', '-T', dir]);
  if (found) return found.replace(/\s+/g, ' on ');
  return run('df', ['-P', dir])?.split('\n')[1]?.split(/\s+/)[0] ?? 'unknown';
}

export function machineInfo(dataDir: string): MachineInfo {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    ramBytes: os.totalmem(),
    os: osName(),
    kernel: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    disk: diskOf(dataDir),
  };
}

/** logkv's version, with the commit it was measured at (and '+dirty' if lib/ has local changes). */
export function logkvVersion(repoRoot: string): string {
  const { version } = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string };
  const commit = run('git', ['rev-parse', '--short', 'HEAD'], repoRoot);
  if (commit === null) return `${version} (no commit)`;
  const dirty = run('git', ['status', '--porcelain', '--', 'lib'], repoRoot);
  return `${version} (${commit}${dirty ? '+dirty' : ''})`;
}
