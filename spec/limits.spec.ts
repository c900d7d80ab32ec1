/**
 * The limits: maxKeyBytes in UTF-8 bytes (multi-byte characters at the boundary), maxValueBytes of
 * the encoded value, and maxStoreBytes with LOGKV_STORE_FULL, where deletes still succeed.
 */
import { expect } from 'chai';
import { ErrorCodes, Store } from '../lib';
import {
  coreStats, deleteRecordBytes, dump, expectCode, openFast, segmentBytes, setRecordBytes, snapshotSegments, tempDir,
} from './helpers';
import { SEGMENT_HEADER_BYTES } from '../lib/format';

describe('maxKeyBytes counts UTF-8 bytes', () => {
  const cases: Array<{ max: number; key: string; ok: boolean }> = [
    { max: 8, key: 'abcdefgh', ok: true },
    { max: 8, key: 'abcdefghi', ok: false },
    { max: 8, key: 'ab€€', ok: true }, // 2 + 3 + 3
    { max: 8, key: 'abc€€', ok: false }, // 9
    { max: 8, key: '😀😀', ok: true }, // 4 + 4, and 4 UTF-16 units
    { max: 8, key: 'a😀😀', ok: false }, // 9
    { max: 7, key: '😀😀', ok: false }, // 8 bytes in 4 UTF-16 units
    { max: 3, key: '€', ok: true },
    { max: 2, key: '€', ok: false }, // one UTF-16 unit, three bytes
    { max: 2, key: 'é', ok: true },
    { max: 1, key: 'é', ok: false },
    { max: 1, key: 'a', ok: true },
  ];
  for (const c of cases) {
    it(`maxKeyBytes ${c.max}: ${JSON.stringify(c.key)} (${Buffer.byteLength(c.key)} bytes) is ${c.ok ? 'accepted' : 'rejected'}`, async () => {
      const dir = tempDir();
      let store = await openFast(dir, { maxKeyBytes: c.max });
      if (c.ok) {
        await store.set(c.key, 1);
        await store.close();
        store = await openFast(dir, { maxKeyBytes: c.max });
        expect(await store.get(c.key)).to.equal(1);
      } else {
        await expectCode(store.set(c.key, 1), ErrorCodes.INVALID_KEY);
        await expectCode(store.get(c.key), ErrorCodes.INVALID_KEY);
        expect(store.size).to.equal(0);
      }
      await store.close();
    });
  }

  it('the default is 1024 bytes', async () => {
    const store = await openFast(tempDir());
    await store.set('x'.repeat(1024), 1);
    await store.set('€'.repeat(341) + 'a', 1); // 1024 bytes
    await expectCode(store.set('x'.repeat(1025), 1), ErrorCodes.INVALID_KEY);
    await expectCode(store.set('€'.repeat(342), 1), ErrorCodes.INVALID_KEY); // 1026 bytes, 342 units
    await expectCode(store.set('😀'.repeat(256) + 'a', 1), ErrorCodes.INVALID_KEY); // 1025 bytes
    expect(store.size).to.equal(2);
    await store.close();
  });

  it('a key of 65535 bytes (the format limit) round-trips', async () => {
    const dir = tempDir();
    const key = 'k'.repeat(65535);
    let store = await openFast(dir, { maxKeyBytes: 65535 });
    await store.set(key, 'big key');
    await expectCode(store.set(key + 'k', 1), ErrorCodes.INVALID_KEY);
    await store.close();
    store = await openFast(dir, { maxKeyBytes: 65535 });
    expect(await store.get(key)).to.equal('big key');
    await store.close();
  });

  it('a store written with a large maxKeyBytes opens with a smaller one; long keys stay readable', async () => {
    const dir = tempDir();
    let store = await openFast(dir, { maxKeyBytes: 100 });
    await store.set('x'.repeat(100), 'long');
    await store.close();
    store = await openFast(dir, { maxKeyBytes: 10 });
    expect(store.size).to.equal(1);
    // The limit applies to calls, not to what is on disk: the key is there, but cannot be named.
    await expectCode(store.get('x'.repeat(100)), ErrorCodes.INVALID_KEY);
    expect(await dump(store)).to.deep.equal([['x'.repeat(100), 'long']]);
    await store.close();
  });
});

