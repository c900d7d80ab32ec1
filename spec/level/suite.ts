/**
 * abstract-level's own test suite (abstract-level/test, tape-based) against LogkvLevel, on the
 * real file system: `npm run test:level`, which `npm test` runs after mocha. tape exits non-zero
 * when any assertion fails, which fails npm test.
 *
 * Each database the suite makes gets its own directory under one temporary directory, removed
 * when the suite ends. Writes are not fsynced (sync 'never'): the suite tests the API, and
 * several thousand fsyncs would only make it slow.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import test from 'tape';
import { LogkvLevel, type LogkvLevelOptions } from '../../lib/level';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const suite = require('abstract-level/test') as (options: { test: typeof test; factory: (options?: LogkvLevelOptions<unknown, unknown>) => unknown }) => void;

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'logkv-level-'));
let made = 0;

suite({
  test,
  factory(options = {}) {
    return new LogkvLevel(path.join(root, String(made++)), { ...options, logkv: { sync: 'never', cacheBytes: 1 << 20 } });
  },
});

test.onFinish(() => fs.rmSync(root, { recursive: true, force: true }));
