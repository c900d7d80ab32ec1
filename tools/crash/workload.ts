/**
 * The crash harness's workload: a seeded, deterministic sequence of store operations, and the
 * model of what the store holds after each one.
 *
 * Determinism is the point. Every decision depends only on the seed and the model, so the
 * process that runs the operations (the kill-mode child, or the power-mode runner) and the one
 * that checks the result generate the very same sequence, and only acknowledgements need to pass
 * between them. Time is simulated too: operation i runs at `clockBase + (i - firstIndex + 1) *
 * stepMs` on the store's `clock`, so TTL expiry is exact and create()/update() preconditions on
 * expiring keys are predictable.
 *
 * Every value written is unique and carries its tag (operation index * 100 + position in a
 * batch), so the checker can tell an old value come back from one that was never written.
 *
 * Versions: the store gives every record a version in call order, so the order of the records'
 * `writtenAt` stamps (the tag of the write that made each record; a touch() rewrites a record
 * with its own stamp) is the order of their versions, across crashes too: the checker verifies
 * it. Some operations use touch(), and some a compare-and-set that can never match (ifVersion of
 * the largest version), which must write nothing.
 */
import type { BatchOperation } from '../../lib';
import { encodeValue, prepareValue } from '../../lib/codec';
import { RECORD_HEADER_BYTES } from '../../lib/format';
import { Random, seededRandom } from '../../lib/medium/random';

export type Value = string | number | boolean | null | Value[] | { [name: string]: Value };

export type SetKind = 'set' | 'create' | 'update';

export interface SetOp {
  kind: SetKind;
  key: string;
  value: Value;
  tag: number;
  ttl?: number;
  expiresAt?: number;
}

export interface BatchSet {
  type: 'set';
  key: string;
  value: Value;
  tag: number;
  ttl?: number;
}

/** The ifVersion no record ever has (the counter would need 2^53 - 1 writes to reach it). */
export const NEVER_VERSION = Number.MAX_SAFE_INTEGER;

export type Op =
  | SetOp
  | { kind: 'delete'; key: string }
  /** store.touch(): a new expiry for a live key; `at` stamps the record it writes. */
  | { kind: 'touch'; key: string; ttl: number; at: number }
  /** store.set() with ifVersion NEVER_VERSION: always LOGKV_VERSION_MISMATCH, writes nothing. */
  | { kind: 'cas'; key: string; value: Value; tag: number }
  | { kind: 'batch'; ops: Array<BatchSet | { type: 'delete'; key: string }> }
  /** store.sync(): every earlier write durable when it resolves. */
  | { kind: 'sync' }
  /** store.compact(), if the store has it. */
  | { kind: 'compact' }
  /** Wait until every issued operation settled, then let time pass (the interval sync runs). */
  | { kind: 'pause'; ms: number };

/** What the call's promise settles with: 'ok', 'true'/'false' for delete(), or a LogkvError code. */
export type Outcome = 'ok' | 'true' | 'false' | 'LOGKV_KEY_EXISTS' | 'LOGKV_KEY_NOT_FOUND' | 'LOGKV_VERSION_MISMATCH';

export interface Step {
  index: number;
  /** The store's clock while the call is made. */
  now: number;
  op: Op;
  outcome: Outcome;
  /** Whether the call writes a record (or, for sync, is a barrier behind every earlier write). */
  writes: boolean;
  /**
   * A call that changes nothing a reader sees but may still write a record: a delete of a key that
   * has expired, whose tombstone the store writes if the key is still in its index (the sweeper
   * may or may not have purged it, which the model cannot know). An injected error may reject it.
   */
  mayWrite?: boolean;
}

export interface ModelEntry {
  value: Value;
  tag: number;
  /** ms since the epoch; 0 = never. */
  expiresAt: number;
  /** The stamp of the write that made this record: its tag, or a touch's `at`. Orders versions. */
  writtenAt: number;
}

/** A key's newest record, expired or not. Entries are never mutated, so states share them. */
export type ModelState = Map<string, ModelEntry>;

export interface WorkloadConfig {
  /** Distinct keys; fewer means more overwrites and deletes of live keys. */
  keys: number;
  /** Simulated ms between operations. */
  stepMs: number;
  /** Whether to issue compact() (only if the store has it). */
  compaction: boolean;
  /** Whether to issue pauses (they let an interval sync run). */
  pauses: boolean;
  /** The largest filler in a value, in characters. */
  maxValueChars: number;
}

