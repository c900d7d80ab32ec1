/**
 * The file a shared client's follower opens read-only (lib/shared/follower.ts, openReadOnlyFile):
 * its sync() must be what the MediumFile contract says, an fdatasync of that file, even though
 * the descriptor is read-only (Linux and macOS allow it). It used to resolve without a syscall,
 * claiming durability it never asked for. The spec watches node's fs.fdatasync, the call
 * lib/medium/fs.ts makes too.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { openReadOnlyFile } from '../lib/shared/follower';
import { systemError, tempDir } from './helpers';

describe("a shared client's read-only file (follower.ts)", () => {
  // The module object itself (`import * as` gives a read-only view of it); lib/ sees a change to it.
  const nodeFs = require('fs') as typeof fs;
  const realFdatasync = nodeFs.fdatasync;
  afterEach(() => { nodeFs.fdatasync = realFdatasync; });

  /** The file system and inode a descriptor or path refers to. */
  const identity = (stat: fs.Stats): string => `${stat.dev}:${stat.ino}`;

  it('sync() fdatasyncs the descriptor it reads through, and resolves once that has', async () => {
    const file = path.join(tempDir(), 'a.seg');
    fs.writeFileSync(file, 'records');
    const handle = openReadOnlyFile(file);
    const synced: string[] = [];
    let finish: (() => void) | undefined;
    nodeFs.fdatasync = ((fd: number, callback: fs.NoParamCallback): void => {
      synced.push(identity(fs.fstatSync(fd)));
      finish = () => realFdatasync(fd, callback);
    }) as typeof fs.fdatasync;
    try {
      let settled = false;
      const syncing = handle.sync().finally(() => { settled = true; });
      await new Promise((resolve) => setImmediate(resolve));
      expect(synced).to.deep.equal([identity(fs.statSync(file))]);
      expect(settled, 'sync() resolved before its fdatasync did').to.equal(false);
      finish!();
      await syncing;
    } finally {
      nodeFs.fdatasync = realFdatasync;
      await handle.close();
    }
    // With the real call: the read-only descriptor may be synced.
    const again = openReadOnlyFile(file);
    try {
      await again.sync();
    } finally {
      await again.close();
    }
  });

  it('a failing fdatasync rejects sync() with its error', async () => {
    const file = path.join(tempDir(), 'a.seg');
    fs.writeFileSync(file, 'records');
    const handle = openReadOnlyFile(file);
    nodeFs.fdatasync = ((_fd: number, callback: fs.NoParamCallback): void => {
      process.nextTick(callback, systemError('EIO'));
    }) as typeof fs.fdatasync;
    let caught: unknown;
    try {
      await handle.sync();
    } catch (err) {
      caught = err;
    } finally {
      nodeFs.fdatasync = realFdatasync;
      await handle.close();
    }
    expect((caught as NodeJS.ErrnoException | undefined)?.code).to.equal('EIO');
  });
});
