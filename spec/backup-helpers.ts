/**
 * What the backup specs share: a model of writes, the contents of a store, and a medium whose
 * opens and writes a spec can hold at a gate to put a backup and a compaction in a chosen order.
 */
import { expect } from 'chai';
import { ErrorCodes, LogkvError, OpenOptions, Store, open } from '../lib';
import type { Medium, MediumFile, OpenFileOptions } from '../lib/medium/types';

export type Op =
  | { type: 'set'; key: string; value: unknown }
  | { type: 'delete'; key: string }
  | { type: 'batch'; ops: Array<{ type: 'set'; key: string; value: unknown } | { type: 'delete'; key: string }> };

export type Model = Map<string, unknown>;

export function applyOp(model: Model, op: Op): void {
  if (op.type === 'set') model.set(op.key, op.value);
  else if (op.type === 'delete') model.delete(op.key);
  else for (const inner of op.ops) applyOp(model, inner);
}

/** Makes the call `op` describes. */
export function run(store: Store<unknown>, op: Op): Promise<unknown> {
  if (op.type === 'set') return store.set(op.key, op.value);
  if (op.type === 'delete') return store.delete(op.key);
  return store.batch(op.ops);
}

/** A random op on a small key space, from `random` (0..1). */
export function randomOp(random: () => number, n: number): Op {
  const key = (): string => `k${Math.floor(random() * 40)}`;
  const roll = random();
  if (roll < 0.6) return { type: 'set', key: key(), value: { n, pad: 'x'.repeat(Math.floor(random() * 200)) } };
  if (roll < 0.8) return { type: 'delete', key: key() };
  return {
    type: 'batch',
    ops: [{ type: 'set', key: key(), value: n }, { type: 'delete', key: key() }, { type: 'set', key: key(), value: -n }],
  };
}

/** Every live key and value, sorted by key. */
export async function contents(store: Store<unknown>): Promise<Array<[string, unknown]>> {
  const out: Array<[string, unknown]> = [];
  for await (const pair of store.entries()) out.push(pair);
  return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

export function sortedModel(model: Model): Array<[string, unknown]> {
  return [...model].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** Opens the backup in `dir`, reads it whole and closes it. */
export async function openBackup(dir: string, options: OpenOptions = {}): Promise<Array<[string, unknown]>> {
  const copy = await open(dir, { autoCompact: false, ...options });
  try {
    return await contents(copy);
  } finally {
    await copy.close();
  }
}

/** What the store in `dir` holds, or 'incomplete' if open() refuses it with LOGKV_INCOMPLETE_BACKUP. */
export async function openOrIncomplete(dir: string, options: OpenOptions = {}): Promise<Array<[string, unknown]> | 'incomplete'> {
  try {
    return await openBackup(dir, options);
  } catch (err) {
    if (err instanceof LogkvError && err.code === ErrorCodes.INCOMPLETE_BACKUP) return 'incomplete';
    throw err;
  }
}

/** A gate a spec closes to hold calls and opens to let them (and the ones after) through. */
export class Gate {
  #closed = false;
  #waiters: Array<() => void> = [];
  /** Calls that arrived while it was closed. */
  held = 0;

  close(): void {
    this.#closed = true;
  }

  open(): void {
    this.#closed = false;
    for (const wake of this.#waiters.splice(0)) wake();
  }

  async pass(): Promise<void> {
    if (!this.#closed) return;
    this.held++;
    await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }
}

export interface Hooks {
  /** Before an open of `file`; may wait. */
  open?: (file: string, options: OpenFileOptions | undefined) => Promise<void> | void;
  /** Before a write to `file`; may wait. */
  write?: (file: string) => Promise<void> | void;
  /** Replaces link(): undefined removes it (a medium that cannot link). */
  link?: ((existing: string, newPath: string) => Promise<void>) | 'none';
}

/** `inner` with the calls `hooks` name passing through them first. */
export function hooked(inner: Medium, hooks: Hooks): Medium {
  const medium: Medium = {
    isFileSystem: inner.isFileSystem,
    mkdirp: (dir) => inner.mkdirp(dir),
    list: (dir) => inner.list(dir),
    rename: (from, to) => inner.rename(from, to),
    remove: (file) => inner.remove(file),
    syncDir: (dir) => inner.syncDir(dir),
    async open(file: string, options?: OpenFileOptions): Promise<MediumFile> {
      await hooks.open?.(file, options);
      const handle = await inner.open(file, options);
      return {
        path: handle.path,
        readSync: (buf, offset, length, position) => handle.readSync(buf, offset, length, position),
        sizeSync: () => handle.sizeSync(),
        sync: () => handle.sync(),
        truncate: (size) => handle.truncate(size),
        close: () => handle.close(),
        write: async (chunks, position) => {
          await hooks.write?.(file);
          return handle.write(chunks, position);
        },
      };
    },
  };
  if (inner.stat !== undefined) medium.stat = (file) => inner.stat!(file);
  if (hooks.link !== 'none') {
    const link = hooks.link ?? (inner.link === undefined ? undefined : (a: string, b: string) => inner.link!(a, b));
    if (link !== undefined) medium.link = link;
  }
  return medium;
}

/** Waits until `predicate` holds, a turn of the event loop at a time (at most `turns`). */
export async function until(predicate: () => boolean, turns = 10_000): Promise<void> {
  for (let i = 0; i < turns && !predicate(); i++) await new Promise((resolve) => setImmediate(resolve));
  expect(predicate(), 'the awaited condition').to.equal(true);
}

/** Whether `promise` has settled, after letting pending callbacks run. */
export async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  promise.then(() => { done = true; }, () => { done = true; });
  for (let i = 0; i < 50; i++) await new Promise((resolve) => setImmediate(resolve));
  return done;
}
