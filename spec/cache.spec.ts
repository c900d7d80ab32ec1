/**
 * The block cache: byte-exact against direct reads under eviction, sees a growing tail, and never
 * serves bytes that a failed write left behind after the store truncated them.
 */
import { expect } from 'chai';
import { seededRandom } from '../lib/medium/random';
import * as fs from 'fs';
import * as path from 'path';
import { BLOCK_BYTES, BlockCache } from '../lib/cache';
import { fileSystem } from '../lib/medium/fs';
import { fsWith, openFast, systemError, tempDir } from './helpers';

describe('block cache', () => {
  it('returns exactly the bytes of a direct read, across blocks, evictions and the end of the file', async () => {
    const dir = tempDir('cache');
    const random = seededRandom(7);
    const content = Buffer.alloc(BLOCK_BYTES * 40 + 123);
    for (let i = 0; i < content.length; i++) content[i] = Math.floor(random() * 256);
    const file = path.join(dir, 'data');
    fs.writeFileSync(file, content);
    const handle = await fileSystem.open(file, { readOnly: true });
    const cache = new BlockCache(BLOCK_BYTES * 8); // far smaller than the file: constant eviction
    for (let i = 0; i < 5000; i++) {
      const position = Math.floor(random() * (content.length + 50));
      const length = 1 + Math.floor(random() * (random() < 0.1 ? BLOCK_BYTES * 2 : 300));
      const out = Buffer.alloc(length);
      const got = cache.read(3, handle, out, length, position, Infinity);
      const expected = content.subarray(position, position + length);
      expect(got, `read ${length} at ${position}`).to.equal(expected.length);
      expect(out.subarray(0, got).equals(expected), `bytes of ${length} at ${position}`).to.equal(true);
    }
    await handle.close();
  });

  it('grows its frame tables as it fills, exact across the growth, and a huge capacity costs nothing up front', async () => {
    const before = process.memoryUsage().arrayBuffers;
    const huge = new BlockCache(2 ** 40);
    // Tables for 2^28 frames would be gigabytes; only the first slab's worth exists yet.
    expect(process.memoryUsage().arrayBuffers - before).to.be.below(1024 * 1024);
    const dir = tempDir('cache-grow');
    const random = seededRandom(11);
    const content = Buffer.alloc(BLOCK_BYTES * 700);
    for (let i = 0; i < content.length; i++) content[i] = Math.floor(random() * 256);
    const file = path.join(dir, 'data');
    fs.writeFileSync(file, content);
    const handle = await fileSystem.open(file, { readOnly: true });
    // 600 frames: the tables grow 256 -> 512 -> 600, then the clock evicts among all of them.
    for (const cache of [new BlockCache(BLOCK_BYTES * 600), huge]) {
      for (let i = 0; i < 6000; i++) {
        const position = Math.floor(random() * content.length);
        const length = 1 + Math.floor(random() * 300);
        const out = Buffer.alloc(length);
        const got = cache.read(5, handle, out, length, position, Infinity);
        const expected = content.subarray(position, position + length);
        expect(got).to.equal(expected.length);
        expect(out.subarray(0, got).equals(expected), `bytes of ${length} at ${position}`).to.equal(true);
      }
    }
    await handle.close();
  });

  it('stays exact across many segments, evictions and drops of rewritten regions (its block table never keeps a stale block)', async () => {
    const dir = tempDir('cache-churn');
    const random = seededRandom(23);
    const ids = [1, 2, 0x10000, 0x20001, 2 ** 32 + 1, 2 ** 40 + 5];
    const contents = new Map<number, Buffer>();
    const handles = new Map<number, Awaited<ReturnType<typeof fileSystem.open>>>();
    for (const id of ids) {
      const content = Buffer.alloc(BLOCK_BYTES * (5 + Math.floor(random() * 30)));
      for (let i = 0; i < content.length; i++) content[i] = Math.floor(random() * 256);
      const file = path.join(dir, `seg-${id}`);
      fs.writeFileSync(file, content);
      contents.set(id, content);
      handles.set(id, await fileSystem.open(file));
    }
    for (const frames of [3, 40, 400]) {
      const cache = new BlockCache(BLOCK_BYTES * frames);
      for (let step = 0; step < 4000; step++) {
        const id = ids[Math.floor(random() * ids.length)];
        const content = contents.get(id)!;
        if (random() < 0.05) {
          // Rewrite the segment from an offset on (as a repair or a compaction would), then drop it.
          const from = Math.floor(random() * content.length);
          for (let i = from; i < content.length; i++) content[i] = Math.floor(random() * 256);
          await handles.get(id)!.write([content.subarray(from)], from);
          cache.drop(id, random() < 0.3 ? 0 : from);
          continue;
        }
        const position = Math.floor(random() * content.length);
        const length = 1 + Math.floor(random() * 200);
        const expected = content.subarray(position, position + length);
        const view = cache.view(id, handles.get(id)!, length, position, content.length);
        if (view !== undefined) expect(view.equals(expected), `view of ${length} at ${position} of ${id}`).to.equal(true);
        const out = Buffer.alloc(length);
        const got = cache.read(id, handles.get(id)!, out, length, position, content.length);
        expect(got).to.equal(expected.length);
        expect(out.subarray(0, got).equals(expected), `${length} at ${position} of ${id}, ${frames} frames, step ${step}`).to.equal(true);
      }
    }
    for (const handle of handles.values()) await handle.close();
  });

  it('sees bytes appended after a block was cached', async () => {
    const dir = tempDir('cache-tail');
    const file = path.join(dir, 'data');
    fs.writeFileSync(file, Buffer.from('first'));
    const handle = await fileSystem.open(file);
    const cache = new BlockCache(BLOCK_BYTES * 4);
    const out = Buffer.alloc(11);
    expect(cache.read(1, handle, out, 5, 0, Infinity)).to.equal(5);
    await handle.write([Buffer.from(' second')], 5);
    expect(cache.read(1, handle, out, 11, 0, Infinity)).to.equal(11);
    expect(out.toString()).to.equal('first secon');
    await handle.close();
  });

  it('caches no byte at or past the end it is given, so bytes written there later are seen', async () => {
    const dir = tempDir('cache-end');
    const file = path.join(dir, 'data');
    fs.writeFileSync(file, Buffer.concat([Buffer.from('first'), Buffer.alloc(100)])); // zero padding past 5
    const handle = await fileSystem.open(file);
    const cache = new BlockCache(BLOCK_BYTES * 4);
    const out = Buffer.alloc(11);
    expect(cache.read(1, handle, out, 11, 0, 5)).to.equal(5);
    expect(cache.view(1, handle, 5, 5, 5)).to.equal(undefined);
    await handle.write([Buffer.from(' second')], 5);
    expect(cache.read(1, handle, out, 11, 0, 12)).to.equal(11);
    expect(out.toString()).to.equal('first secon');
    expect(cache.view(1, handle, 7, 5, 12)!.toString()).to.equal(' second');
    await handle.close();
  });

  it('a store reopened over a segment with zero padding serves a key appended into the padding after a read cached its block', async () => {
    const dir = tempDir('cache-padding');
    const first = await openFast(dir);
    await first.set('a', 'old');
    await first.close();
    // The write segment gets zero padding past its records (preallocated space, docs/format.md).
    const segment = path.join(dir, fs.readdirSync(dir).filter((name) => name.endsWith('.seg')).sort().pop()!);
    fs.appendFileSync(segment, Buffer.alloc(1000));
    const store = await openFast(dir);
    expect(await store.get('a')).to.equal('old'); // caches the block, padding included before the fix
    await store.set('ключ', 'new'); // appended where the padding starts
    expect(await store.get('ключ')).to.equal('new');
    expect((await store.getEntry('ключ'))!.value).to.equal('new');
    await store.set('ключ', 'newer', { ifVersion: (await store.getEntry('ключ'))!.version });
    expect(await store.get('ключ')).to.equal('newer');
    await store.close();
  });

  it('forgets what drop() names: a truncated and rewritten region reads anew', async () => {
    const dir = tempDir('cache-drop');
    const file = path.join(dir, 'data');
    fs.writeFileSync(file, Buffer.from('aaaaaaaaaa'));
    const handle = await fileSystem.open(file);
    const cache = new BlockCache(BLOCK_BYTES * 4);
    const out = Buffer.alloc(10);
    cache.read(1, handle, out, 10, 0, Infinity);
    await handle.truncate(4);
    await handle.write([Buffer.from('bbbbbb')], 4);
    cache.read(1, handle, out, 10, 0, Infinity);
    expect(out.toString()).to.equal('aaaaaaaaaa'); // stale: the cache cannot know by itself
    cache.drop(1, 4);
    cache.read(1, handle, out, 10, 0, Infinity);
    expect(out.toString()).to.equal('aaaabbbbbb');
    cache.drop(1);
    await handle.close();
  });

  it('a store never serves a value whose write failed, even if a read cached its bytes first', async () => {
    // A medium whose armed write lands its bytes, lets the test read (filling the cache with
    // them), and then fails, as a write whose fdatasync-less success could not be confirmed.
    let armed = false;
    let duringFailedWrite: (() => void) | undefined;
    const medium = fsWith({
      async write(_file, _chunks, _position, write) {
        await write();
        if (armed) {
          armed = false;
          duringFailedWrite?.();
          throw systemError('EIO');
        }
      },
    });
    const dir = tempDir('cache-store');
    const store = await openFast(dir, { medium, autoCompact: false });
    await store.set('neighbour', 'n');
    armed = true;
    duringFailedWrite = () => {
      // Reads the block that now also holds the failing record's bytes.
      void store.get('neighbour');
    };
    let code: string | undefined;
    await store.set('k', 'failed value').catch((err) => { code = err.code; });
    expect(code).to.equal('LOGKV_IO');
    expect(await store.get('k')).to.equal(undefined);
    await store.set('k', 'a good value'); // lands at the same offset the failed one had
    expect(await store.get('k')).to.equal('a good value');
    expect(await store.get('neighbour')).to.equal('n');
    await store.close();
    const reopened = await openFast(dir);
    expect(await reopened.get('k')).to.equal('a good value');
    await reopened.close();
  });

  it('rejects a bad cacheBytes, and 0 turns the cache off', async () => {
    const dir = tempDir('cache-opt');
    let err: { code?: string } = {};
    await openFast(dir, { cacheBytes: -1 }).catch((e) => { err = e; });
    expect(err.code).to.equal('LOGKV_INVALID_ARGUMENT');
    const store = await openFast(dir, { cacheBytes: 0 });
    await store.set('a', 1);
    expect(await store.get('a')).to.equal(1);
    await store.close();
  });
});

describe('block cache and damage', () => {
  it('a read that fails its checks drops the cached blocks, so a repaired file reads again', async () => {
    const dir = tempDir('cache-damage');
    const store = await openFast(dir);
    await store.set('a', 'alpha');
    await store.set('b', 'bravo');
    await store.sync();
    const segment = path.join(dir, fs.readdirSync(dir).filter((n) => n.endsWith('.seg'))[0]);
    const original = fs.readFileSync(segment);
    // Damage b's value, then read it: the damaged block is what gets cached.
    const damaged = Buffer.from(original);
    damaged[damaged.length - 2] ^= 0xff;
    fs.writeFileSync(segment, damaged);
    let code: string | undefined;
    await store.get('b').catch((err) => { code = err.code; });
    expect(code).to.equal('LOGKV_CORRUPTION');
    fs.writeFileSync(segment, original); // repaired
    expect(await store.get('b')).to.equal('bravo');
    expect(await store.get('a')).to.equal('alpha');
    await store.close();
  });
});
