/**
 * The test media: the in-memory medium's durability model (what a power loss keeps and drops),
 * and every fault the fault-injecting wrapper can inject.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { FaultEvent, FaultyMedium, OperationEvent } from '../lib/medium/faulty';
import { fileSystem, sliceFrom } from '../lib/medium/fs';
import {
  CrashChooser, DROP_UNSYNCED, KEEP_UNSYNCED, MemoryMedium, UnsyncedFile, randomCrash, sectorPieces, writebackError,
} from '../lib/medium/memory';
import { seededRandom } from '../lib/medium/random';
import type { Medium } from '../lib/medium/types';

const bytes = (text: string): Buffer => Buffer.from(text, 'utf8');

/** Asserts that `action` rejects (or throws) with a Node-style system error of `code`. */
async function expectSystemError(action: () => unknown, code: string): Promise<NodeJS.ErrnoException> {
  let caught: unknown;
  try {
    await action();
  } catch (err) {
    caught = err;
  }
  expect(caught, `expected ${code}`).to.be.instanceOf(Error);
  const err = caught as NodeJS.ErrnoException;
  expect(err.code).to.equal(code);
  expect(err.errno).to.be.a('number').and.below(0);
  expect(err.syscall).to.be.a('string');
  return err;
}

/** Writes `text` to a new file and makes it and its entry durable. */
async function durableFile(medium: Medium, file: string, text: string): Promise<void> {
  const handle = await medium.open(file, { create: true });
  await handle.write([bytes(text)], 0);
  await handle.sync();
  await handle.close();
  await medium.syncDir(path.posix.dirname(file));
}

function content(medium: MemoryMedium, file: string): string | undefined {
  return medium.exists(file) ? medium.readFile(file).toString('utf8') : undefined;
}

/** A chooser that keeps every entry change and applies `fates` to every file's data changes. */
function dataFates(fates: (file: UnsyncedFile) => ReturnType<CrashChooser['data']>): CrashChooser {
  return { entries: (dir) => dir.changes.map(() => true), data: fates };
}