describe('maxValueBytes counts encoded bytes', () => {
  it('a value of exactly maxValueBytes is accepted; one byte more is rejected', async () => {
    const dir = tempDir();
    let store = await openFast(dir, { maxValueBytes: 100 });
    await store.set('exact', Buffer.alloc(98)); // bin8: 2 + 98 bytes
    await expectCode(store.set('over', Buffer.alloc(99)), ErrorCodes.INVALID_VALUE);
    await store.set('str', 'x'.repeat(98)); // str8: 2 + 98
    await expectCode(store.set('str', 'x'.repeat(99)), ErrorCodes.INVALID_VALUE);
    await expectCode(store.update('exact', 'é'.repeat(50)), ErrorCodes.INVALID_VALUE); // 2 + 100
    await expectCode(store.batch([{ type: 'set', key: 'b', value: Buffer.alloc(200) }]), ErrorCodes.INVALID_VALUE);
    await store.close();
    store = await openFast(dir, { maxValueBytes: 100 });
    expect(await dump(store)).to.deep.equal([['exact', Buffer.alloc(98)], ['str', 'x'.repeat(98)]]);
    await store.close();
  });

  it('maxValueBytes 1 allows only one-byte encodings', async () => {
    const store = await openFast(tempDir(), { maxValueBytes: 1 });
    await store.set('a', 5);
    await store.set('b', null);
    await store.set('c', '');
    await expectCode(store.set('d', 'a'), ErrorCodes.INVALID_VALUE);
    await expectCode(store.set('e', 128), ErrorCodes.INVALID_VALUE);
    expect(store.size).to.equal(3);
    await store.close();
  });

  it('the default allows 16 MiB', async () => {
    const store = await openFast(tempDir());
    const max = 16 * 1024 * 1024;
    await store.set('big', Buffer.alloc(max - 5)); // bin32: 5 + (max - 5)
    await expectCode(store.set('bigger', Buffer.alloc(max - 4)), ErrorCodes.INVALID_VALUE);
    expect((await store.get('big') as Buffer).length).to.equal(max - 5);
    await store.close();
  });
});

