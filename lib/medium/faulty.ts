/**
 * A fault-injecting wrapper over any medium, for tests and the crash harness.
 *
 * It can:
 * - fail the next (or the nth) open, write, sync, truncate, rename, remove, directory sync, list,
 *   mkdirp or read with EIO or ENOSPC, optionally only on some paths, and for a write after
 *   letting a prefix of its bytes reach the file (a torn write, as the Medium contract allows);
 * - fail calls at random, at a seeded rate, with EIO or ENOSPC (the crash harness's io mode);
 * - on a failing sync, lose the file's unsynced writes as a writeback error may (fsyncgate);
 * - flip a chosen bit of a file, or a random one;
 * - simulate a power loss: drop everything not synced, including unsynced directory entries and
 *   renames, optionally tearing the last unsynced write at an arbitrary byte (needs an inner
 *   MemoryMedium, the only medium that knows what is durable);
 * - call a hook before and after every mutating operation, which the crash harness uses to take
 *   a post-crash disk at every boundary (the ALICE method).
 *
 * All its randomness comes from one seeded generator: print `seed` when a test fails, and pass it
 * back to replay the same faults.
 */
import {
  ChangeFate, CrashChooser, DROP_UNSYNCED, KEEP_UNSYNCED, MemoryMedium, SystemErrorCode, randomCrash, randomTear, systemError,
  writebackError,
} from './memory';
import { Random, freshSeed, seededRandom } from './random';
import type { FileStat, Medium, MediumFile, OpenFileOptions } from './types';

export type FaultOperation =
  | 'open' | 'write' | 'sync' | 'truncate' | 'close' | 'read'
  | 'rename' | 'remove' | 'syncDir' | 'list' | 'mkdirp' | 'link';

/** The operations that change what is on the disk: each is a crash boundary. */
export const MUTATING: ReadonlySet<FaultOperation> = new Set(['open', 'write', 'sync', 'truncate', 'rename', 'remove', 'syncDir', 'mkdirp', 'link']);

export interface FaultPlan {
  /** Which operation fails. `open` counts every open; add `path` to aim at one file. */
  op: FaultOperation;
  /** The error's code. @default 'EIO' */
  code?: 'EIO' | 'ENOSPC';
  /** Fail the nth matching call from now: 1 is the next one. @default 1 */
  nth?: number;
  /** Only calls on a matching path count (for rename, either path). */
  path?: string | RegExp;
  /** Only opens that create a file count. */
  creating?: boolean;
  /**
   * For a write: how many of its bytes reach the file before it fails. 'random' draws a number
   * from 0 to all of them from the seeded generator. @default 0
   */
  writtenBytes?: number | 'random';
  /** Keep failing every matching call from the nth on, as a dead disk would. @default false */
  sticky?: boolean;
  /**
   * For a sync: the file's unsynced writes meet random fates as the call fails (each kept, lost or
   * torn, out of order), and what is lost is gone from the page cache too, for good: what Linux
   * may do after a writeback error (see writebackError in memory.ts). Needs a MemoryMedium
   * underneath. @default false
   */
  lostWrites?: boolean;
}

/** Faults drawn at random: each matching call fails with probability `rate`. */
export interface RandomFaults {
  /** The chance, from 0 to 1, that each matching call fails. */
  rate: number;
  /** The operations that may fail. @default every mutating operation, and read and list */
  ops?: readonly FaultOperation[];
  /** The codes a failure is drawn from, evenly. @default ['EIO', 'ENOSPC'] */
  codes?: ReadonlyArray<'EIO' | 'ENOSPC'>;
  /** For a failing write: as FaultPlan.writtenBytes. @default 'random' */
  writtenBytes?: number | 'random';
  /** For a failing sync: the chance that it also loses the file's unsynced writes (FaultPlan.lostWrites). @default 0 */
  lostWritesChance?: number;
  /** Seed of the draws. @default drawn from the medium's generator */
  seed?: number;
}

/** Armed random faults: `fired` counts the calls they failed; `paused` stops them for a while. */
export interface RandomFaultSource {
  readonly spec: Readonly<RandomFaults>;
  readonly fired: number;
  paused: boolean;
  cancel(): void;
}

/** A call that an armed fault (planned or random) failed, as the onFault hook hears of it. */
export interface FaultEvent {
  op: FaultOperation;
  path: string;
  code: 'EIO' | 'ENOSPC';
  /** Whether a random fault (failRandomly) failed it, rather than a planned one. */
  random: boolean;
  /** For a sync: whether it lost the file's unsynced writes too. */
  lostWrites: boolean;
}

