/**
 * `npm start`: a short tour of logkv on the default store location (the same one `open()` and the
 * `logkv` command use: $LOGKV_DIR, else the platform's data directory + logkv/default).
 *
 * It writes, reads, batches, expires, deletes, closes, reopens and checks that everything is as it
 * left it, printing what it did and how fast. It works under the `demo:` prefix and deletes its
 * keys at the end, so the store is left holding what it held before.
 */
import { performance } from 'perf_hooks';
import { ErrorCodes, LogkvError, Store, defaultDir, open } from '../lib';

const CONCURRENT_WRITES = 10_000;
const SEQUENTIAL_WRITES = 200;
const BATCH_SIZE = 1_000;

interface Profile {
  name: string;
  visits: number;
  lastSeen: Date;
  tags: Set<string>;
  avatar: Buffer;
}

function ms(start: number): string {
  return `${(performance.now() - start).toFixed(1)} ms`;
}

function perSecond(count: number, start: number): string {
  const seconds = (performance.now() - start) / 1000;
  return `${Math.round(count / seconds).toLocaleString('en-US')}/s`;
}

function step(text: string): void {
  console.log(`  ${text}`);
}

async function main(): Promise<number> {
  const dir = defaultDir();
  console.log(`logkv demo: store at ${dir}\n`);

  let start = performance.now();
  let store: Store<unknown>;
  try {
    store = await open(dir);
  } catch (err) {
    if (err instanceof LogkvError && err.code === ErrorCodes.LOCKED) {
      console.error(`The store is open in process ${String(err.details.pid)}; run the demo again when it closes.`);
      return 3;
    }
    throw err;
  }
  const before = store.size;
  step(`opened in ${ms(start)}: ${before} key(s) already there, recovery read ${store.recovery.records} record(s)`);

  // Writes: unawaited calls share fdatasyncs (group commit); awaited one by one, each waits for its own.
  start = performance.now();
  const writes: Array<Promise<unknown>> = [];
  for (let i = 0; i < CONCURRENT_WRITES; i++) writes.push(store.set(`demo:item:${i}`, { i, label: `item ${i}` }));
  await Promise.all(writes);
  step(`set ${CONCURRENT_WRITES.toLocaleString('en-US')} keys concurrently, durable (sync 'always'): ${ms(start)}, ${perSecond(CONCURRENT_WRITES, start)}`);

  start = performance.now();
  for (let i = 0; i < SEQUENTIAL_WRITES; i++) await store.set(`demo:seq:${i}`, i);
  step(`set ${SEQUENTIAL_WRITES} keys one at a time, each awaited (one fdatasync each): ${ms(start)}, ${perSecond(SEQUENTIAL_WRITES, start)}`);

  start = performance.now();
  let found = 0;
  for (let i = 0; i < CONCURRENT_WRITES; i++) if ((await store.get(`demo:item:${i}`)) !== undefined) found++;
  step(`read them back: ${found.toLocaleString('en-US')} found in ${ms(start)}, ${perSecond(CONCURRENT_WRITES, start)}`);

  start = performance.now();
  await store.batch(Array.from({ length: BATCH_SIZE }, (_, i) => ({ type: 'set' as const, key: `demo:batch:${i}`, value: i })));
  step(`one atomic batch of ${BATCH_SIZE} sets: ${ms(start)}`);

  const profile: Profile = { name: 'Ada', visits: 3, lastSeen: new Date(), tags: new Set(['admin']), avatar: Buffer.from([0x89, 0x50]) };
  await store.set('demo:profile', profile);
  await store.create('demo:once', 'first').catch(() => undefined);
  const again = await store.create('demo:once', 'second').then(() => 'created', (err: LogkvError) => err.code);
  step(`typed values: a Date, a Set and a Buffer stored as themselves; create() of an existing key: ${again}`);

  await store.set('demo:session', 'short-lived', { ttl: 100 });
  const liveNow = await store.has('demo:session');
  await new Promise((resolve) => setTimeout(resolve, 150));
  step(`ttl: a key set with ttl 100 ms is live (${liveNow}), 150 ms later it is gone (${!(await store.has('demo:session'))})`);

  start = performance.now();
  const deletes: Array<Promise<boolean>> = [];
  for (let i = 0; i < CONCURRENT_WRITES; i += 2) deletes.push(store.delete(`demo:item:${i}`));
  await Promise.all(deletes);
  step(`deleted ${deletes.length.toLocaleString('en-US')} keys: ${ms(start)}`);

  const expected = store.size;
  start = performance.now();
  await store.close();
  step(`closed in ${ms(start)}`);

  start = performance.now();
  store = await open(dir);
  const reopenMs = ms(start);
  const back = (await store.get('demo:profile')) as Profile;
  const intact = store.size === expected && back.lastSeen instanceof Date && back.tags.has('admin') &&
    Buffer.isBuffer(back.avatar) && (await store.get('demo:item:1')) !== undefined && !(await store.has('demo:item:0'));
  step(`reopened in ${reopenMs}: ${store.size.toLocaleString('en-US')} keys, values and deletes intact: ${intact ? 'yes' : 'NO'}`);

  const stats = store.stats();
  step(`stats: ${stats.segments} segment(s), ${stats.liveBytes.toLocaleString('en-US')} live bytes, ` +
    `${stats.deadBytes.toLocaleString('en-US')} dead bytes, ${stats.diskBytes.toLocaleString('en-US')} on disk`);

  // Leave the store as it was: delete the demo's keys in one batch, then compact the space away.
  start = performance.now();
  const mine: Array<{ type: 'delete'; key: string }> = [];
  for await (const key of store.keys({ prefix: 'demo:' })) mine.push({ type: 'delete', key });
  await store.batch(mine);
  const compaction = await store.compact();
  step(`cleaned up: deleted ${mine.length.toLocaleString('en-US')} demo keys and compacted ` +
    `${compaction.bytesBefore.toLocaleString('en-US')} → ${compaction.bytesAfter.toLocaleString('en-US')} bytes in ${ms(start)}`);
  await store.close();

  console.log(`\nDone. Try the command line: npm run logkv -- --dir "${dir}" stats   (installed: npx logkv stats)`);
  return intact ? 0 : 1;
}

main().then((code) => { process.exitCode = code; }, (err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
