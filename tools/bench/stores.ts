/**
 * One adapter per store, all behind the same small interface, and the settings each runs with.
 *
 * Peers are loaded with a require rooted at tools/bench/package.json, never imported at the top:
 * they live in tools/bench/node_modules (installed on demand) and this file must load, and
 * type-check, where they are not installed. The types below are the few calls used, written out.
 */
import { createRequire } from 'module';
import * as fs from 'fs';
import * as path from 'path';
import { Packr } from 'msgpackr';
import type { BenchValue } from './data';
import type { StoreName } from './protocol';

/** 'fast': no fsync per write (every throughput workload). 'durable': a write resolves once on disk. */
export type Mode = 'fast' | 'durable';

/** The operations every workload uses. Every method resolves only when the store has done it. */
export interface KV {
  get(key: string): Promise<unknown>;
  put(key: string, value: BenchValue): Promise<void>;
  /** Writes all entries as one batch (one transaction, where the store has them). */
  putBatch(entries: ReadonlyArray<readonly [string, BenchValue]>): Promise<void>;
  close(): Promise<void>;
  /** Present only where the store can reclaim the space of overwritten records on demand. */
  compact?(): Promise<void>;
}

export interface StoreDriver {
  name: StoreName;
  /** The settings of each mode, in words, for the report's method section. */
  settings: { fast: string; durable: string };
  /** Null when the store has a durable mode; otherwise why durable workloads are n/a. */
  noDurableMode: string | null;
  /** Loads the store's code (cached by require), so that timing can start after it. */
  load(ctx: DriverContext): void;
  /** `tuning` is passed to logkv's open() as is (e.g. maxSegmentBytes); peers ignore it. */
  open(dir: string, mode: Mode, ctx: DriverContext, tuning?: Record<string, unknown>): Promise<KV>;
}

export interface DriverContext {
  /** tools/bench, whose node_modules holds the peers. */
  benchDir: string;
  /** The transpiled library's root (holds lib/index.js). */
  buildRoot: string;
}

/** One msgpack codec for the stores that take bytes, with its options spelled out (STYLE 4). */
const packr = new Packr({ useRecords: false, moreTypes: false });

function peerRequire(ctx: DriverContext): NodeRequire {
  return createRequire(path.join(ctx.benchDir, 'package.json'));
}

// ---- logkv -------------------------------------------------------------------------------------

interface LogkvStore {
  get(key: string): Promise<unknown>;
  set(key: string, value: unknown): Promise<void>;
  batch(ops: Array<{ type: 'set'; key: string; value: unknown }>): Promise<void>;
  close(): Promise<void>;
  compact?: () => Promise<unknown>;
}
type LogkvOpen = (dir: string, options: Record<string, unknown>) => Promise<LogkvStore>;

/** The library's entry point in the transpiled tree, or why it cannot be loaded. */
export function logkvEntry(buildRoot: string): string {
  return path.join(buildRoot, 'lib', 'index.js');
}

function loadLogkv(ctx: DriverContext): LogkvOpen {
  const entry = logkvEntry(ctx.buildRoot);
  if (!fs.existsSync(entry)) throw new Unavailable('lib/index.ts does not exist yet');
  const lib = require(entry) as { open?: unknown };
  if (typeof lib.open !== 'function') throw new Unavailable('lib/index.ts does not export open()');
  return lib.open as LogkvOpen;
}

const logkv: StoreDriver = {
  name: 'logkv',
  settings: {
    fast: "sync: 'never', other options at their defaults (64 MiB segments, autoCompact on)",
    durable: "sync: 'always' (fdatasync before a write resolves; writes waiting for a sync share the next one)",
  },
  noDurableMode: null,
  load: (ctx) => void loadLogkv(ctx),
  async open(dir, mode, ctx, tuning) {
    const store = await loadLogkv(ctx)(dir, { ...tuning, sync: mode === 'durable' ? 'always' : 'never' });
    const kv: KV = {
      get: (key) => store.get(key),
      put: (key, value) => store.set(key, value),
      putBatch: (entries) => store.batch(entries.map(([key, value]) => ({ type: 'set', key, value }))),
      close: () => store.close(),
    };
    // Feature-detected: compaction may not be written yet.
    if (typeof store.compact === 'function') {
      const compact = store.compact.bind(store);
      kv.compact = async () => {
        await compact();
      };
    }
    return kv;
  },
};

// ---- lmdb --------------------------------------------------------------------------------------