describe('maxStoreBytes and LOGKV_STORE_FULL', () => {
  const MAX = 4096;
  const RESERVE = MAX / 16; // only deletes may use the last 1/16 (at most 1 MiB)
  const value = 'v'.repeat(90);
  const record = setRecordBytes('k00', value);

  /** Fills a store with sets until one is refused; returns how many fit. */
  async function fill(store: Store<unknown>): Promise<number> {
    for (let i = 0; ; i++) {
      try {
        await store.set(`k${String(i).padStart(2, '0')}`, value);
      } catch (err) {
        expect((err as { code?: string }).code).to.equal(ErrorCodes.STORE_FULL);
        return i;
      }
    }
  }

  it('sets are refused once they would pass maxStoreBytes minus the tombstone reserve', async () => {
    const dir = tempDir();
    const store = await openFast(dir, { maxStoreBytes: MAX });
    const fitted = await fill(store);
    expect(fitted).to.equal(Math.floor((MAX - RESERVE - SEGMENT_HEADER_BYTES) / record));
    const stats = coreStats(store);
    expect(stats.diskBytes).to.equal(SEGMENT_HEADER_BYTES + fitted * record);
    expect(stats.diskBytes + record).to.be.greaterThan(MAX - RESERVE);
    await store.sync();
    expect(segmentBytes(dir)).to.equal(stats.diskBytes);
    await store.close();
  });

  it('a refused set, create, update or batch writes nothing and changes nothing, also after reopen', async () => {
    const dir = tempDir();
    let store = await openFast(dir, { maxStoreBytes: MAX });
    const fitted = await fill(store);
    await store.sync();
    const before = { stats: coreStats(store), entries: await dump(store), files: snapshotSegments(dir) };
    const err = await expectCode(store.set('new', value), ErrorCodes.STORE_FULL);
    expect(err.details.key).to.equal('new');
    await expectCode(store.create('new', value), ErrorCodes.STORE_FULL);
    await expectCode(store.update('k00', value), ErrorCodes.STORE_FULL);
    await expectCode(store.batch([{ type: 'delete', key: 'k00' }, { type: 'set', key: 'new', value }]), ErrorCodes.STORE_FULL);
    await store.sync();
    expect({ stats: coreStats(store), entries: await dump(store), files: snapshotSegments(dir) }).to.deep.equal(before);
    await store.close();
    store = await openFast(dir, { maxStoreBytes: MAX });
    expect({ stats: coreStats(store), entries: await dump(store), files: snapshotSegments(dir) }).to.deep.equal(before);
    expect(store.size).to.equal(fitted);
    // Still full after reopening: the files on disk are what counts.
    await expectCode(store.set('new', value), ErrorCodes.STORE_FULL);
    await store.close();
  });

  it('a small set that still fits is accepted after a large one is refused', async () => {
    const store = await openFast(tempDir(), { maxStoreBytes: MAX });
    await fill(store);
    const room = MAX - RESERVE - coreStats(store).diskBytes;
    expect(room).to.be.greaterThan(setRecordBytes('s', 1));
    await store.set('s', 1);
    expect(await store.get('s')).to.equal(1);
    await store.close();
  });

  it('when full, deletes still succeed, and a batch of only deletes too, until the cap itself', async () => {
    const dir = tempDir();
    let store = await openFast(dir, { maxStoreBytes: MAX });
    const fitted = await fill(store);
    const tombstone = deleteRecordBytes('k00');
    let deleted = 0;
    // Deletes may use the reserve: the store never grows past maxStoreBytes.
    for (let i = 0; i < fitted; i++) {
      const key = `k${String(i).padStart(2, '0')}`;
      if (coreStats(store).diskBytes + tombstone > MAX) {
        await expectCode(store.delete(key), ErrorCodes.STORE_FULL);
        expect(await store.has(key)).to.equal(true);
        break;
      }
      expect(await store.delete(key)).to.equal(true);
      deleted++;
    }
    expect(deleted).to.equal(Math.min(fitted, Math.floor((MAX - coreStats(store).diskBytes + deleted * tombstone) / tombstone)));
    expect(deleted).to.be.greaterThan(1);
    expect(coreStats(store).diskBytes).to.be.at.most(MAX);
    await store.sync();
    expect(segmentBytes(dir)).to.be.at.most(MAX);
    // Deleting a missing key writes nothing, so it succeeds even now.
    expect(await store.delete('k00')).to.equal(false);
    await store.close();
    store = await openFast(dir, { maxStoreBytes: MAX });
    expect(store.size).to.equal(fitted - deleted);
    await store.close();
  });

  it('a batch of only deletes may use the reserve', async () => {
    const store = await openFast(tempDir(), { maxStoreBytes: MAX });
    await fill(store);
    await store.batch([{ type: 'delete', key: 'k00' }, { type: 'delete', key: 'k01' }]);
    expect(await store.has('k00')).to.equal(false);
    expect(await store.has('k01')).to.equal(false);
    await store.close();
  });

  it('the header of a new segment counts too', async () => {
    const dir = tempDir();
    const store = await openFast(dir, { maxStoreBytes: MAX, maxSegmentBytes: 1024 });
    const fitted = await fill(store);
    const stats = coreStats(store);
    expect(stats.segments).to.be.greaterThan(1);
    expect(stats.diskBytes).to.equal(stats.segments * SEGMENT_HEADER_BYTES + fitted * record);
    expect(stats.diskBytes).to.be.at.most(MAX - RESERVE);
    await store.sync();
    expect(segmentBytes(dir)).to.equal(stats.diskBytes);
    await store.close();
  });

  it('a full store of large values can be emptied completely by deletes', async () => {
    // With a 16 KiB cap the reserve (1 KiB) holds a tombstone for each of these 500-byte values.
    const dir = tempDir();
    let store = await openFast(dir, { maxStoreBytes: 16384 });
    let fitted = 0;
    while (fitted < 100) {
      const key = `k${String(fitted).padStart(2, '0')}`;
      const refused = await store.set(key, 'v'.repeat(500)).then(() => false, (err) => err.code === ErrorCodes.STORE_FULL);
      if (refused) break;
      fitted++;
    }
    expect(fitted).to.equal(Math.floor((16384 - 1024 - SEGMENT_HEADER_BYTES) / setRecordBytes('k00', 'v'.repeat(500))));
    expect(fitted * deleteRecordBytes('k00')).to.be.at.most(16384 / 16);
    for (let i = 0; i < fitted; i++) expect(await store.delete(`k${String(i).padStart(2, '0')}`)).to.equal(true);
    expect(store.size).to.equal(0);
    await store.close();
    store = await openFast(dir, { maxStoreBytes: 16384 });
    expect(store.size).to.equal(0);
    await store.close();
  });
});
