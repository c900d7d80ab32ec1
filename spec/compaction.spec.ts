/**
 * Compaction: space reclaimed, values intact, writes during compaction kept, deletes never
 * resurrected, hint files used when sound and ignored when not, and a crash at every step of a
 * compaction reopening to exactly the right state.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { OpenOptions, Store } from '../lib';
import { encodeValue, prepareValue } from '../lib/codec';
import { SEGMENT_HEADER_BYTES, TYPE_SET, encodeRecord } from '../lib/format';
import { fileSystem } from '../lib/medium/fs';
import type { Medium, MediumFile, OpenFileOptions } from '../lib/medium/types';
import { dump, expectCode, fsWith, openFast, systemError, tempDir } from './helpers';

const SMALL: OpenOptions = { maxSegmentBytes: 4096, autoCompact: false };

function files(dir: string, suffix: string): string[] {
  return fs.readdirSync(dir).filter((name) => name.endsWith(suffix)).sort();
}

/** Removes the keydir snapshot a clean close leaves, so the next open must use hints or scan. */
function dropSnapshot(dir: string): void {
  fs.rmSync(path.join(dir, 'keydir.snapshot'));
}

/** Writes `rounds` versions of `keys` keys, so all but the last round are dead. */
async function fill(store: Store<unknown>, keys: number, rounds: number, tag = 'v'): Promise<Map<string, unknown>> {
  const model = new Map<string, unknown>();
  for (let r = 0; r < rounds; r++) {
    const writes: Array<Promise<unknown>> = [];
    for (let i = 0; i < keys; i++) {
      const value = { tag, r, i, pad: 'p'.repeat(30) };
      writes.push(store.set(`key-${i}`, value));
      model.set(`key-${i}`, value);
    }
    await Promise.all(writes);
  }
  return model;
}

function sorted(model: Map<string, unknown>): Array<[string, unknown]> {
  return [...model].sort((a, b) => (a[0] < b[0] ? -1 : 1));
}

