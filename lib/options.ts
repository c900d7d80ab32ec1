/**
 * Every option of `open()`, its default, and its validation, in one place.
 */
import { ErrorCodes, LogkvError } from './errors';
import type { Medium } from './medium/types';

export type SyncMode = 'always' | 'interval' | 'never';

export interface OpenOptions {
  /**
   * When a write's promise resolves, and what survives what.
   * - `'always'`: after the record is on stable storage (fdatasync). Survives power loss.
   *   Writes that arrive while a sync is in flight share the next one (group commit).
   * - `'interval'`: after the record reached the OS; the store syncs every `syncIntervalMs`.
   *   Survives a crash of the process; a power loss may take the last interval's writes.
   * - `'never'`: after the record reached the OS; the store syncs only on `sync()`, on rotation and
   *   on `close()`. Survives a crash of the process; a power loss may take any unsynced write.
   * @default 'always'
   */
  sync?: SyncMode;
  /** How often `'interval'` mode syncs. Lower loses less on power loss and costs more syncs. @default 1000 */
  syncIntervalMs?: number;
  /**
   * A segment file is sealed and a new one started when the next record would take it past this
   * size. Larger segments mean fewer files; smaller ones let compaction reclaim space sooner.
   * A single record larger than this gets a segment of its own. At most 4 GiB - 1 (offsets are
   * 32-bit in the keydir). @default 64 MiB
   */
  maxSegmentBytes?: number;
  /**
   * Memory for recently read 4 KiB blocks of the segment files, so most reads of small records
   * are a copy from memory rather than a system call. Taken as it fills, so a small store uses
   * little: the cache never holds more than the store's size. It duplicates what the OS page
   * cache holds, in exchange for reads without a system call; lower it where memory is tight.
   * 0 turns it off (every read is one positioned read). @default 256 MiB
   */
  cacheBytes?: number;
  /** Longest key, in UTF-8 bytes (at most 65535, the format's limit). @default 1024 */
  maxKeyBytes?: number;
  /** Largest value, in msgpack-encoded bytes (at most 1 GiB). @default 16 MiB */
  maxValueBytes?: number;
  /**
   * Cap on the total size of the store's files on disk. Sets fail with LOGKV_STORE_FULL once
   * they would leave less than the tombstone reserve (1/16 of the cap, at most 1 MiB) free, so that
   * deletes can still free space. @default Infinity (no cap)
   */
  maxStoreBytes?: number;
  /**
   * The storage medium all file I/O goes through. The default is the real file system; tests and
   * the crash harness pass an in-memory or fault-injecting medium.
   */
  medium?: Medium;
  /**
   * Start a compaction in the background when dead bytes (overwritten, deleted, expired records)
   * are at least `minDeadBytes` and at least `minDeadRatio` of the store's disk bytes; `false` turns
   * it off. On by default so a store that is written to for years does not grow without bound;
   * the byte floor keeps small stores from compacting often. A failure is reported in
   * `stats().lastAutoCompactionError` and the next trigger tries again.
   * @default { minDeadRatio: 0.5, minDeadBytes: 64 MiB }
   */
  autoCompact?: false | { minDeadRatio?: number; minDeadBytes?: number };
  /** The wall clock used for TTL, in ms since the epoch. For tests and simulations. @default Date.now */
  clock?: () => number;
  /**
   * How long the lock of an owner whose pid cannot be checked (another host or container, another
   * PID namespace) may go without a heartbeat before another process takes the store over. The
   * owner writes a heartbeat every tenth of it, and checks its lock before a write when its last
   * check is older than a sixth of it; the open() that takes a silent owner over spends the last
   * third of it watching the lock stand still (docs/locking.md). An owner on this host whose
   * process has exited is taken over at once, whatever this is. Lower means faster takeovers of
   * other containers' dead owners, and more risk that a paused owner (a stopped process, a long
   * GC or swap stall) is taken for dead and loses the store (its writes then reject
   * LOGKV_LOCK_LOST). At least 1000. @default 30000
   */
  lockStaleMs?: number;
  /**
   * Share the store with other processes and worker threads of this machine that open it with
   * `shared: true` too. One of them owns the log (it holds the lock, appends, compacts); the
   * others are clients that read the files themselves and send their writes to the owner over a
   * local socket. Every Store method works the same in both roles, and when the owner closes or
   * dies a client takes over. Options that shape the log (sync, maxSegmentBytes, maxStoreBytes,
   * autoCompact, lockStaleMs) are the owner's; key and value limits are checked by both. Needs
   * the real file system of one machine (docs/sharing.md). @default false
   */
  shared?: boolean;
}

export interface ResolvedOptions {
  sync: SyncMode;
  syncIntervalMs: number;
  maxSegmentBytes: number;
  cacheBytes: number;
  maxKeyBytes: number;
  maxValueBytes: number;
  maxStoreBytes: number;
  medium: Medium | undefined;
  clock: () => number;
  autoCompact: false | { minDeadRatio: number; minDeadBytes: number };
  lockStaleMs: number;
  shared: boolean;
}

