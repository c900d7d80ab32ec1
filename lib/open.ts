/**
 * open(): from a directory to a Store that serves. In order (docs/recovery.md has the detail):
 *
 *  1. the directory is created if need be and made durable (makeDurableDir);
 *  2. the lock is taken, so this process is the directory's one owner (takeLock);
 *  3. recovery replays the segments (or loads the snapshot) into a fresh index, cutting a torn
 *     tail off the newest segment;
 *  4. the rooms are built over what recovery found (buildStore): the segment set, the reader,
 *     the writer (with the version counter recovery found), the compaction switch, the
 *     compactions and the change feed, then the Store over them.
 *
 * Only this module makes Stores (storeOver), so a Store a user holds is always one that open()
 * built and started, once.
 */
import * as os from 'os';
import * as path from 'path';
import { Backups, refuseIncompleteBackup } from './backup';
import { Compactions } from './compactor';
import { ErrorCodes, LogkvError, ioError, isErrno } from './errors';
import { KeyIndex } from './keyindex';
import { DirLock } from './lock';
import { fileSystem } from './medium/fs';
import { gateWrites } from './medium/gated';
import type { Medium } from './medium/types';
import { OpenOptions, ResolvedOptions, describe, resolveOptions } from './options';
import { Reader } from './reader';
import { recover } from './recovery';
import { SegmentSet } from './segments';
import { openShared } from './shared/role';
import { Rooms, Store, storeOver } from './store';
import { CompactionSwitch } from './switch';
import { ChangeFeed } from './watch';
import { LogWriter } from './writer';

/** What the store needs of its directory's lock. */
export interface HeldLock {
  release: () => Promise<void>;
  /** Asked before every change to the medium: an error (LOGKV_LOCK_LOST) once the lock is no longer ours. */
  mayWrite: () => LogkvError | undefined;
}

/**
 * Where a store lives when open() is given no directory: $LOGKV_DIR if set, else the platform's
 * data directory (Linux: $XDG_DATA_HOME or ~/.local/share; macOS: ~/Library/Application Support)
 * followed by logkv/default.
 */
export function defaultDir(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): string {
  if (env.LOGKV_DIR) return path.resolve(env.LOGKV_DIR);
  const home = env.HOME || os.homedir();
  const base = platform === 'darwin'
    ? path.join(home, 'Library', 'Application Support')
    : env.XDG_DATA_HOME && path.isAbsolute(env.XDG_DATA_HOME) ? env.XDG_DATA_HOME : path.join(home, '.local', 'share');
  return path.join(base, 'logkv', 'default');
}

/** Stores of non-file-system media open in this process, so they are single-owner too. */
const openOnMedia = new WeakMap<Medium, Set<string>>();

/**
 * Opens (creating if needed) the store in `dir`, recovering from any crash: a torn tail of the
 * newest segment is cut off, and everything acknowledged before it is there.
 * Rejects with LOGKV_LOCKED if another process or another open() here holds it, and with
 * LOGKV_CORRUPTION if a sealed segment is damaged.
 */
export async function open<V = unknown>(dir?: string, options?: OpenOptions): Promise<Store<V>> {
  if (dir !== undefined && (typeof dir !== 'string' || dir.length === 0)) {
    throw new LogkvError(ErrorCodes.INVALID_ARGUMENT, `dir must be a non-empty string, received ${describe(dir)}`);
  }
  const resolved = resolveOptions(options);
  const medium = resolved.medium ?? fileSystem;
  const where = path.resolve(dir ?? defaultDir());
  try {
    await makeDurableDir(medium, where);
  } catch (err) {
    throw ioError(err, `creating ${where}`, where);
  }
  // A shared store's owner is elected by its lock, and the others become its clients (lib/shared/).
  if (resolved.shared) return openShared<V>(where, resolved);
  const lock = await takeLock(medium, where, resolved.lockStaleMs);
  // From here every change to the disk first asks the lock whether this process still owns it
  // (medium/gated.ts), beyond the writer's own asking: compaction, hints, the snapshot, recovery.
  const owned = medium.isFileSystem ? gateWrites(medium, lock.mayWrite) : medium;
  return buildStore<V>(owned, where, resolved, lock);
}

/**
 * Recovers the store in `dir` (made durable, its lock held) and builds the rooms over it. On
 * failure the lock is released.
 */
export async function buildStore<V>(medium: Medium, dir: string, options: ResolvedOptions, lock: HeldLock): Promise<Store<V>> {
  return storeOver<V>(await recoverRooms(medium, dir, options, lock));
}

/** What a shared store's owner hears of (lib/shared/role.ts): each written group, each compaction switch. */
export interface OwnerHooks {
  /** After a group of writes reached the OS, before any of its calls' continuations run. */
  afterGroup?: () => void;
  /** Right after a compaction switch ended, before its inputs are removed. */
  afterSwitch?: () => void;
  /**
   * The change feed to serve watch() from: a shared store keeps one through its changes of role
   * (lib/shared/role.ts), and tells the writer itself when to publish to it (writer.onCommit).
   * Absent: a new feed, wired to the writer.
   */
  feed?: ChangeFeed;
}

