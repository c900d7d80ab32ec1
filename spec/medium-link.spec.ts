/**
 * The medium's optional link() and stat(), which hot backup uses: a second name for a file, and
 * which file a name refers to (and whether its bytes changed since).
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { FaultyMedium } from '../lib/medium/faulty';
import { fileSystem } from '../lib/medium/fs';
import { gateWrites } from '../lib/medium/gated';
import { DROP_UNSYNCED, KEEP_UNSYNCED, MemoryMedium } from '../lib/medium/memory';
import type { Medium } from '../lib/medium/types';
import { ErrorCodes, LogkvError } from '../lib';
import { tempDir } from './helpers';

async function write(medium: Medium, file: string, text: string, sync = true): Promise<void> {
  const handle = await medium.open(file, { create: true });
  await handle.write([Buffer.from(text)], handle.sizeSync());
  if (sync) await handle.sync();
  await handle.close();
}

async function read(medium: Medium, file: string): Promise<string> {
  const handle = await medium.open(file, { readOnly: true });
  const buf = Buffer.alloc(handle.sizeSync());
  handle.readSync(buf, 0, buf.length, 0);
  await handle.close();
  return buf.toString();
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<void> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  expect((caught as { code?: string } | undefined)?.code).to.equal(code);
}

/** The same contract on every medium that links. */
function linkContract(name: string, make: () => Promise<{ medium: Medium; dir: string }>): void {
  describe(`${name}: link() and stat()`, () => {
    it('gives a file a second name: one file, the same identity, changes seen through both', async () => {
      const { medium, dir } = await make();
      const a = path.join(dir, 'a');
      const b = path.join(dir, 'b');
      await write(medium, a, 'one');
      await medium.link!(a, b);
      const [sa, sb] = [await medium.stat!(a), await medium.stat!(b)];
      expect(sb.dev).to.equal(sa.dev);
      expect(sb.ino).to.equal(sa.ino);
      expect(sb.size).to.equal(3);
      await write(medium, b, 'two');
      expect(await read(medium, a)).to.equal('onetwo');
      await medium.remove(a);
      expect(await read(medium, b), 'the other name keeps the file').to.equal('onetwo');
    });

    it('a file made anew under a name has another identity; a write changes the mtime and size', async () => {
      const { medium, dir } = await make();
      const a = path.join(dir, 'a');
      const keep = path.join(dir, 'keep');
      await write(medium, a, 'x');
      await medium.link!(a, keep); // so the first file lives on and its inode cannot be reused
      const first = await medium.stat!(a);
      await new Promise((resolve) => setTimeout(resolve, 5));
      await write(medium, a, 'y');
      const written = await medium.stat!(a);
      expect(written.ino).to.equal(first.ino);
      expect(written.size).to.equal(2);
      expect(written.mtimeNs).to.not.equal(first.mtimeNs);
      await medium.remove(a);
      await write(medium, a, 'xy');
      expect((await medium.stat!(a)).ino).to.not.equal(first.ino);
    });

    it('rejects EEXIST onto an existing name and ENOENT from a missing one; stat() of a missing file ENOENT', async () => {
      const { medium, dir } = await make();
      await write(medium, path.join(dir, 'a'), 'a');
      await write(medium, path.join(dir, 'b'), 'b');
      await rejectsWith(medium.link!(path.join(dir, 'a'), path.join(dir, 'b')), 'EEXIST');
      await rejectsWith(medium.link!(path.join(dir, 'missing'), path.join(dir, 'c')), 'ENOENT');
      await rejectsWith(medium.stat!(path.join(dir, 'missing')), 'ENOENT');
    });
  });
}

linkContract('FsMedium', async () => ({ medium: fileSystem, dir: tempDir('link') }));
linkContract('MemoryMedium', async () => {
  const medium = new MemoryMedium();
  await medium.mkdirp('/d');
  return { medium, dir: '/d' };
});
linkContract('FaultyMedium over MemoryMedium', async () => {
  const memory = new MemoryMedium();
  await memory.mkdirp('/d');
  return { medium: new FaultyMedium(memory, { seed: 1 }), dir: '/d' };
});
linkContract('gateWrites over FsMedium', async () => ({ medium: gateWrites(fileSystem, () => undefined), dir: tempDir('gated') }));

