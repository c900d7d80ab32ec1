/**
 * The single-owner lock of a store directory.
 *
 * proper-lockfile makes `<dir>/LOCK` with mkdir, which is atomic on every POSIX file system, and
 * tells us if someone else touches it. Beside it, `<dir>/LOCK.owner` names the owner: pid,
 * host and (on Linux) the process start time, so a pid reused by another process is told apart.
 *
 * A second open finds LOCK. If its owner is alive (or on another host, where we cannot tell),
 * the open fails with LOGKV_LOCKED naming the pid: a live owner is never displaced. If the owner is
 * dead (SIGKILL, power loss), the lock is taken over at once, without waiting for a stale timeout:
 * under the takeover lock `LOCK.takeover` (so two openers racing for a dead owner's lock cannot
 * both win), LOCK is renamed aside and removed, and the lock is taken again. If a process dies
 * while it holds the takeover lock, the next opener removes it the same way (two openers racing
 * for that, at that moment, is the one window left). A LOCK without an owner file is an owner
 * that died between the two steps, or one that is starting right now: it is taken over once it is
 * older than OWNERLESS_STALE_MS.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as lockfile from 'proper-lockfile';
import { ErrorCodes, LogkvError, isErrno } from './errors';

export const LOCK_NAME = 'LOCK';
export const OWNER_NAME = 'LOCK.owner';
/** Held (a directory, made with mkdir) by the one process taking over a dead owner's lock. */
export const TAKEOVER_NAME = 'LOCK.takeover';
const OWNERLESS_STALE_MS = 10_000;
/** proper-lockfile's own staleness check is by mtime; we decide staleness by pid, so disable it. */
const NEVER_STALE_MS = 2 ** 31 - 1;

interface Owner {
  pid: number;
  hostname: string;
  startTicks?: string;
}

/** Directories locked by this process, so a second open() here fails fast with the same code. */
const heldHere = new Set<string>();

/** The start time of a process, in clock ticks since boot (Linux only). */
function processStartTicks(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' || fields[0] === 'X') return 'dead'; // a zombie has exited
    return fields[19];
  } catch {
    return undefined;
  }
}

/** Whether the owner named in the owner file is a live process. */
export function ownerIsAlive(owner: Owner): boolean {
  if (owner.hostname !== os.hostname()) return true; // another host: cannot tell, so assume alive
  try {
    process.kill(owner.pid, 0);
  } catch (err) {
    if (isErrno(err, 'ESRCH')) return false;
    // EPERM: the process exists but belongs to someone else.
  }
  const ticks = processStartTicks(owner.pid);
  if (ticks === 'dead') return false;
  if (owner.startTicks !== undefined && ticks !== undefined && ticks !== owner.startTicks) return false;
  return true;
}

function ownerRecord(): Owner {
  return { pid: process.pid, hostname: os.hostname(), startTicks: processStartTicks(process.pid) };
}

function readOwner(dir: string): Owner | undefined {
  return readOwnerFile(path.join(dir, OWNER_NAME));
}

function readOwnerFile(file: string): Owner | undefined {
  try {
    const owner = JSON.parse(fs.readFileSync(file, 'utf8')) as Owner;
    return typeof owner.pid === 'number' && typeof owner.hostname === 'string' ? owner : undefined;
  } catch {
    return undefined;
  }
}

function lockedError(dir: string, pid: number | undefined): LogkvError {
  const who = pid === undefined ? 'another process that is starting' : `process ${pid}`;
  return new LogkvError(ErrorCodes.LOCKED, `store ${dir} is locked by ${who}`, { pid, file: dir });
}

export class DirLock {
  #release: (() => Promise<void>) | undefined;
  #compromised: Error | undefined;

  private constructor(readonly dir: string) {}

  /** Set when someone else removed or replaced our LOCK: writes must stop. */
  get compromised(): Error | undefined {
    return this.#compromised;
  }

  static async acquire(dir: string): Promise<DirLock> {
    const real = fs.realpathSync(dir);
    if (heldHere.has(real)) throw lockedError(dir, process.pid);
    const lock = new DirLock(real);
    heldHere.add(real);
    try {
      await lock.#take();
    } catch (err) {
      heldHere.delete(real);
      throw err;
    }
    return lock;
  }