export const DEFAULTS = {
  sync: 'always' as SyncMode,
  syncIntervalMs: 1000,
  maxSegmentBytes: 64 * 1024 * 1024,
  cacheBytes: 256 * 1024 * 1024,
  maxKeyBytes: 1024,
  maxValueBytes: 16 * 1024 * 1024,
  maxStoreBytes: Infinity,
  lockStaleMs: 30_000,
};

/** The format stores key lengths in 16 bits. */
export const FORMAT_MAX_KEY_BYTES = 0xffff;
/** Values are bounded well inside a u32 and a Buffer; a corrupt length can never ask for more. */
export const FORMAT_MAX_VALUE_BYTES = 1024 * 1024 * 1024;

function invalid(option: string, expected: string, received: unknown): LogkvError {
  return new LogkvError(
    ErrorCodes.INVALID_ARGUMENT,
    `option ${option} must be ${expected}, received ${describe(received)}`,
    { option },
  );
}

export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'symbol') return value.toString();
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  if (typeof value === 'object') return 'an object';
  return String(value);
}

function integerIn(options: OpenOptions, name: keyof typeof DEFAULTS, min: number, max: number): number {
  const value = (options as Record<string, unknown>)[name];
  if (value === undefined) return DEFAULTS[name] as number;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(name, `an integer from ${min} to ${max}`, value);
  }
  return value;
}

export function resolveOptions(options: OpenOptions | undefined): ResolvedOptions {
  if (options === undefined || options === null) options = {};
  if (typeof options !== 'object') throw invalid('options', 'an object', options);
  // Only undefined means "the default": null is a bad value here as it is for every other option.
  const sync = options.sync === undefined ? DEFAULTS.sync : options.sync;
  if (sync !== 'always' && sync !== 'interval' && sync !== 'never') {
    throw invalid('sync', "'always', 'interval' or 'never'", sync);
  }
  const maxStoreBytes = options.maxStoreBytes === undefined ? DEFAULTS.maxStoreBytes : options.maxStoreBytes;
  if (typeof maxStoreBytes !== 'number' || Number.isNaN(maxStoreBytes) || maxStoreBytes < 4096 ||
      (maxStoreBytes !== Infinity && !Number.isInteger(maxStoreBytes))) {
    throw invalid('maxStoreBytes', 'an integer of at least 4096, or Infinity', maxStoreBytes);
  }
  if (options.clock !== undefined && typeof options.clock !== 'function') throw invalid('clock', 'a function', options.clock);
  if (options.medium !== undefined && (typeof options.medium !== 'object' || options.medium === null)) {
    throw invalid('medium', 'a Medium object', options.medium);
  }
  if (options.shared !== undefined && typeof options.shared !== 'boolean') throw invalid('shared', 'a boolean', options.shared);
  if (options.shared === true && options.medium !== undefined && !options.medium.isFileSystem) {
    throw invalid('shared', 'false with a medium other than the file system (processes share files)', options.shared);
  }
  return {
    sync,
    syncIntervalMs: integerIn(options, 'syncIntervalMs', 1, 24 * 3600 * 1000),
    maxSegmentBytes: integerIn(options, 'maxSegmentBytes', 1024, 2 ** 32 - 1),
    cacheBytes: integerIn(options, 'cacheBytes', 0, 2 ** 40),
    maxKeyBytes: integerIn(options, 'maxKeyBytes', 1, FORMAT_MAX_KEY_BYTES),
    maxValueBytes: integerIn(options, 'maxValueBytes', 1, FORMAT_MAX_VALUE_BYTES),
    maxStoreBytes,
    medium: options.medium,
    clock: options.clock ?? Date.now,
    autoCompact: resolveAutoCompact(options.autoCompact),
    // Below a second, a heartbeat every 100 ms and a loaded machine would take live owners for dead.
    lockStaleMs: integerIn(options, 'lockStaleMs', 1000, 24 * 3600 * 1000),
    shared: options.shared === true,
  };
}

function resolveAutoCompact(value: OpenOptions['autoCompact']): ResolvedOptions['autoCompact'] {
  if (value === false) return false;
  if (value === undefined) return { minDeadRatio: 0.5, minDeadBytes: 64 * 1024 * 1024 };
  if (typeof value !== 'object' || value === null) throw invalid('autoCompact', 'false or an object', value);
  const minDeadRatio = value.minDeadRatio ?? 0.5;
  const minDeadBytes = value.minDeadBytes ?? 64 * 1024 * 1024;
  if (typeof minDeadRatio !== 'number' || !(minDeadRatio >= 0 && minDeadRatio <= 1)) {
    throw invalid('autoCompact.minDeadRatio', 'a number from 0 to 1', minDeadRatio);
  }
  if (typeof minDeadBytes !== 'number' || !Number.isInteger(minDeadBytes) || minDeadBytes < 0) {
    throw invalid('autoCompact.minDeadBytes', 'a non-negative integer', minDeadBytes);
  }
  return { minDeadRatio, minDeadBytes };
}

/** Space that only deletes may use, so a full store can still be emptied. */
export function tombstoneReserveBytes(maxStoreBytes: number): number {
  return maxStoreBytes === Infinity ? 0 : Math.min(1024 * 1024, Math.floor(maxStoreBytes / 16));
}
