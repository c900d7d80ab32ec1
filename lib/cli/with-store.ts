/**
 * How a command uses the store: it opens it only for as long as it works, so the lock is held no
 * longer than needed, and without automatic compaction, so a command does what it says and
 * nothing more. It opens it shared: while an application holds the store shared, the command
 * joins it as a client (its writes go to the application, which owns the log); a store held
 * without `shared` still exits 3.
 */
import * as fs from 'fs';
import { ErrorCodes, LogkvError } from '../errors';
import { open } from '../index';
import type { Store } from '../store';
import { Failure, UsageError } from './command';

const OPEN_OPTIONS = { autoCompact: false, shared: true } as const;

/** Commands that only read or change existing data fail on a missing directory rather than create it. */
export function requireStoreDir(dir: string): void {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(dir);
  } catch {
    throw new Failure(`no store at ${dir} (the directory does not exist)`);
  }
  if (!stat.isDirectory()) throw new Failure(`no store at ${dir} (not a directory)`);
}

/** Opens the store, runs `body`, and closes it whatever happens. */
export async function withStore<T>(dir: string, body: (store: Store<unknown>) => Promise<T>): Promise<T> {
  const store = await open<unknown>(dir, OPEN_OPTIONS);
  let result: T;
  try {
    result = await body(store);
  } catch (err) {
    await store.close().catch(() => undefined);
    throw err;
  }
  await store.close();
  return result;
}

/** Argument errors the store reports (a bad key, value or ttl typed on the command line) are usage errors. */
export function asUsage(err: unknown, command: string): unknown {
  if (err instanceof LogkvError && (err.code === ErrorCodes.INVALID_KEY || err.code === ErrorCodes.INVALID_VALUE ||
      err.code === ErrorCodes.INVALID_ARGUMENT)) {
    return new UsageError(`${err.message} [${err.code}]`, command);
  }
  return err;
}
