/**
 * Backup and restore as NDJSON, for applications and for `logkv dump` / `logkv load`.
 *
 * One line per live key, members in this order:
 *
 *   {"key":"user:1","value":{"name":"Ada"},"expiresAt":null}
 *   {"key":"session","value":{"$logkv":"Date","value":"2024-05-01T12:00:00.000Z"},"expiresAt":1714567200000}
 *
 * `value` is rendered by lib/tagged-json.ts, so every type logkv stores (bigint, Date, Map, Buffer,
 * typed arrays, ...) comes back exactly; `expiresAt` is the key's expiry in ms since the epoch, or
 * null if it has none. JSON.stringify escapes every line break, so a line is always one record.
 * Any tool that reads JSON lines can read a dump; `loadStore` also takes lines without
 * `expiresAt`.
 */
import * as readline from 'readline';
import { ErrorCodes, LogkvError, ioError } from './errors';
import { describe } from './options';
import type { BatchOperation, Store } from './store';
import { fromTaggedJson, toTaggedJson } from './tagged-json';
import { TextSink } from './text-sink';

export interface DumpOptions {
  /** Only keys that start with this string. */
  prefix?: string;
  /** Called after each line is handed out (written, for dumpStore), with the counts so far. */
  onProgress?: (progress: DumpProgress) => void;
}

export interface DumpProgress {
  /** Lines (keys) handed out so far. */
  keys: number;
  /** Bytes of those lines, in UTF-8, newlines included. */
  bytes: number;
  /**
   * The store's live keys when the dump began: an estimate of the end, since writes during the
   * dump change it. Absent when a `prefix` is given (counting would cost a walk of every key).
   */
  keysTotal?: number;
}

/** What dumpStore wrote. */
export interface DumpResult {
  keys: number;
  bytes: number;
}

export interface LoadOptions {
  /**
   * Records per atomic batch: a positive whole number. Larger batches load faster; a batch also
   * ends once its lines reach 8 MiB, so memory stays bounded whatever the values' size.
   * @default 1000
   */
  batchSize?: number;
  /** Called after each line is read, with the counts so far. */
  onProgress?: (progress: LoadProgress) => void;
}

export interface LoadProgress extends LoadResult {
  /** Bytes of input read so far, in UTF-8, counting one newline per line. */
  bytes: number;
}

/** What loadStore read and wrote. */
export interface LoadResult {
  /** Records written to the store. */
  loaded: number;
  /** Lines skipped because their expiresAt had already passed. */
  skippedExpired: number;
  /** Lines read, blank ones included. */
  lines: number;
}

/** The text of a dump (a stream or a string), or its lines. */
export type LoadInput = NodeJS.ReadableStream | string | AsyncIterable<string> | Iterable<string>;

/** One line of a dump. */
interface DumpRecord {
  key: string;
  value: unknown;
  expiresAt?: number | null;
}

const DEFAULT_BATCH_SIZE = 1000;
/** A batch is written once its lines reach this many bytes, so huge values do not pile up. */
const MAX_BATCH_BYTES = 8 * 1024 * 1024;

/**
 * The store's live keys as NDJSON lines (each ending in "\n"), optionally only those with a prefix,
 * in no particular order. Reads go through the store (`keys()`, then `getEntry()` for each key),
 * so a dump sees what a reader sees: a key that expires or is deleted between the two is skipped,
 * and keys written during the dump may or may not be in it. The store must stay open until the
 * iteration ends (else LOGKV_CLOSED); a damaged record rejects with LOGKV_CORRUPTION.
 *
 *   Readable.from(dumpLines(store)).pipe(fs.createWriteStream('backup.ndjson'));
 */
export async function* dumpLines<V>(store: Store<V>, options: DumpOptions = {}): AsyncGenerator<string, void, undefined> {
  const { prefix, onProgress } = options;
  const progress: DumpProgress = prefix === undefined ? { keys: 0, bytes: 0, keysTotal: store.size } : { keys: 0, bytes: 0 };
  for await (const key of store.keys({ prefix })) {
    const entry = await store.getEntry(key);
    if (entry === undefined) continue;
    const line = `${JSON.stringify({ key, value: toTaggedJson(entry.value), expiresAt: entry.expiresAt ?? null })}\n`;
    yield line;
    progress.keys++;
    progress.bytes += Buffer.byteLength(line);
    onProgress?.({ ...progress });
  }
}

