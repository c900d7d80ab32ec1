/**
 * Hot backup: a consistent copy of a live store in another directory, made while the store
 * serves reads and writes, that opens as an ordinary store. It copies files and byte ranges and
 * never parses a record, so it does not depend on the record layout. docs/durability.md
 * ("Hot backup") lists the fsyncs and renames in order; in brief:
 *
 *  1. The cut, synchronously at the call: every segment that has a file, with its flushed end
 *     (the bytes handed to the OS). Every write whose promise resolved before the call is below
 *     it, and since the writer moves `flushed` only past whole groups of whole batches
 *     (writer.ts #writeGroup), the cut is at a batch boundary. Only the newest segment can still
 *     grow (if it is a write segment): it is taken as the prefix [0, flushed).
 *  2. Pin and open: the segment set is pinned (segments.ts) so a compaction finishing now waits
 *     before it removes its inputs, while the backup opens descriptors of its own to every file
 *     of the cut and their hint files; then it unpins. A file removed later stays readable
 *     through those descriptors (POSIX; MemoryMedium alike). Linking goes by name, and falls back
 *     to a copy from the descriptor if the name has gone meanwhile.
 *  3. The destination: created durable, locked like a store, checked (not the store itself, not
 *     another store, not a directory of other things), then marked: `backup.incomplete` is
 *     created and the directory synced before any other change to it.
 *  4. Each file: kept if the destination already holds it (the same file, or verified bytes),
 *     linked (a sealed file, same file system), extended (a copy of a segment that was then the
 *     growing one, verified), or copied. Every file written is fdatasynced.
 *  5. Store files the cut does not hold are removed; the manifest `backup.manifest` is written
 *     under a temporary name, synced and renamed; the directory is synced; the marker is
 *     removed; the directory is synced again. Only then does the backup resolve.
 *
 * A crash anywhere leaves the destination marked (open() rejects LOGKV_INCOMPLETE_BACKUP,
 * `logkv check` says so) or complete, or, before the marker, the destination as it was.
 */
import { createHash, Hash, randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { ErrorCodes, LogkvError, corruption, ioError, isErrno } from './errors';
import { hintName, parseHintName } from './hint';
import type { FileStat, Medium, MediumFile } from './medium/types';
import { TEMP_SUFFIX, isWriteSegmentId, parseSegmentName, segmentName } from './segment';
import type { SegmentSet } from './segments';
import { SNAPSHOT_NAME } from './snapshot';

/** In a directory a backup is writing into: created first, removed last (step 3 and 5). */
export const BACKUP_MARKER_NAME = 'backup.incomplete';
/** In a backup: what it holds, for the next backup into it (kept, verified, extended). */
export const BACKUP_MANIFEST_NAME = 'backup.manifest';
/** In a store (and its backups): the store's identity, made by its first backup. */
export const STORE_ID_NAME = 'store.id';

export interface BackupOptions {
  /** Called as bytes of the store are read (copied or verified). */
  onProgress?: (progress: BackupProgress) => void;
  /**
   * Hard-link sealed files when the destination is on the same file system (falling back to
   * copies where it is not). `false` copies every byte, so the backup shares no disk blocks with
   * the store (a guard against damage to those blocks, which a link shares). @default true
   */
  link?: boolean;
}

export interface BackupProgress {
  bytesDone: number;
  bytesTotal: number;
}

export interface BackupResult {
  /** The destination directory. */
  dir: string;
  /** The newest segment of the backup and where it ends (null: the store had no segment file). */
  cut: { segmentId: number; offset: number } | null;
  /** Segment and hint files in the backup. */
  files: number;
  /** Files hard-linked to the store's. */
  filesLinked: number;
  /** Files written whole. */
  filesCopied: number;
  /** Files the destination held a prefix of (a then-growing segment), with the rest appended. */
  filesExtended: number;
  /** Files the destination already held whole: the same file (linked before), or verified bytes. */
  filesKept: number;
  /** Store files the destination held that are no longer in the store. */
  filesRemoved: number;
  /** Bytes written into the destination's segment and hint files: what this backup transferred. */
  bytesCopied: number;
  /** Bytes of the store read to verify files the destination already held (never written). */
  bytesVerified: number;
  durationMs: number;
  /** When it finished, in ms since the epoch (the store's clock). */
  finishedAt: number;
}

/** What a backup needs of the store: its files, and two helpers open() has. */
export interface BackupHost {
  readonly dir: string;
  /** The store's medium; the destination is a directory on it. */
  readonly medium: Medium;
  readonly segments: SegmentSet;
  /** The writer's failure, if it is poisoned: then the files' state is unknown and no backup starts. */
  failure(): LogkvError | undefined;
  /** Creates a directory and makes it and its entries durable (open.ts makeDurableDir). */
  prepareDir(dir: string): Promise<void>;
  /** Takes a directory's lock, as open() does (LOGKV_LOCKED if held). */
  lockDir(dir: string): Promise<{ release(): Promise<void> }>;
  now(): number;
}

/** Checks backup()'s arguments at the door; throws LOGKV_INVALID_ARGUMENT. */
export function checkBackupArguments(destDir: unknown, options: unknown): void {
  if (typeof destDir !== 'string' || destDir.length === 0) {
    throw new LogkvError(ErrorCodes.INVALID_ARGUMENT, 'the backup directory must be a non-empty string');
  }
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null) {
    throw new LogkvError(ErrorCodes.INVALID_ARGUMENT, 'backup options must be an object', { option: 'options' });
  }
  const { onProgress, link } = options as BackupOptions;
  if (onProgress !== undefined && typeof onProgress !== 'function') {
    throw new LogkvError(ErrorCodes.INVALID_ARGUMENT, 'onProgress must be a function', { option: 'onProgress' });
  }
  if (link !== undefined && typeof link !== 'boolean') {
    throw new LogkvError(ErrorCodes.INVALID_ARGUMENT, 'link must be a boolean', { option: 'link' });
  }
}