describe('compaction', () => {
  it('reclaims overwritten, deleted and expired records and keeps every live value', async () => {
    let now = 1_000_000;
    const dir = tempDir('compact');
    const store = await openFast(dir, { ...SMALL, clock: () => now });
    const model = await fill(store, 100, 4);
    for (let i = 0; i < 20; i++) {
      await store.delete(`key-${i}`);
      model.delete(`key-${i}`);
    }
    for (let i = 0; i < 10; i++) await store.set(`ttl-${i}`, i, { ttl: 50 });
    now += 100; // the ttl keys are expired now
    const before = store.stats();
    expect(before.segments).to.be.greaterThan(5);

    const result = await store.compact();
    const after = store.stats();
    expect(result.dryRun).to.equal(false);
    expect(result.recordsKept).to.equal(80);
    // 400 sets + 20 tombstones + 10 ttl sets; 80 kept.
    expect(result.recordsDropped).to.equal(430 - 80);
    expect(result.bytesBefore).to.equal(before.diskBytes);
    expect(result.bytesAfter).to.equal(after.diskBytes);
    expect(result.segmentsAfter).to.equal(after.segments);
    expect(after.deadBytes).to.equal(0);
    expect(after.keys).to.equal(80);
    expect(after.diskBytes).to.be.lessThan(before.diskBytes / 3);
    expect(await dump(store)).to.deep.equal(sorted(model));
    await store.close();

    dropSnapshot(dir);
    const reopened = await openFast(dir, { ...SMALL, clock: () => now });
    expect(reopened.recovery.snapshot).to.equal(false);
    expect(reopened.recovery.hinted).to.equal(files(dir, '.hint').length);
    expect(reopened.recovery.hinted).to.be.greaterThan(0);
    expect(await dump(reopened)).to.deep.equal(sorted(model));
    expect(reopened.stats().deadBytes).to.equal(0);
    await reopened.close();
  });

  it('dry run reports what would be reclaimed and changes nothing', async () => {
    const dir = tempDir('compact-dry');
    const store = await openFast(dir, SMALL);
    await fill(store, 50, 3);
    const listing = fs.readdirSync(dir).sort();
    const before = store.stats();
    const dry = await store.compact({ dryRun: true });
    expect(dry.dryRun).to.equal(true);
    expect(dry.recordsKept).to.equal(50);
    expect(dry.recordsDropped).to.equal(100);
    expect(dry.bytesBefore).to.equal(before.diskBytes);
    expect(dry.bytesAfter).to.be.lessThan(before.diskBytes);
    expect(fs.readdirSync(dir).sort()).to.deep.equal(listing);
    expect(store.stats()).to.deep.equal(before);
    const real = await store.compact();
    expect(real.recordsKept).to.equal(dry.recordsKept);
    expect(real.bytesAfter).to.equal(dry.bytesAfter);
    await store.close();
  });

  it('keeps every write made while it runs, and reads go on', async () => {
    const dir = tempDir('compact-online');
    const store = await openFast(dir, SMALL);
    const model = await fill(store, 200, 3);
    const writes: Array<Promise<unknown>> = [];
    let progressCalls = 0;
    const running = store.compact({
      onProgress: () => {
        const n = progressCalls++;
        // Overwrite, delete and add while the copy is under way.
        writes.push(store.set(`key-${n}`, { during: n }));
        model.set(`key-${n}`, { during: n });
        writes.push(store.delete(`key-${199 - n}`));
        model.delete(`key-${199 - n}`);
        writes.push(store.set(`new-${n}`, n));
        model.set(`new-${n}`, n);
        writes.push(store.get(`key-${100}`).then((v) => expect(v).to.deep.equal(model.get('key-100'))));
      },
    });
    expect(store.stats().compacting).to.equal(true);
    await running;
    await Promise.all(writes);
    expect(progressCalls).to.be.greaterThan(0);
    expect(await dump(store)).to.deep.equal(sorted(model));
    await store.close();
    const reopened = await openFast(dir, SMALL);
    expect(await dump(reopened)).to.deep.equal(sorted(model));
    await reopened.close();
  });

  it('never resurrects a deleted key', async () => {
    const dir = tempDir('compact-tombstone');
    const store = await openFast(dir, SMALL);
    await store.set('victim', 'old value');
    await fill(store, 100, 3); // rotate through many segments
    expect(store.stats().segments).to.be.greaterThan(4);
    expect(await store.delete('victim')).to.equal(true);
    await store.compact();
    expect(await store.get('victim')).to.equal(undefined);
    await store.compact(); // a second pass over the outputs of the first
    await store.close();
    const reopened = await openFast(dir, SMALL);
    expect(await reopened.get('victim')).to.equal(undefined);
    expect(await reopened.has('victim')).to.equal(false);
    await reopened.close();
  });

  it('drops a tombstone only together with every older value of its key', async () => {
    const dir = tempDir('compact-tombstone-active');
    const store = await openFast(dir, SMALL);
    await store.set('k', 1);
    await fill(store, 60, 2);
    await store.compact(); // k=1 now lives in an output segment
    await store.delete('k'); // tombstone in the active segment, newer than the output
    await store.close();
    const reopened = await openFast(dir, SMALL);
    expect(await reopened.get('k')).to.equal(undefined);
    await reopened.compact();
    await reopened.close();
    const again = await openFast(dir, SMALL);
    expect(await again.get('k')).to.equal(undefined);
    await again.close();
  });

  it('returns the running compaction to a second call', async () => {
    const dir = tempDir('compact-twice');
    const store = await openFast(dir, SMALL);
    await fill(store, 50, 2);
    const first = store.compact();
    const second = store.compact();
    expect(second).to.equal(first);
    await first;
    await store.close();
  });

  it('rejects bad options and calls after close', async () => {
    const dir = tempDir('compact-args');
    const store = await openFast(dir, SMALL);
    await expectCode(store.compact(null as never), 'LOGKV_INVALID_ARGUMENT');
    await expectCode(store.compact({ onProgress: 5 as never }), 'LOGKV_INVALID_ARGUMENT');
    await store.close();
    await expectCode(store.compact(), 'LOGKV_CLOSED');
  });

  it('refuses to copy past a corrupt record and changes nothing', async () => {
    const dir = tempDir('compact-corrupt');
    const store = await openFast(dir, SMALL);
    const model = await fill(store, 60, 2);
    // Damage a dead record in the oldest segment: the store reads fine, compaction must stop.
    const oldest = path.join(dir, files(dir, '.seg')[0]);
    const bytes = fs.readFileSync(oldest);
    const fd = fs.openSync(oldest, 'r+');
    fs.writeSync(fd, Buffer.from([bytes[30] ^ 0xff]), 0, 1, 30);
    fs.closeSync(fd);
    const listing = files(dir, '.seg');
    const err = await expectCode(store.compact(), 'LOGKV_CORRUPTION');
    expect(err.details.file).to.equal(oldest);
    expect(err.details.offset).to.equal(SEGMENT_HEADER_BYTES);
    expect(files(dir, '.tmp')).to.deep.equal([]);
    expect(files(dir, '.hint')).to.deep.equal([]);
    // The sealed active segment stays, plus nothing new.
    expect(files(dir, '.seg')).to.deep.equal(listing);
    expect(await dump(store)).to.deep.equal(sorted(model));
    await store.close();
  });

  it('is started automatically when dead bytes pass the thresholds', async () => {
    const dir = tempDir('compact-auto');
    const store = await openFast(dir, { maxSegmentBytes: 4096, autoCompact: { minDeadRatio: 0.5, minDeadBytes: 20_000 } });
    const model = await fill(store, 50, 8);
    // Let a background compaction that the last writes started finish.
    for (let i = 0; i < 100 && store.stats().compacting; i++) await new Promise((r) => setTimeout(r, 10));
    const stats = store.stats();
    expect(stats.lastCompaction).to.not.equal(undefined);
    expect(stats.deadBytes).to.be.lessThan(20_000 + stats.diskBytes / 2);
    expect(await dump(store)).to.deep.equal(sorted(model));
    await store.close();
  });

  it('does not compact automatically when autoCompact is false', async () => {
    const dir = tempDir('compact-auto-off');
    const store = await openFast(dir, { maxSegmentBytes: 4096, autoCompact: false });
    await fill(store, 50, 8);
    expect(store.stats().lastCompaction).to.equal(undefined);
    expect(store.stats().compacting).to.equal(false);
    await store.close();
  });
});

