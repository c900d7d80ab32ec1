/**
 * The Keyv adapter beyond Keyv's compliance suite (spec/keyv.test.ts): that TTL is logkv's own
 * expiry, that namespaces are key prefixes in the store, that adapters of one directory share one
 * store and the last disconnect closes it, and that values can skip Keyv's JSON serializer.
 */
import { expect } from 'chai';
import Keyv from 'keyv';
import { ErrorCodes, open } from '../lib';
import { KeyvLogkv } from '../lib/keyv';
import { expectCode, tempDir } from './helpers';

describe('Keyv adapter (logkv/keyv)', () => {
  const adapters: KeyvLogkv[] = [];
  const adapter = (dir: string, options: ConstructorParameters<typeof KeyvLogkv>[0] = {}): KeyvLogkv => {
    const made = new KeyvLogkv({ dir, sync: 'never', ...options });
    adapters.push(made);
    return made;
  };
  afterEach(async () => {
    for (const made of adapters.splice(0)) await made.disconnect();
  });

  it('stores Keyv keys under the namespace prefix, and TTL as logkv expiry', async () => {
    const dir = tempDir('keyv');
    const keyv = new Keyv({ store: adapter(dir), namespace: 'sessions' });
    expect(await keyv.set('a', { user: 1 })).to.equal(true);
    expect(await keyv.set('b', 'short', 30)).to.equal(true);
    const store = await (keyv.store as KeyvLogkv).getStore();
    expect(await store.has('sessions:a')).to.equal(true);
    expect(await store.has('sessions:b')).to.equal(true);
    await new Promise((resolve) => setTimeout(resolve, 60));
    // Expired in the store itself, not only in Keyv's wrapper: gone for has, keys and size.
    expect(await store.has('sessions:b')).to.equal(false);
    expect(store.size).to.equal(1);
    expect(await keyv.get('a')).to.deep.equal({ user: 1 });
    expect(await keyv.get('b')).to.equal(undefined);
  });

  it('a ttl of 0 or less stores nothing: the value is already expired', async () => {
    const kv = adapter(tempDir('keyv'));
    await kv.set('k', 'v');
    expect(await kv.set('k', 'v2', -1)).to.equal(true);
    expect(await kv.has('k')).to.equal(false);
    await kv.setMany([{ key: 'x', value: 1, ttl: 0 }, { key: 'y', value: 2, ttl: 10_000 }]);
    expect(await kv.getMany(['x', 'y'])).to.deep.equal([undefined, 2]);
  });

  it('clear() removes only its own namespace; iterator() yields only its namespace', async () => {
    const dir = tempDir('keyv');
    const one = new Keyv({ store: adapter(dir), namespace: 'one' });
    const two = new Keyv({ store: adapter(dir), namespace: 'two' });
    await one.set('k', 1);
    await two.set('k', 2);
    await two.set('j', 3);
    const seen: Array<[string, unknown]> = [];
    for await (const pair of (two.store as KeyvLogkv).iterator('two')) seen.push(pair);
    expect(seen.map(([key]) => key).sort()).to.deep.equal(['two:j', 'two:k']);
    await one.clear();
    expect(await one.get('k')).to.equal(undefined);
    expect(await two.get('k')).to.equal(2);
  });

  it('clear() deletes in bounded batches, so it works where one batch of every key would not fit in a segment', async () => {
    // 1024-byte segments hold about 30 tombstones: a single batch of 2500 deletes would be
    // rejected (LOGKV_INVALID_ARGUMENT: a batch must fit in one segment), so clear() splits.
    const dir = tempDir('keyv');
    const kv = adapter(dir, { maxSegmentBytes: 1024, autoCompact: false });
    const keyv = new Keyv({ store: kv, namespace: 'big' });
    const other = new Keyv({ store: adapter(dir), namespace: 'other' });
    const store = await kv.getStore();
    for (let i = 0; i < 2500; i += 10) {
      await store.batch(Array.from({ length: 10 }, (_, j) => ({ type: 'set' as const, key: `big:${i + j}`, value: i + j })));
    }
    await other.set('stays', 1);
    await expectCode(store.batch(Array.from({ length: 2500 }, (_, i) => ({ type: 'delete' as const, key: `big:${i}` }))),
      ErrorCodes.INVALID_ARGUMENT);
    await keyv.clear();
    expect(store.size).to.equal(1);
    expect(await other.get('stays')).to.equal(1);
  });

  it('clear() of a store passed in with small segments splits its batches until they fit', async () => {
    const store = await open(tempDir('keyv'), { sync: 'never', maxSegmentBytes: 1024, autoCompact: false });
    const kv = new KeyvLogkv({ store });
    for (let i = 0; i < 300; i++) await store.set(`k${i}`, i);
    await kv.clear();
    expect(store.size).to.equal(0);
    await kv.disconnect();
    await store.close();
  });

  it('adapters of one directory share one open store; the last disconnect closes it', async () => {
    const dir = tempDir('keyv');
    const first = new KeyvLogkv({ dir, sync: 'never' });
    const second = new KeyvLogkv({ dir, sync: 'never' });
    expect(await first.getStore()).to.equal(await second.getStore());
    await first.set('k', 'v');
    await first.disconnect();
    await expectCode(first.get('k'), ErrorCodes.CLOSED);
    expect(await second.get('k')).to.equal('v');
    // Still open through `second`: the directory is locked.
    await expectCode(open(dir), ErrorCodes.LOCKED);
    await second.disconnect();
    const reopened = await open(dir);
    expect(await reopened.get('k')).to.equal('v');
    await reopened.close();
  });

  it('uses a store passed in, and leaves it open on disconnect', async () => {
    const store = await open(tempDir('keyv'), { sync: 'never' });
    const kv = new KeyvLogkv({ store });
    await kv.set('k', 1);
    await kv.disconnect();
    expect(await store.get('k')).to.equal(1);
    await store.close();
  });

  it('without Keyv serialization, values keep their msgpack types (Map, Date, Buffer, bigint)', async () => {
    const keyv = new Keyv({ store: adapter(tempDir('keyv')), serialize: undefined, deserialize: undefined });
    const value = { when: new Date(5), tags: new Map([['a', new Set([1n])]]), bytes: Buffer.from('hi') };
    await keyv.set('k', value);
    expect(await keyv.get('k')).to.deep.equal(value);
  });

  it('a failed open (the store is locked) rejects every call with its code, and a later adapter can retry', async () => {
    const dir = tempDir('keyv');
    const owner = await open(dir);
    const kv = new KeyvLogkv({ dir });
    await expectCode(kv.get('k'), ErrorCodes.LOCKED);
    await expectCode(kv.set('k', 1), ErrorCodes.LOCKED);
    await owner.close();
    await kv.disconnect();
    const retry = adapter(dir);
    await retry.set('k', 1);
    expect(await retry.get('k')).to.equal(1);
  });
});