/** An armed fault: `fired` counts the calls it failed; `cancel()` disarms it. */
export interface Fault {
  readonly plan: Readonly<FaultPlan>;
  readonly fired: number;
  cancel(): void;
}

export interface OperationEvent {
  op: FaultOperation;
  path: string;
  /** For a rename or a link, the new name. */
  to?: string;
  /** For a write, how many bytes; for a truncate, the new size. */
  bytes?: number;
  /** 'before' the operation reaches the inner medium, or 'after' it succeeded there. */
  phase: 'before' | 'after';
  /** The number of mutating operations begun so far on this medium, this one included. */
  index: number;
}

export interface PowerLossOptions {
  /**
   * What becomes of unsynced changes other than a torn last write: `'none'` survive (the worst
   * case, the default), `'all'` survive, or a `'random'` legal subset, some torn.
   * @default 'none'
   */
  keep?: 'none' | 'all' | 'random';
  /**
   * Tear the newest unsynced write: keep its first `keptBytes` (default: drawn at random) and
   * leave the rest as it was, zeroed or garbage (default: drawn at random). `true` draws both.
   */
  tearLastWrite?: boolean | { keptBytes?: number; rest?: 'absent' | 'zeros' | 'garbage' };
}

export interface FaultyOptions {
  /** Seed of every random choice. @default a fresh seed, readable as `seed` */
  seed?: number;
  /** Called before and after every mutating operation; the operation waits for it. */
  onOperation?: (event: OperationEvent) => void | Promise<void>;
  /**
   * Called synchronously whenever an armed fault fails a call, before the caller sees the error
   * (not for the calls a power loss fails). The crash harness uses it to know which rejections
   * an injected error explains.
   */
  onFault?: (event: FaultEvent) => void;
}

interface ArmedFault {
  plan: FaultPlan;
  remaining: number;
  fired: number;
  cancelled: boolean;
}

interface ArmedRandomFaults {
  spec: RandomFaults;
  ops: ReadonlySet<FaultOperation>;
  codes: ReadonlyArray<'EIO' | 'ENOSPC'>;
  random: Random;
  fired: number;
  paused: boolean;
  cancelled: boolean;
}

const RANDOM_FAULT_OPS: readonly FaultOperation[] = [...MUTATING, 'read', 'list'];

export class FaultyMedium implements Medium {
  readonly isFileSystem: boolean;
  readonly random: Random;
  /** Calls seen per operation, failed ones included. */
  readonly calls: Record<FaultOperation, number> = {
    open: 0, write: 0, sync: 0, truncate: 0, close: 0, read: 0, rename: 0, remove: 0, syncDir: 0, list: 0, mkdirp: 0, link: 0,
  };
  /** Present when the inner medium can link: a mutating operation like rename. */
  readonly link?: (existing: string, newPath: string) => Promise<void>;
  /** Present when the inner medium has it; never fails by a fault. */
  readonly stat?: (path: string) => Promise<FileStat>;
  onOperation: FaultyOptions['onOperation'];
  onFault: FaultyOptions['onFault'];
  #faults: ArmedFault[] = [];
  #randomFaults: ArmedRandomFaults[] = [];
  #mutations = 0;
  #halted = false;

  constructor(readonly inner: Medium, options: FaultyOptions = {}) {
    this.isFileSystem = inner.isFileSystem;
    this.random = seededRandom(options.seed ?? freshSeed());
    this.onOperation = options.onOperation;
    this.onFault = options.onFault;
    const { link, stat } = inner;
    if (link !== undefined) {
      this.link = (existing, newPath) => this.mutate({ op: 'link', path: existing, to: newPath }, [existing, newPath], 'link',
        () => link.call(inner, existing, newPath));
    }
    if (stat !== undefined) this.stat = (file) => stat.call(inner, file);
  }

  /** The seed every random choice comes from: print it when a test fails. */
  get seed(): number {
    return this.random.seed;
  }

  /** Mutating operations begun so far. */
  get mutations(): number {
    return this.#mutations;
  }

  // -------------------------------------------------------------- faults