describe('compaction of batches and of leftovers', () => {
  it('a batch whose last record is dead keeps its live records, found by a scan too', async () => {
    const dir = tempDir('compact-batch');
    const store = await openFast(dir, SMALL);
    const model = await fill(store, 30, 1);
    await store.batch([
      { type: 'set', key: 'a', value: 1 },
      { type: 'set', key: 'b', value: 2 },
      { type: 'set', key: 'c', value: 3 },
    ]);
    await store.delete('c'); // the batch's last record is dead now; its tombstone goes too
    model.set('a', 1);
    model.set('b', 2);
    await store.compact();
    await store.close();
    // Scan the outputs, as after a crash with the hints lost: a and b, copied last, must not look
    // like the start of an unfinished batch at the end of the newest segment.
    dropSnapshot(dir);
    for (const hint of files(dir, '.hint')) fs.rmSync(path.join(dir, hint));
    const reopened = await openFast(dir, SMALL);
    expect(reopened.recovery.truncated).to.equal(undefined);
    expect(await dump(reopened)).to.deep.equal(sorted(model));
    await reopened.close();
  });

  it('an input it could not remove is removed by the next compaction first', async () => {
    let failRemove = 0;
    const medium = fsWith({
      async remove(file, remove) {
        if (failRemove > 0 && file.endsWith('.seg')) {
          failRemove--;
          throw systemError('EIO');
        }
        return remove();
      },
    });
    const dir = tempDir('compact-garbage');
    const store = await openFast(dir, { ...SMALL, medium });
    await store.set('victim', 'old');
    const model = await fill(store, 60, 2);
    await store.delete('victim');
    const inputs = files(dir, '.seg');
    failRemove = 1;
    const err = await expectCode(store.compact(), 'LOGKV_IO');
    expect(err.details.file).to.equal(path.join(dir, inputs[0]));
    // Switched: every value is read from the outputs; the oldest input is still on disk.
    expect(await dump(store)).to.deep.equal(sorted(model));
    expect(files(dir, '.seg')).to.include(inputs[0]);
    // The next compaction removes it before it drops any tombstone that could hide its values.
    failRemove = 1;
    await expectCode(store.compact(), 'LOGKV_IO');
    expect(files(dir, '.seg')).to.include(inputs[0]);
    const result = await store.compact();
    expect(result.dryRun).to.equal(false);
    expect(files(dir, '.seg')).to.not.include(inputs[0]);
    await store.close();
    dropSnapshot(dir);
    const reopened = await openFast(dir, SMALL);
    expect(await reopened.get('victim')).to.equal(undefined);
    expect(await dump(reopened)).to.deep.equal(sorted(model));
    await reopened.close();
  });
});

