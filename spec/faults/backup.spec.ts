/**
 * Hot backup interrupted: a power loss at every step, a full disk, SIGKILL at random moments.
 * Whatever happens, the destination is complete (it opens and holds exactly the state at the
 * cut), or open() refuses it with LOGKV_INCOMPLETE_BACKUP and `logkv check` reports it, or (an
 * interruption before the marker was durable) it is what it was before the backup. And a
 * backup into it afterwards completes it.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { ErrorCodes, Store, checkStore, open } from '../../lib';
import { FaultyMedium } from '../../lib/medium/faulty';
import { DROP_UNSYNCED, KEEP_UNSYNCED, MemoryMedium, randomCrash } from '../../lib/medium/memory';
import { seededRandom } from '../../lib/medium/random';
import { Model, contents, openBackup, openOrIncomplete, sortedModel } from '../backup-helpers';
import { expectCode, tempDir } from '../helpers';
import { killChildren, startChild } from '../lock-children';

const DIR = '/db';
const DEST = '/bk';
type State = Array<[string, unknown]>;

async function fillStore(store: Store<unknown>, model: Model, tag: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const key = `k${i % 25}`;
    const value = { tag, i, pad: 'w'.repeat(50 + (i % 7) * 20) };
    await store.set(key, value);
    model.set(key, value);
  }
}

/** Whether the destination on `disk` shows any sign of a backup (its marker or its manifest). */
async function hasBackup(disk: MemoryMedium): Promise<boolean> {
  if (!disk.exists(DEST)) return false;
  const names = await disk.list(DEST);
  return names.includes('backup.incomplete') || names.includes('backup.manifest');
}

/**
 * Checks the destination on a disk a crash left: refused as incomplete (and reported by check),
 * or one of the states it may hold. `before` undefined: it held no backup before.
 */
async function checkDisk(disk: MemoryMedium, after: State, before: State | undefined, where: string): Promise<void> {
  if (before === undefined && !(await hasBackup(disk))) {
    const names = disk.exists(DEST) ? await disk.list(DEST) : [];
    expect(names.filter((n) => /\.(seg|hint)$/.test(n)), `${where}: no backup began, so no store file`).to.deep.equal([]);
    return;
  }
  const got = await openOrIncomplete(DEST, { medium: disk });
  if (got === 'incomplete') {
    const report = await checkStore(DEST, { medium: disk });
    expect(report.problems.some((p) => p.file === `${DEST}/backup.incomplete` && p.severity === 'corruption'), where).to.equal(true);
    return;
  }
  const states = before === undefined ? [after] : [after, before];
  expect(states.map((s) => JSON.stringify(s)), `${where}: the backup holds the state at the cut`).to.include(JSON.stringify(got));
}

