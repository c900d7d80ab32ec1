/**
 * The one error class logkv throws, and the list of its codes.
 *
 * Codes are the API: they are stable across versions, documented in docs/errors.md, and what
 * callers and tests should branch on. Message text is for people and may change.
 */

export const ErrorCodes = {
  /** `create()` on a key that is live. */
  KEY_EXISTS: 'LOGKV_KEY_EXISTS',
  /** `update()` on a key that is not live (missing, deleted or expired). */
  KEY_NOT_FOUND: 'LOGKV_KEY_NOT_FOUND',
  /** Not a string, empty, longer than `maxKeyBytes` in UTF-8, or not well-formed UTF-16. */
  INVALID_KEY: 'LOGKV_INVALID_KEY',
  /** `undefined`, a function or symbol, a value msgpack cannot round-trip, or too large. */
  INVALID_VALUE: 'LOGKV_INVALID_VALUE',
  /** A bad option, ttl, expiry or batch operation. */
  INVALID_ARGUMENT: 'LOGKV_INVALID_ARGUMENT',
  /** Another process, or another `open()` in this process, holds the store. */
  LOCKED: 'LOGKV_LOCKED',
  /**
   * A write of a store that no longer holds its lock: another process took it over (this one
   * was paused past lockStaleMs), or someone removed it. Final: close the store and reopen it.
   */
  LOCK_LOST: 'LOGKV_LOCK_LOST',
  /**
   * A write with `ifVersion` (compare-and-set) found its key not live with exactly that version,
   * so it wrote nothing; a batch with one such operation writes none of them.
   */
  VERSION_MISMATCH: 'LOGKV_VERSION_MISMATCH',
  /** A watcher fell more than its `maxBuffered` events behind; it ends after the events it held. */
  WATCH_OVERFLOW: 'LOGKV_WATCH_OVERFLOW',
  /** The store is closed (or closing). */
  CLOSED: 'LOGKV_CLOSED',
  /** A record or file failed its checks; `details` names the file and offset. */
  CORRUPTION: 'LOGKV_CORRUPTION',
  /** `maxStoreBytes` would be exceeded, or the disk is full. */
  STORE_FULL: 'LOGKV_STORE_FULL',
  /** Any other I/O failure; `cause` holds the system error. */
  IO: 'LOGKV_IO',
  /**
   * A write a client of a shared store sent to the owner, which then died (or its connection
   * broke) before it answered: the write may or may not have been applied. It was not re-sent,
   * and never will be; read the key to learn which (docs/sharing.md).
   */
  OUTCOME_UNKNOWN: 'LOGKV_OUTCOME_UNKNOWN',
  /**
   * `open()` of a directory a backup was writing into when it was interrupted (a crash, a kill,
   * a full disk): its files are not a consistent store. Run the backup again to complete it.
   */
  INCOMPLETE_BACKUP: 'LOGKV_INCOMPLETE_BACKUP',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export interface ErrorDetails {
  file?: string;
  offset?: number;
  key?: string;
  option?: string;
  pid?: number;
  hostname?: string;
  [name: string]: unknown;
}

export class LogkvError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'LogkvError';
    this.code = code;
    this.details = details;
  }
}

/** Whether `err` is a system error with the given errno code (ENOENT, ENOSPC, ...). */
export function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

/**
 * Wraps a failure from the storage medium. A full disk becomes LOGKV_STORE_FULL, our own errors
 * pass through unchanged, and everything else becomes LOGKV_IO with the original as `cause`.
 */
export function ioError(err: unknown, action: string, file?: string): LogkvError {
  if (err instanceof LogkvError) return err;
  if (isErrno(err, 'ENOSPC') || isErrno(err, 'EDQUOT')) {
    return new LogkvError(ErrorCodes.STORE_FULL, `${action} failed: the disk is full`, { file }, err);
  }
  const reason = err instanceof Error ? err.message : String(err);
  return new LogkvError(ErrorCodes.IO, `${action} failed: ${reason}`, { file }, err);
}

export function corruption(message: string, file: string, offset: number, extra: ErrorDetails = {}): LogkvError {
  return new LogkvError(ErrorCodes.CORRUPTION, `${message} (${file} at offset ${offset})`, { file, offset, ...extra });
}
