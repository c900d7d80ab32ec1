/**
 * A child process for spec/faults/backup.spec.ts: it writes to a store and backs it up into one
 * directory, round after round, until the parent kills it.
 *
 *   node backup-child.js STORE_DIR DEST_DIR JOURNAL SEED [KILL_AT]
 *
 * KILL_AT, a JSON object { op, name, phase, nth }: the child kills itself (SIGKILL) at the nth
 * `phase` ('before' or 'after') of a medium operation `op` on a destination file whose name
 * matches the regular expression `name`, as seen by a FaultyMedium over the real file system.
 *
 * Each round: a few writes, each awaited; then a line `{"start":n,"state":[...]}` in JOURNAL
 * (written synchronously, so it is on file before the backup begins) holding the store's state,
 * which is what the backup must hold; `start n` on stdout; the backup, with a writer going on
 * meanwhile (those writes are not in it); then `{"done":n}` in JOURNAL once it resolved.
 */
import * as fs from 'fs';
import { open } from '../lib';
import { FaultyMedium, OperationEvent } from '../lib/medium/faulty';
import { fileSystem } from '../lib/medium/fs';
import { seededRandom } from '../lib/medium/random';

/** A medium that SIGKILLs this process at the operation `spec` names. */
function killingMedium(dest: string, spec: { op: string; name: string; phase: string; nth: number }): FaultyMedium {
  const name = new RegExp(spec.name);
  let seen = 0;
  return new FaultyMedium(fileSystem, {
    onOperation: (event: OperationEvent) => {
      const file = event.to ?? event.path;
      if (event.op !== spec.op || event.phase !== spec.phase || !file.startsWith(dest)) return;
      if (name.test(file.slice(dest.length)) && ++seen === spec.nth) process.kill(process.pid, 'SIGKILL');
    },
  });
}

async function main(): Promise<void> {
  const [dir, dest, journalPath, seedText, killAt] = process.argv.slice(2);
  const random = seededRandom(Number(seedText));
  const journal = fs.openSync(journalPath, 'a');
  const note = (value: unknown): void => { fs.writeSync(journal, `${JSON.stringify(value)}\n`); };
  const medium = killAt === undefined ? undefined : killingMedium(dest, JSON.parse(killAt));
  const store = await open(dir, { sync: 'never', maxSegmentBytes: 256 * 1024, autoCompact: false, medium });
  const model = new Map<string, unknown>();
  for await (const [key, value] of store.entries()) model.set(key, value);
  let n = 0;
  const write = async (): Promise<void> => {
    const key = `k${random.int(60)}`;
    if (random.chance(0.2)) {
      await store.delete(key);
      model.delete(key);
    } else {
      const value = { n, pad: 'z'.repeat(random.int(2000)) };
      await store.set(key, value);
      model.set(key, value);
    }
  };
  for (;;) {
    n++;
    for (let i = random.int(40); i >= 0; i--) await write();
    if (random.chance(0.1)) await store.compact();
    note({ start: n, state: [...model].sort((a, b) => (a[0] < b[0] ? -1 : 1)) });
    process.stdout.write(`start ${n}\n`);
    let running = true;
    const backup = store.backup(dest, { link: random.chance(0.5) }).finally(() => { running = false; });
    while (running) await write();
    await backup;
    note({ done: n });
  }
}

main().catch((err) => {
  process.stderr.write(`backup child: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