describe('MemoryMedium', () => {
  let medium: MemoryMedium;
  beforeEach(async () => {
    medium = new MemoryMedium();
    await medium.mkdirp('/db');
    await medium.syncDir('/');
  });

  describe('as a Medium', () => {
    it('opens, writes, reads and sizes like a file system, holes reading as zeros', async () => {
      const file = await medium.open('/db/a', { create: true });
      await file.write([bytes('ab'), bytes('cd')], 0);
      await file.write([bytes('z')], 6);
      expect(file.sizeSync()).to.equal(7);
      const buf = Buffer.alloc(10);
      expect(file.readSync(buf, 0, 10, 0)).to.equal(7);
      expect([...buf.subarray(0, 7)]).to.deep.equal([97, 98, 99, 100, 0, 0, 122]);
      expect(file.readSync(buf, 0, 4, 100)).to.equal(0);
      await file.truncate(2);
      expect(medium.readFile('/db/a').toString()).to.equal('ab');
      await file.truncate(4);
      expect([...medium.readFile('/db/a')]).to.deep.equal([97, 98, 0, 0]);
      await file.close();
    });

    it('rejects with Node-style errors', async () => {
      const missing = await expectSystemError(() => medium.open('/db/missing'), 'ENOENT');
      expect(missing.message).to.equal("ENOENT: no such file or directory, open '/db/missing'");
      expect(missing.path).to.equal('/db/missing');
      await expectSystemError(() => medium.open('/nodir/x', { create: true }), 'ENOENT');
      await (await medium.open('/db/a', { create: true })).close();
      await expectSystemError(() => medium.open('/db/a', { create: true, exclusive: true }), 'EEXIST');
      await expectSystemError(() => medium.open('/db', { create: true }), 'EISDIR');
      await expectSystemError(() => medium.list('/nope'), 'ENOENT');
      await expectSystemError(() => medium.list('/db/a'), 'ENOTDIR');
      await expectSystemError(() => medium.rename('/db/nope', '/db/b'), 'ENOENT');
      await expectSystemError(() => medium.syncDir('/nope'), 'ENOENT');
      await expectSystemError(() => medium.mkdirp('/db/a/b'), 'ENOTDIR');
      await expectSystemError(() => medium.remove('/db'), 'EISDIR');
      const readOnly = await medium.open('/db/a', { readOnly: true });
      await expectSystemError(() => readOnly.write([bytes('x')], 0), 'EBADF');
      await readOnly.close();
      await expectSystemError(() => readOnly.readSync(Buffer.alloc(1), 0, 1, 0), 'EBADF');
    });

    it('lists, renames over a target, and removes (a missing file is fine)', async () => {
      await durableFile(medium, '/db/a', 'A');
      await durableFile(medium, '/db/b', 'B');
      expect((await medium.list('/db')).sort()).to.deep.equal(['a', 'b']);
      await medium.rename('/db/a', '/db/b');
      expect(await medium.list('/db')).to.deep.equal(['b']);
      expect(content(medium, '/db/b')).to.equal('A');
      await medium.remove('/db/b');
      await medium.remove('/db/b');
      await medium.remove('/nodir/b');
      expect(await medium.list('/db')).to.deep.equal([]);
    });

    it('keeps an open handle working after its file is renamed or removed, as POSIX does', async () => {
      const file = await medium.open('/db/a', { create: true });
      await medium.rename('/db/a', '/db/b');
      await file.write([bytes('x')], 0);
      expect(content(medium, '/db/b')).to.equal('x');
      await medium.remove('/db/b');
      await file.write([bytes('y')], 1);
      expect(file.sizeSync()).to.equal(2);
    });
  });

  describe('durability', () => {
    it('a new file exists after a power loss only once its directory is synced', async () => {
      const file = await medium.open('/db/a', { create: true });
      await file.write([bytes('data')], 0);
      await file.sync();
      expect(content(medium.crash(), '/db/a')).to.equal(undefined);
      await medium.syncDir('/db');
      expect(content(medium.crash(), '/db/a')).to.equal('data');
    });

    it('a synced entry with unsynced data comes back empty', async () => {
      const file = await medium.open('/db/a', { create: true });
      await medium.syncDir('/db');
      await file.write([bytes('data')], 0);
      expect(content(medium.crash(), '/db/a')).to.equal('');
      expect(content(medium.crash(KEEP_UNSYNCED), '/db/a')).to.equal('data');
    });

    it('keeps what sync() covered and drops appends after it', async () => {
      await durableFile(medium, '/db/a', 'synced');
      const file = await medium.open('/db/a');
      await file.write([bytes('+later')], 6);
      expect(content(medium.crash(DROP_UNSYNCED), '/db/a')).to.equal('synced');
      expect(content(medium.crash(KEEP_UNSYNCED), '/db/a')).to.equal('synced+later');
      await file.sync();
      expect(content(medium.crash(DROP_UNSYNCED), '/db/a')).to.equal('synced+later');
    });

    it('an unsynced truncate and an unsynced overwrite are undone', async () => {
      await durableFile(medium, '/db/a', 'abcdef');
      const file = await medium.open('/db/a');
      await file.truncate(2);
      await file.write([bytes('XY')], 0);
      expect(content(medium, '/db/a')).to.equal('XY');
      expect(content(medium.crash(), '/db/a')).to.equal('abcdef');
    });

    it('an unsynced rename is undone; a synced one is not', async () => {
      await durableFile(medium, '/db/old', 'O');
      await durableFile(medium, '/db/target', 'T');
      await medium.rename('/db/old', '/db/target');
      const dropped = medium.crash();
      expect(content(dropped, '/db/old')).to.equal('O');
      expect(content(dropped, '/db/target')).to.equal('T');
      const kept = medium.crash(KEEP_UNSYNCED);
      expect(content(kept, '/db/old')).to.equal(undefined);
      expect(content(kept, '/db/target')).to.equal('O');
      await medium.syncDir('/db');
      expect(content(medium.crash(), '/db/target')).to.equal('O');
      expect(medium.crash().exists('/db/old')).to.equal(false);
    });

    it('an unsynced remove is undone', async () => {
      await durableFile(medium, '/db/a', 'A');
      await medium.remove('/db/a');
      expect(content(medium.crash(), '/db/a')).to.equal('A');
      await medium.syncDir('/db');
      expect(medium.crash().exists('/db/a')).to.equal(false);
    });

    it('a new directory is durable only once its parent is synced', async () => {
      await medium.mkdirp('/db/sub/deeper');
      await medium.syncDir('/db/sub');
      await durableFile(medium, '/db/sub/deeper/f', 'F');
      expect(medium.crash().exists('/db/sub')).to.equal(false);
      await medium.syncDir('/db');
      expect(content(medium.crash(), '/db/sub/deeper/f')).to.equal('F');
    });

    it('a crash leaves the medium it was taken from untouched, and the result all durable', async () => {
      await durableFile(medium, '/db/a', 'A');
      const file = await medium.open('/db/a');
      await file.write([bytes('BC')], 1);
      const after = medium.crash(KEEP_UNSYNCED);
      expect(medium.unsynced()).to.deep.equal({ files: 1, dataChanges: 1, entryChanges: 0 });
      expect(after.unsynced()).to.deep.equal({ files: 0, dataChanges: 0, entryChanges: 0 });
      expect(content(after.crash(), '/db/a')).to.equal('ABC');
      await file.write([bytes('D')], 3);
      expect(content(after, '/db/a')).to.equal('ABC');
    });

    it('a torn write keeps a prefix, and leaves the rest absent, zeroed or garbage', async () => {
      await durableFile(medium, '/db/a', '0123');
      const file = await medium.open('/db/a');
      await file.write([bytes('abcdef')], 4);
      const torn = (rest: 'absent' | 'zeros' | 'garbage') =>
        medium.crash(dataFates(() => [{ torn: 'prefix', keptBytes: 2, rest, seed: 7 }])).readFile('/db/a');
      expect(torn('absent').toString()).to.equal('0123ab');
      expect([...torn('zeros')]).to.deep.equal([...bytes('0123ab'), 0, 0, 0, 0]);
      const garbage = torn('garbage');
      expect(garbage.length).to.equal(10);
      expect(garbage.subarray(0, 6).toString()).to.equal('0123ab');
      expect(torn('garbage').equals(garbage), 'garbage comes from the seed').to.equal(true);
    });

    it('a write torn by sectors keeps only the chosen 512-byte sectors', async () => {
      const file = await medium.open('/db/a', { create: true });
      await medium.syncDir('/db');
      await file.write([Buffer.alloc(1000, 1)], 100);
      expect(sectorPieces(100, 1000)).to.deep.equal([[0, 412], [412, 924], [924, 1000]]);
      const after = medium.crash(dataFates(() => [{ torn: 'sectors', sectors: [false, true, false] }])).readFile('/db/a');
      expect(after.length).to.equal(1024);
      expect(after.subarray(0, 512).every((b) => b === 0)).to.equal(true);
      expect(after.subarray(512, 1024).every((b) => b === 1)).to.equal(true);
    });

    it('without reordering, a random crash keeps a prefix of each file\'s changes', async () => {
      const file = await medium.open('/db/a', { create: true });
      await medium.syncDir('/db');
      for (let i = 0; i < 6; i++) await file.write([bytes(String(i).repeat(4))], i * 4);
      const full = '000011112222333344445555';
      for (let seed = 1; seed <= 200; seed++) {
        const after = medium.crash(randomCrash(seededRandom(seed), { reorder: false, tear: false })).readFile('/db/a');
        expect(full.startsWith(after.toString()), `seed ${seed}: ${after.toString()}`).to.equal(true);
        expect(after.length % 4, `seed ${seed}`).to.equal(0);
      }
    });

    it('with reordering, a random crash can keep a later write and lose an earlier one', async () => {
      const file = await medium.open('/db/a', { create: true });
      await medium.syncDir('/db');
      await file.write([bytes('aaaa')], 0);
      await file.write([bytes('bbbb')], 4);
      const seen = new Set<string>();
      for (let seed = 1; seed <= 200; seed++) {
        seen.add(medium.crash(randomCrash(seededRandom(seed), { tear: false })).readFile('/db/a').toString('hex'));
      }
      expect(seen).to.include(Buffer.concat([Buffer.alloc(4), bytes('bbbb')]).toString('hex'));
      expect(seen).to.include(bytes('aaaa').toString('hex'));
      expect(seen).to.include('');
    });

    it('fork() is what a killed process leaves: unsynced changes still unsynced, for a later power loss', async () => {
      await durableFile(medium, '/db/a', 'A');
      const file = await medium.open('/db/a');
      await file.write([bytes('B')], 1);
      const created = await medium.open('/db/new', { create: true });
      await created.write([bytes('N')], 0);
      await created.sync();
      const killed = medium.fork();
      expect(content(killed, '/db/a')).to.equal('AB');
      expect(content(killed, '/db/new')).to.equal('N');
      expect(killed.unsynced()).to.deep.equal(medium.unsynced());
      expect(content(killed.crash(), '/db/a')).to.equal('A');
      expect(killed.crash().exists('/db/new')).to.equal(false);
      await killed.syncDir('/db');
      expect(content(killed.crash(), '/db/new')).to.equal('N');
      expect(medium.crash().exists('/db/new'), 'the original is untouched').to.equal(false);
    });

    it('corrupt() changes a byte on the disk and in the page cache alike', async () => {
      await durableFile(medium, '/db/a', 'abc');
      medium.corrupt('/db/a', 1, (b) => b ^ 0x20);
      expect(content(medium, '/db/a')).to.equal('aBc');
      expect(content(medium.crash(), '/db/a')).to.equal('aBc');
      expect(() => medium.corrupt('/db/a', 3, (b) => b)).to.throw(RangeError);
    });
  });
});