/** recover() into a fresh index, and the rooms over it. On failure the lock is released. */
export async function recoverRooms(medium: Medium, dir: string, options: ResolvedOptions, lock: HeldLock,
                                   hooks: OwnerHooks = {}): Promise<Rooms> {
  try {
    await refuseIncompleteBackup(medium, dir);
    const index = new KeyIndex(options.clock);
    const recovered = await recover(medium, dir,
      (bytes, start, length, entry) => index.applyBytes(bytes, start, length, entry),
      (count) => index.reserve(count), options.maxStoreBytes);
    if (recovered.keydir !== undefined) index.load(recovered.keydir);
    const segments = new SegmentSet(dir, recovered.segments, recovered.strayBytes);
    const reader = new Reader(segments, options.cacheBytes);
    return writeRooms(medium, dir, options, lock,
      { index, segments, reader, recovery: recovered.report, nextVersion: recovered.nextVersion }, hooks);
  } catch (err) {
    await lock.release();
    throw ioError(err, `opening ${dir}`, dir);
  }
}

/** What the rooms that write are built over (writeRooms). */
export interface ReadRooms extends Pick<Rooms, 'index' | 'segments' | 'reader' | 'recovery'> {
  /** The version the next write gets: above every version the store's files ever held. */
  nextVersion: number;
}

/**
 * The rooms that write (the writer, the compaction switch, the compactions, the backups and the
 * change feed's source) over an index, a segment set and a reader that hold the whole log:
 * recovery's, or a shared store's client's that takes the store over. Starts the sync timer and
 * the index's expiry sweeper.
 */
export function writeRooms(medium: Medium, dir: string, options: ResolvedOptions, lock: HeldLock,
                           read: ReadRooms, hooks: OwnerHooks = {}): Rooms {
  const { index, segments, reader } = read;
  const writer = new LogWriter({
    dir, medium, options, segments, index, reader, mayWrite: lock.mayWrite, nextVersion: read.nextVersion,
  });
  const protocol = new CompactionSwitch({
    dir, maxStoreBytes: options.maxStoreBytes, segments, index, writer, reader, afterSwitch: hooks.afterSwitch,
  });
  const compactions = new Compactions({ dir, medium, options, segments, index, writer, protocol });
  const backups = new Backups({
    dir, medium, segments, failure: () => writer.failure, now: () => options.clock(),
    prepareDir: (dest) => makeDurableDir(medium, dest),
    lockDir: (dest) => takeLock(medium, dest, options.lockStaleMs),
  });
  // The writer calls this right after it resolves a group's promise, synchronously, so the
  // promise's continuations (the caller's code, an answer to a client) all run after it.
  writer.afterEachGroup(() => {
    hooks.afterGroup?.();
    compactions.maybeStartAuto();
  });
  // The writer tells the feed of committed writes only while someone watches.
  const feed: ChangeFeed = hooks.feed ?? new ChangeFeed((active) => writer.onCommit(active ? (records) => feed.publish(records) : undefined));
  writer.startSyncTimer();
  index.start();
  return {
    dir, medium, options, index, segments, reader, writer, compactions, backups, feed, recovery: read.recovery, release: lock.release,
  };
}

/**
 * Creates the store's directory if it is missing, and makes it and its entries durable before the
 * store builds on them. A new directory, like a new file, survives a power loss only once its
 * parent is synced; and the entries found in an existing one may have been made by a process that
 * was killed before it synced them (a segment it had just created, say), which a power loss could
 * still take after this store has written to them and acknowledged it. Two directory syncs per
 * open buy that; docs/durability.md has the whole protocol.
 */
export async function makeDurableDir(medium: Medium, dir: string): Promise<void> {
  const created: string[] = [];
  for (let at = dir; path.dirname(at) !== at && !(await isDirectory(medium, at)); at = path.dirname(at)) created.push(at);
  await medium.mkdirp(dir);
  for (const parent of new Set([path.dirname(dir), ...created.map((at) => path.dirname(at))])) {
    try {
      await medium.syncDir(parent);
    } catch (err) {
      // A parent we may not read cannot be opened to sync it; there is nothing better to do.
      if (!isErrno(err, 'EACCES') && !isErrno(err, 'EPERM')) throw err;
    }
  }
  await medium.syncDir(dir);
}

async function isDirectory(medium: Medium, dir: string): Promise<boolean> {
  try {
    await medium.list(dir);
    return true;
  } catch (err) {
    return !isErrno(err, 'ENOENT');
  }
}

/**
 * Takes the directory's lock: the file-system lock (lock.ts) on the real file system, a
 * per-process registry on other media.
 */
async function takeLock(medium: Medium, dir: string, staleMs: number): Promise<HeldLock> {
  if (medium.isFileSystem) {
    let lock: DirLock;
    try {
      lock = await DirLock.acquire(dir, { staleMs });
    } catch (err) {
      throw ioError(err, `locking ${dir}`, dir);
    }
    return { release: () => lock.release(), mayWrite: () => lock.mayWrite() };
  }
  let held = openOnMedia.get(medium);
  if (held === undefined) openOnMedia.set(medium, (held = new Set()));
  if (held.has(dir)) throw new LogkvError(ErrorCodes.LOCKED, `store ${dir} is open in this process`, { pid: process.pid, file: dir });
  held.add(dir);
  return { release: async () => { held!.delete(dir); }, mayWrite: () => undefined };
}
