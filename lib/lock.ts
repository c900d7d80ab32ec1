/**
 * The single-owner lock of a store directory, by generations. docs/locking.md has the protocol,
 * the argument that it never admits two writers, and what each timeout means; in brief:
 *
 * - The lock is a directory `<dir>/LOCKS/` of generation files named by number (`1`, `2`, ...).
 *   Whoever created the highest generation owns the store. A generation file holds its owner's
 *   record (pid, hostname, boot id, PID namespace, process start time, its lockStaleMs) and a
 *   heartbeat counter; an empty one is a released lock. Files only ever appear whole: the
 *   record is written to a temporary file first, which is then hard-linked to the generation's
 *   name. link(2) fails with EEXIST if the name exists, so of all the processes that try to
 *   create generation n + 1, one succeeds.
 * - A generation is created only after judging the one below it free (released), dead (the pid
 *   tells: same host, boot and PID namespace) or stale (its heartbeat stopped). Nothing is ever
 *   removed in order to take it: a takeover is creating the next number, and the highest
 *   generation is never removed (release empties it), so no check-then-remove race exists.
 * - Every heartbeat, the owner writes the next value of its counter in place (pwrite on its own
 *   descriptor) and checks that the name still holds its file and that no next generation
 *   exists. It may write only while its last good check is younger than half the lease;
 *   `mayWrite()` renews the lease synchronously when it is older. A taker of a stale owner watches the heartbeat
 *   stand still for a whole lease first, so the owner's lease has run out before it takes over.
 * - The owner removes the generations below its own (lowest first) and old temporary files.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { performance } from 'perf_hooks';
import { ErrorCodes, LogkvError, ioError, isErrno } from './errors';
import { DEFAULTS } from './options';

/** The directory of generation files, inside the store's directory. */
export const LOCKS_DIR = 'LOCKS';
/** The files of the lock before generations (proper-lockfile's mkdir lock and its owner file). */
export const LEGACY_LOCK_NAME = 'LOCK';
export const LEGACY_OWNER_NAME = 'LOCK.owner';
export const LEGACY_TAKEOVER_NAME = 'LOCK.takeover';

/** A temporary file lives for microseconds; one this old was left by a process that died making it. */
const TEMP_GARBAGE_MS = 60_000;
/** Acquiring gives up with LOGKV_LOCKED after this many generations moved under it. */
const MAX_ATTEMPTS = 8;
/** Up to 15 digits, so every generation number is exact in a double. */
const GENERATION_PATTERN = /^[1-9][0-9]{0,14}$/;
const TEMP_PREFIX = 'tmp-';

/**
 * The timings derived from lockStaleMs. An owner writes a heartbeat every `heartbeatMs` and writes
 * only while its last good check is younger than `leaseMs / 2`; a taker takes a stale owner over
 * only after seeing its heartbeat stand still for `leaseMs` (so the owner's lease has run out),
 * having first seen it silent for `staleMs - leaseMs` by the wall clock.
 */
export interface LockTimes {
  staleMs: number;
  heartbeatMs: number;
  leaseMs: number;
}

export function lockTimes(staleMs: number): LockTimes {
  return { staleMs, heartbeatMs: Math.floor(staleMs / 10), leaseMs: Math.floor(staleMs / 3) };
}

/** What a generation file says about its owner. Unknown fields are kept for later versions. */
export interface OwnerRecord {
  v: 1;
  pid: number;
  hostname: string;
  /** Linux: /proc/sys/kernel/random/boot_id, so an owner from before a reboot is known dead. */
  bootId?: string;
  /** Linux: the link /proc/self/ns/pid, so a pid is compared only within one PID namespace. */
  pidNs?: string;
  /** Linux: the start time of the process in clock ticks since boot, so a reused pid is told apart. */
  startTicks?: string;
  /** The owner's lockStaleMs: a taker waits at least this long, whatever its own setting. */
  staleMs: number;
  /** Wall clock when the lock was taken, ms since the epoch. For people; nothing decides by it. */
  createdAt: number;
  /** Set when the owner opened the store with `shared: true`: it serves clients (docs/sharing.md). */
  shared?: boolean;
}

// ---------------------------------------------------------------- who we are, who they are

