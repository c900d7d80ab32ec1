/**
 * `logkv backup DEST`, run in-process (lib/cli/main.ts's main() with test streams): the copy
 * opens as the store, a second run transfers only what changed, --json and --copy, the progress
 * bar only on a terminal, and the exit codes of a refused or locked destination.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { Readable, Writable } from 'stream';
import { open } from '../lib';
import { main } from '../lib/cli/main';
import { openBackup } from './backup-helpers';
import { setRecordBytes, tempDir } from './helpers';
import { textCollector } from './text-streams';

/** Runs `logkv ARGS`; stderr may pretend to be a terminal. */
async function logkv(args: string[], options: { tty?: boolean } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = textCollector();
  const stderr = textCollector();
  const err = stderr.stream as Writable & { isTTY?: boolean; columns?: number };
  if (options.tty) Object.assign(err, { isTTY: true, columns: 100 });
  const code = await main(args, { stdin: Readable.from([]), stdout: stdout.stream, stderr: err, env: {} });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

async function storeWith(dir: string, count: number): Promise<void> {
  const store = await open(dir, { sync: 'never', maxSegmentBytes: 4096 });
  for (let i = 0; i < count; i++) await store.set(`key-${i}`, { i, pad: 'c'.repeat(100) });
  await store.close();
}

describe('logkv backup', () => {
  it('makes a copy that opens as the store; a second run transfers only the new bytes (--json)', async () => {
    const dir = tempDir('cli-bk');
    const dest = path.join(tempDir('cli-bk-dst'), 'copy');
    await storeWith(dir, 100);
    const first = await logkv(['--dir', dir, 'backup', dest, '--json']);
    expect(first.code, first.stderr).to.equal(0);
    const report = JSON.parse(first.stdout) as Record<string, unknown>;
    expect(report).to.include({ source: dir, dir: dest, filesRemoved: 0 });
    expect(report.filesLinked).to.be.greaterThan(0);
    const store = await open(dir);
    await store.set('new', 'value'); // appended to the segment the first backup copied a prefix of
    await store.close();
    const second = JSON.parse((await logkv(['--dir', dir, 'backup', dest, '--json'])).stdout) as Record<string, number>;
    expect(second.bytesCopied).to.equal(setRecordBytes('new', 'value'));
    expect(await openBackup(dest)).to.deep.equal(await openBackup(dir));
  });

  it('prints a summary, copies with --copy, and draws a progress bar only on a terminal', async () => {
    const dir = tempDir('cli-bk');
    await storeWith(dir, 200);
    const piped = await logkv(['--dir', dir, 'backup', path.join(tempDir('cli-bk-dst'), 'a'), '--copy']);
    expect(piped.code, piped.stderr).to.equal(0);
    expect(piped.stdout).to.match(/^backed up .* into .* in /).and.match(/^files +\d+ \(\d+ copied\)$/m).and.match(/^transferred /m);
    expect(piped.stderr).to.equal('');
    const tty = await logkv(['--dir', dir, 'backup', path.join(tempDir('cli-bk-dst'), 'b'), '--copy'], { tty: true });
    expect(tty.code).to.equal(0);
    expect(tty.stderr).to.include('backing up [').and.match(/\r\x1b\[K$/);
  });

  it('exits 2 for a refused destination, 3 for a locked one, 1 for a missing store, 0 for --help', async () => {
    const dir = tempDir('cli-bk');
    await storeWith(dir, 10);
    const other = tempDir('cli-bk-other');
    fs.writeFileSync(path.join(other, 'notes.txt'), 'not a store');
    const refused = await logkv(['--dir', dir, 'backup', other]);
    expect(refused.code).to.equal(2);
    expect(refused.stderr).to.match(/\[LOGKV_INVALID_ARGUMENT\]/).and.include("logkv backup --help");
    expect((await logkv(['--dir', dir, 'backup', dir])).code).to.equal(2);
    expect((await logkv(['--dir', dir, 'backup'])).code).to.equal(2);
    const locked = tempDir('cli-bk-locked');
    const holder = await open(locked);
    const run = await logkv(['--dir', dir, 'backup', locked]);
    await holder.close();
    expect(run.code).to.equal(3);
    expect(run.stderr).to.include(`process ${process.pid}`);
    expect((await logkv(['--dir', path.join(dir, 'missing'), 'backup', other])).code).to.equal(1);
    const help = await logkv(['backup', '--help']);
    expect(help.code).to.equal(0);
    expect(help.stdout).to.match(/^Usage: logkv \[--dir DIR\] backup DEST \[--copy\]/);
  });
});
