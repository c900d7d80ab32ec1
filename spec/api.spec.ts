/**
 * Every public call, every error code a call can reject with, and the promise that a rejected call
 * writes nothing and changes nothing (in memory, on disk, and after reopening).
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ErrorCodes, LogkvError, OpenOptions, Store, defaultDir, open } from '../lib';
import type { ErrorCode } from '../lib';
import {
  allKeys, coreStats, deleteRecordBytes, dump, expectCode, expectCodeSync, openFast, segmentBytes, segmentFiles,
  setRecordBytes, snapshotSegments, tempDir,
} from './helpers';
import { SEGMENT_HEADER_BYTES } from '../lib/format';

/** How a behaviour spec opens a store (spec/shared-api.spec.ts opens clients of a shared store). */
export type Opener = (dir: string, options?: OpenOptions) => Promise<Store<unknown>>;

// Loose typing on purpose: these specs pass what TypeScript callers cannot, as JavaScript callers can.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = any;

describe('open()', () => {
  it('creates the directory (and its parents) and returns an open, empty store', async () => {
    const dir = path.join(tempDir(), 'a', 'b', 'store');
    const store = await openFast(dir);
    expect(fs.statSync(dir).isDirectory()).to.equal(true);
    expect(store.dir).to.equal(dir);
    expect(store.closed).to.equal(false);
    expect(store.size).to.equal(0);
    expect(await store.get('x')).to.equal(undefined);
    expect(store.recovery.segments).to.equal(0);
    expect(store.recovery.records).to.equal(0);
    expect(store.recovery.truncated).to.equal(undefined);
    await store.close();
    expect(store.closed).to.equal(true);
  });

  it('resolves a relative directory against the working directory', async () => {
    const dir = tempDir();
    const relative = path.relative(process.cwd(), path.join(dir, 'rel'));
    const store = await openFast(relative);
    expect(store.dir).to.equal(path.join(dir, 'rel'));
    await store.close();
  });

  it('opens the default directory, $LOGKV_DIR, when given none', async () => {
    const dir = path.join(tempDir(), 'default');
    const saved = process.env.LOGKV_DIR;
    process.env.LOGKV_DIR = dir;
    try {
      const store = await open(undefined, { sync: 'never' });
      expect(store.dir).to.equal(dir);
      await store.set('k', 1);
      await store.close();
      expect(segmentFiles(dir)).to.deep.equal(['000000010000.seg']);
    } finally {
      if (saved === undefined) delete process.env.LOGKV_DIR;
      else process.env.LOGKV_DIR = saved;
    }
  });

  it('rejects LOGKV_IO, with the system error as cause, when the directory cannot be made', async () => {
    const file = path.join(tempDir(), 'a-file');
    fs.writeFileSync(file, 'not a directory');
    const err = await expectCode(openFast(path.join(file, 'store')), ErrorCodes.IO);
    expect((err.cause as NodeJS.ErrnoException).code).to.equal('ENOTDIR');
    expect(err.details.file).to.equal(path.join(file, 'store'));
  });

  for (const bad of ['', 5, null, {}, true]) {
    it(`rejects dir ${JSON.stringify(bad)} with LOGKV_INVALID_ARGUMENT`, async () => {
      await expectCode(open(bad as Loose), ErrorCodes.INVALID_ARGUMENT);
    });
  }

  const badOptions: Array<[string, unknown]> = [
    ['sync', 'sometimes'], ['sync', true], ['sync', 1], ['sync', null],
    ['syncIntervalMs', 0], ['syncIntervalMs', -1], ['syncIntervalMs', 1.5], ['syncIntervalMs', '1000'],
    ['syncIntervalMs', NaN], ['syncIntervalMs', Infinity], ['syncIntervalMs', 24 * 3600 * 1000 + 1],
    ['maxSegmentBytes', 1023], ['maxSegmentBytes', 4096.5], ['maxSegmentBytes', '65536'], ['maxSegmentBytes', Infinity],
    ['maxSegmentBytes', 2 ** 32],
    ['maxKeyBytes', 0], ['maxKeyBytes', 65536], ['maxKeyBytes', 10.5], ['maxKeyBytes', '10'], ['maxKeyBytes', NaN],
    ['maxValueBytes', 0], ['maxValueBytes', 2 ** 30 + 1], ['maxValueBytes', 1e3 + 0.1], ['maxValueBytes', null],
    ['maxStoreBytes', 4095], ['maxStoreBytes', 8192.5], ['maxStoreBytes', NaN], ['maxStoreBytes', -Infinity],
    ['maxStoreBytes', '8192'], ['maxStoreBytes', null],
    ['cacheBytes', -1], ['cacheBytes', 4096.5], ['cacheBytes', '4096'], ['cacheBytes', 2 ** 40 + 1], ['cacheBytes', null],
    ['clock', 12345], ['clock', 'now'], ['clock', null],
    ['medium', 5], ['medium', 'fs'], ['medium', null],
    ['autoCompact', true], ['autoCompact', 'yes'], ['autoCompact', null],
    ['autoCompact.minDeadRatio', { minDeadRatio: 1.5 }], ['autoCompact.minDeadRatio', { minDeadRatio: -0.1 }],
    ['autoCompact.minDeadRatio', { minDeadRatio: NaN }], ['autoCompact.minDeadBytes', { minDeadBytes: -1 }],
    ['autoCompact.minDeadBytes', { minDeadBytes: 1.5 }],
    ['lockStaleMs', 999], ['lockStaleMs', 1000.5], ['lockStaleMs', '30000'], ['lockStaleMs', null],
    ['lockStaleMs', 24 * 3600 * 1000 + 1],
  ];
  for (const [option, value] of badOptions) {
    it(`rejects option ${option}: ${String(value)} with LOGKV_INVALID_ARGUMENT, creating nothing`, async () => {
      const dir = path.join(tempDir(), 'never-made');
      const given = option.startsWith('autoCompact.') ? { autoCompact: value } : { [option]: value };
      const err = await expectCode(open(dir, given as Loose), ErrorCodes.INVALID_ARGUMENT);
      expect(err.details.option).to.equal(option);
      expect(fs.existsSync(dir)).to.equal(false);
    });
  }

  for (const bad of ['fast', 7, true]) {
    it(`rejects options ${JSON.stringify(bad)} (not an object) with LOGKV_INVALID_ARGUMENT`, async () => {
      const err = await expectCode(open(tempDir(), bad as Loose), ErrorCodes.INVALID_ARGUMENT);
      expect(err.details.option).to.equal('options');
    });
  }

  it('accepts every option at its bounds', async () => {
    const bounds: OpenOptions[] = [
      { sync: 'always' }, { sync: 'interval', syncIntervalMs: 1 }, { sync: 'never' },
      { syncIntervalMs: 24 * 3600 * 1000 }, { maxSegmentBytes: 1024 }, { maxSegmentBytes: 2 ** 32 - 1 },
      { maxKeyBytes: 1 }, { maxKeyBytes: 65535 }, { maxValueBytes: 1 }, { maxValueBytes: 2 ** 30 },
      { maxStoreBytes: 4096 }, { maxStoreBytes: Infinity }, { clock: () => 5 }, {},
      { cacheBytes: 0 }, { cacheBytes: 2 ** 40 }, { autoCompact: false }, { autoCompact: {} },
      { autoCompact: { minDeadRatio: 0, minDeadBytes: 0 } }, { autoCompact: { minDeadRatio: 1 } },
      { lockStaleMs: 1000 }, { lockStaleMs: 24 * 3600 * 1000 },
    ];
    const dir = tempDir();
    for (const options of bounds) {
      const store = await open(dir, options);
      expect(store.closed).to.equal(false);
      await store.close();
    }
    const store = await open(dir, undefined);
    await store.close();
  });
});