describe('hot backup under faults', () => {
  afterEach(killChildren);

  describe('a power loss at every step of a backup', () => {
    for (const scenario of [
      { name: 'into a new directory, linking', link: true, first: false },
      { name: 'into a new directory, copying', link: false, first: false },
      { name: 'into a complete backup, linking', link: true, first: true },
      { name: 'into a complete backup, copying', link: false, first: true },
    ]) {
      it(`${scenario.name}: the destination is complete, refused as incomplete, or as it was`, async () => {
        const memory = new MemoryMedium();
        const faulty = new FaultyMedium(memory, { seed: 7 });
        const store = await open(DIR, { medium: faulty, sync: 'never', maxSegmentBytes: 1024, autoCompact: false });
        const model: Model = new Map();
        await fillStore(store, model, 'a', 60);
        let before: State | undefined;
        if (scenario.first) {
          await store.backup(DEST, { link: scenario.link });
          before = sortedModel(model);
          await store.compact(); // so the next backup links, copies, extends and removes
          await fillStore(store, model, 'b', 30);
        }
        const after = sortedModel(model);
        const random = seededRandom(17);
        const disks: Array<[string, MemoryMedium]> = [];
        faulty.onOperation = (event) => {
          const where = `${event.phase} ${event.op} ${event.path}${event.to === undefined ? '' : ` -> ${event.to}`} (#${event.index})`;
          disks.push([`${where}, nothing unsynced kept`, memory.crash(DROP_UNSYNCED)]);
          disks.push([`${where}, everything kept`, memory.crash(KEEP_UNSYNCED)]);
          disks.push([`${where}, a random mix`, memory.crash(randomCrash(random))]);
        };
        await store.backup(DEST, { link: scenario.link });
        faulty.onOperation = undefined;
        disks.push(['after the backup resolved, nothing unsynced kept', memory.crash(DROP_UNSYNCED)]);
        expect(disks.length).to.be.greaterThan(30);
        let complete = 0;
        let incomplete = 0;
        for (const [where, disk] of disks) {
          await checkDisk(disk, after, before, where);
          const got = await openOrIncomplete(DEST, { medium: disk });
          if (got === 'incomplete') incomplete++;
          else if (JSON.stringify(got) === JSON.stringify(after)) complete++;
        }
        expect(incomplete, 'some crash points leave it marked').to.be.greaterThan(0);
        expect(complete, 'some leave it complete').to.be.greaterThan(0);
        const last = disks[disks.length - 1][1];
        expect(await openBackup(DEST, { medium: last }), 'a resolved backup is durable').to.deep.equal(after);
        await store.close();
      });
    }

    it('after a power loss mid-backup, the next backup from the recovered store completes the destination', async () => {
      const memory = new MemoryMedium();
      const faulty = new FaultyMedium(memory, { seed: 8 });
      const store = await open(DIR, { medium: faulty, sync: 'never', maxSegmentBytes: 1024, autoCompact: false });
      await fillStore(store, new Map(), 'a', 60);
      await store.backup(DEST, { link: false });
      await fillStore(store, new Map(), 'b', 40);
      const random = seededRandom(18);
      const disks: MemoryMedium[] = [];
      faulty.onOperation = (event) => {
        if (event.phase === 'after') disks.push(memory.crash(random.chance(0.5) ? DROP_UNSYNCED : randomCrash(random)));
      };
      await store.backup(DEST, { link: random.chance(0.5) });
      faulty.onOperation = undefined;
      await store.close();
      for (const [i, disk] of disks.entries()) {
        const recovered = await open(DIR, { medium: disk, autoCompact: false });
        const state = await contents(recovered);
        await recovered.backup(DEST, { link: i % 2 === 0 });
        await recovered.close();
        expect(await openBackup(DEST, { medium: disk }), `crash point ${i}`).to.deep.equal(state);
      }
    });
  });

  describe('a full disk (ENOSPC) in the middle of a backup', () => {
    const cases: Array<{ name: string; link: boolean; op: 'write' | 'link' | 'sync' | 'rename' | 'syncDir'; path: RegExp; nth: number }> = [
      { name: 'a segment copy', link: false, op: 'write', path: /^\/bk\/.*\.seg$/, nth: 2 },
      { name: 'the last segment copy', link: false, op: 'write', path: /^\/bk\/.*\.seg$/, nth: 6 },
      { name: 'a hint copy', link: false, op: 'write', path: /^\/bk\/.*\.hint$/, nth: 1 },
      { name: 'a link', link: true, op: 'link', path: /^\/bk\//, nth: 2 },
      { name: 'the fdatasync of a copy', link: false, op: 'sync', path: /^\/bk\/.*\.seg$/, nth: 1 },
      { name: 'the manifest', link: true, op: 'write', path: /^\/bk\/backup\.manifest/, nth: 1 },
      { name: 'the rename of the manifest', link: true, op: 'rename', path: /^\/bk\/backup\.manifest/, nth: 1 },
      { name: 'the directory sync before the marker goes', link: true, op: 'syncDir', path: /^\/bk$/, nth: 2 },
    ];
    for (const c of cases) {
      it(`at ${c.name}: rejects LOGKV_STORE_FULL, the store serves on, the destination is marked, and a retry completes it`, async () => {
        const memory = new MemoryMedium();
        const faulty = new FaultyMedium(memory, { seed: 9 });
        const store = await open(DIR, { medium: faulty, sync: 'never', maxSegmentBytes: 1024, autoCompact: false });
        const model: Model = new Map();
        await fillStore(store, model, 'a', 80);
        await store.compact();
        await fillStore(store, model, 'b', 20);
        const fault = faulty.fail({ op: c.op, code: 'ENOSPC', path: c.path, nth: c.nth, writtenBytes: 'random' });
        const err = await expectCode(store.backup(DEST, { link: c.link }), ErrorCodes.STORE_FULL);
        expect(fault.fired, 'the fault hit the backup').to.equal(1);
        expect(String(err.details.file)).to.match(/^\/bk/);
        await store.set('written after', true); // the store is not poisoned
        model.set('written after', true);
        expect(await store.get('k1')).to.deep.equal(model.get('k1'));
        expect(await openOrIncomplete(DEST, { medium: memory })).to.equal('incomplete');
        expect((await checkStore(DEST, { medium: memory })).ok).to.equal(false);
        await store.backup(DEST, { link: c.link });
        expect(await openBackup(DEST, { medium: memory })).to.deep.equal(sortedModel(model));
        await store.close();
      });
    }
  });

  describe('SIGKILL of a process in the middle of backups', () => {
    type Outcome = 'complete' | 'before' | 'incomplete' | 'none';

    /**
     * Checks the destination after a kill: refused as incomplete, or the state at the cut of the
     * last backup that began, or (killed before its marker was durable) of the one before it.
     */
    async function checkAfterKill(dest: string, journal: string, lastComplete: string | undefined, where: string):
        Promise<{ outcome: Outcome; complete: string | undefined }> {
      const lines = fs.readFileSync(journal, 'utf8').split('\n').filter((l) => l.endsWith('}')).map((l) => JSON.parse(l));
      const starts = lines.filter((l) => l.start !== undefined);
      const started = JSON.stringify(starts[starts.length - 1].state);
      const doneHere = lines.filter((l) => l.done !== undefined).pop();
      const before = doneHere === undefined ? lastComplete : JSON.stringify(starts.find((l) => l.start === doneHere.done).state);
      if (before === undefined && !fs.existsSync(path.join(dest, 'backup.incomplete')) && !fs.existsSync(path.join(dest, 'backup.manifest'))) {
        const names = fs.existsSync(dest) ? fs.readdirSync(dest) : [];
        expect(names.filter((n) => /\.(seg|hint)$/.test(n)), `${where}: no backup began`).to.deep.equal([]);
        return { outcome: 'none', complete: undefined };
      }
      const got = await openOrIncomplete(dest);
      if (got === 'incomplete') {
        const report = await checkStore(dest);
        expect(report.problems.some((p) => p.file.endsWith('backup.incomplete')), where).to.equal(true);
        return { outcome: 'incomplete', complete: lastComplete };
      }
      const text = JSON.stringify(got);
      expect(before === undefined ? [started] : [started, before], `${where}: the backup holds the state of a cut`).to.include(text);
      return { outcome: text === started ? 'complete' : 'before', complete: text };
    }

    it('killed at chosen steps of a backup: as it was, refused as incomplete, or complete, as the step says', async function () {
      this.timeout(120_000);
      const dir = tempDir('bk-kill-src');
      const dest = path.join(tempDir('bk-kill-dst'), 'backup');
      const journal = path.join(tempDir('bk-kill-journal'), 'journal');
      // Where the child kills itself: a medium operation on a destination file (its name from the
      // destination's path on), and what the destination must then be. Each step but the first
      // starts from a complete backup, so a marker it finds is its own backup's.
      const marker = '^/backup\\.incomplete$';
      const steps: Array<[object, Outcome]> = [
        [{ op: 'open', name: marker, phase: 'before', nth: 1 }, 'none'],
        [{ op: 'open', name: marker, phase: 'before', nth: 1 }, 'before'],
        [{ op: 'syncDir', name: '^$', phase: 'after', nth: 2 }, 'incomplete'], // the marker just became durable
        [{ op: 'write', name: '\\.seg$', phase: 'after', nth: 1 }, 'incomplete'],
        [{ op: 'link', name: '\\.seg\\.tmp$', phase: 'after', nth: 1 }, 'incomplete'],
        [{ op: 'rename', name: '^/backup\\.manifest$', phase: 'after', nth: 1 }, 'incomplete'],
        [{ op: 'remove', name: marker, phase: 'after', nth: 1 }, 'complete'],
        [{ op: 'open', name: marker, phase: 'before', nth: 2 }, 'before'], // the start of the child's second backup
      ];
      let lastComplete: string | undefined;
      for (const [i, [step, expected]] of steps.entries()) {
        if (i > 0) {
          const store = await open(dir, { autoCompact: false });
          lastComplete = JSON.stringify(await contents(store));
          await store.backup(dest);
          await store.close();
        }
        fs.writeFileSync(journal, '');
        const child = startChild('spec/backup-child.ts', [dir, dest, journal, String(100 + i), JSON.stringify(step)]);
        await child.exited;
        expect(child.process.signalCode, `step ${i}: the child killed itself`).to.equal('SIGKILL');
        const checked = await checkAfterKill(dest, journal, lastComplete, `step ${i} ${JSON.stringify(step)}`);
        expect(checked.outcome, `step ${i} ${JSON.stringify(step)}`).to.equal(expected);
      }
    });

    it('killed at random moments while it backs up and writes: never a wrong store', async function () {
      this.timeout(120_000);
      const dir = tempDir('bk-kill-src');
      const dest = path.join(tempDir('bk-kill-dst'), 'backup');
      const journal = path.join(tempDir('bk-kill-journal'), 'journal');
      const random = seededRandom(20261127);
      let lastComplete: string | undefined;
      for (let round = 0; round < 6; round++) {
        fs.writeFileSync(journal, '');
        const child = startChild('spec/backup-child.ts', [dir, dest, journal, String(random.int(2 ** 31))]);
        // A backup here takes from tens to hundreds of ms: kill anywhere in it, or in the next round.
        await child.next(`start ${1 + random.int(2)}`);
        await new Promise((resolve) => setTimeout(resolve, random.int(250)));
        await child.kill();
        lastComplete = (await checkAfterKill(dest, journal, lastComplete, `round ${round}`)).complete;
      }
      // The store and a last backup are sound.
      const store = await open(dir, { autoCompact: false });
      const state = await contents(store);
      await store.backup(dest);
      await store.close();
      expect(await openBackup(dest)).to.deep.equal(state);
    });
  });
});