interface LmdbDatabase {
  get(key: string): unknown;
  put(key: string, value: unknown): Promise<boolean>;
  batch(action: () => void): Promise<boolean>;
  close(): Promise<void>;
  /** Resolves when every earlier commit is flushed (fsynced) to disk. */
  readonly flushed: Promise<boolean>;
}

const lmdb: StoreDriver = {
  name: 'lmdb',
  settings: {
    fast: 'encoding msgpack, compression off, noSync: true (the OS writes the map back when it likes)',
    durable:
      'defaults (overlappingSync): a put is awaited, then db.flushed, which resolves once its commit is fsynced',
  },
  noDurableMode: null,
  load: (ctx) => void peerRequire(ctx)('lmdb'),
  async open(dir, mode, ctx) {
    const { open } = peerRequire(ctx)('lmdb') as {
      open(options: Record<string, unknown>): LmdbDatabase;
    };
    const db = open({
      path: path.join(dir, 'data.mdb'),
      encoding: 'msgpack',
      compression: false,
      ...(mode === 'fast' ? { noSync: true } : {}),
    });
    // Reads are synchronous memory-mapped lookups; they are wrapped in a promise like every other store.
    return {
      get: async (key) => db.get(key),
      put:
        mode === 'durable'
          ? async (key, value) => {
              await db.put(key, value);
              // With overlappingSync the put resolves at commit, before the fsync that follows it.
              await db.flushed;
            }
          : async (key, value) => {
              await db.put(key, value);
            },
      putBatch: async (entries) => {
        await db.batch(() => {
          for (const [key, value] of entries) void db.put(key, value);
        });
        if (mode === 'durable') await db.flushed;
      },
      close: () => db.close(),
    };
  },
};

// ---- classic-level -----------------------------------------------------------------------------

interface LevelDatabase {
  open(): Promise<void>;
  get(key: string): Promise<Uint8Array | undefined>;
  put(key: string, value: Uint8Array, options: { sync: boolean }): Promise<void>;
  batch(ops: Array<{ type: 'put'; key: string; value: Uint8Array }>, options: { sync: boolean }): Promise<void>;
  close(): Promise<void>;
}

const classicLevel: StoreDriver = {
  name: 'classic-level',
  settings: {
    fast: 'values msgpack-encoded to bytes, LevelDB defaults (snappy, 4 MiB write buffer, 8 MiB cache), sync: false',
    durable: 'as fast, with { sync: true } on every put and batch',
  },
  noDurableMode: null,
  load: (ctx) => void peerRequire(ctx)('classic-level'),
  async open(dir, mode, ctx) {
    const { ClassicLevel } = peerRequire(ctx)('classic-level') as {
      ClassicLevel: new (location: string, options: Record<string, unknown>) => LevelDatabase;
    };
    const db = new ClassicLevel(dir, { keyEncoding: 'utf8', valueEncoding: 'view' });
    await db.open();
    const sync = { sync: mode === 'durable' };
    return {
      get: async (key) => {
        const bytes = await db.get(key);
        return bytes === undefined ? undefined : packr.unpack(bytes);
      },
      put: (key, value) => db.put(key, packr.pack(value), sync),
      putBatch: (entries) =>
        db.batch(
          entries.map(([key, value]) => ({ type: 'put', key, value: packr.pack(value) })),
          sync,
        ),
      close: () => db.close(),
    };
  },
};

// ---- better-sqlite3 ----------------------------------------------------------------------------

interface SqliteStatement {
  run(...params: unknown[]): unknown;
  get(...params: unknown[]): unknown;
  pluck(): SqliteStatement;
}
interface SqliteDatabase {
  pragma(source: string): unknown;
  exec(source: string): void;
  prepare(source: string): SqliteStatement;
  transaction<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void;
  close(): void;
}