describe('the switch to the compacted segments', function () {
  this.timeout(60_000);

  it('moves keys in slices; a write queued before and failing during the switch puts back a value that survives', async () => {
    // A medium that holds the next write to a segment (not a compaction temp file) until the
    // test releases it, and then fails it.
    let hold: { armed: boolean; release?: () => void } = { armed: false };
    const medium = fsWith({
      async write(file, _chunks, _position, write) {
        if (hold.armed && !file.endsWith('.tmp')) {
          hold.armed = false;
          await new Promise<void>((resolve) => { hold.release = resolve; });
          throw systemError('EIO');
        }
        return write();
      },
    });
    const dir = tempDir('compact-switch');
    const store = await openFast(dir, { medium, autoCompact: false, maxSegmentBytes: 1024 * 1024 });
    const model = new Map<string, unknown>();
    const keys = 50_000; // more than two slices of the switch (20,000 records each)
    for (let round = 0; round < 2; round++) {
      const writes: Array<Promise<unknown>> = [];
      for (let i = 0; i < keys; i++) {
        writes.push(store.set(`k${i}`, round * keys + i));
        model.set(`k${i}`, round * keys + i);
      }
      await Promise.all(writes);
    }
    let failedCode: string | undefined;
    let failing: Promise<unknown> | undefined;
    let sawSwitch = false;
    let queuedBeforeSwitch = false;
    let created: Promise<unknown> | undefined;
    await store.compact({
      onProgress: ({ phase }) => {
        if (phase === 'copy' && created === undefined) {
          // A first write makes the new active segment's file; then k0's write is queued (its
          // undo remembers k0's place in an input) and held, so its failure is a plain record
          // write failing, handled at once.
          created = store.set('first', 1).then(() => {
            queuedBeforeSwitch = !sawSwitch;
            hold = { armed: true };
            failing = store.set('k0', 'never').catch((err) => { failedCode = err.code; });
          });
        }
        if (phase === 'switch' && !sawSwitch) {
          sawSwitch = true;
          hold.release?.(); // fails now: k0 goes back to its input location, after its slice moved
        }
      },
    });
    await created;
    await failing;
    model.set('first', 1);
    expect(sawSwitch).to.equal(true);
    expect(queuedBeforeSwitch).to.equal(true);
    expect(failedCode).to.equal('LOGKV_IO');
    expect(await store.get('k0')).to.equal(model.get('k0'));
    expect(store.size).to.equal(keys + 1);
    expect(await store.get(`k${keys - 1}`)).to.equal(model.get(`k${keys - 1}`));
    await store.set('after', 1);
    model.set('after', 1);
    await store.close();
    fs.rmSync(path.join(dir, 'keydir.snapshot'));
    const reopened = await openFast(dir, { autoCompact: false });
    expect(await dump(reopened)).to.deep.equal(sorted(model));
    await reopened.close();
  });
});