interface ProcessIdentity {
  bootId?: string;
  pidNs?: string;
  /** Whether /proc shows this process's own PID namespace, so /proc/<pid> means what kill(pid) means. */
  procUsable: boolean;
}

let identityCache: ProcessIdentity | undefined;

function identity(): ProcessIdentity {
  if (identityCache !== undefined) return identityCache;
  const bootId = readTrimmed('/proc/sys/kernel/random/boot_id');
  let pidNs: string | undefined;
  try {
    pidNs = fs.readlinkSync('/proc/self/ns/pid');
  } catch {
    pidNs = undefined;
  }
  // A /proc mounted for another PID namespace (a container started without its own) numbers
  // processes differently from kill(): then /proc/<pid> says nothing about our pids.
  const selfStat = readTrimmed('/proc/self/stat');
  const procUsable = selfStat !== undefined && Number(selfStat.split(' ')[0]) === process.pid;
  identityCache = { bootId, pidNs, procUsable };
  return identityCache;
}

function readTrimmed(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** A process's start time in clock ticks since boot, 'zombie' if it has exited, or undefined. */
export function processStartTicks(pid: number | 'self'): string | undefined {
  const stat = readTrimmed(`/proc/${pid}/stat`);
  if (stat === undefined) return undefined;
  // The command name (field 2) may hold spaces and parentheses: split after its last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (fields[0] === 'Z' || fields[0] === 'X') return 'zombie';
  return fields[19];
}

export function ownRecord(staleMs: number, shared = false): OwnerRecord {
  const { bootId, pidNs, procUsable } = identity();
  const startTicks = procUsable ? processStartTicks('self') : undefined;
  const record: OwnerRecord = { v: 1, pid: process.pid, hostname: os.hostname(), bootId, pidNs, startTicks, staleMs, createdAt: Date.now() };
  if (shared) record.shared = true;
  return record;
}

/**
 * What the pid in a record says, without looking at the heartbeat:
 * - 'dead': same host, boot and PID namespace, and the process is gone, a zombie, or a process
 *   started at another time under the same pid; or the same host in an earlier boot;
 * - 'alive': same host, boot and PID namespace, and that very process runs (stopped or not);
 * - 'unknown': the pid cannot tell (another host or PID namespace, no /proc to confirm the
 *   process's identity): the heartbeat decides.
 */
export function judgeOwner(owner: OwnerRecord): 'dead' | 'alive' | 'unknown' {
  const me = identity();
  if (owner.hostname !== os.hostname()) return 'unknown';
  if (owner.bootId !== undefined && me.bootId !== undefined && owner.bootId !== me.bootId) return 'dead';
  if (owner.bootId !== me.bootId || owner.pidNs !== me.pidNs) return 'unknown';
  try {
    process.kill(owner.pid, 0);
  } catch (err) {
    if (isErrno(err, 'ESRCH')) return 'dead';
    // EPERM: the process exists but belongs to another user.
  }
  if (!me.procUsable || owner.startTicks === undefined) return 'unknown';
  const ticks = processStartTicks(owner.pid);
  if (ticks === 'zombie') return 'dead';
  if (ticks === undefined) return 'unknown'; // hidden by hidepid, or gone this instant: the heartbeat decides
  return ticks === owner.startTicks ? 'alive' : 'dead';
}

/**
 * A generation file is two lines:
 *   {"v":1,"pid":...}       the owner record, JSON, written once
 *   0000000000000042        the heartbeat counter, BEAT_DIGITS decimal digits, rewritten in place
 * The counter only grows, so every heartbeat changes what a reader sees, however coarse the file
 * system's timestamps are (the mtime, which the same write sets, gives the wall-clock age).
 */
const BEAT_DIGITS = 16;

function beatText(beat: number): string {
  return String(beat).padStart(BEAT_DIGITS, '0');
}

function parseRecord(bytes: Buffer): OwnerRecord | 'empty' | 'garbage' {
  // Released locks are emptied; a power loss may leave a new file's bytes unwritten (zeros).
  if (bytes.every((b) => b === 0)) return 'empty';
  try {
    const end = bytes.indexOf(0x0a);
    const owner = JSON.parse(bytes.toString('utf8', 0, end < 0 ? bytes.length : end)) as OwnerRecord;
    if (typeof owner !== 'object' || owner === null || typeof owner.pid !== 'number' ||
        typeof owner.hostname !== 'string' || typeof owner.staleMs !== 'number') return 'garbage';
    return owner;
  } catch {
    return 'garbage';
  }
}

// ---------------------------------------------------------------- the generation files

export function locksDir(dir: string): string {
  return path.join(dir, LOCKS_DIR);
}

export function generationPath(dir: string, generation: number): string {
  return path.join(dir, LOCKS_DIR, String(generation));
}

/** The generation numbers in LOCKS/, ascending. */
export function listGenerations(dir: string): number[] {
  return fs.readdirSync(locksDir(dir)).filter((name) => GENERATION_PATTERN.test(name)).map(Number).sort((a, b) => a - b);
}

/**
 * One state of a generation file: every heartbeat (a new counter value, a new ctime) and a release
 * (a new size) changes it, and a file put in its place has another inode.
 */
interface Stamp {
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  /** The file's bytes: the record and the heartbeat counter. */
  content: string;
  /** When the last heartbeat (or the creation) wrote it, by the wall clock: its age says how long it has been silent. */
  mtimeMs: number;
}

function lstatOrUndefined(file: string): fs.BigIntStats | undefined {
  try {
    return fs.lstatSync(file, { bigint: true });
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
}

function sameStamp(a: Stamp | undefined, b: Stamp | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs && a.content === b.content;
}

interface Seen {
  stamp: Stamp;
  owner: OwnerRecord | 'empty' | 'garbage';
}

/** Reads a generation file; undefined if it is gone. */
function readGeneration(file: string): Seen | undefined {
  for (let attempt = 0; ; attempt++) {
    const before = lstatOrUndefined(file);
    if (before === undefined) return undefined;
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(file);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      throw err;
    }
    const after = lstatOrUndefined(file);
    // A heartbeat or a release while we read: read again, so the stamp is of one state (a torn
    // read would only look like a heartbeat, which errs on the side of the owner).
    if (attempt < 2 && (after === undefined || after.ino !== before.ino || after.ctimeNs !== before.ctimeNs)) continue;
    const stamp: Stamp = { ino: before.ino, size: before.size, mtimeNs: before.mtimeNs, ctimeNs: before.ctimeNs,
      content: bytes.toString('latin1'), mtimeMs: Number(before.mtimeMs) };
    return { stamp, owner: parseRecord(bytes) };
  }
}

/** The record of a generation's owner; undefined if the file is gone, empty, unreadable or not a record. */
export function readOwner(dir: string, generation: number): OwnerRecord | undefined {
  let seen: Seen | undefined;
  try {
    seen = readGeneration(generationPath(dir, generation));
  } catch {
    return undefined;
  }
  return seen === undefined || typeof seen.owner === 'string' ? undefined : seen.owner;
}

function lockedError(dir: string, owner: OwnerRecord | undefined, why: string): LogkvError {
  const who = owner === undefined ? 'another process' : `process ${owner.pid} on ${owner.hostname}`;
  return new LogkvError(ErrorCodes.LOCKED, `store ${dir} is locked by ${who} (${why}); ` +
    'processes that open it with { shared: true } share it instead',
  { pid: owner?.pid, hostname: owner?.hostname, file: dir });
}

/** The record of the store's current owner (the highest generation's), or undefined if none or released. */
export function currentOwner(dir: string): OwnerRecord | undefined {
  try {
    const top = listGenerations(dir).pop();
    return top === undefined ? undefined : readOwner(dir, top);
  } catch {
    return undefined;
  }
}

/** A stale owner comes with the stamp its file kept while watched, and the longest lease it may hold. */
type Verdict = 'free' | 'dead' | 'moved' | { stale: Stamp; leaseMs: number };

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Directories locked by this process, so a second open() here fails fast with the same code. */
const heldHere = new Set<string>();

export interface AcquireOptions {
  /** How long an owner the pid cannot judge may be silent before it is taken over. @default 30000 */
  staleMs?: number;
  /** Say in the record that the owner serves clients (open's `shared: true`). */
  shared?: boolean;
}

export class DirLock {
  readonly #times: LockTimes;
  readonly #shared: boolean;
  #fd: number | undefined;
  #generation = 0;
  #ino = 0n;
  #dev = 0n;
  /** performance.now() when the last good heartbeat started. */
  #leaseStart = -Infinity;
  #beats = 0;
  /** Where the heartbeat counter sits in our generation file. */
  #beatOffset = 0;
  #timer: NodeJS.Timeout | undefined;
  #lost: LogkvError | undefined;
  #released = false;

  private constructor(readonly dir: string, staleMs: number, shared: boolean) {
    this.#times = lockTimes(staleMs);
    this.#shared = shared;
  }

  /** The generation this lock holds (for specs and diagnostics). */
  get generation(): number {
    return this.#generation;
  }

  /** Set once the lock was found taken, replaced or removed: writes must stop for good. */
  get lost(): LogkvError | undefined {
    return this.#lost;
  }

  /**
   * Whether the store may hand a change to the disk now: undefined if so, else the error to fail
   * it with. Call it right before each write, truncate, create, rename or remove. Cheap (a clock
   * read) while the lease is fresh; when it is older than half the lease it renews it first with
   * a synchronous check of the lock (a few system calls). LOGKV_LOCK_LOST is final: another
   * process owns the store, or someone removed the lock. LOGKV_IO means the check itself failed
   * and may pass later.
   */
  mayWrite(): LogkvError | undefined {
    if (this.#lost !== undefined) return this.#lost;
    if (this.#released) return new LogkvError(ErrorCodes.LOCK_LOST, `the lock of ${this.dir} was released`, { file: this.dir });
    if (performance.now() - this.#leaseStart < this.#times.leaseMs / 2) return undefined;
    return this.#beat();
  }

  static async acquire(dir: string, options: AcquireOptions = {}): Promise<DirLock> {
    const real = fs.realpathSync(dir);
    if (heldHere.has(real)) throw lockedError(dir, ownRecord(options.staleMs ?? DEFAULTS.lockStaleMs), 'open in this process');
    const lock = new DirLock(real, options.staleMs ?? DEFAULTS.lockStaleMs, options.shared === true);
    heldHere.add(real);
    try {
      await lock.#take();
    } catch (err) {
      lock.#giveUp();
      heldHere.delete(real);
      throw err instanceof LogkvError ? err : ioError(err, `locking ${real}`, real);
    }
    lock.#cleanUp();
    return lock;
  }

  async #take(): Promise<void> {
    fs.mkdirSync(locksDir(this.dir), { recursive: true });
    const legacyOwner = this.#liveLegacyOwner();
    if (legacyOwner !== undefined) throw lockedError(this.dir, legacyOwner, 'a lock of an earlier logkv version');
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const generations = listGenerations(this.dir);
      const top = generations.length === 0 ? 0 : generations[generations.length - 1];
      let stale: { stale: Stamp; leaseMs: number } | undefined;
      if (top > 0) {
        const verdict = await this.#judge(top);
        if (verdict === 'moved') continue;
        if (typeof verdict === 'object') stale = verdict;
      }
      if (!this.#create(top + 1)) continue;
      // Only a process that saw generation top free, dead or stale created top + 1; but one that
      // was paused before creating it may have done so after the generation was cleaned up
      // under a newer owner. The highest generation is never removed, so it shows here.
      const highest = listGenerations(this.dir).pop()!;
      if (highest !== this.#generation) {
        this.#abandon();
        continue;
      }
      this.#timer = setInterval(() => this.#beat(), this.#times.heartbeatMs);
      this.#timer.unref();
      // A stale owner that came back between our watch and our creating top + 1 may have renewed
      // its lease just before: it sees top + 1 at its next check, so wait its lease out.
      if (stale !== undefined && !sameStamp(stale.stale, readGeneration(generationPath(this.dir, top))?.stamp)) {
        await sleep(stale.leaseMs);
      }
      const lost = this.#beat();
      if (lost !== undefined) throw lost.code === ErrorCodes.LOCK_LOST ? lockedError(this.dir, undefined, lost.message) : lost;
      return;
    }
    throw lockedError(this.dir, undefined, 'the lock changed hands while we tried to take it');
  }

  /**
   * Decides whether generation `top` may be succeeded: 'free' (released), 'dead', or stale (with
   * the stamp it kept while watched); 'moved' if it changed under us; throws LOGKV_LOCKED if its
   * owner lives.
   */
  async #judge(top: number): Promise<Verdict> {
    const file = generationPath(this.dir, top);
    const seen = readGeneration(file);
    if (seen === undefined) return 'moved';
    if (seen.owner === 'empty') return 'free';
    const owner = seen.owner === 'garbage' ? undefined : seen.owner;
    const verdict = owner === undefined ? 'unknown' : judgeOwner(owner);
    if (verdict === 'alive') throw lockedError(this.dir, owner, 'it is running');
    if (verdict === 'dead') return 'dead';
    return this.#watch(file, seen, owner);
  }

  /**
   * Takes over an owner the pid cannot judge only once its heartbeat has been silent for its
   * lockStaleMs: silent for staleMs - leaseMs by the wall clock (the file's mtime), then seen
   * standing still for a whole lease by our own monotonic clock, which no clock step can fool.
   */
  async #watch(file: string, seen: Seen, owner: OwnerRecord | undefined): Promise<Verdict> {
    const staleMs = Math.max(this.#times.staleMs, owner?.staleMs ?? 0);
    const leaseMs = this.#leaseOf(owner);
    const silentMs = Date.now() - seen.stamp.mtimeMs;
    if (silentMs < staleMs - leaseMs) {
      throw lockedError(this.dir, owner, `its heartbeat is ${Math.max(0, Math.round(silentMs))} ms old; stale after ${staleMs} ms`);
    }
    const until = performance.now() + leaseMs;
    for (let left = leaseMs; left > 0; left = until - performance.now()) {
      await sleep(Math.min(left, Math.max(10, leaseMs / 8)));
      const now = readGeneration(file);
      if (!sameStamp(seen.stamp, now?.stamp)) {
        if (now === undefined) return 'moved';
        if (now.owner === 'empty') return 'free';
        throw lockedError(this.dir, owner, 'its heartbeat goes on');
      }
    }
    return { stale: seen.stamp, leaseMs };
  }

  /** The longest lease an owner with this record may believe it holds. */
  #leaseOf(owner: OwnerRecord | undefined): number {
    return Math.max(this.#times.leaseMs, lockTimes(owner?.staleMs ?? 0).leaseMs);
  }

  /**
   * Creates generation `generation` holding our record, whole or not at all: the record goes into
   * a temporary file that link(2) then names, failing if the name exists. False if it does.
   */
  #create(generation: number): boolean {
    const temp = path.join(locksDir(this.dir), `${TEMP_PREFIX}${process.pid}-${Math.random().toString(36).slice(2)}`);
    const fd = fs.openSync(temp, 'wx');
    try {
      const record = JSON.stringify(ownRecord(this.#times.staleMs, this.#shared)) + '\n';
      fs.writeSync(fd, record + beatText(0) + '\n');
      this.#beatOffset = Buffer.byteLength(record);
      fs.linkSync(temp, generationPath(this.dir, generation));
    } catch (err) {
      fs.closeSync(fd);
      fs.rmSync(temp, { force: true });
      if (isErrno(err, 'EEXIST')) return false;
      throw err;
    }
    fs.unlinkSync(temp);
    const stat = fs.fstatSync(fd, { bigint: true });
    this.#fd = fd;
    this.#generation = generation;
    this.#ino = stat.ino;
    this.#dev = stat.dev;
    return true;
  }

  /** Gives up a generation created too late (a newer one exists): it was never the highest. */
  #abandon(): void {
    fs.rmSync(generationPath(this.dir, this.#generation), { force: true });
    this.#stop();
  }

  /**
   * One heartbeat: write the next counter value into our generation file, then check that the
   * name still holds our file (our open descriptor keeps its inode number from being reused) and
   * that no next generation exists. The lease counts from before the write, so a taker that saw
   * the file stand still for a whole lease knows that any lease this beat grants has run out, or
   * that this check ran after its new generation existed and failed (docs/locking.md).
   */
  #beat(): LogkvError | undefined {
    if (this.#lost !== undefined || this.#fd === undefined) return this.#lost;
    const started = performance.now();
    const file = generationPath(this.dir, this.#generation);
    try {
      this.#beats++;
      fs.writeSync(this.#fd, beatText(this.#beats), this.#beatOffset);
      let at: fs.BigIntStats;
      try {
        at = fs.lstatSync(file, { bigint: true });
      } catch (err) {
        if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return this.#lose('its lock file was removed', undefined);
        throw err;
      }
      if (at.ino !== this.#ino || at.dev !== this.#dev) return this.#lose('its lock file was replaced', undefined);
      const next = generationPath(this.dir, this.#generation + 1);
      if (lstatOrUndefined(next) !== undefined) return this.#lose('another process took the lock', readOwner(this.dir, this.#generation + 1));
    } catch (err) {
      return ioError(err, 'checking the lock', file);
    }
    this.#leaseStart = started;
    return undefined;
  }

  #lose(why: string, owner: OwnerRecord | undefined): LogkvError {
    this.#lost = new LogkvError(ErrorCodes.LOCK_LOST, `the store ${this.dir} lost its lock: ${why}; writes stop`,
      { file: this.dir, pid: owner?.pid, hostname: owner?.hostname });
    this.#stopTimer();
    return this.#lost;
  }

  #stopTimer(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** After a failed acquire: a generation we created names a live process, so mark it free. */
  #giveUp(): void {
    try {
      if (this.#fd !== undefined) fs.ftruncateSync(this.#fd, 0);
    } catch {
      // Then it stays ours until this process exits, and is judged dead after that.
    }
    this.#stop();
  }

  #stop(): void {
    this.#stopTimer();
    if (this.#fd !== undefined) fs.closeSync(this.#fd);
    this.#fd = undefined;
  }

  /**
   * Removes what earlier owners left: generations below ours, lowest first (an owner paused in
   * the past checks only for its next generation, so that one must go after its own), temporary
   * files old enough to be a dead process's, and the files of the lock before generations.
   * Best effort: what stays is removed by a later owner.
   */
  #cleanUp(): void {
    try {
      for (const generation of listGenerations(this.dir)) {
        if (generation >= this.#generation) break;
        fs.rmSync(generationPath(this.dir, generation), { force: true });
      }
      for (const name of fs.readdirSync(locksDir(this.dir))) {
        const file = path.join(locksDir(this.dir), name);
        const modified = name.startsWith(TEMP_PREFIX) ? lstatOrUndefined(file)?.mtimeMs : undefined;
        if (modified !== undefined && Date.now() - Number(modified) > TEMP_GARBAGE_MS) {
          fs.rmSync(file, { force: true });
        }
      }
      for (const name of [LEGACY_OWNER_NAME, LEGACY_LOCK_NAME, LEGACY_TAKEOVER_NAME]) {
        fs.rmSync(path.join(this.dir, name), { recursive: true, force: true });
      }
    } catch {
      // Leftovers cost nothing but a directory entry; the next owner tries again.
    }
  }

  /**
   * The owner named by a lock of logkv before generations, if that process still runs here: a
   * store an older version holds is not ours to open. Other hosts' legacy records are ignored:
   * the old lock had no heartbeat, so nothing could tell a live one from a dead one.
   */
  #liveLegacyOwner(): OwnerRecord | undefined {
    if (!fs.existsSync(path.join(this.dir, LEGACY_LOCK_NAME))) return undefined;
    let legacy: { pid?: unknown; hostname?: unknown; startTicks?: unknown };
    try {
      legacy = JSON.parse(fs.readFileSync(path.join(this.dir, LEGACY_OWNER_NAME), 'utf8'));
    } catch {
      return undefined;
    }
    if (typeof legacy.pid !== 'number' || legacy.hostname !== os.hostname()) return undefined;
    const owner: OwnerRecord = { ...ownRecord(0), pid: legacy.pid, createdAt: 0,
      startTicks: typeof legacy.startTicks === 'string' ? legacy.startTicks : undefined };
    return judgeOwner(owner) === 'dead' ? undefined : owner;
  }

  /**
   * Releases the lock: empties our generation file, which tells the next opener the store is
   * free, then closes it. The file stays: the highest generation is never removed. Idempotent.
   */
  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    try {
      if (this.#lost === undefined && this.#fd !== undefined) fs.ftruncateSync(this.#fd, 0);
    } finally {
      this.#stop();
      heldHere.delete(this.dir);
    }
  }
}