export interface WorkloadStart {
  /** The index of the first operation. */
  firstIndex: number;
  /** The clock just before the first operation. */
  clockBase: number;
  /** What the store holds before the first operation. */
  state?: ModelState;
}

export function isLive(entry: ModelEntry | undefined, now: number): entry is ModelEntry {
  return entry !== undefined && (entry.expiresAt === 0 || entry.expiresAt > now);
}

/** The expiry the store computes for a write made at `now`. */
function expiryOf(now: number, ttl: number | undefined, expiresAt: number | undefined): number {
  if (ttl !== undefined) return Math.ceil(now + ttl);
  if (expiresAt !== undefined) return Math.ceil(expiresAt);
  return 0;
}

/**
 * Applies `op` made at `now` to `state`, as the store does, and says what the call returns and
 * whether it writes. Mirrors store.ts exactly, including which deletes write a tombstone.
 */
export function applyOp(state: ModelState, op: Op, now: number): { outcome: Outcome; writes: boolean; mayWrite?: boolean } {
  switch (op.kind) {
    case 'set':
    case 'create':
    case 'update': {
      const live = isLive(state.get(op.key), now);
      if (op.kind === 'create' && live) return { outcome: 'LOGKV_KEY_EXISTS', writes: false };
      if (op.kind === 'update' && !live) return { outcome: 'LOGKV_KEY_NOT_FOUND', writes: false };
      state.set(op.key, { value: op.value, tag: op.tag, expiresAt: expiryOf(now, op.ttl, op.expiresAt), writtenAt: op.tag });
      return { outcome: 'ok', writes: true };
    }
    case 'touch': {
      const entry = state.get(op.key);
      if (!isLive(entry, now)) return { outcome: 'false', writes: false };
      state.set(op.key, { ...entry, expiresAt: expiryOf(now, op.ttl, undefined), writtenAt: op.at });
      return { outcome: 'true', writes: true };
    }
    case 'cas':
      return { outcome: 'LOGKV_VERSION_MISMATCH', writes: false };
    case 'delete': {
      const entry = state.get(op.key);
      if (!isLive(entry, now)) return { outcome: 'false', writes: false, mayWrite: entry !== undefined };
      state.delete(op.key);
      return { outcome: 'true', writes: true };
    }
    case 'batch': {
      // As store.batch(): a delete of a key that is not live at that point of the batch writes nothing.
      const liveInBatch = new Map<string, boolean>();
      let writes = false;
      let mayWrite = false;
      for (const sub of op.ops) {
        const wasLive = liveInBatch.has(sub.key) ? liveInBatch.get(sub.key)! : isLive(state.get(sub.key), now);
        // An expired key the batch has not touched yet: its delete writes a tombstone if the store's index still holds it.
        if (sub.type === 'delete' && !wasLive && !liveInBatch.has(sub.key) && state.has(sub.key)) mayWrite = true;
        liveInBatch.set(sub.key, sub.type === 'set');
        if (sub.type === 'set') {
          state.set(sub.key, { value: sub.value, tag: sub.tag, expiresAt: expiryOf(now, sub.ttl, undefined), writtenAt: sub.tag });
          writes = true;
        } else if (wasLive) {
          state.delete(sub.key);
          writes = true;
        }
      }
      return { outcome: 'ok', writes, mayWrite: !writes && mayWrite };
    }
    case 'sync':
      return { outcome: 'ok', writes: true };
    case 'compact':
    case 'pause':
      return { outcome: 'ok', writes: false };
  }
}

/** The store's view of a state at `now`: each live key's value and tag. */
export function observe(state: ModelState, now: number): Map<string, ModelEntry> {
  const out = new Map<string, ModelEntry>();
  for (const [key, entry] of state) if (isLive(entry, now)) out.set(key, entry);
  return out;
}

