/**
 * The command line's stdout, run in-process (lib/cli/main.ts's main() with test streams): a reader
 * that goes away mid-output (`logkv dump | head`) ends the command quietly with exit code 0, any
 * other failure of stdout is a failure, and either way the store is closed and its lock released.
 */
import { expect } from 'chai';
import { Readable } from 'stream';
import { main } from '../lib/cli/main';
import { openFast, tempDir } from './helpers';
import { failingAfter, textCollector } from './text-streams';

describe('the command line\'s output', () => {
  async function storeOfKeys(count: number): Promise<string> {
    const dir = tempDir('cli-output');
    const store = await openFast(dir);
    await store.batch(Array.from({ length: count }, (_, i) => ({ type: 'set' as const, key: `key-${i}`, value: i })));
    await store.close();
    return dir;
  }

  for (const command of [['dump'], ['keys']]) {
    it(`${command[0]}: a reader that went away (EPIPE) ends it quietly, exit code 0, lock released`, async () => {
      const dir = await storeOfKeys(2000);
      const stderr = textCollector();
      const code = await main(['--dir', dir, ...command], { stdin: Readable.from([]), stdout: failingAfter(3, 'EPIPE'), stderr: stderr.stream, env: {} });
      expect(code).to.equal(0);
      expect(stderr.text()).to.equal('');
      const store = await openFast(dir); // the command closed the store
      expect(store.size).to.equal(2000);
      await store.close();
    });
  }

  it('any other failure of stdout fails the command, exit code 1', async () => {
    const dir = await storeOfKeys(2000);
    const stderr = textCollector();
    const code = await main(['--dir', dir, 'dump'], { stdin: Readable.from([]), stdout: failingAfter(3, 'EIO'), stderr: stderr.stream, env: {} });
    expect(code).to.equal(1);
    expect(stderr.text()).to.match(/^logkv: .*\[LOGKV_IO\]\n$/);
  });
});