  /** Arms a fault. */
  fail(plan: FaultPlan): Fault {
    const nth = plan.nth ?? 1;
    if (!Number.isInteger(nth) || nth < 1) throw new RangeError(`nth must be a positive integer, received ${nth}`);
    const armed: ArmedFault = { plan: { ...plan }, remaining: nth, fired: 0, cancelled: false };
    this.#faults.push(armed);
    return {
      plan: armed.plan,
      get fired() { return armed.fired; },
      cancel: () => { armed.cancelled = true; },
    };
  }

  /** Fails the next call of `op` (or the nth, with `options.nth`) with `code`. */
  failNext(op: FaultOperation, code: 'EIO' | 'ENOSPC' = 'EIO', options: Omit<FaultPlan, 'op' | 'code'> = {}): Fault {
    return this.fail({ ...options, op, code });
  }

  /**
   * Fails matching calls at random from now on, each with probability `spec.rate`, until
   * cancelled (or paused). Its draws come from a generator of their own, seeded from `spec.seed`
   * or from this medium's, so what else the medium draws does not shift them. A planned fault due
   * on the same call takes precedence.
   */
  failRandomly(spec: RandomFaults): RandomFaultSource {
    if (!(spec.rate >= 0 && spec.rate <= 1)) throw new RangeError(`rate must be from 0 to 1, received ${spec.rate}`);
    const codes = spec.codes ?? ['EIO', 'ENOSPC'];
    if (codes.length === 0) throw new RangeError('codes must not be empty');
    const armed: ArmedRandomFaults = {
      spec: { ...spec },
      ops: new Set(spec.ops ?? RANDOM_FAULT_OPS),
      codes,
      random: seededRandom(spec.seed ?? this.random.int(2 ** 32)),
      fired: 0,
      paused: false,
      cancelled: false,
    };
    this.#randomFaults.push(armed);
    return {
      spec: armed.spec,
      get fired() { return armed.fired; },
      get paused() { return armed.paused; },
      set paused(value: boolean) { armed.paused = value; },
      cancel: () => {
        armed.cancelled = true;
        this.#randomFaults = this.#randomFaults.filter((f) => f !== armed);
      },
    };
  }

  /** Disarms every fault, random ones included. */
  clearFaults(): void {
    for (const fault of this.#faults) fault.cancelled = true;
    this.#faults = [];
    for (const source of this.#randomFaults) source.cancelled = true;
    this.#randomFaults = [];
  }

  /** The fault that fails this call, if one does; counts the call against every matching fault. */
  #due(op: FaultOperation, paths: string[], creating = false): ArmedFault | undefined {
    this.calls[op]++;
    if (this.#halted) return { plan: { op, code: 'EIO' }, remaining: 0, fired: 1, cancelled: false };
    let due: ArmedFault | undefined;
    for (const fault of this.#faults) {
      const { plan } = fault;
      if (fault.cancelled || plan.op !== op) continue;
      if (plan.creating && !creating) continue;
      if (plan.path !== undefined && !paths.some((p) => matches(plan.path!, p))) continue;
      if (fault.remaining > 1) { fault.remaining--; continue; }
      // Two faults due on one call: the first fails it, the second waits for the next call.
      if (due !== undefined) continue;
      fault.fired++;
      due = fault;
    }
    this.#faults = this.#faults.filter((f) => !f.cancelled && (f.fired === 0 || f.plan.sticky));
    const random = due === undefined;
    due ??= this.#randomDue(op);
    if (due !== undefined) {
      this.onFault?.({
        op, path: paths[0], code: due.plan.code ?? 'EIO', random, lostWrites: op === 'sync' && due.plan.lostWrites === true,
      });
    }
    return due;
  }

  /** A random fault for this call, if one of the armed sources draws one. */
  #randomDue(op: FaultOperation): ArmedFault | undefined {
    let due: ArmedFault | undefined;
    for (const source of this.#randomFaults) {
      if (source.paused || !source.ops.has(op)) continue;
      // Every active source draws on every matching call, failing or not, so each one's sequence
      // depends only on the calls it sees; the first that draws a failure fails the call.
      if (!source.random.chance(source.spec.rate) || due !== undefined) continue;
      source.fired++;
      const plan: FaultPlan = {
        op,
        code: source.random.pick(source.codes),
        writtenBytes: source.spec.writtenBytes ?? 'random',
        lostWrites: op === 'sync' && source.random.chance(source.spec.lostWritesChance ?? 0),
      };
      due = { plan, remaining: 0, fired: 1, cancelled: false };
    }
    return due;
  }

  #error(fault: ArmedFault, syscall: string, file: string): Error {
    return systemError((fault.plan.code ?? 'EIO') as SystemErrorCode, syscall, file);
  }

