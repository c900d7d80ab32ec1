/**
 * logkv: an embedded, crash-safe key-value store on an append-only log.
 *
 *   const store = await open<User>('./data');
 *   await store.set('user:1', { name: 'Ada' }, { ttl: 60_000 });
 *   const user = await store.get('user:1');
 *   await store.close();
 */
import * as os from 'os';
import * as path from 'path';
import { ErrorCodes, LogkvError, ioError, isErrno } from './errors';
import { DirLock } from './lock';
import { fileSystem } from './medium/fs';
import type { Medium } from './medium/types';
import { OpenOptions, describe, resolveOptions } from './options';
import { recover } from './recovery';
import { Store } from './store';

export { ErrorCodes, LogkvError } from './errors';
export type { ErrorCode, ErrorDetails } from './errors';
export type { OpenOptions, SyncMode } from './options';
export type { BatchOperation, IterateOptions, StoreEntry, StoreStats, WriteOptions } from './store';
export type { RecoveryReport, TruncationReport } from './recovery';
export type { CompactOptions, CompactionProgress, CompactionResult } from './compactor';
export type { Medium, MediumFile, OpenFileOptions } from './medium/types';
export { MemoryMedium, DROP_UNSYNCED, KEEP_UNSYNCED, randomCrash } from './medium/memory';
export type { ChangeFate, CrashChooser, DataChange, EntryChange, SystemError, UnsyncedDirectory, UnsyncedFile } from './medium/memory';
export { FaultyMedium } from './medium/faulty';
export type { Fault, FaultOperation, FaultPlan, FaultyOptions, OperationEvent, PowerLossOptions } from './medium/faulty';
export { seededRandom } from './medium/random';
export type { Random } from './medium/random';
export { Store } from './store';
export { FORMAT_VERSION } from './format';
export { checkStore } from './check';
export type { CheckOptions, CheckProblem, CheckReport, CheckSeverity } from './check';

// Backup and restore as NDJSON (lib/dump.ts), the library side of `logkv dump` and `logkv load`.
export { dumpLines, dumpStore, loadStore } from './dump';
export type { DumpOptions, DumpProgress, DumpResult, LoadInput, LoadOptions, LoadProgress, LoadResult } from './dump';

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
  const lock = await takeLock(medium, where);
  const store = new Store<V>({
    dir: where,
    medium,
    options: resolved,
    release: lock.release,
    lockCompromised: lock.compromised,
  });
  try {
    const { segments, report, keydir } = await recover(medium, where,
      (bytes, start, length, entry) => store.applyRecovered(bytes, start, length, entry),
      (count) => store.reserveRecovered(count));
    store.start(segments, report, keydir);
  } catch (err) {
    await lock.release();
    throw ioError(err, `opening ${where}`, where);
  }
  return store;
}

/**
 * Creates the store's directory if it is missing, and makes it and its entries durable before the
 * store builds on them. A new directory, like a new file, survives a power loss only once its
 * parent is synced; and the entries found in an existing one may have been made by a process that
 * was killed before it synced them (a segment it had just created, say), which a power loss could
 * still take after this store has written to them and acknowledged it. Two directory syncs per
 * open buy that; docs/durability.md has the whole protocol.
 */
async function makeDurableDir(medium: Medium, dir: string): Promise<void> {
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

async function takeLock(medium: Medium, dir: string):
    Promise<{ release: () => Promise<void>; compromised: () => Error | undefined }> {
  if (medium.isFileSystem) {
    let lock: DirLock;
    try {
      lock = await DirLock.acquire(dir);
    } catch (err) {
      throw ioError(err, `locking ${dir}`, dir);
    }
    return { release: () => lock.release(), compromised: () => lock.compromised };
  }
  let held = openOnMedia.get(medium);
  if (held === undefined) openOnMedia.set(medium, (held = new Set()));
  if (held.has(dir)) throw new LogkvError(ErrorCodes.LOCKED, `store ${dir} is open in this process`, { pid: process.pid, file: dir });
  held.add(dir);
  return { release: async () => { held!.delete(dir); }, compromised: () => undefined };
}
