/**
 * The package as users get it: `npm pack`, install the tarball into a fresh project, and use it
 * from an ES module, from CommonJS, from TypeScript, and through its `logkv` binaries.
 *
 * The pack runs in a copy of the package's sources (with this repo's node_modules linked in), so
 * its build never touches the working tree's dist/. The install prefers npm's cache and falls back
 * to the registry for what the cache lacks.
 */
import { expect } from 'chai';
import { SpawnSyncReturns, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const ROOT = path.join(__dirname, '..');
/** What the build needs from the repository, beside node_modules. */
const SOURCES = ['package.json', 'tsconfig.json', 'tsconfig.build.json', 'lib', 'tools/esm-wrappers.mjs', 'README.md', 'LICENSE'];

function npm(args: string[], cwd: string): SpawnSyncReturns<string> {
  // Inside `npm test`, npm_execpath is the running npm; use the same one.
  const execPath = process.env.npm_execpath;
  const [command, prefix] = execPath !== undefined && execPath.endsWith('.js') ? [process.execPath, [execPath]] : ['npm', []];
  const result = spawnSync(command, [...prefix, ...args], { cwd, encoding: 'utf8', timeout: 180_000 });
  if (result.status !== 0) {
    throw new Error(`npm ${args.join(' ')} exited ${result.status}\n${result.stdout}\n${result.stderr}`);
  }
  return result;
}

function node(args: string[], cwd: string, input?: string): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, args, { cwd, encoding: 'utf8', input: input ?? '', timeout: 60_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('the npm package', function () {
  this.timeout(240_000);
  let work: string;
  let project: string;
  let tarball: string;
  let packedFiles: string[];

  before(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'logkv-package-'));
    const source = path.join(work, 'source');
    for (const entry of SOURCES) {
      fs.cpSync(path.join(ROOT, entry), path.join(source, entry), { recursive: true });
    }
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(source, 'node_modules'), 'dir');
    const packed = JSON.parse(npm(['pack', '--json', '--pack-destination', work], source).stdout) as
      Array<{ filename: string; files: Array<{ path: string }> }>;
    tarball = path.join(work, packed[0].filename);
    packedFiles = packed[0].files.map((f) => f.path).sort();

    project = path.join(work, 'consumer');
    fs.mkdirSync(project);
    fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
    npm(['install', tarball, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], project);
  });

  after(() => {
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('carries only compiled JS, declarations, README, LICENSE and package.json', () => {
    for (const file of packedFiles) {
      const allowed = file === 'package.json' || file === 'README.md' || file === 'LICENSE' ||
        (file.startsWith('dist/') && /\.(js|mjs|d\.ts)$/.test(file));
      expect(allowed, `unexpected file in the package: ${file}`).to.equal(true);
    }
    for (const needed of ['dist/index.js', 'dist/index.d.ts', 'dist/esm/index.mjs', 'dist/keyv.js', 'dist/keyv.d.ts',
      'dist/esm/keyv.mjs', 'dist/level.js', 'dist/level.d.ts', 'dist/esm/level.mjs', 'dist/testing.js', 'dist/testing.d.ts', 'dist/esm/testing.mjs', 'dist/bin/logkv.js', 'dist/bin/logkv-compact.js', 'README.md', 'LICENSE']) {
      expect(packedFiles).to.include(needed);
    }
    expect(packedFiles.filter((f) => f.endsWith('.map') || f.startsWith('spec/') || f.startsWith('tools/'))).to.deep.equal([]);
  });

  it('works from CommonJS: require("logkv") and require("logkv/keyv")', () => {
    fs.writeFileSync(path.join(project, 'use.cjs'), `
      const { open, LogkvError, ErrorCodes } = require('logkv');
      const { KeyvLogkv } = require('logkv/keyv');
      (async () => {
        const store = await open(process.argv[2]);
        await store.set('k', { n: 1 }, { ttl: 60000 });
        const value = await store.get('k');
        let code;
        try { await store.create('k', 2); } catch (err) { code = err instanceof LogkvError && err.code; }
        await store.close();
        console.log(JSON.stringify({ value, code, expected: ErrorCodes.KEY_EXISTS, adapter: typeof KeyvLogkv }));
      })();
    `);
    const run = node(['use.cjs', path.join(work, 'store-cjs')], project);
    expect(run.code, run.stderr).to.equal(0);
    expect(JSON.parse(run.stdout)).to.deep.equal({ value: { n: 1 }, code: 'LOGKV_KEY_EXISTS', expected: 'LOGKV_KEY_EXISTS', adapter: 'function' });
  });

  it('works from an ES module, sharing one instance with CommonJS', () => {
    fs.writeFileSync(path.join(project, 'use.mjs'), `
      import { createRequire } from 'node:module';
      import logkv, { open, LogkvError, defaultDir } from 'logkv';
      import { KeyvLogkv } from 'logkv/keyv';
      const require = createRequire(import.meta.url);
      const store = await open(process.argv[2]);
      await store.batch([{ type: 'set', key: 'a', value: new Map([[1, 'one']]) }, { type: 'delete', key: 'b' }]);
      const value = await store.get('a');
      await store.close();
      const adapter = new KeyvLogkv({ dir: process.argv[2] + '-keyv' });
      await adapter.set('x', 'y', 1000);
      const fromAdapter = await adapter.get('x');
      await adapter.disconnect();
      console.log(JSON.stringify({
        map: value instanceof Map && value.get(1),
        sameClass: LogkvError === require('logkv').LogkvError,
        defaultExport: logkv.open === open,
        defaultDir: typeof defaultDir(),
        fromAdapter,
      }));
    `);
    const run = node(['use.mjs', path.join(work, 'store-esm')], project);
    expect(run.code, run.stderr).to.equal(0);
    expect(JSON.parse(run.stdout)).to.deep.equal({ map: 'one', sameClass: true, defaultExport: true, defaultDir: 'string', fromAdapter: 'y' });
  });

  it('serves LogkvLevel from "logkv/level" (CommonJS and ESM, one class), with sublevels in key order', () => {
    fs.writeFileSync(path.join(project, 'level.mjs'), `
      import { createRequire } from 'node:module';
      import { LogkvLevel } from 'logkv/level';
      const require = createRequire(import.meta.url);
      const db = new LogkvLevel(process.argv[2], { valueEncoding: 'json' });
      const users = db.sublevel('users', { valueEncoding: 'json' });
      await users.batch([{ type: 'put', key: 'b', value: { n: 2 } }, { type: 'put', key: 'a', value: { n: 1 } }]);
      await db.put('other', { n: 0 });
      const listed = await users.iterator({ reverse: true }).all();
      await db.close();
      console.log(JSON.stringify({ listed, sameClass: LogkvLevel === require('logkv/level').LogkvLevel }));
    `);
    const run = node(['level.mjs', path.join(work, 'store-level')], project);
    expect(run.code, run.stderr).to.equal(0);
    expect(JSON.parse(run.stdout)).to.deep.equal({ listed: [['b', { n: 2 }], ['a', { n: 1 }]], sameClass: true });
  });

  it('serves the test instruments from "logkv/testing" (CommonJS and ESM, one instance), and none from "logkv"', () => {
    fs.writeFileSync(path.join(project, 'testing.cjs'), `
      const { open } = require('logkv');
      const { MemoryMedium, FaultyMedium, seededRandom, DROP_UNSYNCED } = require('logkv/testing');
      (async () => {
        const memory = new MemoryMedium();
        const store = await open('/db', { medium: new FaultyMedium(memory) });
        await store.set('k', seededRandom(7).chance(1));
        await store.close();
        const again = await open('/db', { medium: memory.crash(DROP_UNSYNCED) });
        const value = await again.get('k');
        await again.close();
        console.log(JSON.stringify({ value, root: Object.keys(require('logkv')).sort() }));
      })();
    `);
    const cjs = node(['testing.cjs'], project);
    expect(cjs.code, cjs.stderr).to.equal(0);
    expect(JSON.parse(cjs.stdout)).to.deep.equal({
      value: true,
      root: ['ErrorCodes', 'FORMAT_VERSION', 'LogkvError', 'Store', 'checkStore', 'defaultDir', 'dumpLines', 'dumpStore', 'loadStore', 'open'],
    });

    fs.writeFileSync(path.join(project, 'testing.mjs'), `
      import { createRequire } from 'node:module';
      import * as root from 'logkv';
      import { MemoryMedium, FaultyMedium, KEEP_UNSYNCED, randomCrash, seededRandom } from 'logkv/testing';
      const require = createRequire(import.meta.url);
      const store = await root.open('/db', { medium: new MemoryMedium() });
      await store.set('k', 'v');
      const value = await store.get('k');
      await store.close();
      console.log(JSON.stringify({
        value,
        sameClass: MemoryMedium === require('logkv/testing').MemoryMedium,
        kinds: [typeof FaultyMedium, typeof KEEP_UNSYNCED, typeof randomCrash, typeof seededRandom],
        rootHasMedium: 'MemoryMedium' in root,
      }));
    `);
    const esm = node(['testing.mjs'], project);
    expect(esm.code, esm.stderr).to.equal(0);
    expect(JSON.parse(esm.stdout)).to.deep.equal({
      value: 'v', sameClass: true, kinds: ['function', 'object', 'function', 'function'], rootHasMedium: false,
    });
  });

  it('gives TypeScript users its types, from ESM and CommonJS', () => {
    fs.writeFileSync(path.join(project, 'typed.mts'), `
      import { open, LogkvError, ErrorCodes, type Store, type StoreStats } from 'logkv';
      import { KeyvLogkv } from 'logkv/keyv';
      import { MemoryMedium, type FaultPlan, type Medium } from 'logkv/testing';
      interface User { name: string }
      const medium: Medium = new MemoryMedium();
      const plan: FaultPlan = { op: 'sync', nth: 2 };
      const store: Store<User> = await open<User>('./typed', { medium });
      const user: User | undefined = await store.get('u');
      const stats: StoreStats = store.stats();
      const code: string = ErrorCodes.LOCKED;
      const adapter = new KeyvLogkv({ dir: './typed-keyv', sync: 'interval' });
      // @ts-expect-error a User has a name
      await store.set('u', { age: 3 });
      export { user, stats, code, adapter, LogkvError, plan };
    `);
    fs.writeFileSync(path.join(project, 'typed.cts'), `
      import logkv = require('logkv');
      import testing = require('logkv/testing');
      const pending: Promise<logkv.Store<number>> = logkv.open<number>('./typed-cjs', { medium: new testing.MemoryMedium() });
      export { pending };
    `);
    const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const run = node([tsc, '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022',
      '--typeRoots', path.join(ROOT, 'node_modules', '@types'), '--types', 'node', 'typed.mts', 'typed.cts'], project);
    expect(run.code, run.stdout + run.stderr).to.equal(0);
  });

  it('installs the logkv and logkv-compact binaries', () => {
    const bin = path.join(project, 'node_modules', '.bin');
    const dir = path.join(work, 'store-bin');
    expect(node([path.join(bin, 'logkv'), '--dir', dir, 'set', 'k', '{"$logkv":"BigInt","value":"12345678901234567890"}'], project).code).to.equal(0);
    const get = node([path.join(bin, 'logkv'), '--dir', dir, 'get', 'k', '--json'], project);
    expect(get.stdout).to.equal('{"key":"k","value":{"$logkv":"BigInt","value":"12345678901234567890"}}\n');
    const compacted = node([path.join(bin, 'logkv-compact'), dir, '--json'], project);
    expect(compacted.code, compacted.stderr).to.equal(0);
    expect(JSON.parse(compacted.stdout)).to.include({ liveKeys: 1, dryRun: false });
  });
});
