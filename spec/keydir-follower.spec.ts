/**
 * The keydir in a shared store's client (lib/shared/follower.ts): the client's index learns of the
 * owner's records by replaying them (KeyIndex.applyBytes), so every delete there is a keydir
 * removal with a cluster shift (members after the hole move back, each told where its home is by
 * its slot, or hashed again when too far from it). The owner is a child process; the client
 * under test is this process, and reads from its own keydir.
 */
import { expect } from 'chai';
import { Store, open } from '../lib';
import { roleOf } from '../lib/shared/role';
import { tempDir } from './helpers';
import { killChildren } from './lock-children';
import { Participant } from './shared/participants';

const KEYS = 6000;

describe('keydir removals in a shared-mode client (the follower applies the owner\'s deletes)', function () {
  this.timeout(60_000);
  let owner: Participant;
  let client: Store<unknown> | undefined;

  beforeEach(async () => {
    owner = await Participant.process();
  });
  afterEach(async () => {
    await client?.close().catch(() => undefined);
    client = undefined;
    await owner.close().catch(() => undefined);
    await owner.exit();
    await killChildren();
  });

  /** Every key the spec wrote, read through the client: [key, value or undefined], in order. */
  async function readAll(store: Store<unknown>): Promise<Array<[string, unknown]>> {
    const keys = Array.from({ length: KEYS }, (_, i) => `key:${i}`);
    const values = await store.getMany(keys);
    return keys.map((key, i) => [key, values[i]]);
  }

  async function liveKeys(store: Store<unknown>): Promise<string[]> {
    const keys: string[] = [];
    for await (const key of store.keys()) keys.push(key);
    return keys;
  }

  for (const deleter of ['owner', 'client'] as const) {
    it(`deletes made by the ${deleter} leave the client's keydir with exactly the live keys, and the holes are reused`, async () => {
      const dir = tempDir('keydir-follower');
      expect(await owner.open(dir)).to.equal('owner');
      client = await open(dir, { shared: true, sync: 'never' });
      expect(roleOf(client)).to.equal('client');
      // The owner writes every key; the client's read catches its keydir up with all of them, so
      // the deletes below remove records from a full table (70% at most: long clusters).
      for (let at = 0; at < KEYS; at += 1000) {
        await owner.must('batch', Array.from({ length: 1000 }, (_, i) => ({ type: 'set', key: `key:${at + i}`, value: at + i })));
      }
      expect(await client.get(`key:${KEYS - 1}`)).to.equal(KEYS - 1);
      expect(client.size).to.equal(KEYS);
      // Two keys in three go, in an order unrelated to their slots; every fifth survivor is overwritten.
      const doomed = Array.from({ length: KEYS }, (_, i) => i).filter((i) => i % 3 !== 0);
      const deletes = doomed.map((i) => ({ type: 'delete', key: `key:${i}` }));
      const overwrites = Array.from({ length: KEYS }, (_, i) => i).filter((i) => i % 15 === 0)
        .map((i) => ({ type: 'set', key: `key:${i}`, value: `new ${i}` }));
      for (let at = 0; at < deletes.length; at += 500) {
        const slice = deletes.slice(at, at + 500);
        if (deleter === 'owner') await owner.must('batch', slice);
        else await client.batch(slice as Array<{ type: 'delete'; key: string }>);
      }
      await owner.must('batch', overwrites);
      const expected: Array<[string, unknown]> = Array.from({ length: KEYS }, (_, i) =>
        [`key:${i}`, i % 3 !== 0 ? undefined : i % 15 === 0 ? `new ${i}` : i]);
      expect(await readAll(client)).to.deep.equal(expected);
      expect(client.size).to.equal(KEYS / 3);
      const live = expected.filter(([, value]) => value !== undefined).map(([key]) => key);
      expect(await liveKeys(client)).to.deep.equal([...live].sort());
      // New keys take the freed records and slots; the survivors are still found among them.
      await owner.must('batch', Array.from({ length: 2000 }, (_, i) => ({ type: 'set', key: `again:${i}`, value: `again ${i}` })));
      expect(await client.get('again:1999')).to.equal('again 1999');
      expect(await readAll(client)).to.deep.equal(expected);
      expect(await client.getMany(['again:0', 'again:1000', 'key:1', 'key:3'])).to.deep.equal(['again 0', 'again 1000', undefined, 3]);
      expect(client.size).to.equal(KEYS / 3 + 2000);
      // And the owner agrees with the client.
      expect(await owner.dump()).to.deep.equal(await (async () => {
        const all: Array<[string, unknown]> = [];
        for await (const entry of client!.entries()) all.push(entry);
        return all;
      })());
    });
  }
});
