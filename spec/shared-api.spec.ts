/**
 * The Store's behaviour specs (spec/api.spec.ts), run against a client of a shared store whose
 * owner is another process: every call, its result and its error code are the same in a client.
 */
import { expect } from 'chai';
import { OpenOptions, Store, open } from '../lib';
import { roleOf } from '../lib/shared/role';
import { Opener, afterCloseSpecs, rejectedCallSpecs, storeApiSpecs } from './api.spec';
import { Participant } from './shared/participants';

describe('in a client of a shared store', function () {
  this.timeout(30_000);
  let owner: Participant;
  /** The directory the owner holds, and the options it opened it with. */
  let held: { dir: string; options: string } | undefined;

  before(async () => {
    owner = await Participant.process();
  });
  after(async () => {
    await owner.exit();
  });

  /** The owner (in its process) opens `dir` with `options` if it does not hold it so; this process opens a client. */
  const openClient: Opener = async (dir: string, options: OpenOptions = {}) => {
    const key = JSON.stringify(options);
    if (held !== undefined && (held.dir !== dir || held.options !== key)) {
      await owner.close();
      held = undefined;
    }
    if (held === undefined) {
      expect(await owner.open(dir, options)).to.equal('owner');
      held = { dir, options: key };
    }
    const store: Store<unknown> = await open(dir, { sync: 'never', ...options, shared: true });
    expect(roleOf(store)).to.equal('client');
    return store;
  };

  const closeOwner = async (): Promise<void> => {
    if (held === undefined) return;
    await owner.close();
    held = undefined;
  };

  // Each suite's own afterEach (closing its store) runs before this one, registered after it.
  describe('the Store API', () => {
    storeApiSpecs(openClient);
    afterEach(closeOwner);
  });
  describe('after close()', () => {
    afterCloseSpecs(openClient);
    afterEach(closeOwner);
  });
  describe('a rejected call writes nothing and changes nothing', () => {
    // Every fourth case (each kind of bad key, value, ttl and call is among them), and every
    // precondition the owner decides: a process per case would make the suite slow.
    rejectedCallSpecs(openClient, (i) => i % 4 === 0 || i >= 230);
    afterEach(closeOwner);
  });
});
