/**
 * The checker both harness modes share: does what a store holds after a crash agree with what
 * was acknowledged?
 *
 * The store writes records in call order, so after any crash it must hold exactly the state after
 * some prefix of the operations: a prefix that contains every operation the crash could not take
 * (everything acknowledged, after SIGKILL; everything synced, after a power loss) and nothing that
 * was never issued. So the expectation is a base state (after operation `lo`) and the operations
 * that were in flight or not yet durable (`pending`, lo+1..hi), any prefix of which may be there.
 *
 * When no prefix matches, each key is classified, so the figures say what went wrong:
 * - lost: a key that every allowed state has is missing;
 * - resurrected: a key holds an older value (or a deleted or expired key is back);
 * - wrong: a key holds a value that was never written to it (or is not equal to what was);
 * - inconsistent: every key on its own is allowed, but no single prefix explains them together
 *   (a torn batch, or an operation applied without an earlier one).
 *
 * When a prefix matches, the versions are checked too (if the store reports them): ordered by the
 * writes that made the records (ModelEntry.writtenAt), they must rise strictly, since the store
 * gives versions in call order and never issues one twice, across crashes and compactions. A
 * version out of that order is counted as wrong.
 */
import { isDeepStrictEqual } from 'util';
import { ModelEntry, ModelState, Step, applyOp, observe, tagOf } from './workload';

export interface Expectation {
  /** The state after operation `lo`: everything in it must be there. */
  base: ModelState;
  /** The index of the last operation that must be there (base's last). */
  lo: number;
  /** Operations lo+1..hi, in order: any prefix of them may be there. */
  pending: readonly Step[];
  /** The clock the store is read at: after every operation. */
  nowCheck: number;
  /** Which key each tag was written to, for telling resurrected values from wrong ones. */
  keyOfTag: (tag: number) => string | undefined;
}

export interface Verdict {
  ok: boolean;
  /** How many pending operations the recovered state contains, when it matched a prefix. */
  matchedPending?: number;
  /** The full state of the matched prefix, to carry into the next round. */
  matchedState?: ModelState;
  lost: number;
  wrong: number;
  resurrected: number;
  inconsistent: number;
  /** Human-readable findings, one per bad key. */
  details: string[];
}

/** A value read back from a store, or an error reading it. */
export type Recovered = Map<string, { value: unknown } | { error: string }>;

/**
 * The versions readAll() read with each Recovered, by key: kept beside it rather than in it, so
 * a Recovered compares equal to another read of the same state (a version is not a value).
 */
const VERSIONS = new WeakMap<Recovered, Map<string, number>>();

function sameView(recovered: Recovered, expected: Map<string, ModelEntry>): boolean {
  if (recovered.size !== expected.size) return false;
  for (const [key, got] of recovered) {
    const want = expected.get(key);
    if (want === undefined || !('value' in got) || !isDeepStrictEqual(got.value, want.value)) return false;
  }
  return true;
}

