/**
 * Hot backup (issue 13): a consistent copy at the moment of the call while writes and
 * compactions go on, links and copies, incremental backups that transfer only what changed
 * and never trust a name alone, the destinations it refuses, and what it reports.
 * spec/faults/backup.spec.ts crashes it (power loss at every step, ENOSPC, SIGKILL).
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { BackupProgress, ErrorCodes, SyncMode, Store, checkStore, open } from '../lib';
import { FaultyMedium } from '../lib/medium/faulty';
import { fileSystem } from '../lib/medium/fs';
import { DROP_UNSYNCED, MemoryMedium } from '../lib/medium/memory';
import type { Medium } from '../lib/medium/types';
import { SEGMENT_HEADER_BYTES } from '../lib/format';
import {
  Gate, Model, Op, applyOp, contents, hooked, openBackup, openOrIncomplete, randomOp, run, settled, sortedModel, until,
} from './backup-helpers';
import { expectCode, prng, setRecordBytes, tempDir } from './helpers';

const MEM_DIR = '/db';
const MEM_DEST = '/bk';

/** Store files (segments and hints) in `dir`, sorted. */
function storeFiles(dir: string): string[] {
  return fs.readdirSync(dir).filter((name) => /\.(seg|hint)$/.test(name)).sort();
}

function sizeOf(dir: string, names: string[]): number {
  return names.reduce((sum, name) => sum + fs.statSync(path.join(dir, name)).size, 0);
}

function inode(file: string): number {
  return fs.statSync(file).ino;
}

/** A store with sealed write segments, compaction outputs with hints, and a growing segment. */
async function filledStore(dir: string, options: { medium?: Medium; sync?: SyncMode } = {}): Promise<{ store: Store<unknown>; model: Model }> {
  const store = await open(dir, { sync: options.sync ?? 'never', maxSegmentBytes: 4096, autoCompact: false, medium: options.medium });
  const model: Model = new Map();
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 40; i++) {
      const value = { round, i, pad: 'p'.repeat(40) };
      await store.set(`key-${i}`, value);
      model.set(`key-${i}`, value);
    }
  }
  await store.compact();
  for (let i = 0; i < 30; i++) {
    await store.set(`late-${i}`, i);
    model.set(`late-${i}`, i);
  }
  await store.delete('key-0');
  model.delete('key-0');
  return { store, model };
}