/** The tag a value carries, or undefined if it carries none (so it was never written). */
export function tagOf(value: unknown): number | undefined {
  if (typeof value === 'number') return Math.floor(value);
  if (typeof value === 'string') {
    const n = Number(value.slice(0, value.indexOf(':')));
    return Number.isInteger(n) && value.indexOf(':') > 0 ? n : undefined;
  }
  if (Array.isArray(value)) return typeof value[0] === 'number' ? value[0] : undefined;
  if (typeof value === 'object' && value !== null) {
    const tag = (value as { tag?: unknown }).tag;
    return typeof tag === 'number' ? tag : undefined;
  }
  return undefined;
}

const LETTERS = 'abcdefghijklmnopqrstuvwxyzäöü€';

/**
 * Most bytes of records in one batch: a batch must fit in one segment (the store rejects one that
 * does not), and the harnesses use segments of 1 KiB and up.
 */
const MAX_BATCH_BYTES = 1024;

export class Workload {
  readonly state: ModelState;
  readonly #random: Random;
  #index: number;

  constructor(readonly config: WorkloadConfig, seed: number, readonly start: WorkloadStart) {
    this.#random = seededRandom(seed);
    this.#index = start.firstIndex;
    this.state = new Map(start.state ?? []);
  }

  /** The index the next step will have. */
  get nextIndex(): number {
    return this.#index;
  }

  /** The clock while operation `index` is made. */
  nowAt(index: number): number {
    return this.start.clockBase + (index - this.start.firstIndex + 1) * this.config.stepMs;
  }

  /** Draws the next operation, applies it to the model, and says what the store must answer. */
  next(): Step {
    const index = this.#index++;
    const now = this.nowAt(index);
    const op = this.#draw(index, now);
    return { index, now, op, ...applyOp(this.state, op, now) };
  }

  #draw(index: number, now: number): Op {
    const r = this.#random;
    const roll = r();
    if (roll < 0.30) return this.#set('set', index, 0, this.#key(), now);
    if (roll < 0.42) return this.#set('create', index, 0, this.#keyPreferring(false, now), now);
    if (roll < 0.54) return this.#set('update', index, 0, this.#keyPreferring(true, now), now);
    if (roll < 0.70) return { kind: 'delete', key: this.#keyPreferring(true, now) };
    if (roll < 0.85) return this.#batch(index, now);
    if (roll < 0.90) return { kind: 'sync' };
    if (roll < 0.93 && this.config.compaction) return { kind: 'compact' };
    if (roll < 0.96 && this.config.pauses) return { kind: 'pause', ms: r.between(2, 12) };
    if (roll < 0.98) return { kind: 'touch', key: this.#keyPreferring(true, now), ttl: r.between(1, 300) * this.config.stepMs, at: index * 100 };
    if (roll < 0.99) return { kind: 'cas', key: this.#key(), value: this.#value(index * 100, 'never'), tag: index * 100 };
    return this.#set('set', index, 0, this.#key(), now);
  }

  #key(): string {
    const n = this.#random.int(this.config.keys);
    // A few keys outside ASCII, so key bytes and key characters differ.
    return n % 7 === 3 ? `ключ/${n}` : `k${n}`;
  }

  /** A key that is live (or not) now, most of the time, so create() and update() mostly succeed. */
  #keyPreferring(live: boolean, now: number): string {
    for (let tries = 0; tries < 6; tries++) {
      const key = this.#key();
      if (isLive(this.state.get(key), now) === live) return key;
    }
    return this.#key();
  }

  #set(kind: SetKind, index: number, position: number, key: string, now: number): SetOp {
    const tag = index * 100 + position;
    const op: SetOp = { kind, key, value: this.#value(tag, key), tag };
    const r = this.#random;
    const expiry = r();
    // Expiries of a few steps to a few hundred, so keys expire during runs and across crashes.
    if (expiry < 0.15) op.ttl = r.between(1, 300) * this.config.stepMs;
    else if (expiry < 0.22) op.expiresAt = now + r.between(1, 300) * this.config.stepMs;
    return op;
  }