describe('defaultDir()', () => {
  const home = '/home/ada';
  const cases: Array<{ name: string; env: NodeJS.ProcessEnv; platform: NodeJS.Platform; expected: string }> = [
    { name: '$LOGKV_DIR wins on linux', env: { LOGKV_DIR: '/data/kv', XDG_DATA_HOME: '/xdg', HOME: home },
      platform: 'linux', expected: '/data/kv' },
    { name: '$LOGKV_DIR wins on darwin', env: { LOGKV_DIR: '/data/kv', HOME: home }, platform: 'darwin',
      expected: '/data/kv' },
    { name: 'a relative $LOGKV_DIR is resolved', env: { LOGKV_DIR: 'rel/kv', HOME: home }, platform: 'linux',
      expected: path.resolve('rel/kv') },
    { name: 'an empty $LOGKV_DIR is ignored', env: { LOGKV_DIR: '', HOME: home }, platform: 'linux',
      expected: '/home/ada/.local/share/logkv/default' },
    { name: 'linux uses $XDG_DATA_HOME', env: { XDG_DATA_HOME: '/xdg/data', HOME: home }, platform: 'linux',
      expected: '/xdg/data/logkv/default' },
    { name: 'linux ignores a relative $XDG_DATA_HOME', env: { XDG_DATA_HOME: 'xdg', HOME: home }, platform: 'linux',
      expected: '/home/ada/.local/share/logkv/default' },
    { name: 'linux without $XDG_DATA_HOME uses ~/.local/share', env: { HOME: home }, platform: 'linux',
      expected: '/home/ada/.local/share/logkv/default' },
    { name: 'darwin uses ~/Library/Application Support', env: { HOME: home, XDG_DATA_HOME: '/xdg' },
      platform: 'darwin', expected: '/home/ada/Library/Application Support/logkv/default' },
    { name: 'without $HOME, the OS home directory', env: {}, platform: 'linux',
      expected: path.join(os.homedir(), '.local', 'share', 'logkv', 'default') },
  ];
  for (const c of cases) {
    it(c.name, () => {
      expect(defaultDir(c.env, c.platform)).to.equal(c.expected);
    });
  }

  it('defaults to process.env and process.platform', () => {
    const saved = process.env.LOGKV_DIR;
    process.env.LOGKV_DIR = '/somewhere/else';
    try {
      expect(defaultDir()).to.equal('/somewhere/else');
    } finally {
      if (saved === undefined) delete process.env.LOGKV_DIR;
      else process.env.LOGKV_DIR = saved;
    }
  });
});

