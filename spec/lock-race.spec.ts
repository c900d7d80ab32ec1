/**
 * The lock never admits two holders, measured: round after round, 8 processes race for the lock of
 * an owner that was SIGKILLed while holding it. Each round's winner records its hold in a shared
 * journal, holds until every other racer has given up, and is then SIGKILLed itself: its lock is
 * the next round's prize. Issue 9 measured two holders in 1 round of 12 with the lock before
 * generations.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { ErrorCodes } from '../lib';
import { listGenerations } from '../lib/lock';
import { Child, killChildren, startChild } from './lock-children';
import { tempDir } from './helpers';

const RACER = 'spec/fixtures/lock-racer.ts';
const ROUNDS = Number(process.env.RACE_ROUNDS ?? 200);
const RACERS = 8;
/** Racers started ahead, so a round rarely waits for the replacement of the last one's winner. */
const SPARES = 3;

/** Racers ready for a round, and more starting in the background. */
class Pool {
  readonly #ready: Child[] = [];
  readonly #starting = new Set<Promise<void>>();

  constructor(private readonly dir: string, private readonly journal: string) {}

  /** `count` ready racers, taken from the pool. */
  async take(count: number): Promise<Child[]> {
    this.#fill(count + SPARES);
    while (this.#ready.length < count) await Promise.race(this.#starting);
    return this.#ready.splice(0, count);
  }

  giveBack(racers: Child[]): void {
    this.#ready.push(...racers);
  }

  #fill(target: number): void {
    while (this.#ready.length + this.#starting.size < target) {
      const child = startChild(RACER, [this.dir, this.journal]);
      const started: Promise<void> = child.next('ready').then(() => {
        this.#ready.push(child);
        this.#starting.delete(started);
      });
      this.#starting.add(started);
    }
  }
}

interface Hold {
  round: number;
  pid: number;
  enteredNs: bigint;
  exitedNs: bigint;
}

/** The journal's holds in order, checking that each enter is followed by the same racer's exit. */
function readHolds(journal: string): Hold[] {
  const lines = fs.readFileSync(journal, 'utf8').split('\n').filter((line) => line !== '');
  const holds: Hold[] = [];
  for (let i = 0; i < lines.length; i += 2) {
    const [event, round, pid, enteredNs] = lines[i].split(' ');
    expect(event, `journal line ${i}: ${lines[i]}`).to.equal('enter');
    const exit = (lines[i + 1] ?? '').split(' ');
    // Another racer's enter here, before this exit, would be two holders at once.
    expect(exit.slice(0, 3), `journal line ${i + 1} after ${lines[i]}`).to.deep.equal(['exit', round, pid]);
    expect(exit[4]).to.equal('ok');
    holds.push({ round: Number(round), pid: Number(pid), enteredNs: BigInt(enteredNs), exitedNs: BigInt(exit[3]) });
  }
  return holds;
}

describe('the lock under a race', function () {
  this.timeout(180_000);
  afterEach(killChildren);

  it(`${RACERS} processes race for a SIGKILLed owner's lock, ${ROUNDS} rounds: one winner a round, holds never overlap`, async () => {
    const dir = tempDir();
    const journal = path.join(tempDir('journal'), 'journal');
    const pool = new Pool(dir, journal);
    // Round 0 has one racer: it takes the new store's lock, to be killed holding it.
    for (let round = 0; round <= ROUNDS; round++) {
      const racers = await pool.take(round === 0 ? 1 : RACERS);
      for (const racer of racers) racer.send(`race ${round}`);
      const outcomes = await Promise.all(racers.map((racer) => racer.next(`won ${round}`, `lost ${round}`)));
      const winners = racers.filter((_, i) => outcomes[i].startsWith('won'));
      expect(winners, `round ${round}: ${outcomes.join(', ')}`).to.have.length(1);
      expect(outcomes.filter((o) => o.startsWith('lost')).map((o) => o.split(' ')[2]))
        .to.deep.equal(Array(racers.length - 1).fill(ErrorCodes.LOCKED));
      // Everyone else has given up by now, so a second holder could only have come before.
      const winner = winners[0];
      winner.send(`exit ${round}`);
      expect(await winner.next(`held ${round}`)).to.equal(`held ${round} ok`);
      await winner.kill('SIGKILL');
      pool.giveBack(racers.filter((racer) => racer !== winner));
    }

    const holds = readHolds(journal);
    expect(holds.map((h) => h.round)).to.deep.equal(Array.from({ length: ROUNDS + 1 }, (_, i) => i));
    for (let i = 0; i < holds.length; i++) {
      expect(holds[i].enteredNs < holds[i].exitedNs).to.equal(true);
      if (i > 0) expect(holds[i - 1].exitedNs < holds[i].enteredNs, `holds of rounds ${i - 1} and ${i} overlap`).to.equal(true);
    }
    // Each round took over the one before: the owners cleaned up every generation below theirs.
    expect(listGenerations(dir)).to.deep.equal([ROUNDS + 1]);
  });
});