/**
 * Writes the store's live keys to `output` as NDJSON (see dumpLines for what a dump holds),
 * waiting whenever the stream's buffer is full, and resolves with the counts once the last line is
 * written. It does not end or close `output`: end a file stream and await `finished()` (from
 * 'stream/promises') to know the bytes are in the file. A failure of the stream rejects with
 * LOGKV_IO, the stream's error as `cause`; dumpStore listens for the stream's 'error' only while
 * it runs.
 *
 *   const file = fs.createWriteStream('backup.ndjson');
 *   const { keys } = await dumpStore(store, file);
 *   file.end();
 *   await finished(file);
 */
export async function dumpStore<V>(store: Store<V>, output: NodeJS.WritableStream, options: DumpOptions = {}): Promise<DumpResult> {
  const sink = new TextSink(output);
  const result: DumpResult = { keys: 0, bytes: 0 };
  const onProgress = (progress: DumpProgress): void => {
    result.keys = progress.keys;
    result.bytes = progress.bytes;
    options.onProgress?.(progress);
  };
  try {
    for await (const line of dumpLines(store, { prefix: options.prefix, onProgress })) {
      try {
        await sink.write(line);
      } catch (err) {
        throw new LogkvError(ErrorCodes.IO, `writing the dump failed after ${result.keys} key(s): ${(err as Error).message}`, {}, err);
      }
    }
  } finally {
    sink.detach();
  }
  return result;
}

/**
 * Sets the keys of an NDJSON dump in `store`, in atomic batches of `batchSize` records, and
 * resolves with the counts. `input` is the text of a dump, as a readable stream (a file, stdin, a
 * socket) or a string, or an iterable of lines, one record each (a trailing newline is allowed),
 * such as dumpLines of another store. Lines end at LF, CRLF or CR. Blank lines are skipped, and
 * so are records whose `expiresAt` had passed when the line was read.
 *
 * Loading stops at the first bad line or rejected batch: the batches before it stay written, the
 * failing line's batch is not written at all. The error's `details.loaded` counts the records
 * written, and:
 * - a line that is not a record (not a JSON object; a member other than key, value, expiresAt; a
 *   key that is not a string; no value; an expiresAt that is not a positive time or null):
 *   LOGKV_INVALID_ARGUMENT with `details.line`, its line number (from 1);
 * - a malformed tagged value: LOGKV_INVALID_VALUE with `details.line`;
 * - a batch the store rejects (an invalid key, a full store, an I/O failure): the store's error's
 *   code and details, with `details.firstLine` and `details.lastLine`, the store's error as `cause`.
 * Errors of the input stream itself reject as they are. A bad `batchSize` rejects with
 * LOGKV_INVALID_ARGUMENT before anything is read.
 */
export async function loadStore<V>(store: Store<V>, input: LoadInput,
                                   options: LoadOptions = {}): Promise<LoadResult> {
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  if (typeof batchSize !== 'number' || !Number.isInteger(batchSize) || batchSize <= 0) {
    throw new LogkvError(ErrorCodes.INVALID_ARGUMENT, `batchSize must be a positive whole number, received ${describe(batchSize)}`,
      { option: 'batchSize' });
  }
  const progress: LoadProgress = { loaded: 0, skippedExpired: 0, lines: 0, bytes: 0 };
  const batch = new Batch<V>(store, progress);
  for await (const line of linesOf(input)) {
    const lineBytes = Buffer.byteLength(line);
    progress.lines++;
    progress.bytes += lineBytes + 1;
    if (line.trim() !== '') {
      const record = parseLine(line, progress);
      if (record.expiresAt != null && record.expiresAt <= Date.now()) progress.skippedExpired++;
      else batch.add(record, lineBytes);
      if (batch.size >= batchSize || batch.bytes >= MAX_BATCH_BYTES) await batch.write();
    }
    options.onProgress?.({ ...progress });
  }
  await batch.write();
  return { loaded: progress.loaded, skippedExpired: progress.skippedExpired, lines: progress.lines };
}