describe('hint files', () => {
  async function compactedStore(): Promise<{ dir: string; model: Map<string, unknown> }> {
    const dir = tempDir('hint');
    const store = await openFast(dir, SMALL);
    const model = await fill(store, 120, 2);
    await store.compact();
    await store.close();
    dropSnapshot(dir);
    return { dir, model };
  }

  const damages: Array<{ name: string; damage: (file: string) => void }> = [
    { name: 'missing', damage: (file) => fs.rmSync(file) },
    { name: 'empty', damage: (file) => fs.truncateSync(file, 0) },
    { name: 'torn', damage: (file) => fs.truncateSync(file, fs.statSync(file).size - 7) },
    {
      name: 'a flipped bit',
      damage: (file) => {
        const bytes = fs.readFileSync(file);
        bytes[40] ^= 0x04;
        fs.writeFileSync(file, bytes);
      },
    },
    {
      name: 'garbage appended',
      damage: (file) => fs.appendFileSync(file, Buffer.from('not a hint')),
    },
  ];

  for (const { name, damage } of damages) {
    it(`is ignored when ${name}: the segment is scanned and every value is right`, async () => {
      const { dir, model } = await compactedStore();
      const hints = files(dir, '.hint');
      expect(hints.length).to.be.greaterThan(1);
      damage(path.join(dir, hints[0]));
      const store = await openFast(dir, SMALL);
      expect(store.recovery.hinted).to.equal(hints.length - 1);
      expect(store.recovery.hintsIgnored.length).to.equal(name === 'missing' ? 0 : 1);
      expect(await dump(store)).to.deep.equal(sorted(model));
      await store.close();
    });
  }

  it('stays valid after reopen and more writes: a compaction output is never appended to', async () => {
    const { dir, model } = await compactedStore();
    const outputs = files(dir, '.seg');
    const store = await openFast(dir, SMALL);
    await store.set('appended', 1);
    model.set('appended', 1);
    await store.close();
    dropSnapshot(dir);
    // The write went to a new segment of its own, after the outputs.
    expect(files(dir, '.seg').slice(0, outputs.length)).to.deep.equal(outputs);
    expect(files(dir, '.seg').length).to.equal(outputs.length + 1);
    const reopened = await openFast(dir, SMALL);
    expect(reopened.recovery.hintsIgnored).to.deep.equal([]);
    expect(reopened.recovery.hinted).to.equal(files(dir, '.hint').length);
    expect(await dump(reopened)).to.deep.equal(sorted(model));
    await reopened.close();
  });

  it('is ignored when its segment does not have the size it describes', async () => {
    const { dir, model } = await compactedStore();
    // A valid record appended behind the hint's back (by hand: the store never does this).
    const last = path.join(dir, files(dir, '.seg').pop()!);
    fs.appendFileSync(last, encodeRecord(TYPE_SET, 0, 'extra', encodeValue(prepareValue(7)), 0, 1_000_000));
    model.set('extra', 7);
    const store = await openFast(dir, SMALL);
    expect(store.recovery.hintsIgnored.map((h) => path.basename(h.file))).to.deep.equal([files(dir, '.hint').pop()]);
    expect(await dump(store)).to.deep.equal(sorted(model));
    await store.close();
  });

  it('orphan hints and temporary files are removed on open', async () => {
    const { dir, model } = await compactedStore();
    fs.writeFileSync(path.join(dir, '0000000f0001.seg.tmp'), 'partial output');
    fs.writeFileSync(path.join(dir, '0000000f0002.hint'), 'orphan');
    const store = await openFast(dir, SMALL);
    expect(store.recovery.removed.sort()).to.deep.equal(['0000000f0001.seg.tmp', '0000000f0002.hint']);
    expect(fs.existsSync(path.join(dir, '0000000f0001.seg.tmp'))).to.equal(false);
    expect(await dump(store)).to.deep.equal(sorted(model));
    await store.close();
  });
});

