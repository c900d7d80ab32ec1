/**
 * Shared helpers for the specs: temporary store directories that are removed after each test,
 * an assertion on error codes, and small readers of the on-disk layout.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { LogkvError, OpenOptions, Store, open } from '../lib';
import type { ErrorCode } from '../lib';
import { encodeValue, prepareValue } from '../lib/codec';
import { RECORD_HEADER_BYTES } from '../lib/format';
import { fileSystem } from '../lib/medium/fs';
import type { Medium, MediumFile, OpenFileOptions } from '../lib/medium/types';

const made: string[] = [];

/** A fresh empty directory under os.tmpdir(), removed after the current test. */
export function tempDir(label = 'store'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `logkv-spec-${label}-`));
  made.push(dir);
  return dir;
}

afterEach(() => {
  for (const dir of made.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * Asserts that `promise` rejects with a LogkvError of exactly `code`, and returns the error so
 * the caller can check its details. Never looks at message text: codes are the API.
 */
export async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<LogkvError> {
  let settled: { ok: true; value: unknown } | { ok: false; err: unknown };
  try {
    settled = { ok: true, value: await promise };
  } catch (err) {
    settled = { ok: false, err };
  }
  if (settled.ok) expect.fail(`expected a rejection with ${code}, but it resolved with ${String(settled.value)}`);
  const err = settled.err;
  expect(err, `expected a LogkvError with ${code}, got ${String(err)}`).to.be.instanceOf(LogkvError);
  expect(err).to.be.instanceOf(Error);
  expect((err as LogkvError).code).to.equal(code);
  return err as LogkvError;
}

/** The synchronous form of expectCode, for getters and stats(). */
export function expectCodeSync(fn: () => unknown, code: ErrorCode): LogkvError {
  let threw: unknown;
  try {
    fn();
  } catch (err) {
    threw = err;
  }
  expect(threw, `expected a throw with ${code}`).to.be.instanceOf(LogkvError);
  expect((threw as LogkvError).code).to.equal(code);
  return threw as LogkvError;
}

/** Options that keep specs fast: no fdatasync per write unless a spec asks for it. */
export const FAST: OpenOptions = { sync: 'never' };

/** Opens `dir` with FAST options merged under `options`. */
export function openFast<V = unknown>(dir: string, options: OpenOptions = {}): Promise<Store<V>> {
  return open<V>(dir, { ...FAST, ...options });
}

/** Every live key and value, read through entries(), sorted by key. */
export async function dump<V>(store: Store<V>): Promise<Array<[string, V]>> {
  const out: Array<[string, V]> = [];
  for await (const pair of store.entries()) out.push(pair);
  return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** Every live key through keys(), sorted. */
export async function allKeys(store: Store<unknown>, prefix?: string): Promise<string[]> {
  const out: string[] = [];
  for await (const key of store.keys(prefix === undefined ? {} : { prefix })) out.push(key);
  return out.sort();
}

/** Segment file names in `dir`, oldest first. */
export function segmentFiles(dir: string): string[] {
  return fs.readdirSync(dir).filter((name) => name.endsWith('.seg')).sort();
}

/** Total size of the segment files in `dir`. */
export function segmentBytes(dir: string): number {
  return segmentFiles(dir).reduce((sum, name) => sum + fs.statSync(path.join(dir, name)).size, 0);
}

/** A byte-for-byte snapshot of the segment files, to prove a call wrote nothing. */
export function snapshotSegments(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of segmentFiles(dir)) out[name] = fs.readFileSync(path.join(dir, name)).toString('hex');
  return out;
}

/** A deterministic PRNG (mulberry32), so random specs replay; print the seed on failure. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` pseudo-random bytes from `random`. */
export function randomBytes(random: () => number, n: number): Buffer {
  const buf = Buffer.alloc(n);
  for (let i = 0; i < n; i++) buf[i] = Math.floor(random() * 256);
  return buf;
}

/** A clock a spec moves by hand, for TTL. */
export class FakeClock {
  constructor(public now = 1_700_000_000_000) {}
  readonly read = (): number => this.now;
  advance(ms: number): void {
    this.now += ms;
  }
}

/** The size of a SET record of `key` and `value` on disk: 28-byte header, UTF-8 key, msgpack value. */
export function setRecordBytes(key: string, value: unknown): number {
  return RECORD_HEADER_BYTES + Buffer.byteLength(key, 'utf8') + encodeValue(prepareValue(value)).length;
}

/** The size of a DELETE record (a tombstone) of `key`. */
export function deleteRecordBytes(key: string): number {
  return RECORD_HEADER_BYTES + Buffer.byteLength(key, 'utf8');
}

/** The byte counts of stats(), without fields other features add (compaction state and the like). */
export function coreStats(store: Store<unknown>): { keys: number; segments: number; liveBytes: number; deadBytes: number; diskBytes: number } {
  const { keys, segments, liveBytes, deadBytes, diskBytes } = store.stats();
  return { keys, segments, liveBytes, deadBytes, diskBytes };
}

/**
 * Removes every file but the segments, as a crash would leave the directory: what a clean close
 * writes beside the segments (such as a keydir snapshot, which lets open skip the scan) was never
 * written. Specs that damage segment files call this so that open scans what they damaged.
 */
export function keepOnlySegments(dir: string): void {
  for (const name of fs.readdirSync(dir)) {
    if (!name.endsWith('.seg')) fs.rmSync(path.join(dir, name), { recursive: true, force: true });
  }
}

/** Opens `dir` as the first open after a crash: only the segment files are there. */
export function openAfterCrash<V = unknown>(dir: string, options: OpenOptions = {}): Promise<Store<V>> {
  keepOnlySegments(dir);
  return openFast<V>(dir, options);
}

/** What a spec may put in front of the real file system's calls (see fsWith). */
export interface FsHooks {
  /** Replaces a file's write: `write` performs the real one. */
  write?: (file: string, chunks: readonly Uint8Array[], position: number, write: () => Promise<void>) => Promise<void>;
  /** Replaces remove: `remove` performs the real one. */
  remove?: (file: string, remove: () => Promise<void>) => Promise<void>;
}

/** The real file system, with some calls routed through a spec's hooks (to hold or fail them). */
export function fsWith(hooks: FsHooks): Medium {
  return {
    isFileSystem: true,
    mkdirp: (dir) => fileSystem.mkdirp(dir),
    list: (dir) => fileSystem.list(dir),
    rename: (from, to) => fileSystem.rename(from, to),
    syncDir: (dir) => fileSystem.syncDir(dir),
    remove: (file) => (hooks.remove ? hooks.remove(file, () => fileSystem.remove(file)) : fileSystem.remove(file)),
    async open(file: string, options?: OpenFileOptions): Promise<MediumFile> {
      const inner = await fileSystem.open(file, options);
      return {
        path: inner.path,
        readSync: (buf, offset, length, position) => inner.readSync(buf, offset, length, position),
        sizeSync: () => inner.sizeSync(),
        sync: () => inner.sync(),
        truncate: (size) => inner.truncate(size),
        close: () => inner.close(),
        write: (chunks, position) => (hooks.write
          ? hooks.write(file, chunks, position, () => inner.write(chunks, position))
          : inner.write(chunks, position)),
      };
    },
  };
}

/** An error as the file system raises it. */
export function systemError(code: string): Error {
  return Object.assign(new Error(`injected ${code}`), { code });
}