describe('MemoryMedium links through a crash', () => {
  it('a link survives a power loss only once its directory is synced, and then shares the file', async () => {
    const medium = new MemoryMedium();
    await medium.mkdirp('/d');
    await medium.syncDir('/');
    await write(medium, '/d/a', 'data');
    await medium.syncDir('/d');
    await medium.link('/d/a', '/d/b');
    expect(medium.crash(DROP_UNSYNCED).exists('/d/b')).to.equal(false);
    expect(medium.crash(KEEP_UNSYNCED).readFile('/d/b').toString()).to.equal('data');
    await medium.syncDir('/d');
    const after = medium.crash(DROP_UNSYNCED);
    expect(after.readFile('/d/b').toString()).to.equal('data');
    // Still one file after the crash: a write through one name shows through the other.
    await write(after, '/d/b', '!');
    expect(after.readFile('/d/a').toString()).to.equal('data!');
  });

  it('keeps a file\'s identity through a crash and a fork, and its mtime with the bytes that survived', async () => {
    const medium = new MemoryMedium();
    await medium.mkdirp('/d');
    await medium.syncDir('/');
    await write(medium, '/d/a', 'synced');
    await medium.syncDir('/d');
    const synced = await medium.stat('/d/a');
    await write(medium, '/d/a', '+lost', false);
    const dropped = await medium.crash(DROP_UNSYNCED).stat('/d/a');
    expect(dropped).to.deep.equal(synced);
    const kept = await medium.crash(KEEP_UNSYNCED).stat('/d/a');
    expect(kept).to.deep.equal(await medium.stat('/d/a'));
    expect(await medium.fork().stat('/d/a')).to.deep.equal(await medium.stat('/d/a'));
  });
});

describe('FaultyMedium and gateWrites around link()', () => {
  it('FaultyMedium fails a link on demand, counts it, and reports it to the hook as mutating', async () => {
    const memory = new MemoryMedium();
    await memory.mkdirp('/d');
    await write(memory, '/d/a', 'a');
    const ops: string[] = [];
    const faulty = new FaultyMedium(memory, { seed: 2, onOperation: (e) => { ops.push(`${e.phase} ${e.op} ${e.to ?? ''}`); } });
    faulty.failNext('link', 'ENOSPC');
    await rejectsWith(faulty.link!('/d/a', '/d/b'), 'ENOSPC');
    expect(memory.exists('/d/b')).to.equal(false);
    await faulty.link!('/d/a', '/d/b');
    expect(faulty.calls.link).to.equal(2);
    expect(ops).to.deep.equal(['before link /d/b', 'before link /d/b', 'after link /d/b']);
  });

  it('a medium without link() gives FaultyMedium and gateWrites none either', () => {
    const fsm = fileSystem;
    const withoutLink: Medium = { isFileSystem: true, mkdirp: (d) => fsm.mkdirp(d), list: (d) => fsm.list(d),
      open: (f, o) => fsm.open(f, o), rename: (a, b) => fsm.rename(a, b), remove: (f) => fsm.remove(f),
      syncDir: (d) => fsm.syncDir(d) };
    expect(new FaultyMedium(withoutLink).link).to.equal(undefined);
    expect(gateWrites(withoutLink, () => undefined).link).to.equal(undefined);
    expect(gateWrites(withoutLink, () => undefined).stat).to.equal(undefined);
  });

  it('gateWrites asks the lock before a link, and stat() needs no asking', async () => {
    const dir = tempDir('gated-lost');
    fs.writeFileSync(path.join(dir, 'a'), 'a');
    const lost = new LogkvError(ErrorCodes.LOCK_LOST, 'lost');
    const gated = gateWrites(fileSystem, () => lost);
    let caught: unknown;
    try {
      await gated.link!(path.join(dir, 'a'), path.join(dir, 'b'));
    } catch (err) {
      caught = err;
    }
    expect((caught as LogkvError).code).to.equal(ErrorCodes.LOCK_LOST);
    expect(fs.existsSync(path.join(dir, 'b'))).to.equal(false);
    expect((await gated.stat!(path.join(dir, 'a'))).size).to.equal(1);
  });
});
