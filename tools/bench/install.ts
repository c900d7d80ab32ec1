/**
 * Installs the peer stores into tools/bench/node_modules when they are missing, from
 * tools/bench/package.json and its lockfile, so that the library's own install stays lean and
 * free of native modules.
 */
import { spawnSync } from 'child_process';
import { createRequire } from 'module';
import * as fs from 'fs';
import * as path from 'path';

/** Peer package name → the version installed, or null if it cannot be loaded. */
export function installedVersions(benchDir: string, packages: readonly string[]): Record<string, string | null> {
  const versions: Record<string, string | null> = {};
  const peerRequire = createRequire(path.join(benchDir, 'package.json'));
  for (const name of packages) {
    try {
      const manifest = path.join(benchDir, 'node_modules', name, 'package.json');
      const { version } = JSON.parse(fs.readFileSync(manifest, 'utf8')) as { version: string };
      peerRequire.resolve(name);
      versions[name] = version;
    } catch {
      versions[name] = null;
    }
  }
  return versions;
}

/**
 * Makes sure every package in `packages` is installed, running `npm ci` (or `npm install` when
 * there is no lockfile) in tools/bench if any is not. Returns the versions installed.
 */
export function ensurePeers(benchDir: string, packages: readonly string[], log: (line: string) => void): Record<string, string | null> {
  let versions = installedVersions(benchDir, packages);
  const missing = packages.filter((name) => versions[name] === null);
  if (missing.length === 0) return versions;
  const hasLock = fs.existsSync(path.join(benchDir, 'package-lock.json'));
  const args = [hasLock ? 'ci' : 'install', '--prefix', benchDir, '--no-audit', '--no-fund'];
  log(`installing peers (${missing.join(', ')} missing): npm ${args.join(' ')}`);
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  // npm's output goes to stderr: stdout is the table.
  const result = spawnSync(npm, args, { stdio: ['ignore', 2, 2] });
  if (result.status !== 0) log(`npm exited with ${result.status}; stores that did not install are reported as unavailable`);
  versions = installedVersions(benchDir, packages);
  return versions;
}