/**
 * A file system medium that "crashes" at its Nth mutating call: that call and every later one
 * fail, as if the process had been killed there. What it wrote before stays on disk, as after a
 * SIGKILL.
 */
class CrashAt implements Medium {
  readonly isFileSystem = true;
  calls = 0;
  /** Steps are counted only once armed (after open, which removes the keydir snapshot). */
  armed = false;
  constructor(private readonly at: number) {}

  private step(): void {
    if (!this.armed) return;
    this.calls++;
    if (this.calls >= this.at) throw Object.assign(new Error('simulated crash'), { code: 'EIO' });
  }

  mkdirp(dir: string): Promise<void> { return fileSystem.mkdirp(dir); }
  list(dir: string): Promise<string[]> { return fileSystem.list(dir); }
  async rename(from: string, to: string): Promise<void> { this.step(); return fileSystem.rename(from, to); }
  async remove(p: string): Promise<void> { this.step(); return fileSystem.remove(p); }
  async syncDir(dir: string): Promise<void> { this.step(); return fileSystem.syncDir(dir); }
  async open(p: string, options?: OpenFileOptions): Promise<MediumFile> {
    if (options?.create) this.step();
    const file = await fileSystem.open(p, options);
    const step = () => this.step();
    return {
      path: file.path,
      readSync: (buf, offset, length, position) => file.readSync(buf, offset, length, position),
      sizeSync: () => file.sizeSync(),
      close: () => file.close(),
      async write(chunks, position) { step(); return file.write(chunks, position); },
      async sync() { step(); return file.sync(); },
      async truncate(size) { step(); return file.truncate(size); },
    };
  }
}

describe('a crash during compaction', function () {
  this.timeout(120_000);

  async function scenario(dir: string, medium: Medium): Promise<Map<string, unknown>> {
    const store = await openFast(dir, { ...SMALL, medium });
    const model = await fill(store, 40, 3);
    await store.set('deleted', 'x');
    await store.set('more', 1);
    await store.delete('deleted');
    model.set('more', 1);
    await store.close();
    return model;
  }

  it('at every step reopens to exactly the state before or after it, never a mix', async () => {
    // Count the mutating steps of a clean compaction first.
    const countDir = tempDir('crash-count');
    const model = await scenario(countDir, fileSystem);
    const counter = new CrashAt(Infinity);
    const counted = await openFast(countDir, { ...SMALL, medium: counter });
    counter.armed = true;
    await counted.compact();
    const total = counter.calls;
    await counted.close();
    expect(total).to.be.greaterThan(10);

    for (let at = 1; at <= total; at++) {
      const dir = tempDir('crash-at');
      await scenario(dir, fileSystem);
      const crashing = new CrashAt(at);
      const store = await openFast(dir, { ...SMALL, medium: crashing });
      crashing.armed = true;
      const outcome = await store.compact().then(() => 'done', (err) => err.code);
      await store.close().catch(() => undefined);
      expect(['done', 'LOGKV_IO'], `crash at step ${at}`).to.include(outcome);
      const reopened = await openFast(dir, SMALL);
      expect(await dump(reopened), `crash at step ${at} of ${total}`).to.deep.equal(sorted(model));
      expect(await reopened.get('deleted'), `crash at step ${at}`).to.equal(undefined);
      // And a compaction after recovery finishes the job.
      await reopened.compact();
      expect(reopened.stats().deadBytes).to.equal(0);
      expect(files(dir, '.tmp')).to.deep.equal([]);
      await reopened.close();
      const final = await openFast(dir, SMALL);
      expect(await dump(final), `after recompacting, crash at step ${at}`).to.deep.equal(sorted(model));
      await final.close();
    }
  });
});
