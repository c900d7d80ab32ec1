/**
 * Versions across SIGKILL: a child process (spec/fixtures/versioner.ts) writes a store with
 * compare-and-set, touch() and plain sets in a loop, with automatic compaction running, and is
 * killed at a random moment; the store is reopened (by its snapshot, its hints or a replay, in
 * turn) and every acknowledged write is checked against it, round after round on one directory:
 *
 * - every write the child saw resolve is there with the version it resolved with, or a later
 *   write of the same key is (SIGKILL takes the process, not the kernel: nothing acknowledged is
 *   lost, in any sync mode);
 * - versions rise strictly across crashes: every version acknowledged in a round is above every
 *   version the store held when the round began, and within a round they are all distinct;
 * - the store checks out clean at the end.
 *
 * The crash harness (npm run crashtest) checks the order of versions against its model too
 * (tools/crash/check.ts); this spec checks their exact values.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { open } from '../lib';
import type { Store, SyncMode } from '../lib';
import { checkStore } from '../lib/check';
import { check, readAll } from '../tools/crash/check';
import type { ModelState } from '../tools/crash/workload';
import { Child, killChildren, startChild } from './lock-children';
import { tempDir } from './helpers';

interface Ack {
  kind: 'set' | 'touch';
  key: string;
  version: number;
  tag: number;
}

/** The key's newest acknowledged write (the highest version), and every acknowledged version. */
function summarise(acks: Ack[]): { newest: Map<string, Ack>; versions: number[] } {
  const newest = new Map<string, Ack>();
  for (const ack of acks) {
    const seen = newest.get(ack.key);
    if (seen === undefined || ack.version > seen.version) newest.set(ack.key, ack);
  }
  return { newest, versions: acks.map((a) => a.version) };
}

/** Every write a killed child acknowledged: its lines, once its output has ended. */
async function acksOf(child: Child): Promise<Ack[]> {
  const stdout = child.process.stdout!;
  if (!stdout.destroyed && !stdout.readableEnded) await new Promise((resolve) => stdout.once('close', resolve));
  const acks: Ack[] = [];
  for (;;) {
    let line: string;
    try {
      line = await child.next('set ', 'touch ');
    } catch {
      return acks; // exited, and no line left
    }
    const [kind, key, version, tag] = line.split(' ');
    acks.push({ kind: kind as Ack['kind'], key, version: Number(version), tag: Number(tag) });
  }
}

async function entries(store: Store<{ tag: number }>): Promise<Map<string, { version: number; tag: number }>> {
  const out = new Map<string, { version: number; tag: number }>();
  for await (const key of store.keys()) {
    const entry = (await store.getEntry(key))!;
    out.set(key, { version: entry.version, tag: entry.value.tag });
  }
  return out;
}

