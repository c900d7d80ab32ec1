/**
 * TTL with a fake clock: an expired key is gone for every read and for size and stats, stays gone
 * after reopen, can be created again; expiry is stored as an absolute time.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { ErrorCodes, Store } from '../lib';
import { SEGMENT_HEADER_BYTES } from '../lib/format';
import {
  FakeClock, allKeys, coreStats, dump, expectCode, openFast, segmentFiles, setRecordBytes, tempDir,
} from './helpers';

/** The expiry field (bytes 12..19, u64 little-endian) of the record at `offset` of `file`. */
function storedExpiry(file: string, offset: number): number {
  const bytes = fs.readFileSync(file);
  return bytes.readUInt32LE(offset + 12) + bytes.readUInt32LE(offset + 16) * 2 ** 32;
}

describe('TTL', () => {
  let dir: string;
  let clock: FakeClock;
  let store: Store<unknown>;

  const reopen = async (): Promise<void> => {
    await store.close();
    store = await openFast(dir, { clock: clock.read });
  };

  beforeEach(async () => {
    dir = tempDir();
    clock = new FakeClock();
    store = await openFast(dir, { clock: clock.read });
  });
  afterEach(async () => {
    await store.close();
  });

  it('getEntry() gives a live key its value and expiry, and nothing once it expired', async () => {
    await store.set('t', { n: 1 }, { ttl: 1000 });
    await store.set('p', 'forever');
    expect(await store.getEntry('t')).to.deep.equal({ value: { n: 1 }, version: 1, expiresAt: clock.read() + 1000 });
    expect(await store.getEntry('p')).to.deep.equal({ value: 'forever', version: 2 });
    expect(await store.getEntry('missing')).to.equal(undefined);
    clock.advance(1000);
    expect(await store.getEntry('t')).to.equal(undefined);
    await expectCode(store.getEntry(''), ErrorCodes.INVALID_KEY);
  });

  it('a key is live until its ttl has passed, and gone at the exact expiry', async () => {
    await store.set('k', 'v', { ttl: 1000 });
    clock.advance(999);
    expect(await store.get('k')).to.equal('v');
    expect(await store.has('k')).to.equal(true);
    clock.advance(1);
    expect(await store.get('k')).to.equal(undefined);
    expect(await store.has('k')).to.equal(false);
  });

  it('an expired key is gone for get, has, delete, keys, entries, size and stats', async () => {
    await store.set('keep', 1);
    await store.set('ttl:a', 'a', { ttl: 100 });
    await store.set('ttl:b', 'b', { ttl: 100 });
    await store.set('ttl:long', 'c', { ttl: 10_000 });
    const keep = setRecordBytes('keep', 1);
    const long = setRecordBytes('ttl:long', 'c');
    const expired = setRecordBytes('ttl:a', 'a') + setRecordBytes('ttl:b', 'b');
    expect(store.size).to.equal(4);
    clock.advance(100);
    expect(store.size).to.equal(2);
    expect(coreStats(store)).to.deep.equal({
      keys: 2, segments: 1, liveBytes: keep + long, deadBytes: expired, diskBytes: SEGMENT_HEADER_BYTES + keep + expired + long,
    });
    expect(await allKeys(store)).to.deep.equal(['keep', 'ttl:long']);
    expect(await allKeys(store, 'ttl:')).to.deep.equal(['ttl:long']);
    expect(await dump(store)).to.deep.equal([['keep', 1], ['ttl:long', 'c']]);
    expect(await store.get('ttl:a')).to.equal(undefined);
    expect(await store.has('ttl:b')).to.equal(false);
    // Deleting an expired key reports that nothing was live, and writes nothing.
    const before = coreStats(store).diskBytes;
    expect(await store.delete('ttl:a')).to.equal(false);
    expect(coreStats(store).diskBytes).to.equal(before);
  });

  it('keys expiring during an iteration are not yielded', async () => {
    await store.set('a', 1, { ttl: 50 });
    await store.set('b', 2, { ttl: 50 });
    await store.set('c', 3);
    const seen: string[] = [];
    for await (const [key] of store.entries()) {
      seen.push(key);
      clock.advance(50); // 'b' expires before the iteration reaches it
    }
    expect(seen).to.deep.equal(['a', 'c']);
  });

  it('an expired key stays gone after reopen', async () => {
    await store.set('k', 'v', { ttl: 100 });
    await store.set('other', 'o');
    clock.advance(100);
    expect(await store.has('k')).to.equal(false);
    await reopen();
    expect(await store.has('k')).to.equal(false);
    expect(store.size).to.equal(1);
    expect(await dump(store)).to.deep.equal([['other', 'o']]);
    clock.advance(1_000_000);
    await reopen();
    expect(await store.get('k')).to.equal(undefined);
  });

  it('a key that expired while the store was closed is gone at open', async () => {
    await store.set('k', 'v', { ttl: 100 });
    await store.close();
    clock.advance(100);
    store = await openFast(dir, { clock: clock.read });
    expect(await store.has('k')).to.equal(false);
    expect(coreStats(store)).to.deep.include({ keys: 0, liveBytes: 0, deadBytes: setRecordBytes('k', 'v') });
  });

  it('an expired key can be created again, and the new value survives reopen', async () => {
    await store.create('k', 'first', { ttl: 10 });
    await expectCode(store.create('k', 'again'), ErrorCodes.KEY_EXISTS);
    clock.advance(10);
    await store.create('k', 'second');
    expect(await store.get('k')).to.equal('second');
    await reopen();
    clock.advance(1_000_000);
    expect(await store.get('k')).to.equal('second');
  });

  it('update() of an expired key rejects LOGKV_KEY_NOT_FOUND and writes nothing', async () => {
    await store.set('k', 'v', { ttl: 10 });
    await store.update('k', 'v2', { ttl: 10 });
    clock.advance(10);
    const before = coreStats(store);
    await expectCode(store.update('k', 'v3'), ErrorCodes.KEY_NOT_FOUND);
    expect(coreStats(store)).to.deep.equal(before);
    await reopen();
    expect(await store.has('k')).to.equal(false);
  });

  it('update() resets the expiry: with a new ttl, or to never without one', async () => {
    await store.set('a', 1, { ttl: 100 });
    await store.set('b', 1, { ttl: 100 });
    clock.advance(50);
    await store.update('a', 2, { ttl: 100 }); // now expires at 150
    await store.update('b', 2); // never expires
    clock.advance(99);
    expect(await store.get('a')).to.equal(2);
    clock.advance(1);
    expect(await store.has('a')).to.equal(false);
    clock.advance(1_000_000);
    expect(await store.get('b')).to.equal(2);
    await reopen();
    expect(await store.get('b')).to.equal(2);
    expect(await store.has('a')).to.equal(false);
  });

  it('set() without a ttl clears an earlier expiry, also after reopen', async () => {
    await store.set('k', 1, { ttl: 100 });
    await store.set('k', 2);
    clock.advance(200);
    expect(await store.get('k')).to.equal(2);
    await reopen();
    expect(await store.get('k')).to.equal(2);
    expect(coreStats(store).keys).to.equal(1);
  });

  it('expiresAt is an absolute time', async () => {
    await store.set('k', 'v', { expiresAt: clock.now + 500 });
    clock.advance(499);
    expect(await store.get('k')).to.equal('v');
    clock.advance(1);
    expect(await store.has('k')).to.equal(false);
  });

  it('expiresAt in the past writes a key that is already gone', async () => {
    await store.set('k', 'v', { expiresAt: clock.now - 1 });
    expect(await store.has('k')).to.equal(false);
    expect(store.size).to.equal(0);
    await store.create('k', 'new');
    expect(await store.get('k')).to.equal('new');
  });

  it('a ttl is stored as an absolute time: reopening later counts from the write, not the open', async () => {
    const start = clock.now;
    await store.set('k', 'v', { ttl: 10_000 });
    await store.close();
    const file = path.join(dir, segmentFiles(dir)[0]);
    expect(storedExpiry(file, SEGMENT_HEADER_BYTES)).to.equal(start + 10_000);
    clock.advance(5_000);
    store = await openFast(dir, { clock: clock.read });
    expect(await store.get('k')).to.equal('v');
    await store.close();
    clock.advance(5_000);
    store = await openFast(dir, { clock: clock.read });
    expect(await store.has('k')).to.equal(false);
  });

  it('a fractional ttl or expiresAt rounds up to the next millisecond', async () => {
    await store.set('a', 1, { ttl: 0.5 });
    await store.set('b', 1, { expiresAt: clock.now + 10.2 });
    await store.close();
    const file = path.join(dir, segmentFiles(dir)[0]);
    const a = SEGMENT_HEADER_BYTES + setRecordBytes('a', 1);
    expect(storedExpiry(file, SEGMENT_HEADER_BYTES)).to.equal(clock.now + 1);
    expect(storedExpiry(file, a)).to.equal(clock.now + 11);
    store = await openFast(dir, { clock: clock.read });
    expect(await store.has('a')).to.equal(true);
    clock.advance(1);
    expect(await store.has('a')).to.equal(false);
  });

  it('a huge ttl is capped at the largest expiry the format holds, and never expires in practice', async () => {
    await store.set('k', 'v', { ttl: Number.MAX_VALUE });
    await store.set('m', 'v', { expiresAt: Number.MAX_SAFE_INTEGER });
    await store.close();
    const file = path.join(dir, segmentFiles(dir)[0]);
    expect(storedExpiry(file, SEGMENT_HEADER_BYTES)).to.equal(Number.MAX_SAFE_INTEGER);
    store = await openFast(dir, { clock: clock.read });
    clock.advance(100 * 365 * 24 * 3600 * 1000);
    expect(await store.get('k')).to.equal('v');
    expect(await store.get('m')).to.equal('v');
  });

  it('a key without ttl is stored with expiry 0 (never)', async () => {
    await store.set('k', 'v');
    await store.close();
    expect(storedExpiry(path.join(dir, segmentFiles(dir)[0]), SEGMENT_HEADER_BYTES)).to.equal(0);
    store = await openFast(dir, { clock: clock.read });
  });

  it('ttl in a batch applies per operation, and a torn-free batch keeps each expiry', async () => {
    await store.batch([
      { type: 'set', key: 'short', value: 1, ttl: 10 },
      { type: 'set', key: 'abs', value: 2, expiresAt: clock.now + 20 },
      { type: 'set', key: 'forever', value: 3 },
    ]);
    await reopen();
    clock.advance(10);
    expect(await allKeys(store)).to.deep.equal(['abs', 'forever']);
    clock.advance(10);
    expect(await allKeys(store)).to.deep.equal(['forever']);
  });

  it('delete() of a live key with a ttl writes a tombstone, and the key stays deleted', async () => {
    await store.set('k', 'v', { ttl: 1000 });
    expect(await store.delete('k')).to.equal(true);
    await reopen();
    expect(await store.has('k')).to.equal(false);
    clock.now -= 10_000; // even with the clock moved back, the tombstone wins
    await reopen();
    expect(await store.has('k')).to.equal(false);
  });

  it('an expired key whose newer value was deleted does not come back', async () => {
    await store.set('k', 'old');
    await store.set('k', 'ttl', { ttl: 10 });
    clock.advance(10);
    expect(await store.delete('k')).to.equal(false);
    await reopen();
    expect(await store.has('k')).to.equal(false);
  });
});