const betterSqlite3: StoreDriver = {
  name: 'better-sqlite3',
  settings: {
    fast:
      'table (k TEXT PRIMARY KEY, v BLOB), msgpack values, journal_mode=WAL, synchronous=NORMAL (fsync only at checkpoints), prepared upsert and select',
    durable: 'as fast, with synchronous=FULL (the WAL is fsynced at every commit)',
  },
  noDurableMode: null,
  // The native binding loads on the first Database, so one is made in memory and closed.
  load: (ctx) => {
    const Database = peerRequire(ctx)('better-sqlite3') as new (file: string) => SqliteDatabase;
    new Database(':memory:').close();
  },
  async open(dir, mode, ctx) {
    const Database = peerRequire(ctx)('better-sqlite3') as new (file: string) => SqliteDatabase;
    const db = new Database(path.join(dir, 'kv.sqlite'));
    db.pragma('journal_mode = WAL');
    db.pragma(mode === 'durable' ? 'synchronous = FULL' : 'synchronous = NORMAL');
    db.exec('CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v BLOB)');
    const upsert = db.prepare('INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v');
    const select = db.prepare('SELECT v FROM kv WHERE k = ?').pluck();
    const upsertAll = db.transaction((entries: ReadonlyArray<readonly [string, BenchValue]>) => {
      for (const [key, value] of entries) upsert.run(key, packr.pack(value));
    });
    // better-sqlite3 is synchronous: every call below blocks the event loop until SQLite returns.
    return {
      get: async (key) => {
        const bytes = select.get(key) as Buffer | undefined;
        return bytes === undefined ? undefined : packr.unpack(bytes);
      },
      put: async (key, value) => {
        upsert.run(key, packr.pack(value));
      },
      putBatch: async (entries) => upsertAll(entries),
      close: async () => db.close(),
    };
  },
};

// ---- node-persist ------------------------------------------------------------------------------

interface NodePersistStorage {
  init(): Promise<unknown>;
  getItem(key: string): Promise<unknown>;
  setItem(key: string, value: unknown): Promise<unknown>;
  stopExpiredKeysInterval(): void;
  stopWriteQueueInterval(): void;
}

const nodePersist: StoreDriver = {
  name: 'node-persist',
  settings: {
    fast: 'defaults (one JSON file per key, write queue on), expiredInterval off (no TTLs are used)',
    durable: 'n/a',
  },
  noDurableMode: 'node-persist writes with fs.writeFile and never fsyncs',
  load: (ctx) => void peerRequire(ctx)('node-persist'),
  async open(dir, _mode, ctx) {
    const nodePersistModule = peerRequire(ctx)('node-persist') as {
      create(options: Record<string, unknown>): NodePersistStorage;
    };
    const storage = nodePersistModule.create({ dir, expiredInterval: 0 });
    await storage.init();
    return {
      get: (key) => storage.getItem(key),
      put: async (key, value) => {
        await storage.setItem(key, value);
      },
      // There is no batch API: the batch is issued at once and awaited together.
      putBatch: async (entries) => {
        await Promise.all(entries.map(([key, value]) => storage.setItem(key, value)));
      },
      close: async () => {
        storage.stopExpiredKeysInterval();
        storage.stopWriteQueueInterval();
      },
    };
  },
};

// ---- keyv-file ---------------------------------------------------------------------------------

interface KeyvFileStore {
  get(key: string): Promise<unknown>;
  set(key: string, value: unknown): Promise<unknown>;
  saveToDisk(): Promise<void>;
  save(): Promise<unknown>;
}

const keyvFile: StoreDriver = {
  name: 'keyv-file',
  settings: {
    fast: 'defaults (the whole map in memory, rewritten to one JSON file 100 ms after a set), used directly without keyv',
    durable: 'n/a',
  },
  noDurableMode: 'keyv-file rewrites its file with fs.writeFile and never fsyncs',
  load: (ctx) => void peerRequire(ctx)('keyv-file'),
  async open(dir, _mode, ctx) {
    const { KeyvFile } = peerRequire(ctx)('keyv-file') as {
      KeyvFile: new (options: Record<string, unknown>) => KeyvFileStore;
    };
    // The constructor reads and parses the whole file synchronously.
    const kv = new KeyvFile({ filename: path.join(dir, 'kv.json') });
    return {
      get: (key) => kv.get(key),
      put: async (key, value) => {
        await kv.set(key, value);
      },
      putBatch: async (entries) => {
        await Promise.all(entries.map(([key, value]) => kv.set(key, value)));
      },
      close: async () => {
        // A set made while a save is writing resolves with that save, which may not include it:
        // one more save makes sure the file holds everything before it is measured or reopened.
        await kv.save();
        await kv.saveToDisk();
      },
    };
  },
};

export const DRIVERS: Record<StoreName, StoreDriver> = {
  logkv,
  lmdb,
  'classic-level': classicLevel,
  'better-sqlite3': betterSqlite3,
  'node-persist': nodePersist,
  'keyv-file': keyvFile,
};

/** Thrown when a store cannot run at all here (e.g. the library is not written yet). */
export class Unavailable extends Error {
  override name = 'Unavailable';
}