/** Rejects LOGKV_INCOMPLETE_BACKUP if `dir` holds the marker of an interrupted backup; open() asks first. */
export async function refuseIncompleteBackup(medium: Medium, dir: string): Promise<void> {
  const names = await medium.list(dir);
  if (!names.includes(BACKUP_MARKER_NAME)) return;
  throw new LogkvError(ErrorCodes.INCOMPLETE_BACKUP,
    `${dir} holds an incomplete backup (a backup into it was interrupted); back up into it again to complete it`,
    { file: path.join(dir, BACKUP_MARKER_NAME) });
}

/**
 * The store's backups: any number at a time (each into its own directory), stopped by close().
 * Holds the store's id once read or made.
 */
export class Backups {
  readonly #host: BackupHost;
  readonly #running = new Set<Promise<unknown>>();
  #aborted = false;
  #storeId: Promise<string> | undefined;

  constructor(host: BackupHost) {
    this.#host = host;
  }

  /**
   * Takes the cut now, synchronously, and pins the segment set; resolves when the backup is
   * complete and durable. Throws the writer's failure if it is poisoned.
   */
  start(destDir: string, options: BackupOptions): Promise<BackupResult> {
    const failure = this.#host.failure();
    if (failure !== undefined) throw failure;
    const cut = takeCut(this.#host);
    const unpin = this.#host.segments.pin();
    const job = new BackupJob(this.#host, path.resolve(destDir), cut, options, () => this.#aborted, () => this.#sourceId());
    const running = job.run(unpin);
    this.#running.add(running);
    void running.catch(() => undefined).finally(() => this.#running.delete(running));
    return running;
  }

  /** Stops running backups (they reject with LOGKV_CLOSED, their destination marked) and starts no more. */
  async stop(): Promise<void> {
    this.#aborted = true;
    await Promise.allSettled([...this.#running]);
  }

  /** The store's id: read from store.id, or made (durably) by the first backup of the store. */
  #sourceId(): Promise<string> {
    if (this.#storeId === undefined) {
      this.#storeId = readOrMakeStoreId(this.#host.medium, this.#host.dir);
      this.#storeId.catch(() => { this.#storeId = undefined; });
    }
    return this.#storeId;
  }
}

// ---------------------------------------------------------------- the cut

/** One file of the cut: the backup holds bytes [0, length) of it. */
interface CutFile {
  name: string;
  source: string;
  length: number;
  /** Never written again by the store (only removed): it may be linked, and kept by a later backup. */
  immutable: boolean;
  /** Our own descriptor, opened while the segment set was pinned. */
  handle?: MediumFile;
}

interface Cut {
  files: CutFile[];
  newest: { segmentId: number; offset: number } | null;
}

/**
 * Every segment with a file and its flushed end, now. The newest of them, if it is a write
 * segment, may still grow (the active segment, or a sealed one the writer is finishing); every
 * other is immutable: a segment is synced before the next one's file exists, and a compaction
 * output is complete before it is renamed into place, and neither is written again (recovery
 * only ever cuts or resets the newest write segment, and the newest is never one of these while
 * a newer file exists).
 */
function takeCut(host: BackupHost): Cut {
  const segments = [...host.segments.all()].filter((s) => s.file !== undefined).sort((a, b) => a.id - b.id);
  const newest = segments[segments.length - 1];
  const files = segments.map((s): CutFile => ({
    name: segmentName(s.id), source: s.path, length: s.flushed, immutable: s !== newest || !isWriteSegmentId(s.id),
  }));
  return { files, newest: newest === undefined ? null : { segmentId: newest.id, offset: newest.flushed } };
}

// ---------------------------------------------------------------- the manifest

interface ManifestEntry {
  name: string;
  size: number;
  /** SHA-256 of the file's bytes, when this backup wrote them (absent for a linked file). */
  sha256?: string;
  /** The destination file as stat() saw it once complete: any later change to it shows here. */
  dev: string;
  ino: string;
  mtimeNs: string;
}

interface Manifest {
  format: 'logkv-backup';
  version: 1;
  storeId: string;
  cut: Cut['newest'];
  createdAt: number;
  files: ManifestEntry[];
}

function parseManifest(text: string): Manifest | undefined {
  try {
    const value = JSON.parse(text) as Manifest;
    if (value.format !== 'logkv-backup' || value.version !== 1 || typeof value.storeId !== 'string' ||
        !Array.isArray(value.files)) return undefined;
    return value;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------- the store's id

const STORE_ID_PATTERN = /^[0-9a-f]{32}\n$/;
/** Larger than any store.id: a bound on what a damaged one makes us read. */
const SMALL_FILE_BYTES = 4096;

async function readSmallFile(medium: Medium, file: string): Promise<string | undefined> {
  let handle: MediumFile;
  try {
    handle = await medium.open(file, { readOnly: true });
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
  try {
    const size = Math.min(handle.sizeSync(), SMALL_FILE_BYTES);
    const buf = Buffer.alloc(size);
    return buf.toString('utf8', 0, handle.readSync(buf, 0, size, 0));
  } finally {
    await handle.close();
  }
}

/** Writes a small file whole under `file`'s name (temporary name, fdatasync, rename; no directory sync). */
async function writeSmallFile(medium: Medium, file: string, text: string): Promise<void> {
  const temp = file + TEMP_SUFFIX;
  const handle = await medium.open(temp, { create: true });
  try {
    await handle.truncate(0);
    await handle.write([Buffer.from(text)], 0);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await medium.rename(temp, file);
}

/**
 * The store's id, from `store.id`; if there is none, a new random one, made durable (the file,
 * then the directory) before it is used. A damaged id is corruption: it cannot be told from
 * another store's.
 */
async function readOrMakeStoreId(medium: Medium, dir: string): Promise<string> {
  const file = path.join(dir, STORE_ID_NAME);
  const text = await readSmallFile(medium, file);
  if (text !== undefined) {
    if (!STORE_ID_PATTERN.test(text)) throw corruption('store.id does not hold a store id', file, 0);
    return text.trim();
  }
  const id = randomBytes(16).toString('hex');
  await writeSmallFile(medium, file, `${id}\n`);
  await medium.syncDir(dir);
  return id;
}

// ---------------------------------------------------------------- one backup

/** What the destination holds before the backup changes it. */
interface DestState {
  names: Set<string>;
  manifest: Manifest | undefined;
  storeId: string | undefined;
}

type Action =
  | { kind: 'keep' }
  | { kind: 'link' }
  | { kind: 'extend'; entry: ManifestEntry }
  | { kind: 'copy' };

/** A file of the cut, what the destination and the store hold under its name, and what to do. */
interface Step {
  file: CutFile;
  entry: ManifestEntry | undefined;
  destStat: FileStat | undefined;
  sourceStat: FileStat | undefined;
  action: Action;
}

/** Errors of link(2) that mean this file system (or this pair of them) cannot link: copy instead. */
const CANNOT_LINK = new Set(['EXDEV', 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EMLINK']);
/** Bytes read and written per step; two buffers, so a read overlaps the previous write. */
const CHUNK_BYTES = 1024 * 1024;
/** Names a store's lock uses (lock.ts), which an empty destination may hold. */
const LOCK_NAMES = new Set(['LOCKS', 'LOCK', 'LOCK.owner', 'LOCK.takeover']);

class BackupJob {
  readonly #result: BackupResult;
  readonly #entries: ManifestEntry[] = [];
  readonly #buffers = [Buffer.allocUnsafe(CHUNK_BYTES), Buffer.allocUnsafe(CHUNK_BYTES)];
  #linking: boolean;
  #bytesDone = 0;
  #bytesTotal = 0;
  readonly #started = Date.now();

  constructor(private readonly host: BackupHost, private readonly dest: string, private readonly cut: Cut,
              private readonly options: BackupOptions, private readonly aborted: () => boolean,
              private readonly sourceId: () => Promise<string>) {
    this.#linking = options.link !== false && host.medium.link !== undefined;
    this.#result = {
      dir: dest, cut: cut.newest, files: 0, filesLinked: 0, filesCopied: 0, filesExtended: 0, filesKept: 0,
      filesRemoved: 0, bytesCopied: 0, bytesVerified: 0, durationMs: 0, finishedAt: 0,
    };
  }

  async run(unpin: () => void): Promise<BackupResult> {
    try {
      try {
        await this.#openCut();
      } finally {
        unpin();
      }
      await this.#intoDest();
    } catch (err) {
      throw ioError(err, `backing up ${this.host.dir} into ${this.dest}`, this.dest);
    } finally {
      await Promise.allSettled(this.cut.files.map((f) => f.handle?.close()));
    }
    this.#result.durationMs = Date.now() - this.#started;
    this.#result.finishedAt = this.host.now();
    return this.#result;
  }

  /**
   * Step 2, pinned: our own descriptors to the cut's files, and to the hint files they have. One
   * at a time: a failure then leaves no open still on its way, whose descriptor would leak.
   */
  async #openCut(): Promise<void> {
    const { medium, dir } = this.host;
    // Each handle goes into the cut as soon as it is open, where run() closes it whatever happens.
    for (const file of [...this.cut.files]) {
      file.handle = await medium.open(file.source, { readOnly: true });
      const id = parseSegmentName(file.name)!;
      const hintPath = path.join(dir, hintName(id));
      try {
        const handle = await medium.open(hintPath, { readOnly: true });
        this.cut.files.push({ name: hintName(id), source: hintPath, length: handle.sizeSync(), immutable: true, handle });
      } catch (err) {
        if (!isErrno(err, 'ENOENT')) throw err;
      }
    }
  }

  /** Steps 3 to 5, under the destination's lock. */
  async #intoDest(): Promise<void> {
    this.#refuseSameDir();
    await this.#precheck();
    await this.host.prepareDir(this.dest);
    this.#refuseSameDir();
    const lock = await this.host.lockDir(this.dest);
    try {
      const storeId = await this.sourceId();
      const state = await this.#readDest();
      this.#refuseForeign(state, storeId);
      await this.#mark(storeId);
      await this.#copyStoreId(state, storeId);
      const plan = await this.#plan(state);
      await this.#removeStale(state, new Set(plan.map((step) => step.file.name)));
      for (const step of plan) await this.#transfer(step);
      await this.#commit(storeId);
    } finally {
      await lock.release();
    }
  }

  /**
   * Before the destination is created or locked (which adds a LOCKS directory): a directory
   * that holds things but no sign of a backup or a store of ours is refused at once, so a
   * mistyped path is left as it was. #refuseForeign decides again under the lock.
   */
  async #precheck(): Promise<void> {
    let names: string[];
    try {
      names = await this.host.medium.list(this.dest);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return;
      throw err;
    }
    this.#refuseForeign({ names: new Set(names), manifest: undefined, storeId: undefined }, undefined);
  }

  #refuseSameDir(): void {
    const { dir, medium } = this.host;
    const same = this.dest === dir || (medium.isFileSystem && fs.existsSync(this.dest) && fs.realpathSync(this.dest) === fs.realpathSync(dir));
    if (same) {
      throw new LogkvError(ErrorCodes.INVALID_ARGUMENT, `cannot back up the store at ${dir} into its own directory`,
        { file: this.dest });
    }
  }

  async #readDest(): Promise<DestState> {
    const { medium } = this.host;
    const names = new Set(await medium.list(this.dest));
    const manifestText = names.has(BACKUP_MANIFEST_NAME) ? await readSmallManifest(medium, this.#path(BACKUP_MANIFEST_NAME)) : undefined;
    const storeIdText = names.has(STORE_ID_NAME) ? await readSmallFile(medium, this.#path(STORE_ID_NAME)) : undefined;
    return {
      names,
      manifest: manifestText === undefined ? undefined : parseManifest(manifestText),
      storeId: storeIdText === undefined ? undefined : storeIdText.trim(),
    };
  }

  /**
   * Refuses a destination that holds another store (its store.id or its manifest says so), or
   * that holds anything but a lock and is neither a backup nor a store of this one: a mistyped
   * path must not have store files written into it, or its own removed.
   */
  #refuseForeign(state: DestState, storeId: string | undefined): void {
    const other = storeId !== undefined && ((state.storeId !== undefined && state.storeId !== storeId) ||
      (state.manifest !== undefined && state.manifest.storeId !== storeId));
    if (other) {
      throw new LogkvError(ErrorCodes.INVALID_ARGUMENT, `${this.dest} holds another store or a backup of one`,
        { file: this.dest });
    }
    const ours = state.storeId !== undefined || state.names.has(STORE_ID_NAME) || state.names.has(BACKUP_MARKER_NAME) ||
      state.names.has(BACKUP_MANIFEST_NAME);
    if (!ours && [...state.names].some((name) => !LOCK_NAMES.has(name))) {
      throw new LogkvError(ErrorCodes.INVALID_ARGUMENT,
        `${this.dest} is not empty and holds no backup of this store; back up into an empty or new directory`,
        { file: this.dest });
    }
  }

  /** Step 3: the marker, durable before anything else in the destination changes. */
  async #mark(storeId: string): Promise<void> {
    const { medium } = this.host;
    const marker = await medium.open(this.#path(BACKUP_MARKER_NAME), { create: true });
    try {
      const note = `a logkv backup of store ${storeId} (${this.host.dir}) is being written here; until it completes, ` +
        'this directory is not a store: open() refuses it\n';
      await marker.truncate(0);
      await marker.write([Buffer.from(note)], 0);
      await marker.sync();
    } finally {
      await marker.close();
    }
    await medium.syncDir(this.dest);
  }

  /** The destination's store.id, written if it is missing or differs. */
  async #copyStoreId(state: DestState, storeId: string): Promise<void> {
    if (state.storeId === storeId) return;
    await writeSmallFile(this.host.medium, this.#path(STORE_ID_NAME), `${storeId}\n`);
  }

  // -------------------------------------------------------------- step 4: what to do with each file

  async #plan(state: DestState): Promise<Step[]> {
    const plan: Step[] = [];
    const entries = new Map((state.manifest?.files ?? []).map((e) => [e.name, e]));
    for (const file of this.cut.files) {
      const destStat = state.names.has(file.name) ? await this.#stat(this.#path(file.name)) : undefined;
      const step: Step = { file, entry: entries.get(file.name), destStat, sourceStat: await this.#stat(file.source),
        action: { kind: 'copy' } };
      step.action = this.#choose(step);
      plan.push(step);
      if (step.action.kind === 'copy' || step.action.kind === 'extend') this.#bytesTotal += file.length;
    }
    return plan;
  }

  /**
   * The rule (docs/durability.md, "Incremental backups"): a destination file is kept only if it
   * is provably the store's bytes. Linked: the same file as the store's (its inode), which a
   * sealed file never stops being. Copied: the manifest says which bytes it held when this
   * backup's predecessor finished, and stat() that it has not changed since (its inode, size and
   * mtime); those bytes are then checked against the store's by SHA-256. Segment names alone
   * prove nothing: a store emptied by compaction starts its ids again.
   */
  #choose({ file, entry, destStat, sourceStat }: Step): Action {
    const sameFile = destStat !== undefined && sourceStat !== undefined && sameInode(destStat, sourceStat);
    const linkable = file.immutable && file.handle!.sizeSync() === file.length;
    if (this.#linking && linkable) return sameFile ? { kind: 'keep' } : { kind: 'link' };
    const unchanged = entry !== undefined && entry.sha256 !== undefined && destStat !== undefined && !sameFile &&
      destStat.dev === entry.dev && destStat.ino === entry.ino && destStat.size === entry.size &&
      destStat.mtimeNs === entry.mtimeNs && entry.size <= file.length;
    return unchanged ? { kind: 'extend', entry: entry! } : { kind: 'copy' };
  }

  async #stat(file: string): Promise<FileStat | undefined> {
    const { stat } = this.host.medium;
    if (stat === undefined) return undefined;
    try {
      return await stat.call(this.host.medium, file);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      throw err;
    }
  }

  /** Removes the destination's store files that the cut does not hold (and any keydir snapshot, which would be stale). */
  async #removeStale(state: DestState, keep: Set<string>): Promise<void> {
    for (const name of [...state.names].sort()) {
      const storeFile = parseSegmentName(name) !== undefined || parseHintName(name) !== undefined ||
        name === SNAPSHOT_NAME || name.endsWith(TEMP_SUFFIX);
      if (!storeFile || keep.has(name)) continue;
      await this.host.medium.remove(this.#path(name));
      if (parseSegmentName(name) !== undefined || parseHintName(name) !== undefined) this.#result.filesRemoved++;
    }
  }

  // -------------------------------------------------------------- step 4: doing it

  async #transfer(step: Step): Promise<void> {
    this.#checkAborted();
    this.#result.files++;
    const { file } = step;
    if (step.action.kind === 'link') {
      if (this.#linking && await this.#link(file)) return;
      // No links here (this file or an earlier one found out): the plan made with them no longer
      // holds, and what the destination already has may still be kept.
      step.action = this.#linking ? { kind: 'copy' } : this.#choose(step);
      this.#bytesTotal += file.length;
    }
    const action = step.action;
    if (action.kind === 'keep') {
      this.#result.filesKept++;
      await this.#record(file.name);
    } else if (action.kind === 'extend') {
      await this.#extend(file, action.entry);
    } else if (action.kind === 'copy') {
      await this.#copy(file);
    }
  }

  /**
   * Links a sealed file; false if it cannot be: links are impossible here (and #linking is now
   * false), or its name is gone (a compaction removed it after we opened it).
   */
  async #link(file: CutFile): Promise<boolean> {
    const { medium } = this.host;
    const target = this.#path(file.name);
    // Under a temporary name, then renamed over the target: a link that fails leaves the
    // destination's file as it was, which the plan may then still keep.
    const temp = target + TEMP_SUFFIX;
    await medium.remove(temp);
    try {
      await medium.link!(file.source, temp);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'string' && CANNOT_LINK.has(code)) {
        if (code !== 'EMLINK') this.#linking = false;
        return false;
      }
      // Our descriptor still reads it.
      if (isErrno(err, 'ENOENT')) return false;
      throw err;
    }
    await medium.rename(temp, target);
    // rename(2) of a name onto another name of the same file does nothing, and leaves both.
    await medium.remove(temp);
    this.#result.filesLinked++;
    await this.#record(file.name);
    return true;
  }

  /** Writes the file whole, as a new file (never through an old name, which may be a link to the store's file). */
  async #copy(file: CutFile): Promise<void> {
    const { medium } = this.host;
    const target = this.#path(file.name);
    await medium.remove(target);
    const out = await medium.open(target, { create: true, exclusive: true });
    const hash = createHash('sha256');
    try {
      await this.#copyRange(file, 0, out, hash);
      await out.sync();
    } finally {
      await out.close();
    }
    this.#result.filesCopied++;
    await this.#record(file.name, hash.digest('hex'));
  }