  #batch(index: number, now: number): Op {
    const r = this.#random;
    const count = r.between(1, 6);
    const ops: Array<BatchSet | { type: 'delete'; key: string }> = [];
    for (let position = 0; position < count; position++) {
      const key = this.#key();
      if (r.chance(0.3)) {
        ops.push({ type: 'delete', key });
      } else {
        const set: BatchSet = { type: 'set', key, value: this.#value(index * 100 + position, key), tag: index * 100 + position };
        if (r.chance(0.15)) set.ttl = r.between(1, 300) * this.config.stepMs;
        ops.push(set);
      }
    }
    // Drop operations from the end until the batch fits in the smallest segment (counting every
    // delete, though only those of live keys write).
    const bytes = ops.map((op) => RECORD_HEADER_BYTES + Buffer.byteLength(op.key) +
      (op.type === 'set' ? encodeValue(prepareValue(op.value)).length : 0));
    while (ops.length > 1 && bytes.slice(0, ops.length).reduce((a, b) => a + b, 0) > MAX_BATCH_BYTES) ops.pop();
    return { kind: 'batch', ops };
  }

  #value(tag: number, key: string): Value {
    const r = this.#random;
    const kind = r();
    if (kind < 0.3) return `${tag}:${key}:${this.#filler(r.int(60))}`;
    if (kind < 0.4) return `${tag}:${key}:${this.#filler(r.between(200, this.config.maxValueChars))}`;
    if (kind < 0.7) {
      return {
        tag,
        key,
        n: r.int(1_000_000) - 500_000,
        f: r.int(1000) / 8,
        list: Array.from({ length: r.int(5) }, () => this.#filler(r.int(12))),
        nested: { ok: r.chance(0.5), none: null, text: this.#filler(r.int(200)) },
      };
    }
    if (kind < 0.85) return [tag, key, ...Array.from({ length: r.int(8) }, () => r.int(100_000))];
    return r.chance(0.5) ? tag : tag + 0.5;
  }

  #filler(length: number): string {
    let out = '';
    for (let i = 0; i < length; i++) out += LETTERS[this.#random.int(LETTERS.length)];
    return out;
  }
}

/** The store call for a step, as the workload runners make it. */
export type StoreLike = {
  set(key: string, value: unknown, options?: { ttl?: number; expiresAt?: number; ifVersion?: number }): Promise<unknown>;
  create(key: string, value: unknown, options?: { ttl?: number; expiresAt?: number }): Promise<unknown>;
  update(key: string, value: unknown, options?: { ttl?: number; expiresAt?: number }): Promise<unknown>;
  delete(key: string): Promise<boolean>;
  batch(ops: ReadonlyArray<BatchOperation<unknown>>): Promise<unknown>;
  touch(key: string, options: { ttl: number }): Promise<boolean>;
  sync(): Promise<void>;
  compact?: () => Promise<unknown>;
};

/**
 * Makes the call of `step` on `store` and resolves with what it settled with, as an Outcome-like
 * string ('ok', 'true', 'false' or the rejection's code). Never rejects. A pause resolves at once:
 * the runner does the waiting.
 */
export function runStep(store: StoreLike, step: Step): Promise<string> {
  const op = step.op;
  let call: Promise<unknown>;
  switch (op.kind) {
    case 'set':
    case 'create':
    case 'update': {
      const options = op.ttl !== undefined ? { ttl: op.ttl } : op.expiresAt !== undefined ? { expiresAt: op.expiresAt } : undefined;
      call = store[op.kind](op.key, op.value, options);
      break;
    }
    case 'delete':
      call = store.delete(op.key).then((deleted) => (deleted ? 'true' : 'false'));
      break;
    case 'touch':
      call = store.touch(op.key, { ttl: op.ttl }).then((touched) => (touched ? 'true' : 'false'));
      break;
    case 'cas':
      call = store.set(op.key, op.value, { ifVersion: NEVER_VERSION });
      break;
    case 'batch':
      call = store.batch(op.ops.map((sub) => (sub.type === 'delete'
        ? { type: 'delete' as const, key: sub.key }
        : { type: 'set' as const, key: sub.key, value: sub.value, ...(sub.ttl === undefined ? {} : { ttl: sub.ttl }) })));
      break;
    case 'sync':
      call = store.sync();
      break;
    case 'compact':
      call = typeof store.compact === 'function' ? store.compact() : Promise.resolve();
      break;
    case 'pause':
      call = Promise.resolve();
      break;
  }
  return call.then(
    (result) => (typeof result === 'string' ? result : 'ok'),
    (err: unknown) => String((err as { code?: unknown })?.code ?? err),
  );
}