describe('the Store API', () => storeApiSpecs(openFast));

/**
 * The Store API's behaviour, over stores that `openStore` opens: alone in this process here, and
 * as a client of a shared store's owner in another process in spec/shared-api.spec.ts.
 */
export function storeApiSpecs(openStore: Opener): void {
  let dir: string;
  let store: Store<unknown>;

  beforeEach(async () => {
    dir = tempDir();
    store = await openStore(dir);
  });
  afterEach(async () => {
    await store.close();
  });

  it('get() returns undefined for a missing key and the value of a present one', async () => {
    expect(await store.get('missing')).to.equal(undefined);
    await store.set('k', { a: 1 });
    expect(await store.get('k')).to.deep.equal({ a: 1 });
  });

  it('has() tells live from missing and deleted keys', async () => {
    expect(await store.has('k')).to.equal(false);
    await store.set('k', null);
    expect(await store.has('k')).to.equal(true);
    await store.delete('k');
    expect(await store.has('k')).to.equal(false);
  });

  it('set() inserts and overwrites, resolving with the version it wrote', async () => {
    expect(await store.set('k', 1)).to.equal(1);
    expect(await store.set('k', 2)).to.equal(2);
    expect(await store.get('k')).to.equal(2);
    expect(store.size).to.equal(1);
  });

  it('create() inserts a missing key and rejects a live one with LOGKV_KEY_EXISTS', async () => {
    expect(await store.create('k', 'first')).to.equal(1);
    const err = await expectCode(store.create('k', 'second'), ErrorCodes.KEY_EXISTS);
    expect(err.details.key).to.equal('k');
    expect(await store.get('k')).to.equal('first');
  });

  it('create() succeeds again after a delete', async () => {
    await store.create('k', 1);
    await store.delete('k');
    await store.create('k', 2);
    expect(await store.get('k')).to.equal(2);
  });

  it('update() replaces a live key and rejects a missing or deleted one with LOGKV_KEY_NOT_FOUND', async () => {
    const err = await expectCode(store.update('k', 1), ErrorCodes.KEY_NOT_FOUND);
    expect(err.details.key).to.equal('k');
    await store.set('k', 1);
    expect(await store.update('k', 2)).to.equal(2);
    expect(await store.get('k')).to.equal(2);
    await store.delete('k');
    await expectCode(store.update('k', 3), ErrorCodes.KEY_NOT_FOUND);
    expect(await store.has('k')).to.equal(false);
  });

  it('delete() resolves true for a live key and false (writing nothing) otherwise', async () => {
    await store.set('k', 1);
    await store.sync();
    const before = segmentBytes(dir);
    expect(await store.delete('k')).to.equal(true);
    await store.sync();
    expect(segmentBytes(dir)).to.equal(before + deleteRecordBytes('k'));
    const afterOne = segmentBytes(dir);
    expect(await store.delete('k')).to.equal(false);
    expect(await store.delete('never')).to.equal(false);
    await store.sync();
    expect(segmentBytes(dir)).to.equal(afterOne);
  });

  it('batch() applies sets and deletes in order', async () => {
    await store.set('old', 'x');
    await store.batch([
      { type: 'set', key: 'a', value: 1 },
      { type: 'set', key: 'b', value: 2 },
      { type: 'delete', key: 'old' },
      { type: 'set', key: 'a', value: 3 },
      { type: 'delete', key: 'b' },
      { type: 'set', key: 'b', value: 4 },
    ]);
    expect(await dump(store)).to.deep.equal([['a', 3], ['b', 4]]);
    await store.close();
    store = await openStore(dir);
    expect(await dump(store)).to.deep.equal([['a', 3], ['b', 4]]);
  });

  it('batch() of nothing, or of deletes of missing keys, resolves and writes nothing', async () => {
    await store.set('k', 1);
    await store.sync();
    const before = snapshotSegments(dir);
    expect(await store.batch([])).to.deep.equal([]);
    expect(await store.batch([{ type: 'delete', key: 'missing' }, { type: 'delete', key: 'gone' }])).to.deep.equal([0, 0]);
    await store.sync();
    expect(snapshotSegments(dir)).to.deep.equal(before);
  });

  it('batch() writes only the deletes of keys live at that point of the batch', async () => {
    await store.sync();
    const before = segmentBytes(dir) || SEGMENT_HEADER_BYTES;
    // 'x' is not live before the batch; it is after the set, so the second delete is needed.
    expect(await store.batch([
      { type: 'delete', key: 'x' },
      { type: 'set', key: 'x', value: 1 },
      { type: 'delete', key: 'x' },
    ])).to.deep.equal([0, 1, 2]);
    await store.sync();
    expect(segmentBytes(dir)).to.equal(before + setRecordBytes('x', 1) + deleteRecordBytes('x'));
    expect(await store.has('x')).to.equal(false);
  });

  it('batch() takes a ttl or expiresAt per set operation', async () => {
    const now = Date.now();
    await store.batch([
      { type: 'set', key: 'a', value: 1, ttl: 60_000 },
      { type: 'set', key: 'b', value: 2, expiresAt: now - 1 },
    ]);
    expect(await store.get('a')).to.equal(1);
    expect(await store.has('b')).to.equal(false);
  });

  it('keys() and entries() yield every live key once, and filter by prefix', async () => {
    await store.set('user:1', 'ada');
    await store.set('user:2', 'bob');
    await store.set('team:1', 'core');
    await store.set('user:3', 'cy');
    await store.delete('user:2');
    await store.set('user:1', 'ada2');
    expect(await allKeys(store)).to.deep.equal(['team:1', 'user:1', 'user:3']);
    expect(await allKeys(store, 'user:')).to.deep.equal(['user:1', 'user:3']);
    expect(await allKeys(store, '')).to.deep.equal(['team:1', 'user:1', 'user:3']);
    expect(await allKeys(store, 'nobody')).to.deep.equal([]);
    const users: Array<[string, unknown]> = [];
    for await (const pair of store.entries({ prefix: 'user:' })) users.push(pair);
    expect(users.sort()).to.deep.equal([['user:1', 'ada2'], ['user:3', 'cy']]);
    expect(await dump(store)).to.deep.equal([['team:1', 'core'], ['user:1', 'ada2'], ['user:3', 'cy']]);
  });

  it('keys() never yields a key deleted during iteration before it was reached', async () => {
    for (const k of ['a', 'b', 'c', 'd']) await store.set(k, k);
    const seen: string[] = [];
    for await (const key of store.keys()) {
      seen.push(key);
      if (key === 'a') await store.delete('c');
    }
    expect(seen).to.deep.equal(['a', 'b', 'd']);
  });

  it('keys() under heavy churn yields every untouched key exactly once', async () => {
    for (let i = 0; i < 500; i++) void store.set(`stable:${i}`, i);
    for (let i = 0; i < 500; i++) void store.set(`victim:${i}`, i);
    await store.sync();
    const seen = new Map<string, number>();
    let n = 0;
    for await (const key of store.keys()) {
      seen.set(key, (seen.get(key) ?? 0) + 1);
      if (n++ !== 5) continue;
      // Deletes, re-sets and enough new long keys to make the index grow and rebuild.
      for (let i = 0; i < 500; i++) void store.delete(`victim:${i}`);
      for (let i = 0; i < 3000; i++) void store.set(`new:${'x'.repeat(200)}:${i}`, i);
      for (let i = 0; i < 500; i += 2) void store.set(`victim:${i}`, 'again');
      for (let i = 0; i < 3000; i++) void store.delete(`new:${'x'.repeat(200)}:${i}`);
    }
    expect([...seen.values()].every((count) => count === 1)).to.equal(true);
    for (let i = 0; i < 500; i++) expect(seen.get(`stable:${i}`), `stable:${i}`).to.equal(1);
    // Deleted before the iteration reached them, and not set again: never yielded.
    for (let i = 1; i < 500; i += 2) expect(seen.has(`victim:${i}`), `victim:${i}`).to.equal(false);
    // The synchronous size of a shared store's client counts the log, not its writes still in flight.
    await store.sync();
    expect(store.size).to.equal(750);
  });

  it('keys that look like object properties, and canonically equivalent strings, are distinct keys', async () => {
    const keys = ['__proto__', 'constructor', 'hasOwnProperty', 'toString', '\u00e9', 'e\u0301', 'E\u0301', '\u0000', ' '];
    for (const [i, key] of keys.entries()) await store.set(key, i);
    expect(store.size).to.equal(keys.length);
    await store.close();
    store = await openStore(dir);
    for (const [i, key] of keys.entries()) expect(await store.get(key), JSON.stringify(key)).to.equal(i);
    expect(await allKeys(store)).to.deep.equal([...keys].sort());
  });

  it('entries() can stop early without harm', async () => {
    for (const k of ['a', 'b', 'c']) await store.set(k, k);
    for await (const [key] of store.entries()) {
      expect(key).to.equal('a');
      break;
    }
    expect(store.size).to.equal(3);
  });

  it('size counts live keys', async () => {
    expect(store.size).to.equal(0);
    await store.set('a', 1);
    await store.set('b', 1);
    await store.set('a', 2);
    expect(store.size).to.equal(2);
    await store.delete('a');
    expect(store.size).to.equal(1);
  });

  it('sync() resolves once everything before it is written', async () => {
    void store.set('a', 1);
    void store.set('b', 2);
    expect(await store.sync()).to.equal(undefined);
    expect(segmentBytes(dir)).to.equal(SEGMENT_HEADER_BYTES + setRecordBytes('a', 1) + setRecordBytes('b', 2));
  });

  it('sync() on a store that never wrote resolves and creates no segment', async () => {
    await store.sync();
    expect(segmentFiles(dir)).to.deep.equal([]);
  });

  it('close() waits for queued writes, which all survive reopening', async () => {
    const writes: Array<Promise<unknown>> = [];
    for (let i = 0; i < 100; i++) writes.push(store.set(`k${i}`, i));
    writes.push(store.delete('k0'));
    await store.close();
    expect(await Promise.all(writes)).to.deep.equal([...Array.from({ length: 100 }, (_, i) => i + 1), true]);
    store = await openStore(dir);
    expect(store.size).to.equal(99);
    expect(await store.get('k99')).to.equal(99);
    expect(await store.has('k0')).to.equal(false);
  });

  it('stats() counts keys, segments, live, dead and disk bytes exactly', async () => {
    const h = SEGMENT_HEADER_BYTES;
    // A store that never wrote has no segment file yet.
    expect(coreStats(store)).to.deep.equal({ keys: 0, segments: 0, liveBytes: 0, deadBytes: 0, diskBytes: 0 });
    const a1 = setRecordBytes('a', 'first');
    const b1 = setRecordBytes('b', { n: 1 });
    const a2 = setRecordBytes('a', [1, 2, 3]);
    const tombA = deleteRecordBytes('a');
    await store.set('a', 'first');
    expect(coreStats(store)).to.deep.equal({ keys: 1, segments: 1, liveBytes: a1, deadBytes: 0, diskBytes: h + a1 });
    await store.set('b', { n: 1 });
    await store.set('a', [1, 2, 3]);
    expect(coreStats(store)).to.deep.equal({
      keys: 2, segments: 1, liveBytes: b1 + a2, deadBytes: a1, diskBytes: h + a1 + b1 + a2,
    });
    await store.delete('a');
    await store.delete('a'); // not live: writes nothing
    const expected = { keys: 1, segments: 1, liveBytes: b1, deadBytes: a1 + a2 + tombA, diskBytes: h + a1 + b1 + a2 + tombA };
    expect(coreStats(store)).to.deep.equal(expected);
    await store.sync();
    expect(segmentBytes(dir)).to.equal(expected.diskBytes);
    await store.close();
    store = await openStore(dir);
    expect(coreStats(store)).to.deep.equal(expected);
  });

  it('stats() counts every segment after rotation, and diskBytes matches the files', async () => {
    await store.close();
    store = await openStore(dir, { maxSegmentBytes: 1024 });
    const value = 'v'.repeat(200);
    const record = setRecordBytes('k00', value);
    // Each 1024-byte segment holds 28 header bytes and as many whole records as fit.
    const perSegment = Math.floor((1024 - SEGMENT_HEADER_BYTES) / record);
    for (let i = 0; i < 10; i++) await store.set(`k${String(i).padStart(2, '0')}`, value);
    const segments = Math.ceil(10 / perSegment);
    const expected = { keys: 10, segments, liveBytes: 10 * record, deadBytes: 0, diskBytes: segments * SEGMENT_HEADER_BYTES + 10 * record };
    expect(coreStats(store)).to.deep.equal(expected);
    await store.sync();
    expect(segmentFiles(dir)).to.have.length(segments);
    expect(segmentBytes(dir)).to.equal(expected.diskBytes);
    for (const name of segmentFiles(dir)) expect(fs.statSync(path.join(dir, name)).size).to.be.at.most(1024);
    await store.close();
    store = await openStore(dir, { maxSegmentBytes: 1024 });
    expect(coreStats(store)).to.deep.equal(expected);
    expect(await store.get('k09')).to.equal(value);
  });

  it('a record larger than maxSegmentBytes gets a segment of its own', async () => {
    await store.close();
    store = await openStore(dir, { maxSegmentBytes: 1024 });
    await store.set('small', 1);
    await store.set('big', Buffer.alloc(3000, 7));
    await store.set('after', 2);
    expect(store.stats().segments).to.equal(3);
    await store.close();
    store = await openStore(dir, { maxSegmentBytes: 1024 });
    expect(await store.get('big')).to.deep.equal(Buffer.alloc(3000, 7));
    expect(await store.get('after')).to.equal(2);
    expect(segmentFiles(dir)).to.deep.equal(['000000010000.seg', '000000020000.seg', '000000030000.seg']);
  });
}