  /**
   * The destination holds bytes [0, entry.size) of this file as the manifest describes them:
   * check the store's are the same, then append the rest. If they differ (the name now holds
   * other bytes), copy the file whole.
   */
  async #extend(file: CutFile, entry: ManifestEntry): Promise<void> {
    const hash = createHash('sha256');
    await this.#read(file, 0, entry.size, (chunk) => hash.update(chunk));
    this.#result.bytesVerified += entry.size;
    if (hash.copy().digest('hex') !== entry.sha256) {
      this.#bytesTotal += file.length;
      await this.#copy(file);
      return;
    }
    if (entry.size === file.length) {
      this.#result.filesKept++;
      this.#entries.push(entry);
      return;
    }
    const out = await this.host.medium.open(this.#path(file.name));
    try {
      await this.#copyRange(file, entry.size, out, hash);
      await out.sync();
    } finally {
      await out.close();
    }
    this.#result.filesExtended++;
    await this.#record(file.name, hash.digest('hex'));
  }

  /**
   * Reads [from, to) of a cut file in chunks, handing each to `use`. Reads are synchronous (the
   * medium has no other kind), so it yields to the event loop after each chunk: a read and a
   * hash of 1 MiB take about a millisecond, which is the longest a put waits behind it.
   */
  async #read(file: CutFile, from: number, to: number, use: (chunk: Buffer) => void): Promise<void> {
    const buf = this.#buffers[0];
    for (let at = from; at < to;) {
      this.#checkAborted();
      const n = this.#readChunk(file, buf, at, to);
      use(buf.subarray(0, n));
      at += n;
      this.#progress(n);
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /** Copies [from, file.length) of a cut file into `out` at the same offsets, hashing it. */
  async #copyRange(file: CutFile, from: number, out: MediumFile, hash: Hash): Promise<void> {
    let writing: Promise<void> | undefined;
    let which = 0;
    for (let at = from; at < file.length;) {
      this.#checkAborted();
      const buf = this.#buffers[which];
      which ^= 1;
      const n = this.#readChunk(file, buf, at, file.length);
      hash.update(buf.subarray(0, n));
      if (writing !== undefined) await writing;
      writing = out.write([buf.subarray(0, n)], at);
      writing.catch(() => undefined); // awaited below; this only keeps it from counting as unhandled meanwhile
      at += n;
      this.#result.bytesCopied += n;
      this.#progress(n);
    }
    if (writing !== undefined) await writing;
  }