/** The records read since the last write, and the line where they start. */
class Batch<V> {
  readonly #store: Store<V>;
  readonly #progress: LoadProgress;
  #operations: Array<BatchOperation<V>> = [];
  #firstLine = 1;
  #bytes = 0;

  constructor(store: Store<V>, progress: LoadProgress) {
    this.#store = store;
    this.#progress = progress;
  }

  get size(): number {
    return this.#operations.length;
  }

  /** Bytes of the lines of its records: a batch is written before it holds too much. */
  get bytes(): number {
    return this.#bytes;
  }

  add(record: DumpRecord, lineBytes: number): void {
    const { key, expiresAt } = record;
    const value = record.value as V; // a dump's values are whatever was stored; V is the caller's word
    this.#operations.push(expiresAt != null ? { type: 'set', key, value, expiresAt } : { type: 'set', key, value });
    this.#bytes += lineBytes;
  }

  /** Writes the batch atomically (nothing if it is empty); the next batch starts after the current line. */
  async write(): Promise<void> {
    const progress = this.#progress;
    if (this.#operations.length > 0) {
      try {
        await this.#store.batch(this.#operations);
      } catch (err) {
        const cause = ioError(err, 'writing a batch');
        throw new LogkvError(cause.code, `the batch of lines ${this.#firstLine}-${progress.lines} was rejected, nothing of it ` +
          `written: ${cause.message} [${cause.code}]; ${progress.loaded} record(s) before it are loaded`,
        { ...cause.details, firstLine: this.#firstLine, lastLine: progress.lines, loaded: progress.loaded }, cause);
      }
      progress.loaded += this.#operations.length;
    }
    this.#operations = [];
    this.#bytes = 0;
    this.#firstLine = progress.lines + 1;
  }
}

/** The lines of a stream (split as readline splits them) or a string, or the items of an iterable. */
async function* linesOf(input: LoadInput): AsyncGenerator<string> {
  if (typeof input === 'string') {
    if (input !== '') yield* input.replace(/(\r\n|\n|\r)$/, '').split(/\r\n|\n|\r/);
    return;
  }
  if (isReadableStream(input)) {
    yield* readline.createInterface({ input, crlfDelay: Infinity });
    return;
  }
  for await (const item of input) {
    if (typeof item !== 'string') {
      throw new LogkvError(ErrorCodes.INVALID_ARGUMENT, `loadStore takes lines as strings, received a ${typeof item}`);
    }
    yield item.replace(/(\r\n|\n|\r)$/, '');
  }
}

function isReadableStream(input: unknown): input is NodeJS.ReadableStream {
  return typeof input === 'object' && input !== null && typeof (input as NodeJS.ReadableStream).pipe === 'function' &&
    typeof (input as NodeJS.ReadableStream).on === 'function';
}

/** Parses one line; a bad one rejects with its line number and what was loaded before its batch. */
function parseLine(line: string, progress: LoadResult): DumpRecord {
  try {
    return parseRecord(line);
  } catch (err) {
    const cause = err as LogkvError;
    throw new LogkvError(cause.code, `line ${progress.lines}: ${cause.message}; ${progress.loaded} record(s) before its batch are loaded`,
      { line: progress.lines, loaded: progress.loaded }, cause);
  }
}

function parseRecord(line: string): DumpRecord {
  const bad = (message: string): LogkvError => new LogkvError(ErrorCodes.INVALID_ARGUMENT, message);
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch (err) {
    throw bad(`not JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw bad('not a JSON object');
  const record = parsed as Record<string, unknown>;
  for (const name of Object.keys(record)) {
    if (name !== 'key' && name !== 'value' && name !== 'expiresAt') throw bad(`unknown member ${JSON.stringify(name)}`);
  }
  if (typeof record.key !== 'string') throw bad('"key" must be a string');
  if (!Object.prototype.hasOwnProperty.call(record, 'value')) throw bad('"value" is missing');
  const expiresAt = record.expiresAt;
  if (expiresAt !== undefined && expiresAt !== null &&
      (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt) || expiresAt <= 0)) {
    throw bad('"expiresAt" must be a time in ms since the epoch, or null');
  }
  return { key: record.key, value: fromTaggedJson(record.value), expiresAt };
}