describe('FaultyMedium', () => {
  let memory: MemoryMedium;
  let faulty: FaultyMedium;
  beforeEach(async () => {
    memory = new MemoryMedium();
    await memory.mkdirp('/db');
    await memory.syncDir('/');
    faulty = new FaultyMedium(memory, { seed: 42 });
  });

  it('passes everything through when no fault is armed', async () => {
    await durableFile(faulty, '/db/a', 'hello');
    expect(content(memory, '/db/a')).to.equal('hello');
    expect(await faulty.list('/db')).to.deep.equal(['a']);
    expect(faulty.isFileSystem).to.equal(false);
    expect(faulty.seed).to.equal(42);
  });

  for (const code of ['EIO', 'ENOSPC'] as const) {
    it(`fails the next write with ${code}, writing nothing, and the write after it succeeds`, async () => {
      const file = await faulty.open('/db/a', { create: true });
      const fault = faulty.failNext('write', code);
      await expectSystemError(() => file.write([bytes('lost')], 0), code);
      expect(fault.fired).to.equal(1);
      expect(content(memory, '/db/a')).to.equal('');
      await file.write([bytes('kept')], 0);
      expect(content(memory, '/db/a')).to.equal('kept');
    });
  }

  it('fails only the nth matching call', async () => {
    const file = await faulty.open('/db/a', { create: true });
    faulty.failNext('write', 'EIO', { nth: 3 });
    await file.write([bytes('1')], 0);
    await file.write([bytes('2')], 1);
    await expectSystemError(() => file.write([bytes('3')], 2), 'EIO');
    await file.write([bytes('4')], 2);
    expect(content(memory, '/db/a')).to.equal('124');
  });

  it('aims at one path, and at creating opens only', async () => {
    await durableFile(faulty, '/db/old', 'x');
    faulty.failNext('open', 'EIO', { creating: true });
    faulty.failNext('sync', 'EIO', { path: 'b' });
    const old = await faulty.open('/db/old');
    await old.sync();
    await expectSystemError(() => faulty.open('/db/new', { create: true }), 'EIO');
    expect(memory.exists('/db/new')).to.equal(false);
    const b = await faulty.open('/db/b', { create: true });
    await expectSystemError(() => b.sync(), 'EIO');
    await b.sync();
  });

  it('lets a prefix of a failing write reach the file, exactly or at random', async () => {
    const file = await faulty.open('/db/a', { create: true });
    faulty.failNext('write', 'EIO', { writtenBytes: 3 });
    await expectSystemError(() => file.write([bytes('ab'), bytes('cdef')], 0), 'EIO');
    expect(content(memory, '/db/a')).to.equal('abc');
    faulty.failNext('write', 'EIO', { writtenBytes: 'random' });
    await expectSystemError(() => file.write([bytes('0123456789')], 3), 'EIO');
    const size = memory.readFile('/db/a').length;
    expect(size).to.be.within(3, 13);
  });

  it('keeps failing with a sticky fault until it is cancelled', async () => {
    const file = await faulty.open('/db/a', { create: true });
    const fault = faulty.fail({ op: 'sync', sticky: true });
    await expectSystemError(() => file.sync(), 'EIO');
    await expectSystemError(() => file.sync(), 'EIO');
    expect(fault.fired).to.equal(2);
    fault.cancel();
    await file.sync();
  });

  it('fails every other operation on demand', async () => {
    await durableFile(faulty, '/db/a', 'abc');
    const file = await faulty.open('/db/a');
    const cases: Array<[Parameters<FaultyMedium['failNext']>[0], () => unknown]> = [
      ['truncate', () => file.truncate(0)],
      ['rename', () => faulty.rename('/db/a', '/db/b')],
      ['remove', () => faulty.remove('/db/a')],
      ['syncDir', () => faulty.syncDir('/db')],
      ['list', () => faulty.list('/db')],
      ['mkdirp', () => faulty.mkdirp('/db/x')],
      ['open', () => faulty.open('/db/a')],
      ['read', () => file.readSync(Buffer.alloc(1), 0, 1, 0)],
    ];
    for (const [op, action] of cases) {
      faulty.failNext(op, 'EIO');
      await expectSystemError(action, 'EIO');
    }
    expect(content(memory, '/db/a')).to.equal('abc');
    expect(memory.exists('/db/b')).to.equal(false);
    expect(memory.exists('/db/x')).to.equal(false);
    faulty.failNext('close');
    await expectSystemError(() => file.close(), 'EIO');
    faulty.failNext('write');
    faulty.clearFaults();
    await durableFile(faulty, '/db/c', 'ok');
  });

  it('flips a chosen bit, on the disk and in the page cache', async () => {
    await durableFile(faulty, '/db/a', 'abc');
    await faulty.flipBit('/db/a', 0, 0);
    expect(content(memory, '/db/a')).to.equal('`bc');
    expect(content(memory.crash(), '/db/a')).to.equal('`bc');
  });

  it('flips a bit of a real file', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'logkv-medium-'));
    try {
      const onDisk = new FaultyMedium(fileSystem, { seed: 1 });
      const file = path.join(dir, 'f');
      fs.writeFileSync(file, 'abc');
      await onDisk.flipBit(file, 2, 1);
      expect(fs.readFileSync(file, 'utf8')).to.equal('abc'.slice(0, 2) + String.fromCharCode(99 ^ 2));
      expect(() => onDisk.powerLoss()).to.throw(TypeError);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('flips the same random bit for the same seed', async () => {
    const flips = [];
    for (let run = 0; run < 2; run++) {
      const m = new MemoryMedium();
      await m.mkdirp('/db');
      await durableFile(m, '/db/a', 'x'.repeat(100));
      flips.push(await new FaultyMedium(m, { seed: 99 }).flipRandomBit('/db/a', 10, 90));
    }
    expect(flips[0]).to.deep.equal(flips[1]);
    expect(flips[0].offset).to.be.within(10, 89);
  });

  it('a power loss drops unsynced data, entries and renames, and halts the medium', async () => {
    await durableFile(faulty, '/db/kept', 'K');
    const fresh = await faulty.open('/db/fresh', { create: true });
    await fresh.write([bytes('F')], 0);
    await fresh.sync();
    await faulty.rename('/db/kept', '/db/renamed');
    const kept = await faulty.open('/db/renamed');
    await kept.write([bytes('more')], 1);
    const after = faulty.powerLoss();
    expect(after.files()).to.deep.equal(['/db/kept']);
    expect(content(after, '/db/kept')).to.equal('K');
    await expectSystemError(() => kept.write([bytes('x')], 0), 'EIO');
    await expectSystemError(() => faulty.list('/db'), 'EIO');
    expect(faulty.halted).to.equal(true);
  });

  it('tears the last unsynced write at a chosen or a random byte', async () => {
    await durableFile(faulty, '/db/a', 'base');
    const file = await faulty.open('/db/a');
    await file.write([bytes('-first')], 4);
    await file.write([bytes('-second')], 10);
    const chosen = faulty.diskAfterPowerLoss({ keep: 'all', tearLastWrite: { keptBytes: 3, rest: 'absent' } });
    expect(content(chosen, '/db/a')).to.equal('base-first-se');
    const dropOthers = faulty.diskAfterPowerLoss({ tearLastWrite: { keptBytes: 7, rest: 'zeros' } });
    expect([...dropOthers.readFile('/db/a')]).to.deep.equal([...bytes('base'), ...Buffer.alloc(6), ...bytes('-second')]);
    const randoms = [1, 2].map(() => {
      const again = new FaultyMedium(memory, { seed: 5 });
      return again.diskAfterPowerLoss({ keep: 'all', tearLastWrite: true }).readFile('/db/a').toString('hex');
    });
    expect(randoms[0]).to.equal(randoms[1]);
    expect(faulty.halted).to.equal(false);
  });

  it('calls the hook before and after every mutating operation, in order', async () => {
    const events: string[] = [];
    faulty.onOperation = (e: OperationEvent) => { events.push(`${e.index}:${e.phase}:${e.op}`); };
    const file = await faulty.open('/db/a', { create: true });
    await file.write([bytes('x')], 0);
    await file.sync();
    await faulty.open('/db/a');
    file.readSync(Buffer.alloc(1), 0, 1, 0);
    faulty.failNext('syncDir');
    await expectSystemError(() => faulty.syncDir('/db'), 'EIO');
    expect(events).to.deep.equal([
      '1:before:open', '1:after:open', '2:before:write', '2:after:write', '3:before:sync', '3:after:sync',
      '4:before:syncDir',
    ]);
    expect(faulty.mutations).to.equal(4);
    expect(faulty.calls.open).to.equal(2);
  });

  /** Makes 200 writes and syncs of /db/a through a medium failing at random; which ones failed, with what. */
  async function randomRun(seed: number, rate: number): Promise<{ failures: string[]; events: FaultEvent[]; fired: number }> {
    const m = new MemoryMedium();
    await m.mkdirp('/db');
    const events: FaultEvent[] = [];
    const f = new FaultyMedium(m, { seed, onFault: (event) => events.push(event) });
    const file = await m.open('/db/a', { create: true }).then(() => f.open('/db/a'));
    const source = f.failRandomly({ rate, ops: ['write', 'sync'] });
    const failures: string[] = [];
    for (let i = 0; i < 100; i++) {
      for (const [op, call] of [['write', () => file.write([bytes('x')], i)], ['sync', () => file.sync()]] as const) {
        try {
          await call();
        } catch (err) {
          failures.push(`${i}:${op}:${(err as NodeJS.ErrnoException).code}`);
        }
      }
    }
    return { failures, events, fired: source.fired };
  }

  it('fails calls at random at a seeded rate, the same ones for the same seed, and tells onFault', async () => {
    const first = await randomRun(3, 0.1);
    const again = await randomRun(3, 0.1);
    expect(first.failures).to.deep.equal(again.failures);
    expect(first.fired).to.equal(first.failures.length);
    expect(first.fired).to.be.within(8, 40);
    expect(first.failures.some((f) => f.endsWith('EIO'))).to.equal(true);
    expect(first.failures.some((f) => f.endsWith('ENOSPC'))).to.equal(true);
    expect(first.events.map((e) => e.op)).to.deep.equal(first.failures.map((f) => f.split(':')[1]));
    expect(first.events.every((e) => e.random && e.path === '/db/a' && !e.lostWrites)).to.equal(true);
    expect((await randomRun(4, 0.1)).failures).to.not.deep.equal(first.failures);
    expect((await randomRun(3, 0)).fired).to.equal(0);
  });

  it('fails nothing at random while paused or once cancelled, and a planned fault comes first', async () => {
    const events: FaultEvent[] = [];
    faulty.onFault = (event) => events.push(event);
    const file = await faulty.open('/db/a', { create: true });
    const source = faulty.failRandomly({ rate: 1, ops: ['write'], codes: ['ENOSPC'], writtenBytes: 0 });
    await expectSystemError(() => file.write([bytes('x')], 0), 'ENOSPC');
    faulty.failNext('write', 'EIO');
    await expectSystemError(() => file.write([bytes('x')], 0), 'EIO');
    source.paused = true;
    await file.write([bytes('p')], 0);
    source.paused = false;
    await expectSystemError(() => file.write([bytes('x')], 0), 'ENOSPC');
    source.cancel();
    await file.write([bytes('c')], 1);
    expect(content(memory, '/db/a')).to.equal('pc');
    expect(source.fired).to.equal(2);
    expect(events.map((e) => `${e.code}:${e.random}`)).to.deep.equal(['ENOSPC:true', 'EIO:false', 'ENOSPC:true']);
    expect(() => faulty.failRandomly({ rate: 2 })).to.throw(RangeError);
  });

  it('a sync that loses its writes leaves them gone from the disk and the page cache, for good', async () => {
    await durableFile(faulty, '/db/a', 'base');
    const file = await faulty.open('/db/a');
    await file.write([bytes('-one')], 4);
    await file.write([bytes('-two')], 8);
    const events: FaultEvent[] = [];
    faulty.onFault = (event) => events.push(event);
    faulty.fail({ op: 'sync', lostWrites: true });
    await expectSystemError(() => file.sync(), 'EIO');
    expect(events).to.deep.equal([{ op: 'sync', path: '/db/a', code: 'EIO', random: false, lostWrites: true }]);
    // Whatever survived is durable, and the page cache shows just that: a later sync adds nothing.
    const after = memory.readFile('/db/a').toString('latin1');
    expect(after.startsWith('base')).to.equal(true);
    expect(memory.unsynced().dataChanges).to.equal(0);
    await file.sync();
    expect(memory.crash(DROP_UNSYNCED).readFile('/db/a').toString('latin1')).to.equal(after);
    // Over seeds, some writes are lost and some kept.
    const outcomes = new Set<string>();
    for (let seed = 0; seed < 40; seed++) {
      const m = new MemoryMedium();
      await m.mkdirp('/db');
      const f = new FaultyMedium(m, { seed });
      const h = await f.open('/db/b', { create: true });
      await h.write([bytes('one')], 0);
      await h.write([bytes('two')], 3);
      f.fail({ op: 'sync', lostWrites: true });
      await expectSystemError(() => h.sync(), 'EIO');
      outcomes.add(m.readFile('/db/b').toString('latin1'));
    }
    expect(outcomes).to.include('onetwo');
    expect(outcomes).to.include('');
    expect(outcomes.size).to.be.greaterThan(3);
  });

  it('draws lost writes for a random sync failure at the chance given', async () => {
    const file = await faulty.open('/db/a', { create: true });
    const events: FaultEvent[] = [];
    faulty.onFault = (event) => events.push(event);
    faulty.failRandomly({ rate: 1, ops: ['sync'], lostWritesChance: 1 });
    await file.write([bytes('gone')], 0);
    let caught: NodeJS.ErrnoException | undefined;
    await file.sync().catch((err: NodeJS.ErrnoException) => { caught = err; });
    expect(events).to.have.length(1);
    expect(caught?.code).to.equal(events[0].code);
    expect(events[0].lostWrites).to.equal(true);
    expect(memory.unsynced().dataChanges).to.equal(0);
    expect(() => writebackError({} as never, DROP_UNSYNCED)).to.throw(TypeError);
  });
});