  /** Runs a mutating operation: the hook before, the fault check, the operation, the hook after. */
  async mutate<T>(event: Omit<OperationEvent, 'phase' | 'index'>, paths: string[], syscall: string,
                  run: () => Promise<T>, creating = false,
                  onFault?: (plan: FaultPlan) => Promise<void>): Promise<T> {
    const index = ++this.#mutations;
    if (this.onOperation !== undefined && !this.#halted) await this.onOperation({ ...event, phase: 'before', index });
    const fault = this.#due(event.op, paths, creating);
    if (fault !== undefined) {
      if (onFault !== undefined && !this.#halted) await onFault(fault.plan);
      throw this.#error(fault, syscall, paths[0]);
    }
    const result = await run();
    if (this.onOperation !== undefined && !this.#halted) await this.onOperation({ ...event, phase: 'after', index });
    return result;
  }

  // -------------------------------------------------------------- Medium

  mkdirp(dir: string): Promise<void> {
    return this.mutate({ op: 'mkdirp', path: dir }, [dir], 'mkdir', () => this.inner.mkdirp(dir));
  }

  async list(dir: string): Promise<string[]> {
    const fault = this.#due('list', [dir]);
    if (fault !== undefined) throw this.#error(fault, 'scandir', dir);
    return this.inner.list(dir);
  }

  async open(file: string, options: OpenFileOptions = {}): Promise<MediumFile> {
    const creating = options.create === true;
    let inner: MediumFile;
    if (creating) {
      inner = await this.mutate({ op: 'open', path: file }, [file], 'open', () => this.inner.open(file, options), true);
    } else {
      const fault = this.#due('open', [file]);
      if (fault !== undefined) throw this.#error(fault, 'open', file);
      inner = await this.inner.open(file, options);
    }
    return new FaultyFile(this, inner);
  }

  rename(from: string, to: string): Promise<void> {
    return this.mutate({ op: 'rename', path: from, to }, [from, to], 'rename', () => this.inner.rename(from, to));
  }

  remove(file: string): Promise<void> {
    return this.mutate({ op: 'remove', path: file }, [file], 'rm', () => this.inner.remove(file));
  }

  syncDir(dir: string): Promise<void> {
    return this.mutate({ op: 'syncDir', path: dir }, [dir], 'fsync', () => this.inner.syncDir(dir));
  }

  /** @internal The fault check of a file operation. */
  check(op: FaultOperation, file: string): ArmedFault | undefined {
    return this.#due(op, [file]);
  }

  /** @internal */
  errorFor(fault: ArmedFault, syscall: string, file: string): Error {
    return this.#error(fault, syscall, file);
  }

  // -------------------------------------------------------------- bit flips

  /**
   * Flips bit `bit` (0 = least significant) of the byte at `offset` of `file`. On a MemoryMedium
   * the byte changes on the disk and in the page cache alike, recording no change; on another
   * medium it is written back through the file (not synced).
   */
  async flipBit(file: string, offset: number, bit: number): Promise<void> {
    if (!Number.isInteger(bit) || bit < 0 || bit > 7) throw new RangeError(`bit must be 0..7, received ${bit}`);
    if (this.inner instanceof MemoryMedium) {
      this.inner.corrupt(file, offset, (byte) => byte ^ (1 << bit));
      return;
    }
    const handle = await this.inner.open(file);
    try {
      const byte = Buffer.alloc(1);
      if (handle.readSync(byte, 0, 1, offset) !== 1) throw new RangeError(`offset ${offset} is outside ${file}`);
      byte[0] ^= 1 << bit;
      await handle.write([byte], offset);
    } finally {
      await handle.close();
    }
  }

  /** Flips a random bit in [from, to) of `file` (default: the whole file); says which. */
  async flipRandomBit(file: string, from = 0, to?: number): Promise<{ offset: number; bit: number }> {
    const handle = await this.inner.open(file, { readOnly: true });
    const size = handle.sizeSync();
    await handle.close();
    const end = Math.min(to ?? size, size);
    if (end <= from) throw new RangeError(`no bytes in [${from}, ${end}) of ${file}`);
    const offset = this.random.between(from, end - 1);
    const bit = this.random.int(8);
    await this.flipBit(file, offset, bit);
    return { offset, bit };
  }

  // -------------------------------------------------------------- power loss

  /**
   * The disk a power loss right now could leave, as a new MemoryMedium, without changing this one
   * (the crash harness takes many from one run). Needs an inner MemoryMedium.
   */
  diskAfterPowerLoss(options: PowerLossOptions = {}): MemoryMedium {
    const memory = this.#memory();
    const keep = options.keep ?? 'none';
    const base: CrashChooser = keep === 'all' ? KEEP_UNSYNCED : keep === 'random' ? randomCrash(this.random) : DROP_UNSYNCED;
    const tear = options.tearLastWrite;
    const last = tear ? memory.lastUnsyncedWrite() : undefined;
    if (last === undefined) return memory.crash(base);
    const spec = typeof tear === 'object' ? tear : {};
    const fate: ChangeFate = spec.keptBytes === undefined && spec.rest === undefined
      ? randomTear(this.random, { position: last.position, bytes: Buffer.alloc(last.length) })
      : {
        torn: 'prefix',
        keptBytes: spec.keptBytes ?? this.random.int(last.length + 1),
        rest: spec.rest ?? this.random.pick(['absent', 'zeros', 'garbage'] as const),
        seed: this.random.int(2 ** 32),
      };
    return memory.crash({
      entries: (dir) => base.entries(dir),
      data: (file) => {
        const fates = base.data(file);
        return file.changes.map((change, i) => (change.seq === last.seq ? fate : fates[i]));
      },
    });
  }

  /**
   * Simulates a power loss: returns the disk as it could be found afterwards (see
   * diskAfterPowerLoss), and halts this medium, so every later call on it, from a store still
   * running on it, fails with EIO.
   */
  powerLoss(options: PowerLossOptions = {}): MemoryMedium {
    const disk = this.diskAfterPowerLoss(options);
    this.#halted = true;
    return disk;
  }

  /** Whether powerLoss() has halted this medium. */
  get halted(): boolean {
    return this.#halted;
  }

  #memory(): MemoryMedium {
    if (!(this.inner instanceof MemoryMedium)) {
      throw new TypeError('a power loss needs a MemoryMedium underneath: only it knows what is durable');
    }
    return this.inner;
  }
}

class FaultyFile implements MediumFile {
  constructor(private readonly medium: FaultyMedium, private readonly inner: MediumFile) {}

  get path(): string {
    return this.inner.path;
  }

  readSync(buf: Uint8Array, offset: number, length: number, position: number): number {
    const fault = this.medium.check('read', this.path);
    if (fault !== undefined) throw this.medium.errorFor(fault, 'read', this.path);
    return this.inner.readSync(buf, offset, length, position);
  }

  write(chunks: readonly Uint8Array[], position: number): Promise<void> {
    let total = 0;
    for (const chunk of chunks) total += chunk.length;
    return this.medium.mutate({ op: 'write', path: this.path, bytes: total }, [this.path], 'write',
      () => this.inner.write(chunks, position), false,
      async (plan) => {
        // A failed write may leave a prefix of its bytes in the file: the Medium contract allows it.
        const written = plan.writtenBytes === 'random' ? this.medium.random.int(total + 1) : Math.min(total, plan.writtenBytes ?? 0);
        if (written > 0) await this.inner.write([Buffer.concat(chunks).subarray(0, written)], position);
      });
  }

  sync(): Promise<void> {
    return this.medium.mutate({ op: 'sync', path: this.path }, [this.path], 'fdatasync', () => this.inner.sync(), false,
      async (plan) => {
        if (plan.lostWrites) writebackError(this.inner, randomCrash(this.medium.random));
      });
  }

  truncate(size: number): Promise<void> {
    return this.medium.mutate({ op: 'truncate', path: this.path, bytes: size }, [this.path], 'ftruncate',
      () => this.inner.truncate(size));
  }

  sizeSync(): number {
    return this.inner.sizeSync();
  }

  async close(): Promise<void> {
    const fault = this.medium.check('close', this.path);
    await this.inner.close();
    if (fault !== undefined) throw this.medium.errorFor(fault, 'close', this.path);
  }
}

function matches(pattern: string | RegExp, file: string): boolean {
  return typeof pattern === 'string' ? file === pattern || file.endsWith('/' + pattern) : pattern.test(file);
}
