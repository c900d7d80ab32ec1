/**
 * A writer process of the shared-mode crash harness (shared.ts). It opens the store shared (as
 * its owner or a client, whichever the lock makes it), and runs a seeded stream of writes to keys
 * of its own, a few in flight at once, until it is SIGKILLed or sent SIGTERM. Its journal, each
 * line written synchronously before anything else happens, so a line the parent reads is a fact:
 *
 *   s <index> <json op>          about to make call <index>
 *   a <index> <outcome>          it settled: ok, true, false, or an error code
 *   x <index> <key> <got>        a read of its own key, made when no write of it was in flight,
 *                                did not give what its last acknowledged write left
 *   o <ms>                       it became the owner at wall-clock ms (role polled every few ms)
 *   c <ms>                       it is about to close as the owner (it is one until close releases the lock)
 *   closed                       it finished: every call settled, the store closed
 */
import * as fs from 'fs';
import { open } from '../../lib';
import type { Store, SyncMode } from '../../lib';
import { seededRandom } from '../../lib/medium/random';
import { roleOf } from '../../lib/shared/role';

export interface SharedChildConfig {
  dir: string;
  /** Names this incarnation's keys: `<prefix>:<n>`. */
  prefix: string;
  journal: string;
  seed: number;
  sync: SyncMode;
  window: number;
  keys: number;
  maxValueChars: number;
}

export type SharedOp =
  | { kind: 'set'; key: string; value: string }
  | { kind: 'delete'; key: string }
  | { kind: 'batch'; ops: Array<{ type: 'set'; key: string; value: string } | { type: 'delete'; key: string }> }
  | { kind: 'sync' }
  | { kind: 'compact' };

/** The ops of an incarnation, drawn from its seed; values carry `<prefix>:<index>` as their tag. */
export function* sharedOps(config: Pick<SharedChildConfig, 'seed' | 'prefix' | 'keys' | 'maxValueChars'>): Generator<SharedOp> {
  const random = seededRandom(config.seed);
  const key = (): string => `${config.prefix}:${random.int(config.keys)}`;
  const value = (index: number, position: number): string => `${config.prefix}:${index}.${position}|${'v'.repeat(random.int(config.maxValueChars))}`;
  for (let index = 0; ; index++) {
    const roll = random();
    if (roll < 0.5) yield { kind: 'set', key: key(), value: value(index, 0) };
    else if (roll < 0.7) yield { kind: 'delete', key: key() };
    else if (roll < 0.93) {
      const ops: Array<{ type: 'set'; key: string; value: string } | { type: 'delete'; key: string }> = [];
      const count = random.between(2, 4);
      for (let position = 0; position < count; position++) {
        ops.push(random.chance(0.25) ? { type: 'delete', key: key() } : { type: 'set', key: key(), value: value(index, position) });
      }
      yield { kind: 'batch', ops };
    } else if (roll < 0.98) yield { kind: 'sync' };
    else yield { kind: 'compact' };
  }
}

/** The keys an op writes. */
export function keysOfOp(op: SharedOp): string[] {
  if (op.kind === 'set' || op.kind === 'delete') return [op.key];
  if (op.kind === 'batch') return op.ops.map((o) => o.key);
  return [];
}

let journalFd = -1;

function journal(line: string): void {
  const buf = Buffer.from(line + '\n');
  for (let done = 0; done < buf.length;) done += fs.writeSync(journalFd, buf, done);
}

function call(store: Store<unknown>, op: SharedOp): Promise<unknown> {
  switch (op.kind) {
    case 'set': return store.set(op.key, op.value);
    case 'delete': return store.delete(op.key);
    case 'batch': return store.batch(op.ops);
    case 'sync': return store.sync();
    case 'compact': return store.compact();
  }
}

async function main(configPath: string): Promise<void> {
  const config = JSON.parse(fs.readFileSync(configPath, 'utf8')) as SharedChildConfig;
  journalFd = fs.openSync(config.journal, 'a');
  let stopping = false;
  process.on('SIGTERM', () => { stopping = true; });
  const store = await open(config.dir, {
    shared: true, sync: config.sync, maxSegmentBytes: 64 * 1024, lockStaleMs: 5000,
    autoCompact: { minDeadRatio: 0.4, minDeadBytes: 64 * 1024 },
  });
  let owner = false;
  const watchRole = (): void => {
    const now = roleOf(store) === 'owner';
    if (now && !owner) journal(`o ${Date.now()}`);
    owner = now;
  };
  watchRole();
  const roleTimer = setInterval(watchRole, 2);
  /** What the last acknowledged write left in each key, while no write of it is in flight. */
  const known = new Map<string, string | null>();
  const inflightKeys = new Map<string, number>();
  /** The last call made of each key: a read after a call is judged only if no later call of the key was made. */
  const lastCallOf = new Map<string, number>();
  const inflight = new Set<Promise<void>>();
  const ops = sharedOps(config);
  for (let index = 0; !stopping; index++) {
    while (inflight.size >= config.window) await Promise.race(inflight);
    if (stopping) break;
    const op = ops.next().value as SharedOp;
    const keys = keysOfOp(op);
    for (const key of keys) {
      inflightKeys.set(key, (inflightKeys.get(key) ?? 0) + 1);
      lastCallOf.set(key, index);
      known.delete(key);
    }
    journal(`s ${index} ${JSON.stringify(op)}`);
    const running: Promise<void> = call(store, op).then(
      (result) => {
        journal(`a ${index} ${typeof result === 'boolean' ? String(result) : 'ok'}`);
        return true;
      },
      (err: unknown) => {
        journal(`a ${index} ${String((err as { code?: unknown })?.code ?? err)}`);
        return false;
      },
    ).then(async (applied) => {
      for (const key of keys) inflightKeys.set(key, inflightKeys.get(key)! - 1);
      if (!applied) return;
      // Read back each key of this write that no other write is changing: the client must read
      // its own acknowledged writes (and the owner its own).
      const expected = new Map<string, string | null>();
      if (op.kind === 'set') expected.set(op.key, op.value);
      if (op.kind === 'delete') expected.set(op.key, null);
      if (op.kind === 'batch') for (const o of op.ops) expected.set(o.key, o.type === 'set' ? o.value : null);
      for (const [key, value] of expected) {
        if (inflightKeys.get(key) !== 0 || lastCallOf.get(key) !== index) continue;
        const got = await store.get(key).catch((err: unknown) => `error ${String((err as { code?: unknown })?.code)}`);
        if (lastCallOf.get(key) !== index) continue;
        if ((got ?? null) !== value) journal(`x ${index} ${key} ${JSON.stringify(got ?? null).slice(0, 60)}`);
        else known.set(key, value);
      }
    });
    inflight.add(running);
    void running.finally(() => inflight.delete(running));
  }
  await Promise.all(inflight);
  clearInterval(roleTimer);
  watchRole();
  // Before close: the owner is one until close releases the lock, so this end is never late.
  if (owner) journal(`c ${Date.now()}`);
  await store.close();
  journal('closed');
}

main(process.argv[2]).catch((err: unknown) => {
  if (journalFd >= 0) journal(`failed ${String((err as Error)?.stack ?? err).replace(/\n/g, ' | ')}`);
  process.stderr.write(`shared crash writer failed: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(2);
});