describe('typing', () => {
  interface User { name: string; age: number }

  it('open<V>() gives a store typed by V', async () => {
    const store = await openFast<User>(tempDir());
    await store.set('u:1', { name: 'Ada', age: 36 });
    await store.batch([{ type: 'set', key: 'u:2', value: { name: 'Bob', age: 1 } }]);
    // @ts-expect-error a value of another type does not compile (npm test type-checks the specs)
    await expectCode(store.set('u:3', undefined), ErrorCodes.INVALID_VALUE);
    const user: User | undefined = await store.get('u:1');
    expect(user?.name).to.equal('Ada');
    const names: string[] = [];
    for await (const [, value] of store.entries()) names.push(value.name);
    expect(names.sort()).to.deep.equal(['Ada', 'Bob']);
    await store.close();
  });
});

describe('after close()', () => afterCloseSpecs(openFast));

export function afterCloseSpecs(openStore: Opener): void {
  it('every call rejects (or throws) LOGKV_CLOSED, and close() is idempotent', async () => {
    const dir = tempDir();
    const store = await openStore(dir);
    await store.set('k', 1);
    const closing = store.close();
    expect(store.closed).to.equal(true);
    expect(store.close()).to.equal(closing);
    await closing;
    expect(await store.close()).to.equal(undefined);
    await expectCode(store.get('k'), ErrorCodes.CLOSED);
    await expectCode(store.has('k'), ErrorCodes.CLOSED);
    await expectCode(store.set('k', 2), ErrorCodes.CLOSED);
    await expectCode(store.create('n', 2), ErrorCodes.CLOSED);
    await expectCode(store.update('k', 2), ErrorCodes.CLOSED);
    await expectCode(store.delete('k'), ErrorCodes.CLOSED);
    await expectCode(store.batch([{ type: 'set', key: 'k', value: 2 }]), ErrorCodes.CLOSED);
    await expectCode(store.sync(), ErrorCodes.CLOSED);
    await expectCode(store.keys().next(), ErrorCodes.CLOSED);
    await expectCode(store.entries({ prefix: 'k' }).next(), ErrorCodes.CLOSED);
    expectCodeSync(() => store.size, ErrorCodes.CLOSED);
    expectCodeSync(() => store.stats(), ErrorCodes.CLOSED);
    expect(store.dir).to.equal(dir);
    // Nothing above wrote anything.
    const again = await openStore(dir);
    expect(await dump(again)).to.deep.equal([['k', 1]]);
    await again.close();
  });

  it('calls made while close() is in progress reject with LOGKV_CLOSED; earlier ones complete', async () => {
    const dir = tempDir();
    const store = await openStore(dir);
    const before = store.set('a', 1);
    const closing = store.close();
    await expectCode(store.set('b', 2), ErrorCodes.CLOSED);
    await expectCode(store.get('a'), ErrorCodes.CLOSED);
    await before;
    await closing;
    const again = await openStore(dir);
    expect(await dump(again)).to.deep.equal([['a', 1]]);
    await again.close();
  });

  it('an iteration in progress stops with LOGKV_CLOSED', async () => {
    const store = await openStore(tempDir());
    await store.set('a', 1);
    await store.set('b', 2);
    const iterator = store.entries();
    expect((await iterator.next()).value).to.deep.equal(['a', 1]);
    await store.close();
    await expectCode(iterator.next(), ErrorCodes.CLOSED);
  });

  it('the directory can be opened again', async () => {
    const dir = tempDir();
    for (let i = 0; i < 3; i++) {
      const store = await openStore(dir);
      expect(store.size).to.equal(i);
      await store.set(`k${i}`, i);
      await store.close();
    }
  });
}