describe('store.backup()', () => {
  describe('what it copies', () => {
    it('links sealed segments and hints, copies the growing segment up to the cut, and opens as the same store', async () => {
      const dir = tempDir('bk-src');
      const dest = path.join(tempDir('bk-dst'), 'copy');
      const { store, model } = await filledStore(dir);
      const names = storeFiles(dir);
      const growing = names.filter((n) => n.endsWith('.seg')).pop()!;
      const result = await store.backup(dest);
      expect(storeFiles(dest)).to.deep.equal(names);
      expect(result).to.include({
        dir: dest, files: names.length, filesLinked: names.length - 1, filesCopied: 1, filesExtended: 0, filesKept: 0,
        filesRemoved: 0, bytesCopied: fs.statSync(path.join(dir, growing)).size, bytesVerified: 0,
      });
      expect(result.cut).to.deep.equal({ segmentId: parseInt(growing, 16), offset: fs.statSync(path.join(dir, growing)).size });
      for (const name of names) {
        const same = inode(path.join(dir, name)) === inode(path.join(dest, name));
        expect(same, `${name} is ${name === growing ? 'a copy' : 'a link'}`).to.equal(name !== growing);
      }
      expect(fs.existsSync(path.join(dest, 'backup.incomplete'))).to.equal(false);
      expect(await contents(store)).to.deep.equal(sortedModel(model));
      await store.set('after', 1); // the store goes on; the backup is not affected
      expect(await openBackup(dest)).to.deep.equal(sortedModel(model));
      await store.close();
    });

    it('with link: false copies every byte: no file of the backup is a file of the store', async () => {
      const dir = tempDir('bk-src');
      const dest = tempDir('bk-dst');
      const { store, model } = await filledStore(dir);
      const names = storeFiles(dir);
      const result = await store.backup(dest, { link: false });
      expect(result).to.include({ filesLinked: 0, filesCopied: names.length, bytesCopied: sizeOf(dir, names) });
      for (const name of names) expect(inode(path.join(dest, name))).to.not.equal(inode(path.join(dir, name)));
      await store.close();
      expect(await openBackup(dest)).to.deep.equal(sortedModel(model));
    });

    it('copies where the file systems cannot link (EXDEV), and incrementally after that', async () => {
      const dir = tempDir('bk-src');
      const dest = tempDir('bk-dst');
      let attempts = 0;
      const noLinks = hooked(fileSystem, {
        link: async () => { attempts++; throw Object.assign(new Error('cross-device link'), { code: 'EXDEV' }); },
      });
      const { store, model } = await filledStore(dir, { medium: noLinks });
      const names = storeFiles(dir);
      const first = await store.backup(dest);
      expect(attempts, 'tried once, then copied the rest').to.equal(1);
      expect(first).to.include({ filesLinked: 0, filesCopied: names.length, bytesCopied: sizeOf(dir, names) });
      await store.set('more', 'bytes');
      const second = await store.backup(dest);
      expect(second).to.include({ filesKept: names.length - 1, filesExtended: 1, bytesCopied: setRecordBytes('more', 'bytes') });
      model.set('more', 'bytes');
      await store.close();
      expect(await openBackup(dest)).to.deep.equal(sortedModel(model));
    });

    it('backs up an empty store, and a store whose newest file is a compaction output', async () => {
      const medium = new MemoryMedium();
      const store = await open(MEM_DIR, { medium, autoCompact: false });
      const empty = await store.backup(MEM_DEST);
      expect(empty).to.include({ cut: null, files: 0, bytesCopied: 0 });
      expect(await openBackup(MEM_DEST, { medium })).to.deep.equal([]);
      await store.set('a', 1);
      await store.compact(); // the output is the newest file; the next write segment has none yet
      const compacted = await store.backup(MEM_DEST);
      expect(compacted.cut!.segmentId % 0x10000).to.not.equal(0);
      expect(compacted).to.include({ filesLinked: 2, filesRemoved: 0 });
      await store.close();
      expect(await openBackup(MEM_DEST, { medium })).to.deep.equal([['a', 1]]);
    });

    it('reports progress up to the bytes it read, in order', async () => {
      const dir = tempDir('bk-src');
      const { store } = await filledStore(dir);
      const seen: BackupProgress[] = [];
      const result = await store.backup(tempDir('bk-dst'), { link: false, onProgress: (p) => seen.push(p) });
      expect(seen.length).to.be.greaterThan(0);
      for (let i = 1; i < seen.length; i++) expect(seen[i].bytesDone).to.be.at.least(seen[i - 1].bytesDone);
      const last = seen[seen.length - 1];
      expect(last.bytesDone).to.equal(result.bytesCopied + result.bytesVerified);
      expect(last.bytesTotal).to.equal(last.bytesDone);
      await store.close();
    });
  });

  describe('the cut', () => {
    /**
     * A writer keeps up to 8 calls in flight while backups (and sometimes a compaction) run. Each
     * backup must hold the state after a prefix of the calls that includes every call resolved
     * before backup() was called and no call made after it.
     */
    async function race(sync: SyncMode, seed: number): Promise<void> {
      const random = prng(seed);
      const dir = tempDir('bk-race');
      const dest = tempDir('bk-race-dst');
      const store = await open(dir, { sync, maxSegmentBytes: 2048, autoCompact: false });
      const calls: Op[] = [];
      const resolved: boolean[] = [];
      let stop = false;
      const writer = (async () => {
        const inFlight = new Set<Promise<unknown>>();
        while (!stop) {
          const i = calls.length;
          calls.push(randomOp(random, i));
          resolved.push(false);
          const call = run(store, calls[i]).then(() => { resolved[i] = true; });
          inFlight.add(call);
          void call.finally(() => inFlight.delete(call));
          if (inFlight.size >= 8) await Promise.race(inFlight);
          else if (random() < 0.5) await new Promise((resolve) => setImmediate(resolve));
        }
        await Promise.all(inFlight);
      })();
      for (let round = 0; round < 4; round++) {
        for (let turns = 1 + Math.floor(random() * 40); turns > 0; turns--) await new Promise((resolve) => setImmediate(resolve));
        const lower = resolved.indexOf(false) < 0 ? resolved.length : resolved.indexOf(false);
        const upper = calls.length;
        const backup = store.backup(dest, { link: random() < 0.5 });
        const compaction = random() < 0.5 ? store.compact() : undefined;
        await Promise.all([backup, compaction]);
        const copy = await openBackup(dest);
        const model: Model = new Map();
        for (let i = 0; i < lower; i++) applyOp(model, calls[i]);
        let match = -1;
        for (let p = lower; p <= upper && match < 0; p++) {
          if (JSON.stringify(sortedModel(model)) === JSON.stringify(copy)) match = p;
          if (p < upper) applyOp(model, calls[p]);
        }
        expect(match, `seed ${seed}, round ${round}: the backup is the state after calls [${lower}, ${upper}]`).to.be.at.least(lower);
      }
      stop = true;
      await writer;
      await store.close();
    }

    for (const [sync, seed] of [['always', 11], ['interval', 12], ['never', 13]] as Array<[SyncMode, number]>) {
      it(`holds every write resolved before the call and none made after it, under a concurrent writer (sync '${sync}')`, async () => {
        await race(sync, seed);
      });
    }

    it("in 'never' mode a resolved write that is not yet durable in the store is durable in the backup", async () => {
      const medium = new MemoryMedium();
      const store = await open(MEM_DIR, { medium, sync: 'never', autoCompact: false });
      await store.set('synced', 1);
      await store.sync();
      await store.set('only in the page cache', 2);
      await store.backup(MEM_DEST);
      const disk = medium.crash(DROP_UNSYNCED); // a power loss right after the backup resolved
      expect(await openBackup(MEM_DEST, { medium: disk })).to.deep.equal([['only in the page cache', 2], ['synced', 1]]);
      expect(await openBackup(MEM_DIR, { medium: disk }), 'the store itself loses it').to.deep.equal([['synced', 1]]);
      await store.close();
    });
  });

  describe('with a compaction at the same time', () => {
    async function memoryStore(medium: Medium): Promise<{ store: Store<unknown>; model: Model }> {
      const store = await open(MEM_DIR, { medium, sync: 'never', maxSegmentBytes: 1024, autoCompact: false });
      const model: Model = new Map();
      for (let i = 0; i < 120; i++) {
        await store.set(`k${i % 30}`, { i, pad: 'q'.repeat(30) });
        model.set(`k${i % 30}`, { i, pad: 'q'.repeat(30) });
      }
      return { store, model };
    }

    it('backup first: the compaction removes its inputs only once the backup has opened them', async () => {
      const memory = new MemoryMedium();
      const gate = new Gate();
      const medium = hooked(memory, {
        open: async (file, options) => { if (options?.readOnly === true && file.startsWith(`${MEM_DIR}/`)) await gate.pass(); },
      });
      const { store, model } = await memoryStore(medium);
      const inputs = memory.files().filter((f) => f.endsWith('.seg'));
      gate.close();
      const backup = store.backup(MEM_DEST);
      const compaction = store.compact();
      await until(() => gate.held > 0 && memory.files().some((f) => f.endsWith('.hint')));
      expect(await settled(compaction), 'the compaction waits to remove its inputs').to.equal(false);
      for (const input of inputs) expect(memory.exists(input), input).to.equal(true);
      gate.open();
      await Promise.all([backup, compaction]);
      for (const input of inputs) expect(memory.exists(input), input).to.equal(false);
      expect(await contents(store)).to.deep.equal(sortedModel(model));
      await store.close();
      expect(await openBackup(MEM_DEST, { medium: memory })).to.deep.equal(sortedModel(model));
    });

    it('backup first: the compaction waits for the opens only, not for the copy', async () => {
      const memory = new MemoryMedium();
      const gate = new Gate();
      const medium = hooked(memory, { write: async (file) => { if (file.startsWith(`${MEM_DEST}/`) && file.endsWith('.seg')) await gate.pass(); } });
      const { store, model } = await memoryStore(medium);
      gate.close();
      const backup = store.backup(MEM_DEST, { link: false });
      await until(() => gate.held > 0);
      const result = await store.compact(); // resolves while the backup is held in its copy
      expect(result.segmentsAfter).to.be.lessThan(result.segmentsBefore);
      expect(await settled(backup)).to.equal(false);
      gate.open();
      await backup;
      await store.close();
      expect(await openBackup(MEM_DEST, { medium: memory })).to.deep.equal(sortedModel(model));
    });

    it('compaction first: a backup called during its copy holds the inputs, and the copy opens right', async () => {
      const memory = new MemoryMedium();
      const { store, model } = await memoryStore(memory);
      const inputs = memory.files().filter((f) => f.endsWith('.seg')).map((f) => path.basename(f));
      let backup: Promise<unknown> | undefined;
      await store.compact({ onProgress: (p) => { if (p.phase === 'copy' && backup === undefined) backup = store.backup(MEM_DEST); } });
      await backup;
      expect((await memory.list(MEM_DEST)).filter((n) => n.endsWith('.seg')).sort()).to.deep.equal(inputs.sort());
      await store.close();
      expect(await openBackup(MEM_DEST, { medium: memory })).to.deep.equal(sortedModel(model));
    });

    it('compaction first: a backup called in the middle of its switch holds inputs and outputs, which replay right', async () => {
      const memory = new MemoryMedium();
      // One input and one output of 25,000 records: the switch moves 20,000 per turn of the event loop.
      const store = await open(MEM_DIR, { medium: memory, sync: 'never', maxSegmentBytes: 4 * 1024 * 1024, autoCompact: false });
      const model: Model = new Map();
      for (let i = 0; i < 25_000; i++) {
        void store.set(`key-${i}`, i);
        model.set(`key-${i}`, i);
      }
      await store.sync();
      let backup: Promise<unknown> | undefined;
      await store.compact({ onProgress: (p) => { if (p.phase === 'switch' && backup === undefined) backup = store.backup(MEM_DEST); } });
      expect(backup, 'the switch took more than one slice').to.not.equal(undefined);
      await backup;
      const names = (await memory.list(MEM_DEST)).filter((n) => n.endsWith('.seg'));
      expect(names.some((n) => parseInt(n, 16) % 0x10000 === 0 && parseInt(n, 16) < 0x20000), 'the input').to.equal(true);
      expect(names.some((n) => parseInt(n, 16) % 0x10000 !== 0), 'an output').to.equal(true);
      await store.close();
      expect(await openBackup(MEM_DEST, { medium: memory })).to.deep.equal(sortedModel(model));
    });

    it('compaction first: a backup called as it removes its inputs holds its outputs', async () => {
      const memory = new MemoryMedium();
      const faulty = new FaultyMedium(memory, { seed: 5 });
      const { store, model } = await memoryStore(faulty);
      let backup: Promise<unknown> | undefined;
      faulty.onOperation = (event) => {
        if (event.op === 'remove' && event.phase === 'before' && event.path.startsWith(`${MEM_DIR}/`) && backup === undefined) {
          backup = store.backup(MEM_DEST);
        }
      };
      await store.compact();
      await backup;
      const names = (await memory.list(MEM_DEST)).filter((n) => n.endsWith('.seg'));
      expect(names.filter((n) => parseInt(n, 16) % 0x10000 !== 0).length, 'outputs').to.be.greaterThan(0);
      await store.close();
      expect(await openBackup(MEM_DEST, { medium: memory })).to.deep.equal(sortedModel(model));
    });
  });

  describe('incremental', () => {
    it('links once, then transfers only the bytes appended to the growing segment; removes what compaction removed', async () => {
      const dir = tempDir('bk-src');
      const dest = tempDir('bk-dst');
      const { store, model } = await filledStore(dir);
      const names = storeFiles(dir);
      const growing = names.filter((n) => n.endsWith('.seg')).pop()!;
      const grownFrom = fs.statSync(path.join(dir, growing)).size;
      await store.backup(dest);

      const added: Array<[string, unknown]> = [['inc-1', 'a'], ['inc-2', { b: 2 }], ['inc-3', [3]]];
      for (const [key, value] of added) {
        await store.set(key, value);
        model.set(key, value);
      }
      expect(storeFiles(dir), 'no rotation: only the growing segment changed').to.deep.equal(names);
      const delta = added.reduce((sum, [key, value]) => sum + setRecordBytes(key, value), 0);
      const second = await store.backup(dest);
      expect(second).to.include({
        files: names.length, filesLinked: 0, filesCopied: 0, filesExtended: 1, filesKept: names.length - 1, filesRemoved: 0,
        bytesCopied: delta, bytesVerified: grownFrom,
      });
      expect(await openBackup(dest)).to.deep.equal(sortedModel(model));

      const third = await store.backup(dest);
      expect(third, 'nothing changed: nothing moves').to.include({ bytesCopied: 0, filesKept: names.length });

      await store.compact();
      const after = storeFiles(dir);
      const gone = names.filter((n) => !after.includes(n));
      expect(gone.length).to.be.greaterThan(0);
      const fourth = await store.backup(dest);
      expect(fourth.filesRemoved).to.equal(gone.length);
      expect(storeFiles(dest)).to.deep.equal(after);
      await store.close();
      expect(await openBackup(dest)).to.deep.equal(sortedModel(model));
    });

    it('with copies: the second backup verifies what it keeps and transfers only the new bytes', async () => {
      const dir = tempDir('bk-src');
      const dest = tempDir('bk-dst');
      const { store, model } = await filledStore(dir);
      const first = await store.backup(dest, { link: false });
      const names = storeFiles(dir);
      expect(first.bytesCopied).to.equal(sizeOf(dir, names));
      await store.set('one more', 'value');
      model.set('one more', 'value');
      const second = await store.backup(dest, { link: false });
      expect(second).to.include({
        filesCopied: 0, filesExtended: 1, filesKept: names.length - 1, bytesCopied: setRecordBytes('one more', 'value'),
        bytesVerified: first.bytesCopied,
      });
      await store.close();
      expect(await openBackup(dest)).to.deep.equal(sortedModel(model));
    });

    for (const link of [true, false]) {
      it(`never keeps a file for its name, size and header alone: a store emptied and started again reuses ids (link: ${link})`, async () => {
        const memory = new MemoryMedium();
        const first = await open(MEM_DIR, { medium: memory, sync: 'never', autoCompact: false });
        await first.set('k1', 'x');
        await first.set('k2', 'y');
        await first.backup(MEM_DEST, { link });
        await first.close();
        // Emptied by hand (store.id kept): compaction never empties a store of files any more,
        // since its last output keeps the version floor, but an operator can.
        for (const file of await memory.list(MEM_DIR)) {
          if (file.endsWith('.seg') || file.endsWith('.hint') || file === 'keydir.snapshot') await memory.remove(`${MEM_DIR}/${file}`);
        }
        const again = await open(MEM_DIR, { medium: memory, sync: 'never', autoCompact: false });
        await again.set('k3', 'q');
        await again.set('k4', 'w');
        // The hard case: the same name, the same size and the same file header, other records.
        const name = '000000010000.seg';
        const now = memory.readFile(`${MEM_DIR}/${name}`);
        const before = memory.readFile(`${MEM_DEST}/${name}`);
        expect(now.length).to.equal(before.length);
        expect(now.subarray(0, SEGMENT_HEADER_BYTES).equals(before.subarray(0, SEGMENT_HEADER_BYTES))).to.equal(true);
        expect(now.equals(before)).to.equal(false);
        const result = await again.backup(MEM_DEST, { link });
        expect(result.filesCopied).to.equal(1);
        await again.close();
        expect(await openBackup(MEM_DEST, { medium: memory })).to.deep.equal([['k3', 'q'], ['k4', 'w']]);
      });
    }

    it('a backup that was opened as a store and written to is made a copy of the store again', async () => {
      const dir = tempDir('bk-src');
      const dest = tempDir('bk-dst');
      const { store, model } = await filledStore(dir);
      await store.backup(dest, { link: false });
      const restored = await open(dest, { autoCompact: false });
      await restored.set('only in the restored copy', true); // appends to the copy of the growing segment
      await restored.close(); // and leaves a keydir snapshot
      await store.set('in the store', 1);
      model.set('in the store', 1);
      const again = await store.backup(dest, { link: false });
      expect(again.filesCopied, 'the changed file is copied whole').to.equal(1);
      expect(fs.existsSync(path.join(dest, 'keydir.snapshot'))).to.equal(false);
      await store.close();
      expect(await openBackup(dest)).to.deep.equal(sortedModel(model));
    });

    it('a link mode backup into a copy mode one replaces copies by links, and back, without touching the store', async () => {
      const dir = tempDir('bk-src');
      const dest = tempDir('bk-dst');
      const { store, model } = await filledStore(dir);
      const names = storeFiles(dir);
      const before = Object.fromEntries(names.map((n) => [n, fs.readFileSync(path.join(dir, n)).toString('hex')]));
      await store.backup(dest, { link: false });
      const linked = await store.backup(dest);
      expect(linked.filesLinked).to.equal(names.length - 1);
      const copied = await store.backup(dest, { link: false });
      expect(copied.filesCopied).to.equal(names.length - 1);
      for (const name of names) {
        expect(inode(path.join(dest, name))).to.not.equal(inode(path.join(dir, name)));
        expect(fs.readFileSync(path.join(dir, name)).toString('hex'), name).to.equal(before[name]);
      }
      await store.close();
      expect(await openBackup(dest)).to.deep.equal(sortedModel(model));
    });
  });

  describe('destinations it refuses, and the lock', () => {
    it('refuses the store\'s own directory, by name or through a symlink', async () => {
      const dir = tempDir('bk-src');
      const { store } = await filledStore(dir);
      const files = fs.readdirSync(dir).sort();
      await expectCode(store.backup(dir), ErrorCodes.INVALID_ARGUMENT);
      const link = path.join(tempDir('bk-link'), 'alias');
      fs.symlinkSync(dir, link);
      await expectCode(store.backup(link), ErrorCodes.INVALID_ARGUMENT);
      expect(fs.readdirSync(dir).sort(), 'nothing was made').to.deep.equal(files);
      await store.close();
    });

    it('refuses a directory holding another store\'s backup, and one holding other things, changing neither', async () => {
      const medium = new MemoryMedium();
      const a = await open('/a', { medium, autoCompact: false });
      const b = await open('/b', { medium, autoCompact: false });
      await a.set('a', 1);
      await b.set('b', 2);
      await a.backup(MEM_DEST);
      const held = (await medium.list(MEM_DEST)).sort();
      const err = await expectCode(b.backup(MEM_DEST), ErrorCodes.INVALID_ARGUMENT);
      expect(err.details.file).to.equal(MEM_DEST);
      expect((await medium.list(MEM_DEST)).sort()).to.deep.equal(held);
      await medium.mkdirp('/home');
      const handle = await medium.open('/home/notes.txt', { create: true });
      await handle.close();
      await expectCode(b.backup('/home'), ErrorCodes.INVALID_ARGUMENT);
      expect(await medium.list('/home'), 'not even a lock was made there').to.deep.equal(['notes.txt']);
      await expectCode(b.backup('/a'), ErrorCodes.LOCKED); // another store, open
      await a.close();
      await expectCode(b.backup('/a'), ErrorCodes.INVALID_ARGUMENT); // closed: its store.id says whose it is
      const c = await open('/c', { medium, autoCompact: false });
      await c.set('c', 3);
      await c.close();
      await expectCode(b.backup('/c'), ErrorCodes.INVALID_ARGUMENT); // never backed up: no store.id, but segments
      await b.close();
      expect(await openBackup(MEM_DEST, { medium })).to.deep.equal([['a', 1]]);
    });

    it('holds the destination\'s lock while it works: opening it meanwhile is LOGKV_LOCKED, and a second backup into it too', async () => {
      const memory = new MemoryMedium();
      const gate = new Gate();
      const medium = hooked(memory, { write: async (file) => { if (file.startsWith(`${MEM_DEST}/`)) await gate.pass(); } });
      const store = await open(MEM_DIR, { medium, autoCompact: false });
      await store.set('a', 1);
      gate.close();
      const backup = store.backup(MEM_DEST);
      await until(() => gate.held > 0);
      await expectCode(open(MEM_DEST, { medium }), ErrorCodes.LOCKED);
      await expectCode(store.backup(MEM_DEST), ErrorCodes.LOCKED);
      const elsewhere = await store.backup('/other'); // another destination at the same time is fine
      expect(elsewhere.files).to.equal(1);
      gate.open();
      await backup;
      await store.close();
      expect(await openBackup(MEM_DEST, { medium: memory })).to.deep.equal([['a', 1]]);
    });

    it('refuses a destination that is an open store of this process (LOGKV_LOCKED) on the real file system', async () => {
      const dir = tempDir('bk-src');
      const other = tempDir('bk-open');
      const store = await open(dir, { autoCompact: false });
      const holder = await open(other);
      await expectCode(store.backup(other), ErrorCodes.LOCKED);
      await holder.close();
      await store.close();
    });

    it('checks its arguments at the door, and refuses a closed store or a poisoned writer', async () => {
      const medium = new MemoryMedium();
      const faulty = new FaultyMedium(medium, { seed: 3 });
      const store = await open(MEM_DIR, { medium: faulty, sync: 'always', autoCompact: false });
      const bad: Array<[unknown, unknown]> = [['', {}], [5, {}], [undefined, {}], [MEM_DEST, 'x'], [MEM_DEST, null],
        [MEM_DEST, { onProgress: 1 }], [MEM_DEST, { link: 'yes' }]];
      for (const [dest, options] of bad) {
        await expectCode((store.backup as (d: unknown, o: unknown) => Promise<unknown>)(dest, options), ErrorCodes.INVALID_ARGUMENT);
      }
      expect(medium.exists(MEM_DEST), 'nothing was made').to.equal(false);
      faulty.failNext('sync');
      await expectCode(store.set('a', 1), ErrorCodes.IO); // a failed fdatasync poisons the writer
      await expectCode(store.backup(MEM_DEST), ErrorCodes.IO);
      // close() of a poisoned store rejects: it cannot say that what was acknowledged is durable.
      await expectCode(store.close(), ErrorCodes.IO);
      await expectCode(store.backup(MEM_DEST), ErrorCodes.CLOSED);
    });
  });

  describe('an incomplete backup', () => {
    it('close() stops a running backup: it rejects LOGKV_CLOSED, the destination stays marked, and the next backup completes it', async () => {
      const memory = new MemoryMedium();
      const gate = new Gate();
      const medium = hooked(memory, { write: async (file) => { if (file.startsWith(`${MEM_DEST}/`) && file.endsWith('.seg')) await gate.pass(); } });
      const { store, model } = await (async () => {
        const s = await open(MEM_DIR, { medium, maxSegmentBytes: 1024, autoCompact: false });
        const m: Model = new Map();
        for (let i = 0; i < 50; i++) { await s.set(`k${i}`, i); m.set(`k${i}`, i); }
        return { store: s, model: m };
      })();
      gate.close();
      const backup = store.backup(MEM_DEST, { link: false });
      await until(() => gate.held > 0);
      const closing = store.close();
      gate.open();
      await expectCode(backup, ErrorCodes.CLOSED);
      await closing;
      expect(await openOrIncomplete(MEM_DEST, { medium: memory })).to.equal('incomplete');
      const report = await checkStore(MEM_DEST, { medium: memory });
      expect(report.ok).to.equal(false);
      expect(report.problems.filter((p) => p.severity === 'corruption').map((p) => p.file)).to.deep.equal([`${MEM_DEST}/backup.incomplete`]);
      const reopened = await open(MEM_DIR, { medium: memory, autoCompact: false });
      await reopened.backup(MEM_DEST);
      await reopened.close();
      expect(await openBackup(MEM_DEST, { medium: memory })).to.deep.equal(sortedModel(model));
      expect((await checkStore(MEM_DEST, { medium: memory })).ok).to.equal(true);
    });

    it('open() of a directory holding the marker rejects LOGKV_INCOMPLETE_BACKUP and leaves it unlocked', async () => {
      const dir = tempDir('bk-marked');
      fs.writeFileSync(path.join(dir, 'backup.incomplete'), '');
      const err = await expectCode(open(dir), ErrorCodes.INCOMPLETE_BACKUP);
      expect(err.details.file).to.equal(path.join(dir, 'backup.incomplete'));
      await expectCode(open(dir), ErrorCodes.INCOMPLETE_BACKUP); // not LOGKV_LOCKED: the lock was released
      fs.rmSync(path.join(dir, 'backup.incomplete'));
      await (await open(dir)).close();
    });
  });
});
