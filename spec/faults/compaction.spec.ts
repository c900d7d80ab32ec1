/**
 * Compaction under crashes and concurrent writes, as the crash harness exercises it.
 */
import { expect } from 'chai';
import { open } from '../../lib';
import type { Store } from '../../lib';
import { FaultyMedium } from '../../lib/medium/faulty';
import { MemoryMedium } from '../../lib/medium/memory';

const DIR = '/db';
const EXPECTED = { first: 1, joins: 'the seal group', big: 'x'.repeat(1000) };

async function contents(store: Store<unknown>): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for await (const [key, value] of store.entries()) out[key] = value;
  return out;
}

describe('compaction with writes racing its seal', () => {
  it('a delete made while compaction seals, into a segment that fills up meanwhile, stays deleted (regression)', async () => {
    // Found by the crash harness (kill mode): seal() took its inputs as every segment below the
    // active one *after* waiting for its sync. Writes made during that wait went to the segment
    // the seal had just started, and if they filled it, it rotated, and became an input too.
    // A delete queued there made the copy keep the old value (for the delete's undo), in an
    // output numbered after the delete's segment: once that segment was removed (or, after a
    // kill, on replay) the deleted key came back.
    const memory = new MemoryMedium();
    const faulty = new FaultyMedium(memory, { seed: 1 });
    const store = await open(DIR, { medium: faulty, sync: 'never', maxSegmentBytes: 1024, autoCompact: false });
    await store.set('key', 'old');
    await store.sync();
    const writes: Array<Promise<unknown>> = [];
    let step = 0;
    let killed: MemoryMedium | undefined;
    faulty.onOperation = async (event) => {
      if (event.phase !== 'before') return;
      if (step === 0 && event.op === 'write') {
        // The writer is busy with 'first' while compaction seals: its sync waits behind it, and
        // a write made now joins the seal's group, creating the segment the seal just started.
        step = 1;
        await new Promise((resolve) => setImmediate(resolve));
        writes.push(store.set('joins', 'the seal group'));
      } else if (step === 1 && event.op === 'sync') {
        // While that group is written: a delete into the same segment, and a write that fills
        // it, so it rotates before the seal looks at which segments are sealed.
        step = 2;
        writes.push(store.delete('key'), store.set('big', 'x'.repeat(1000)));
      }
      // A kill just before compaction removes its inputs.
      if (killed === undefined && event.op === 'remove') killed = memory.fork();
    };
    writes.push(store.set('first', 1));
    const compaction = store.compact();
    await compaction;
    await Promise.all(writes);
    expect(step, 'the writes raced the seal').to.equal(2);
    expect(await store.get('key')).to.equal(undefined);
    await store.close();

    const reopened = await open(DIR, { medium: memory });
    expect(await contents(reopened), 'after the compaction finished').to.deep.equal(EXPECTED);
    await reopened.close();
    expect(killed, 'the compaction removed its inputs').to.not.equal(undefined);
    const afterKill = await open(DIR, { medium: killed! });
    expect(await contents(afterKill), 'after a kill before the inputs went').to.deep.equal(EXPECTED);
    await afterKill.close();
  });
});