/**
 * A rejected call writes nothing and changes nothing. Each case opens a store with known contents,
 * makes one bad call, and checks the keys, values, size, stats and segment bytes, then reopens and
 * checks again.
 */
describe('a rejected call writes nothing and changes nothing', () => rejectedCallSpecs((dir, options) => open(dir, options)));

export function rejectedCallSpecs(openStore: Opener, pick: (index: number) => boolean = () => true): void {
  const OPTIONS: OpenOptions = { sync: 'never', maxKeyBytes: 8, maxValueBytes: 64 };
  const C = ErrorCodes;
  class Point { constructor(readonly x: number) {} }
  class List extends Array<number> {}
  const cycle: Record<string, unknown> = { a: 1 };
  cycle.self = cycle;
  const arrayCycle: unknown[] = [1];
  arrayCycle.push([arrayCycle]);
  const mapCycle = new Map<string, unknown>();
  mapCycle.set('me', mapCycle);
  let deep: unknown = 1;
  for (let i = 0; i < 300; i++) deep = [deep];

  const badKeys: Array<[string, unknown]> = [
    ['a number', 5], ['undefined', undefined], ['null', null], ['an object', {}], ['a symbol', Symbol('k')],
    ['empty', ''], ['9 ASCII bytes', 'abcdefghi'], ['3 euro signs (9 bytes)', '€€€'],
    ['an emoji past the limit (9 bytes)', 'a😀😀'], ['a lone high surrogate', 'a\uD800'],
    ['a lone low surrogate', '\uDC00b'], ['a reversed surrogate pair', '\uDE00\uD83D'],
  ];
  const badValues: Array<[string, unknown]> = [
    ['undefined', undefined], ['a function', () => 1], ['a symbol', Symbol('v')], ['a class instance', new Point(1)],
    ['a nested class instance', { p: [new Point(1)] }], ['an object cycle', cycle], ['an array cycle', arrayCycle],
    ['a Map cycle', mapCycle], ['a symbol-keyed object', { [Symbol('s')]: 1 }], ['a WeakMap', new WeakMap()],
    ['a Promise', Promise.resolve(1)], ['an Error', new Error('x')], ['an invalid Date', new Date(NaN)],
    ['an Array subclass', List.from([1])], ['a function inside an array', [1, () => 2]],
    ['a null-prototype object', Object.create(null)], ['nesting 300 deep', deep],
    ['65 bytes encoded (maxValueBytes 64)', Buffer.alloc(63)], ['a long string', 'x'.repeat(100)],
  ];
  const badTtls: unknown[] = [0, -1, NaN, Infinity, -Infinity, '100', null, true, {}];
  const badExpiresAt: unknown[] = [0, -5, NaN, Infinity, Number.MAX_SAFE_INTEGER + 2, '123', null];

  const cases: Array<{ name: string; call: (s: Store<Loose>) => Promise<unknown>; code: ErrorCode }> = [];
  for (const [what, key] of badKeys) {
    cases.push({ name: `get() with a key that is ${what}`, call: (s) => s.get(key as Loose), code: C.INVALID_KEY });
    cases.push({ name: `has() with a key that is ${what}`, call: (s) => s.has(key as Loose), code: C.INVALID_KEY });
    cases.push({ name: `set() with a key that is ${what}`, call: (s) => s.set(key as Loose, 1), code: C.INVALID_KEY });
    cases.push({ name: `create() with a key that is ${what}`, call: (s) => s.create(key as Loose, 1), code: C.INVALID_KEY });
    cases.push({ name: `update() with a key that is ${what}`, call: (s) => s.update(key as Loose, 1), code: C.INVALID_KEY });
    cases.push({ name: `delete() with a key that is ${what}`, call: (s) => s.delete(key as Loose), code: C.INVALID_KEY });
    cases.push({
      name: `batch() set with a key that is ${what}`,
      call: (s) => s.batch([{ type: 'set', key: 'ok', value: 1 }, { type: 'set', key: key as Loose, value: 1 }]),
      code: C.INVALID_KEY,
    });
    cases.push({
      name: `batch() delete with a key that is ${what}`,
      call: (s) => s.batch([{ type: 'delete', key: 'a' }, { type: 'delete', key: key as Loose }]),
      code: C.INVALID_KEY,
    });
  }
  for (const [what, value] of badValues) {
    cases.push({ name: `set() of ${what}`, call: (s) => s.set('a', value), code: C.INVALID_VALUE });
    cases.push({ name: `create() of ${what}`, call: (s) => s.create('new', value), code: C.INVALID_VALUE });
    cases.push({ name: `update() of ${what}`, call: (s) => s.update('a', value), code: C.INVALID_VALUE });
    cases.push({
      name: `batch() set of ${what}`,
      call: (s) => s.batch([{ type: 'delete', key: 'a' }, { type: 'set', key: 'b', value }]),
      code: C.INVALID_VALUE,
    });
  }
  for (const ttl of badTtls) {
    const label = typeof ttl === 'string' ? JSON.stringify(ttl) : String(ttl);
    cases.push({ name: `set() with ttl ${label}`, call: (s) => s.set('a', 2, { ttl: ttl as Loose }), code: C.INVALID_ARGUMENT });
    cases.push({ name: `create() with ttl ${label}`, call: (s) => s.create('n', 2, { ttl: ttl as Loose }), code: C.INVALID_ARGUMENT });
    cases.push({ name: `update() with ttl ${label}`, call: (s) => s.update('a', 2, { ttl: ttl as Loose }), code: C.INVALID_ARGUMENT });
    cases.push({
      name: `batch() set with ttl ${label}`,
      call: (s) => s.batch([{ type: 'set', key: 'n', value: 1 }, { type: 'set', key: 'a', value: 2, ttl: ttl as Loose }]),
      code: C.INVALID_ARGUMENT,
    });
  }
  for (const expiresAt of badExpiresAt) {
    const label = typeof expiresAt === 'string' ? JSON.stringify(expiresAt) : String(expiresAt);
    cases.push({
      name: `set() with expiresAt ${label}`, call: (s) => s.set('a', 2, { expiresAt: expiresAt as Loose }),
      code: C.INVALID_ARGUMENT,
    });
  }
  cases.push(
    { name: 'set() with ttl and expiresAt together', call: (s) => s.set('a', 2, { ttl: 10, expiresAt: Date.now() + 10 }), code: C.INVALID_ARGUMENT },
    { name: 'create() with ttl and expiresAt together', call: (s) => s.create('n', 2, { ttl: 10, expiresAt: Date.now() + 10 }), code: C.INVALID_ARGUMENT },
    { name: 'batch() set with ttl and expiresAt together', call: (s) => s.batch([{ type: 'set', key: 'n', value: 2, ttl: 10, expiresAt: Date.now() + 10 }]), code: C.INVALID_ARGUMENT },
    { name: 'set() with options that are a string', call: (s) => s.set('a', 2, 'ttl' as Loose), code: C.INVALID_ARGUMENT },
    { name: 'set() with options that are null', call: (s) => s.set('a', 2, null as Loose), code: C.INVALID_ARGUMENT },
    { name: 'batch() of a string', call: (s) => s.batch('set a' as Loose), code: C.INVALID_ARGUMENT },
    { name: 'batch() of an object', call: (s) => s.batch({ type: 'set', key: 'n', value: 1 } as Loose), code: C.INVALID_ARGUMENT },
    { name: 'batch() of undefined', call: (s) => s.batch(undefined as Loose), code: C.INVALID_ARGUMENT },
    { name: 'batch() with a null operation', call: (s) => s.batch([{ type: 'set', key: 'n', value: 1 }, null as Loose]), code: C.INVALID_ARGUMENT },
    { name: 'batch() with a number operation', call: (s) => s.batch([7 as Loose]), code: C.INVALID_ARGUMENT },
    { name: 'batch() with an unknown type', call: (s) => s.batch([{ type: 'delete', key: 'a' }, { type: 'put', key: 'n', value: 1 } as Loose]), code: C.INVALID_ARGUMENT },
    { name: 'batch() with no type', call: (s) => s.batch([{ key: 'n', value: 1 } as Loose]), code: C.INVALID_ARGUMENT },
    { name: 'keys() with a number prefix', call: async (s) => { for await (const _ of s.keys({ prefix: 5 as Loose })) void _; }, code: C.INVALID_ARGUMENT },
    { name: 'keys() with string options', call: async (s) => { for await (const _ of s.keys('a' as Loose)) void _; }, code: C.INVALID_ARGUMENT },
    { name: 'entries() with null options', call: async (s) => { for await (const _ of s.entries(null as Loose)) void _; }, code: C.INVALID_ARGUMENT },
    { name: 'create() of a live key', call: (s) => s.create('a', 'other'), code: C.KEY_EXISTS },
    { name: 'create() of a live key with a ttl', call: (s) => s.create('b', 'other', { ttl: 1000 }), code: C.KEY_EXISTS },
    { name: 'update() of a missing key', call: (s) => s.update('missing', 1), code: C.KEY_NOT_FOUND },
    { name: 'update() of a deleted key', call: (s) => s.update('gone', 1), code: C.KEY_NOT_FOUND },
  );

  for (const c of cases.filter((_, i) => pick(i))) {
    it(`${c.name}: ${c.code}`, async () => {
      const dir = tempDir();
      let store = await openStore(dir, OPTIONS) as Store<Loose>;
      await store.set('a', 1);
      await store.set('b', { two: [2] });
      await store.set('gone', 'x');
      await store.delete('gone');
      await store.sync();
      const before = { size: store.size, stats: coreStats(store), entries: await dump(store), files: snapshotSegments(dir) };

      await expectCode(c.call(store), c.code);
      await store.sync();
      expect({ size: store.size, stats: coreStats(store), entries: await dump(store), files: snapshotSegments(dir) })
        .to.deep.equal(before);
      // The store still takes writes.
      await store.close();
      store = await openStore(dir, OPTIONS);
      expect({ size: store.size, stats: coreStats(store), entries: await dump(store), files: snapshotSegments(dir) })
        .to.deep.equal(before);
      await store.set('later', 3);
      expect(await store.get('later')).to.equal(3);
      await store.close();
    });
  }

  it('rejections are LogkvError instances with the documented codes only', () => {
    const codes = Object.values(ErrorCodes);
    expect(codes).to.deep.equal([
      'LOGKV_KEY_EXISTS', 'LOGKV_KEY_NOT_FOUND', 'LOGKV_INVALID_KEY', 'LOGKV_INVALID_VALUE', 'LOGKV_INVALID_ARGUMENT',
      'LOGKV_LOCKED', 'LOGKV_LOCK_LOST', 'LOGKV_VERSION_MISMATCH', 'LOGKV_WATCH_OVERFLOW', 'LOGKV_CLOSED', 'LOGKV_CORRUPTION', 'LOGKV_STORE_FULL', 'LOGKV_IO',
      'LOGKV_OUTCOME_UNKNOWN', 'LOGKV_INCOMPLETE_BACKUP',
    ]);
    const err = new LogkvError(ErrorCodes.IO, 'm', { file: 'f' }, new Error('cause'));
    expect(err).to.be.instanceOf(Error);
    expect(err.name).to.equal('LogkvError');
    expect(err.details).to.deep.equal({ file: 'f' });
    expect((err.cause as Error).message).to.equal('cause');
  });
}
