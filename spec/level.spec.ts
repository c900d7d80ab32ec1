/**
 * LogkvLevel beyond abstract-level's own suite (spec/level/suite.ts, run by npm run test:level):
 * how Level keys sit in the store, and that they keep byte order through that mapping.
 */
import { expect } from 'chai';
import { open } from '../lib';
import { KEY_PREFIX, LogkvLevel, storedKey } from '../lib/level';
import { MemoryMedium } from '../lib/testing';
import { prng } from './helpers';

describe('LogkvLevel', () => {
  it('stores ASCII keys under "~" as they are, other bytes one code point each, and reads them back', async () => {
    const medium = new MemoryMedium();
    const db = new LogkvLevel('/db', { logkv: { medium } });
    await db.put('user!1', 'a');
    await db.put('é', 'b');
    await db.put(Uint8Array.from([0x80, 0x00]) as unknown as string, 'c', { keyEncoding: 'view' });
    await db.put('', 'empty');
    await db.close();
    const store = await open('/db', { medium });
    const keys: string[] = [];
    for await (const key of store.keys()) keys.push(key);
    expect(keys).to.deep.equal([KEY_PREFIX, `${KEY_PREFIX}user!1`, `${KEY_PREFIX}\u0080\u0000`, `${KEY_PREFIX}\u00c3\u00a9`]);
    await store.close();
    const again = new LogkvLevel('/db', { logkv: { medium } });
    expect(await again.get('é')).to.equal('b');
    expect(await again.keys().all()).to.deep.equal(['', 'user!1', '\ufffd\u0000', 'é']);
    await again.close();
  });

  it('keeps byte order through the mapping: stored keys sort as the Level keys\' bytes do', () => {
    const next = prng(5);
    const random = (n: number) => Uint8Array.from({ length: n }, () => Math.floor(next() * 256));
    const keys = Array.from({ length: 2000 }, () => random(Math.floor(next() * 6)));
    const byBytes = [...keys].sort((a, b) => Buffer.compare(a, b)).map((k) => storedKey(k));
    const byStored = keys.map((k) => storedKey(k)).sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
    expect(byStored).to.deep.equal(byBytes);
    expect(storedKey('\u{1F600}')).to.equal(storedKey(Buffer.from('\u{1F600}', 'utf8')));
  });

  it('runs the README\'s example: a sublevel with JSON values, iterated in key order', async () => {
    const medium = new MemoryMedium();
    const db = new LogkvLevel('/data/level', { valueEncoding: 'json', logkv: { sync: 'always', medium } });
    const users = db.sublevel<string, { name: string }>('users', { valueEncoding: 'json' });
    await users.put('1', { name: 'Ada' });
    await users.batch([{ type: 'put', key: '2', value: { name: 'Grace' } }]);
    const seen: string[] = [];
    for await (const [id, user] of users.iterator({ gte: '1', limit: 10 })) seen.push(`${id} ${user.name}`);
    expect(seen).to.deep.equal(['1 Ada', '2 Grace']);
    expect(await db.keys().all()).to.deep.equal(['!users!1', '!users!2']);
    await db.close();
  });

  it('seeks back as well as forward, within the iterator\'s own range', async () => {
    const db = new LogkvLevel('/db', { logkv: { medium: new MemoryMedium() } });
    await db.batch(['a', 'b', 'c', 'd', 'e'].map((key) => ({ type: 'put' as const, key, value: key })));
    const forward = db.keys({ gt: 'a' });
    forward.seek('d');
    expect(await forward.next()).to.equal('d');
    forward.seek('b');
    expect(await forward.next()).to.equal('b');
    forward.seek('0');
    expect(await forward.all()).to.deep.equal(['b', 'c', 'd', 'e']);
    const backward = db.keys({ reverse: true, lt: 'e' });
    backward.seek('b');
    expect(await backward.next()).to.equal('b');
    backward.seek('z');
    expect(await backward.all()).to.deep.equal(['d', 'c', 'b', 'a']);
    await db.close();
  });

  it('leaves keys the store holds outside "~" alone', async () => {
    const medium = new MemoryMedium();
    const store = await open('/db', { medium });
    await store.set('plain', 1);
    await store.close();
    const db = new LogkvLevel('/db', { logkv: { medium } });
    await db.put('k', 'v');
    expect(await db.keys().all()).to.deep.equal(['k']);
    await db.clear();
    expect(await db.store.get('plain')).to.equal(1);
    await db.close();
  });
});