  async #take(): Promise<void> {
    const lockPath = path.join(this.dir, LOCK_NAME);
    let takingOver = false;
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          this.#release = await lockfile.lock(this.dir, {
            lockfilePath: lockPath,
            realpath: false,
            retries: 0,
            stale: NEVER_STALE_MS,
            update: NEVER_STALE_MS / 2,
            onCompromised: (err: Error) => { this.#compromised = err; },
          });
          break;
        } catch (err) {
          if (!isErrno(err, 'ELOCKED')) throw err;
          this.#checkOwnerIsGone(lockPath);
          if (attempt >= 2) throw lockedError(this.dir, readOwner(this.dir)?.pid);
          // The owner is dead. Only one process may take over at a time: without this, two
          // openers that both saw the dead owner could each move aside the lock the other just
          // took, and both would hold the store.
          if (!takingOver) {
            this.#beginTakeover();
            takingOver = true;
            this.#checkOwnerIsGone(lockPath); // again, now that no one else can be taking over
          }
          const aside = `${lockPath}.stale-${process.pid}-${Date.now()}`;
          try {
            fs.renameSync(lockPath, aside);
            fs.rmSync(aside, { recursive: true, force: true });
          } catch (renameErr) {
            if (!isErrno(renameErr, 'ENOENT')) throw renameErr;
          }
        }
      }
      const owner = ownerRecord();
      const ownerPath = path.join(this.dir, OWNER_NAME);
      fs.writeFileSync(`${ownerPath}.tmp`, JSON.stringify(owner) + '\n');
      fs.renameSync(`${ownerPath}.tmp`, ownerPath);
    } finally {
      // Held until the owner file names us, so a later opener sees a live owner, not a gap.
      if (takingOver) fs.rmSync(path.join(this.dir, TAKEOVER_NAME), { recursive: true, force: true });
    }
  }

  /** Throws LOGKV_LOCKED unless LOCK's owner is dead (or LOCK has been ownerless for long). */
  #checkOwnerIsGone(lockPath: string): void {
    const owner = readOwner(this.dir);
    if (owner !== undefined && ownerIsAlive(owner)) throw lockedError(this.dir, owner.pid);
    if (owner === undefined && Date.now() - lockAgeBase(lockPath) < OWNERLESS_STALE_MS) {
      throw lockedError(this.dir, undefined);
    }
  }

  /**
   * Takes the takeover lock, `LOCK.takeover` (made with mkdir, so only one process gets it),
   * naming us inside. If another process holds it, the store is being taken over: LOGKV_LOCKED,
   * unless that process is dead, in which case its takeover lock is removed and taken.
   */
  #beginTakeover(): void {
    const takeover = path.join(this.dir, TAKEOVER_NAME);
    for (let attempt = 0; ; attempt++) {
      try {
        fs.mkdirSync(takeover);
        fs.writeFileSync(path.join(takeover, 'owner'), JSON.stringify(ownerRecord()) + '\n');
        return;
      } catch (err) {
        if (!isErrno(err, 'EEXIST') || attempt >= 2) throw err;
        const taker = readOwnerFile(path.join(takeover, 'owner'));
        if (taker !== undefined && ownerIsAlive(taker)) throw lockedError(this.dir, taker.pid);
        if (taker === undefined && Date.now() - lockAgeBase(takeover) < OWNERLESS_STALE_MS) {
          throw lockedError(this.dir, undefined);
        }
        fs.rmSync(takeover, { recursive: true, force: true });
      }
    }
  }

  /** Releases the lock. Idempotent. */
  async release(): Promise<void> {
    const release = this.#release;
    if (release === undefined) return;
    this.#release = undefined;
    try {
      fs.rmSync(path.join(this.dir, OWNER_NAME), { force: true });
      if (this.#compromised === undefined) await release();
    } finally {
      heldHere.delete(this.dir);
    }
  }
}

function lockAgeBase(lockPath: string): number {
  try {
    return fs.statSync(lockPath).mtimeMs;
  } catch {
    return 0;
  }
}
