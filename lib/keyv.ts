/**
 * A Keyv storage adapter (`logkv/keyv`): logkv as the store behind Keyv, the key-value interface
 * much of the Node ecosystem codes against.
 *
 *   import Keyv from 'keyv';
 *   import { KeyvLogkv } from 'logkv/keyv';
 *   const keyv = new Keyv({ store: new KeyvLogkv({ dir: './cache' }), namespace: 'sessions' });
 *   await keyv.set('abc', { user: 1 }, 60_000);   // expires through logkv's own TTL
 *
 * How Keyv's concepts map onto logkv:
 * - TTL: `set(key, value, ttl)` becomes logkv's `{ ttl }`, so the key expires in the store itself
 *   (gone for get, has, iteration and size, and after reopen), not only in Keyv's wrapper.
 * - Namespaces: Keyv prefixes each key with `<namespace>:`. `clear()` deletes the keys with this
 *   adapter's namespace prefix (without a namespace, every key), in batches of bounded size: a
 *   batch must fit in one segment (maxSegmentBytes), so a clear of millions of keys is not one
 *   atomic batch. A crash in the middle leaves some of the keys; the next clear() takes the rest.
 *   `iterator(namespace)` yields the keys with that prefix.
 * - One store per directory per process: logkv allows one open per directory, so adapters
 *   constructed for the same directory in one process share one open store (opened with the first
 *   adapter's options), and the last `disconnect()` closes it.
 * - Several processes (the workers of a cluster, PM2): pass `shared: true` in every one. One
 *   process owns the log and the others are its clients (docs/sharing.md); each worker's adapter
 *   works the same whichever it is, and when the owner exits a client takes over.
 *
 * The adapter does not import Keyv: it implements Keyv 5's storage adapter contract (get, set,
 * delete, clear, has, getMany, setMany, deleteMany, hasMany, iterator, disconnect, `opts`,
 * `namespace`, and events through `on`), so it adds no dependency.
 */
import { EventEmitter } from 'events';
import * as path from 'path';
import { ErrorCodes, LogkvError } from './errors';
import { defaultDir, open } from './index';
import type { OpenOptions } from './options';
import type { BatchOperation, Store, WriteOptions } from './store';

export interface KeyvLogkvOptions extends OpenOptions {
  /** The store's directory. @default defaultDir(): $LOGKV_DIR, else the platform's data dir + logkv/default */
  dir?: string;
  /**
   * A store you opened yourself, used instead of opening `dir`. The adapter never closes it:
   * `disconnect()` only detaches the adapter.
   */
  store?: Store<unknown>;
}

interface Shared {
  ready: Promise<Store<unknown>>;
  /** The store once open, so a closed one can be told apart and replaced. */
  store?: Store<unknown>;
  refs: number;
}

/** Stores opened by adapters in this process, by directory, with how many adapters use each. */
const shared = new Map<string, Shared>();

export class KeyvLogkv extends EventEmitter {
  /**
   * Keyv reads `opts` (`url` and `dialect` decide whether Keyv 5 wires `keyv.iterator()`; it
   * does so only for the adapters on its own list, so call `adapter.iterator()` for logkv).
   */
  readonly opts: KeyvLogkvOptions & { url: string; dialect: 'logkv'; dir: string };
  /** Set by Keyv to the namespace of the Keyv instance that uses this adapter. */
  namespace?: string;
  readonly #ready: Promise<Store<unknown>>;
  readonly #ownsStore: boolean;
  #detached = false;

  constructor(options: KeyvLogkvOptions = {}) {
    super();
    const { store, dir, ...openOptions } = options;
    const where = store !== undefined ? store.dir : path.resolve(dir ?? defaultDir());
    this.opts = { ...options, dir: where, url: `logkv://${where}`, dialect: 'logkv' };
    this.#ownsStore = store === undefined;
    if (store !== undefined) {
      this.#ready = Promise.resolve(store);
    } else {
      let entry = shared.get(where);
      if (entry === undefined || entry.store?.closed === true) {
        const created: Shared = { ready: open<unknown>(where, openOptions), refs: 0 };
        created.ready.then(
          (opened) => { created.store = opened; },
          // A failed open is reported by each call that needs the store; forget it so a later adapter can retry.
          () => { if (shared.get(where) === created) shared.delete(where); },
        );
        shared.set(where, created);
        entry = created;
      }
      entry.refs++;
      this.#ready = entry.ready;
    }
  }