export function check(recovered: Recovered, expectation: Expectation): Verdict {
  const { base, pending, nowCheck } = expectation;
  // Every state the store may be in: base, then base with each longer prefix of pending applied.
  const states: ModelState[] = [new Map(base)];
  for (const step of pending) {
    const next = new Map(states[states.length - 1]);
    applyOp(next, step.op, step.now);
    states.push(next);
  }
  const views = states.map((s) => observe(s, nowCheck));
  // Several prefixes can show the same values (a touch() changes only an expiry): the state is
  // the one whose write order the versions follow.
  let disorder: string[] | undefined;
  for (let k = 0; k < views.length; k++) {
    if (!sameView(recovered, views[k])) continue;
    const found = versionDisorder(recovered, views[k]);
    if (found.length === 0) {
      return { ok: true, matchedPending: k, matchedState: states[k], lost: 0, wrong: 0, resurrected: 0, inconsistent: 0, details: [] };
    }
    disorder ??= found;
  }
  if (disorder !== undefined) return { ok: false, lost: 0, wrong: disorder.length, resurrected: 0, inconsistent: 0, details: disorder };

  const verdict: Verdict = { ok: false, lost: 0, wrong: 0, resurrected: 0, inconsistent: 0, details: [] };
  const keys = new Set<string>(recovered.keys());
  for (const view of views) for (const key of view.keys()) keys.add(key);
  for (const key of [...keys].sort()) {
    const got = recovered.get(key);
    const allowed = views.map((view) => view.get(key));
    const describeAllowed = (): string => [...new Set(allowed.map((e) => (e === undefined ? 'absent' : `tag ${e.tag}`)))].join(' or ');
    if (got === undefined) {
      if (allowed.some((e) => e === undefined)) continue;
      verdict.lost++;
      verdict.details.push(`lost: ${key} is missing; expected ${describeAllowed()}`);
      continue;
    }
    if ('error' in got) {
      verdict.wrong++;
      verdict.details.push(`wrong: reading ${key} failed with ${got.error}; expected ${describeAllowed()}`);
      continue;
    }
    if (allowed.some((e) => e !== undefined && isDeepStrictEqual(got.value, e.value))) continue;
    const tag = tagOf(got.value);
    const writtenHere = tag !== undefined && expectation.keyOfTag(tag) === key;
    const sameTag = allowed.some((e) => e !== undefined && e.tag === tag);
    if (writtenHere && !sameTag) {
      verdict.resurrected++;
      verdict.details.push(`resurrected: ${key} holds tag ${tag}; expected ${describeAllowed()}`);
    } else {
      verdict.wrong++;
      verdict.details.push(`wrong: ${key} holds ${preview(got.value)}, which was never written to it; expected ${describeAllowed()}`);
    }
  }
  if (verdict.lost + verdict.wrong + verdict.resurrected === 0) {
    verdict.inconsistent++;
    verdict.details.push('inconsistent: every key is allowed on its own, but no prefix of the operations gives them all ' +
      `(lo ${expectation.lo}, ${pending.length} pending: ${pending.map((s) => `${s.index}:${s.op.kind}`).join(' ')})`);
  }
  return verdict;
}

/** The keys whose version does not rise with the order of the writes that made their records. */
export function versionDisorder(recovered: Recovered, view: Map<string, ModelEntry>): string[] {
  const versions = VERSIONS.get(recovered);
  if (versions === undefined) return [];
  const out: string[] = [];
  const byWrite = [...view].sort((a, b) => a[1].writtenAt - b[1].writtenAt);
  let previous: { key: string; version: number } | undefined;
  for (const [key] of byWrite) {
    const version = versions.get(key);
    if (version === undefined) continue;
    if (previous !== undefined && version <= previous.version) {
      out.push(`wrong: ${key} has version ${version}, not above ${previous.key}'s ${previous.version}, which was written before it`);
    }
    previous = { key, version };
  }
  return out;
}

function preview(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? text.slice(0, 80) + '…' : text;
}

/** What readAll() needs of a store; getEntry() when it has versions. */
interface Readable {
  keys(): AsyncIterable<string>;
  get(key: string): Promise<unknown>;
  getEntry?(key: string): Promise<{ value: unknown; version: number } | undefined>;
}

/** Reads every live key, value and version of a store, recording a failed read instead of throwing. */
export async function readAll(store: Readable): Promise<Recovered> {
  const out: Recovered = new Map();
  const versions = new Map<string, number>();
  if (store.getEntry !== undefined) VERSIONS.set(out, versions);
  for await (const key of store.keys()) {
    try {
      if (store.getEntry === undefined) {
        out.set(key, { value: await store.get(key) });
      } else {
        const entry = await store.getEntry(key);
        if (entry === undefined) continue;
        out.set(key, { value: entry.value });
        versions.set(key, entry.version);
      }
    } catch (err) {
      out.set(key, { error: String((err as { code?: unknown }).code ?? err) });
    }
  }
  return out;
}