  #readChunk(file: CutFile, buf: Buffer, at: number, to: number): number {
    const want = Math.min(buf.length, to - at);
    const n = file.handle!.readSync(buf, 0, want, at);
    if (n !== want) {
      // The cut is below what was handed to the OS, and sealed files never shrink: only damage does this.
      throw corruption(`${file.name} ended at ${at + n}, inside the backup's cut at ${file.length}`, file.source, at + n);
    }
    return n;
  }

  /** The manifest entry of a file complete in the destination: stat() of it now, and its hash if known. */
  async #record(name: string, sha256?: string): Promise<void> {
    const st = await this.#stat(this.#path(name));
    if (st === undefined) return; // a medium without stat(): nothing a later backup could trust
    this.#entries.push({ name, size: st.size, ...(sha256 === undefined ? {} : { sha256 }), dev: st.dev, ino: st.ino, mtimeNs: st.mtimeNs });
  }

  // -------------------------------------------------------------- step 5

  /** The manifest (synced, renamed), the directory synced, then the marker removed and the directory synced. */
  async #commit(storeId: string): Promise<void> {
    const { medium } = this.host;
    this.#checkAborted();
    const manifest: Manifest = {
      format: 'logkv-backup', version: 1, storeId, cut: this.cut.newest, createdAt: this.host.now(), files: this.#entries,
    };
    await writeSmallFile(medium, this.#path(BACKUP_MANIFEST_NAME), `${JSON.stringify(manifest)}\n`);
    await medium.syncDir(this.dest);
    await medium.remove(this.#path(BACKUP_MARKER_NAME));
    await medium.syncDir(this.dest);
  }

  #path(name: string): string {
    return path.join(this.dest, name);
  }

  #progress(bytes: number): void {
    this.#bytesDone += bytes;
    this.options.onProgress?.({ bytesDone: this.#bytesDone, bytesTotal: Math.max(this.#bytesTotal, this.#bytesDone) });
  }

  #checkAborted(): void {
    if (this.aborted()) throw new LogkvError(ErrorCodes.CLOSED, 'the store closed during the backup');
  }
}

function sameInode(a: FileStat, b: FileStat): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

/** The manifest's text, or undefined if it is too large to be one (a bound on what a damaged file makes us read). */
async function readSmallManifest(medium: Medium, file: string): Promise<string | undefined> {
  const handle = await medium.open(file, { readOnly: true });
  try {
    const size = handle.sizeSync();
    if (size > MAX_MANIFEST_BYTES) return undefined;
    const buf = Buffer.alloc(size);
    return buf.toString('utf8', 0, handle.readSync(buf, 0, size, 0));
  } finally {
    await handle.close();
  }
}

/** A manifest lists files by name (about 200 bytes each); no store has a million files. */
const MAX_MANIFEST_BYTES = 256 * 1024 * 1024;