  /** The logkv store behind this adapter, once open. */
  async getStore(): Promise<Store<unknown>> {
    if (this.#detached) throw new LogkvError(ErrorCodes.CLOSED, 'this adapter has been disconnected');
    return this.#ready;
  }

  async get<Value>(key: string): Promise<Value | undefined> {
    return (await (await this.getStore()).get(key)) as Value | undefined;
  }

  async getMany<Value>(keys: string[]): Promise<Array<Value | undefined>> {
    const store = await this.getStore();
    return Promise.all(keys.map((key) => store.get(key) as Promise<Value | undefined>));
  }

  async has(key: string): Promise<boolean> {
    return (await this.getStore()).has(key);
  }

  async hasMany(keys: string[]): Promise<boolean[]> {
    const store = await this.getStore();
    return Promise.all(keys.map((key) => store.has(key)));
  }

  /** Sets `key`; `ttl` in ms becomes logkv's own expiry. A ttl of 0 or less means already expired. */
  async set(key: string, value: unknown, ttl?: number): Promise<boolean> {
    const store = await this.getStore();
    const expiry = writeOptions(ttl);
    if (expiry === 'expired') await store.delete(key);
    else await store.set(key, value, expiry);
    return true;
  }

  /** Sets every entry in one atomic batch. */
  async setMany(entries: Array<{ key: string; value: unknown; ttl?: number }>): Promise<boolean[]> {
    const store = await this.getStore();
    await store.batch(entries.map((entry): BatchOperation<unknown> => {
      const expiry = writeOptions(entry.ttl);
      if (expiry === 'expired') return { type: 'delete', key: entry.key };
      return { type: 'set', key: entry.key, value: entry.value, ...expiry };
    }));
    return entries.map(() => true);
  }

  /** Deletes `key`; true if it was live. */
  async delete(key: string): Promise<boolean> {
    return (await this.getStore()).delete(key);
  }

  /** Deletes the keys in one atomic batch; true if every one of them was live (as Keyv's own fallback). */
  async deleteMany(keys: string[]): Promise<boolean> {
    const store = await this.getStore();
    const live = await Promise.all(keys.map((key) => store.has(key)));
    await store.batch(keys.map((key) => ({ type: 'delete', key })));
    return keys.length > 0 && live.every(Boolean);
  }

  /**
   * Deletes every key of this adapter's namespace (every key, without one), in batches of at most
   * CLEAR_BATCH_KEYS deletes, each atomic; a batch the store finds too large for a segment is
   * split in halves until it fits.
   */
  async clear(): Promise<void> {
    const store = await this.getStore();
    const prefix = this.namespace === undefined ? undefined : `${this.namespace}:`;
    let doomed: Array<BatchOperation<unknown>> = [];
    for await (const key of store.keys({ prefix })) {
      doomed.push({ type: 'delete', key });
      if (doomed.length === CLEAR_BATCH_KEYS) {
        await deleteInBatches(store, doomed);
        doomed = [];
      }
    }
    if (doomed.length > 0) await deleteInBatches(store, doomed);
  }

  /** Yields the [key, value] pairs of `namespace` (every pair, without one). */
  async *iterator<Value>(namespace?: string): AsyncGenerator<[string, Value], void, undefined> {
    const store = await this.getStore();
    const prefix = namespace === undefined ? undefined : `${namespace}:`;
    for await (const [key, value] of store.entries({ prefix })) yield [key, value as Value];
  }

  /**
   * Detaches this adapter. The store is closed (flushing and releasing its lock) when the last
   * adapter that opened it disconnects; a store passed in as `store` is left open. Idempotent.
   */
  async disconnect(): Promise<void> {
    if (this.#detached) return;
    this.#detached = true;
    if (!this.#ownsStore) return;
    const where = this.opts.dir;
    const entry = shared.get(where);
    if (entry === undefined || entry.ready !== this.#ready) return;
    entry.refs--;
    if (entry.refs > 0) return;
    shared.delete(where);
    const store = await entry.ready.catch(() => undefined);
    await store?.close();
  }
}

/** Most deletes clear() puts in one batch: bounded, so a batch stays small whatever the store holds. */
const CLEAR_BATCH_KEYS = 1000;

/**
 * Deletes in one batch, or, if the store finds the batch too large for one segment (a store opened
 * with a small maxSegmentBytes), in two halves, recursively. A single delete always fits.
 */
async function deleteInBatches(store: Store<unknown>, deletes: Array<BatchOperation<unknown>>): Promise<void> {
  try {
    await store.batch(deletes);
  } catch (err) {
    const tooLarge = err instanceof LogkvError && err.code === ErrorCodes.INVALID_ARGUMENT && err.details.option === 'maxSegmentBytes';
    if (!tooLarge || deletes.length < 2) throw err;
    const half = Math.ceil(deletes.length / 2);
    await deleteInBatches(store, deletes.slice(0, half));
    await deleteInBatches(store, deletes.slice(half));
  }
}

/** Keyv's ttl (ms, or undefined for none) as logkv write options. */
function writeOptions(ttl: number | undefined): WriteOptions | undefined | 'expired' {
  if (ttl === undefined || ttl === null || ttl === Infinity) return undefined;
  if (typeof ttl !== 'number' || Number.isNaN(ttl)) {
    throw new LogkvError(ErrorCodes.INVALID_ARGUMENT, `ttl must be a number of ms, received ${String(ttl)}`);
  }
  return ttl > 0 ? { ttl } : 'expired';
}