describe('the file system medium: a write(2) that writes less than asked (lib/medium/fs.ts)', () => {
  // The module object itself (`import * as` gives a read-only view of it), as spec/lock.spec.ts does.
  const nodeFs = require('fs') as typeof fs;
  const realWritevSync = nodeFs.writevSync;
  const realWritev = nodeFs.writev;
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'logkv-short-write-')); });
  afterEach(() => {
    nodeFs.writevSync = realWritevSync;
    nodeFs.writev = realWritev;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Chunks of `sizes` bytes, each filled with its own letter. */
  const chunksOf = (sizes: number[]): Buffer[] => sizes.map((size, i) => Buffer.alloc(size, 0x61 + i));

  /** The first `limit` bytes of `chunks`, as writev would take them. */
  const prefix = (chunks: readonly NodeJS.ArrayBufferView[], limit: number): Buffer =>
    Buffer.concat(chunks.map((c) => Buffer.from(c.buffer, c.byteOffset, c.byteLength))).subarray(0, limit);

  type WritevCallback = (err: Error | null, n: number) => void;
  /** Puts `writev` in place of fs.writev (callback form) until afterEach restores it. */
  const patchWritev = (writev: (fd: number, buffers: NodeJS.ArrayBufferView[], position: number, cb: WritevCallback) => void): void => {
    nodeFs.writev = writev as unknown as typeof fs.writev;
  };
  /** Writes `chunks` at `position` into a new file through the medium; the file's bytes. */
  const writeNewFile = async (chunks: Buffer[], position: number): Promise<Buffer> => {
    const file = path.join(dir, 'f');
    const handle = await fileSystem.open(file, { create: true });
    await handle.write(chunks, position);
    await handle.close();
    return fs.readFileSync(file);
  };

  it('a small write that the kernel takes in part is finished by further writes, every byte in its place', async () => {
    const calls: string[] = [];
    // The first writev writes 5 bytes of the 3 chunks and says so; the rest go through the real one.
    nodeFs.writevSync = ((fd: number, buffers: NodeJS.ArrayBufferView[], position?: number | null): number => {
      calls.push(`writevSync ${position}`);
      nodeFs.writevSync = realWritevSync;
      return realWritevSync(fd, [prefix(buffers, 5)], position ?? undefined);
    }) as typeof fs.writevSync;
    patchWritev((fd, buffers, position, cb) => {
      calls.push(`writev ${position} ${buffers.map((b) => b.byteLength).join(',')}`);
      realWritev(fd, buffers, position, cb as never);
    });
    const chunks = chunksOf([3, 4, 2]);
    const written = await writeNewFile(chunks, 10);
    // The rest starts 5 bytes in: 2 bytes left of the second chunk, then the third.
    expect(calls).to.deep.equal(['writevSync 10', 'writev 15 2,2']);
    expect(written.toString('hex')).to.equal(Buffer.concat([Buffer.alloc(10), ...chunks]).toString('hex'));
  });

  it('a large write (through the thread pool) taken in part is finished too', async () => {
    const sizes: number[] = [];
    let first = true;
    patchWritev((fd, buffers, position, cb) => {
      sizes.push(buffers.reduce((n, b) => n + b.byteLength, 0));
      if (!first) return realWritev(fd, buffers, position, cb as never);
      first = false;
      realWritev(fd, [prefix(buffers, 70_000)], position, cb as never);
    });
    const chunks = chunksOf([40_000, 40_000, 20_000]);
    const written = await writeNewFile(chunks, 0);
    expect(sizes).to.deep.equal([100_000, 30_000]);
    expect(written.equals(Buffer.concat(chunks))).to.equal(true);
  });

  it('a write that makes no progress rejects with EIO instead of looping', async () => {
    nodeFs.writevSync = (() => 0) as typeof fs.writevSync;
    patchWritev((_fd, _buffers, _position, cb) => { setImmediate(() => cb(null, 0)); });
    const handle = await fileSystem.open(path.join(dir, 'f'), { create: true });
    let caught: unknown;
    try {
      await handle.write(chunksOf([8]), 0);
    } catch (err) {
      caught = err;
    }
    await handle.close();
    expect((caught as NodeJS.ErrnoException).code).to.equal('EIO');
  });

  it('sliceFrom() gives the chunks past the first `skip` bytes, as views', () => {
    const chunks = chunksOf([3, 4, 2]);
    const text = (list: Uint8Array[]): string[] => list.map((c) => Buffer.from(c).toString());
    expect(text(sliceFrom(chunks, 0))).to.deep.equal(['aaa', 'bbbb', 'cc']);
    expect(text(sliceFrom(chunks, 2))).to.deep.equal(['a', 'bbbb', 'cc']);
    expect(text(sliceFrom(chunks, 3))).to.deep.equal(['bbbb', 'cc']);
    expect(text(sliceFrom(chunks, 8))).to.deep.equal(['c']);
    expect(text(sliceFrom(chunks, 9))).to.deep.equal([]);
    const view = sliceFrom(chunks, 4)[0];
    expect(view.buffer).to.equal(chunks[1].buffer);
  });
});
