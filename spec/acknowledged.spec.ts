/**
 * An answer that writes nothing is acknowledged no sooner than the writes it rests on.
 *
 * The index shows a write as soon as it is called, before its records reach the file. A delete
 * of a key that a queued delete already took out writes nothing, and used to resolve at once:
 * killed before the queued delete was written, the store came back with the key, though an
 * acknowledged call had said it was gone (the shared-mode soak at 6d28ec6 found it: "lost: w23:2
 * holds call 159's value; its last acknowledged call is 170", call 170 a batch of deletes of a
 * key call 169 was deleting). Each such answer now waits for the writes queued before it
 * (Writer.settled), and fails with them if they fail.
 */
import { expect } from 'chai';
import { ErrorCodes, Store, open } from '../lib';
import { FaultyMedium, KEEP_UNSYNCED, MemoryMedium } from '../lib/testing';
import { expectCode } from './helpers';

const DIR = '/db';

/** The calls that may answer without writing, each made right after a queued delete of 'k'. */
const NO_WRITE_CALLS: Array<[string, (store: Store<string>) => Promise<unknown>, unknown]> = [
  ['delete()', (store) => store.delete('k'), false],
  ['batch() of deletes', (store) => store.batch([{ type: 'delete', key: 'k' }, { type: 'delete', key: 'k' }]), [0, 0]],
  ['touch()', (store) => store.touch('k', { ttl: 60_000 }), false],
  ['clear()', (store) => store.clear(), 0],
];

describe('an answer that writes nothing waits for the writes it rests on', () => {
  for (const [name, call, answer] of NO_WRITE_CALLS) {
    it(`${name} after a queued delete: a crash when it resolves keeps the delete`, async () => {
      const memory = new MemoryMedium();
      const store = await open<string>(DIR, { medium: memory, sync: 'interval', autoCompact: false });
      await store.set('k', 'v');
      const order: string[] = [];
      const queued = store.delete('k').then((wasLive) => { order.push('queued'); return wasLive; });
      let killed: MemoryMedium | undefined;
      const answered = call(store).then((value) => {
        order.push('answer');
        // The process dies here: what it wrote reached the OS, nothing more.
        killed = memory.crash(KEEP_UNSYNCED);
        return value;
      });
      expect(await answered).to.deep.equal(answer);
      expect(await queued).to.equal(true);
      expect(order).to.deep.equal(['queued', 'answer']);
      await store.close();

      const after = await open<string>(DIR, { medium: killed!, sync: 'interval', autoCompact: false });
      expect(await after.get('k')).to.equal(undefined);
      expect(after.size).to.equal(0);
      await after.close();
    });

    it(`${name} after a queued delete that fails: it fails too, and the key is still there`, async () => {
      const memory = new MemoryMedium();
      const faulty = new FaultyMedium(memory, { seed: 1 });
      const store = await open<string>(DIR, { medium: faulty, sync: 'interval', autoCompact: false });
      await store.set('k', 'v');
      faulty.failNext('write', 'EIO', { path: /\.seg$/ });
      const queued = store.delete('k');
      const answered = call(store);
      await expectCode(queued, ErrorCodes.IO);
      await expectCode(answered, ErrorCodes.IO);
      expect(await store.get('k')).to.equal('v');
      await store.close();
    });
  }

  it('with nothing queued it answers at once, and a write queued after it does not hold it up', async () => {
    const memory = new MemoryMedium();
    const store = await open<string>(DIR, { medium: memory, sync: 'always', autoCompact: false });
    const order: string[] = [];
    const answered = store.delete('absent').then((v) => { order.push('answer'); return v; });
    const later = store.set('other', 'v').then(() => { order.push('later'); });
    expect(await answered).to.equal(false);
    await later;
    expect(order).to.deep.equal(['answer', 'later']);
    await store.close();
  });
});
