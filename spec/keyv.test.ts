/**
 * Keyv's official compliance suite (@keyv/test-suite) against the logkv adapter. Run by vitest
 * (vitest.config.mts), because the suite is written for it; `npm test` runs it after mocha.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as test from 'vitest';
import Keyv from 'keyv';
import keyvTestSuite, { keyvIteratorTests } from '@keyv/test-suite';
import { KeyvLogkv } from '../lib/keyv';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'logkv-keyv-suite-'));
// The suite constructs a new adapter for every Keyv it makes; adapters of one directory share one store.
const store = (): KeyvLogkv => new KeyvLogkv({ dir });

keyvTestSuite(test, Keyv, store);

/**
 * Keyv 5 wires keyv.iterator() only for the adapters on its built-in list; with logkv it is one line.
 * This runs the suite's iterator tests through Keyv's own iteration (namespaces, expiry) that way.
 */
class KeyvWithIterator extends Keyv {
  constructor(options?: ConstructorParameters<typeof Keyv>[0]) {
    super(options);
    const adapter = this.store as unknown;
    if (adapter instanceof KeyvLogkv) this.iterator = this.generateIterator(adapter.iterator.bind(adapter));
  }
}
keyvIteratorTests(test, KeyvWithIterator as typeof Keyv, store);

test.afterAll(async () => {
  await (await store().getStore()).close();
  fs.rmSync(dir, { recursive: true, force: true });
});
