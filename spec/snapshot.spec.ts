/**
 * The keydir snapshot: used after a clean close, never used when it could be stale or damaged,
 * and never left on disk while a store is open (so a crash cannot leave a stale one behind).
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { crc32, crc32Js } from '../lib/crc';
import { Entry, KeyDir } from '../lib/keydir';
import { dump, openFast, tempDir } from './helpers';

const SNAPSHOT = 'keydir.snapshot';

async function filled(dir: string, keys = 300): Promise<Array<[string, unknown]>> {
  const store = await openFast(dir, { maxSegmentBytes: 8192, autoCompact: false });
  for (let i = 0; i < keys; i++) await store.set(`k${i}`, { i, s: 'x'.repeat(i % 40) });
  for (let i = 0; i < keys; i += 3) await store.delete(`k${i}`);
  await store.set('ünïcödé-😀', new Map([[1, 2]]));
  const expected = await dump(store);
  await store.close();
  return expected;
}

describe('keydir snapshot', () => {
  it('is written by close() and used by the next open, which removes it', async () => {
    const dir = tempDir('snap');
    const expected = await filled(dir);
    expect(fs.existsSync(path.join(dir, SNAPSHOT))).to.equal(true);
    const store = await openFast(dir);
    expect(store.recovery.snapshot).to.equal(true);
    expect(store.recovery.records).to.equal(0);
    // While the store is open there is no snapshot: a crash now cannot leave a stale one.
    expect(fs.existsSync(path.join(dir, SNAPSHOT))).to.equal(false);
    expect(await dump(store)).to.deep.equal(expected);
    expect(store.size).to.equal(expected.length);
    const stats = store.stats();
    await store.close();
    fs.rmSync(path.join(dir, SNAPSHOT));
    const replayed = await openFast(dir);
    expect(replayed.recovery.snapshot).to.equal(false);
    expect(replayed.stats()).to.deep.equal(stats);
    await replayed.close();
  });

  it('is ignored when the segments changed since it was written (a stale snapshot)', async () => {
    const dir = tempDir('snap-stale');
    await filled(dir);
    const stale = fs.readFileSync(path.join(dir, SNAPSHOT));
    const store = await openFast(dir, { maxSegmentBytes: 8192 });
    await store.set('k1', 'newer');
    await store.set('later', 1);
    const expected = await dump(store);
    await store.close();
    // As if the removal of the old snapshot had been lost in a power failure.
    fs.writeFileSync(path.join(dir, SNAPSHOT), stale);
    const reopened = await openFast(dir);
    expect(reopened.recovery.snapshot).to.equal(false);
    expect(reopened.recovery.snapshotIgnored).to.be.a('string');
    expect(await dump(reopened)).to.deep.equal(expected);
    expect(await reopened.get('k1')).to.equal('newer');
    expect(fs.existsSync(path.join(dir, SNAPSHOT))).to.equal(false);
    await reopened.close();
  });

  const damages: Array<[string, (file: string) => void]> = [
    ['a flipped bit', (file) => { const b = fs.readFileSync(file); b[b.length >> 1] ^= 0x10; fs.writeFileSync(file, b); }],
    ['torn', (file) => fs.truncateSync(file, fs.statSync(file).size - 100)],
    ['empty', (file) => fs.truncateSync(file, 0)],
    ['garbage', (file) => fs.writeFileSync(file, Buffer.alloc(5000, 0xab))],
  ];
  for (const [name, damage] of damages) {
    it(`is ignored when ${name}, and the log is replayed`, async () => {
      const dir = tempDir('snap-bad');
      const expected = await filled(dir);
      damage(path.join(dir, SNAPSHOT));
      const store = await openFast(dir);
      expect(store.recovery.snapshot).to.equal(false);
      expect(store.recovery.snapshotIgnored).to.be.a('string');
      expect(store.recovery.records).to.be.greaterThan(300);
      expect(await dump(store)).to.deep.equal(expected);
      await store.close();
    });
  }

  it('keeps expiries', async () => {
    let now = 5_000_000;
    const dir = tempDir('snap-ttl');
    const store = await openFast(dir, { clock: () => now });
    await store.set('short', 1, { ttl: 1000 });
    await store.set('long', 2, { ttl: 100_000 });
    await store.set('forever', 3);
    await store.close();
    const reopened = await openFast(dir, { clock: () => now });
    expect(reopened.recovery.snapshot).to.equal(true);
    expect(reopened.size).to.equal(3);
    now += 2000;
    expect(reopened.size).to.equal(2);
    expect(await reopened.get('short')).to.equal(undefined);
    expect(await reopened.get('long')).to.equal(2);
    await reopened.close();
  });

  it('the table refuses bytes that do not describe a table', () => {
    const keydir = new KeyDir();
    for (let i = 0; i < 100; i++) keydir.put(`key${i}`, new Entry(0x10000, 20 + i * 30, 30, 0));
    const good = Buffer.concat(keydir.toBytes());
    const copy = KeyDir.fromBytes(good);
    expect(copy.size).to.equal(100);
    expect(copy.get('key42')).to.deep.equal(new Entry(0x10000, 20 + 42 * 30, 30, 0));
    const wrongCount = Buffer.from(good);
    wrongCount.writeUInt32LE(99, 0);
    expect(() => KeyDir.fromBytes(wrongCount)).to.throw('keydir snapshot');
    // A record whose key would start past the arena: the first record's keyAt column entry.
    const badRecord = Buffer.from(good);
    const slots = badRecord.readUInt32LE(8);
    const high = badRecord.readUInt32LE(4);
    badRecord.writeUInt32LE(badRecord.readUInt32LE(12) + 5, 40 + slots * 4 + high * 12);
    expect(() => KeyDir.fromBytes(badRecord)).to.throw('keydir snapshot');
    expect(() => KeyDir.fromBytes(good.subarray(0, good.length - 1))).to.throw('keydir snapshot');
  });

  it('crc32 keeps its running value across an empty buffer (zlib returns 0 there)', () => {
    const a = Buffer.from('hello ');
    const empty = Buffer.from(new ArrayBuffer(0));
    const b = Buffer.from('world');
    const whole = crc32(Buffer.from('hello world'));
    expect(crc32(b, crc32(empty, crc32(a)))).to.equal(whole);
    expect(crc32Js(b, crc32Js(empty, crc32Js(a)))).to.equal(whole);
  });
});