describe('versions across SIGKILL', function () {
  this.timeout(120_000);
  afterEach(killChildren);

  it('a process doing CAS and touch in a loop, killed again and again: every acknowledged version is there, and versions only rise', async () => {
    const dir = tempDir('versions-kill');
    const modes: SyncMode[] = ['never', 'interval', 'always'];
    let held = new Map<string, { version: number; tag: number }>();
    let acknowledged = 0;
    let compactions = 0;
    for (let round = 0; round < 9; round++) {
      const highestBefore = Math.max(0, ...[...held.values()].map((e) => e.version));
      const child = startChild('spec/fixtures/versioner.ts', [dir, modes[round % 3], String(round + 1)]);
      await child.next('ready');
      await new Promise((resolve) => setTimeout(resolve, 150 + (round * 37) % 200));
      await child.kill('SIGKILL');
      const acks = await acksOf(child);
      const where = `round ${round}`;
      expect(acks.length, `${where}: the child acknowledged writes`).to.be.greaterThan(0);
      acknowledged += acks.length;
      const { newest, versions } = summarise(acks);
      expect(new Set(versions).size, `${where}: no version acknowledged twice`).to.equal(versions.length);
      expect(Math.min(...versions), `${where}: above every version held before`).to.be.greaterThan(highestBefore);

      // Reopen by the snapshot (a clean close before), the hints, or a replay.
      if (round % 3 === 1) fs.rmSync(path.join(dir, 'keydir.snapshot'), { force: true });
      if (round % 3 === 2) for (const name of fs.readdirSync(dir)) if (/\.(hint|snapshot)$/.test(name)) fs.rmSync(path.join(dir, name));
      const store = await open<{ tag: number }>(dir, { sync: 'never', autoCompact: false });
      compactions += fs.readdirSync(dir).filter((n) => n.endsWith('.seg') && parseInt(n, 16) % 0x10000 !== 0).length > 0 ? 1 : 0;
      const now = await entries(store);
      for (const [key, ack] of newest) {
        const got = now.get(key);
        expect(got, `${where}: ${key} (acknowledged at version ${ack.version})`).to.not.equal(undefined);
        expect(got!.version, `${where}: ${key}`).to.be.at.least(ack.version);
        if (got!.version === ack.version) expect(got!.tag, `${where}: ${key} at version ${ack.version}`).to.equal(ack.tag);
      }
      for (const [key, before] of held) {
        // A key not written this round keeps its version; one written has a higher one.
        if (!newest.has(key)) expect(now.get(key)!.version, `${where}: ${key}`).to.be.at.least(before.version);
      }
      // The next write of this store is above every version it ever acknowledged.
      const highest = Math.max(...versions, ...[...now.values()].map((e) => e.version));
      const probe = await store.set('probe', { tag: -1 });
      expect(probe, `${where}: the next version`).to.be.greaterThan(highest);
      await store.delete('probe');
      await store.close();
      held = now;
    }
    expect(acknowledged).to.be.greaterThan(100);
    expect(compactions, 'compactions ran in the children').to.be.greaterThan(0);
    const report = await checkStore(dir);
    expect(report.problems.filter((p) => p.severity !== 'notice')).to.deep.equal([]);
  });
});

describe("the crash harness's version check (tools/crash/check.ts)", () => {
  /** A store that holds `a` and `b` with the given versions. */
  const fake = (versions: { a: number; b: number }) => ({
    async *keys(): AsyncGenerator<string> { yield 'a'; yield 'b'; },
    get: async (key: string): Promise<unknown> => `value of ${key}`,
    getEntry: async (key: string) => ({ value: `value of ${key}`, version: versions[key as 'a' | 'b'] }),
  });
  // 'a' was written by operation 1, 'b' by operation 2; then operation 3 touched 'a' (same value).
  const base: ModelState = new Map([
    ['a', { value: 'value of a', tag: 100, expiresAt: 0, writtenAt: 100 }],
    ['b', { value: 'value of b', tag: 200, expiresAt: 0, writtenAt: 200 }],
  ]);
  const touched = { index: 3, now: 0, op: { kind: 'touch' as const, key: 'a', ttl: 1000, at: 300 }, outcome: 'true' as const, writes: true };
  const expectation = { base, lo: 2, pending: [touched], nowCheck: 0, keyOfTag: () => undefined };

  it('passes versions that rise with the order of the writes, whichever prefix explains them', async () => {
    expect(check(await readAll(fake({ a: 1, b: 2 })), expectation).ok).to.equal(true);
    // The touch is there: 'a' was rewritten after 'b'.
    const verdict = check(await readAll(fake({ a: 3, b: 2 })), expectation);
    expect([verdict.ok, verdict.matchedPending]).to.deep.equal([true, 1]);
  });

  it('fails versions that go against the order of the writes, as wrong', async () => {
    const verdict = check(await readAll(fake({ a: 2, b: 2 })), { ...expectation, pending: [] });
    expect([verdict.ok, verdict.wrong]).to.deep.equal([false, 1]);
    expect(check(await readAll(fake({ a: 5, b: 2 })), { ...expectation, pending: [] }).ok).to.equal(false);
  });
});
