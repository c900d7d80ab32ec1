/**
 * The kill-mode workload process. It opens the store named in its config file, runs the seeded
 * workload against it with a few calls in flight, and reports each call on stdout as it settles:
 *
 *   opening            about to open the store (recovery runs next)
 *   ready              open returned
 *   a <index> <result> call <index> settled: ok, true, false, or a LogkvError code
 *   closed             it ran its operations and closed the store
 *
 * Each line is written with a synchronous write before anything else happens, so a line the
 * parent reads is a fact, and a call the parent has no line for was at most in flight. The parent
 * SIGKILLs this process at a random moment; the store must hold every acknowledged write.
 *
 * With a config of role 'racer' it is instead a second opener racing the workload process for
 * the store: it calls open() until the lock lets it in (or gives up), holds the store a while,
 * reading, and closes it. It writes nothing, so the workload's model stays whole.
 *
 * Both record in the hold journal (see recordHold) when they hold the store, so the parent can
 * tell whether two processes ever held it at once.
 */
import * as fs from 'fs';
import { open } from '../../lib';
import type { SyncMode } from '../../lib';
import { fileSystem } from '../../lib/medium/fs';
import type { Medium } from '../../lib/medium/types';
import { ModelEntry, Workload, WorkloadConfig, runStep } from './workload';

export interface ChildConfig {
  role?: 'workload';
  dir: string;
  /** The hold journal: one line appended when the store is held, one when it is released. */
  journal: string;
  sync: SyncMode;
  syncIntervalMs: number;
  maxSegmentBytes: number;
  seed: number;
  /** Most calls in flight at once. */
  window: number;
  firstIndex: number;
  clockBase: number;
  workload: WorkloadConfig;
  state: Array<[string, ModelEntry]>;
  /** Operations to run before closing; the parent usually kills the child long before. */
  opLimit: number;
}

export interface RacerConfig {
  role: 'racer';
  dir: string;
  journal: string;
  /** The store's clock: no later than the workload's, so a purge of expired keys agrees with it. */
  clock: number;
  /** How long to hold the store once it is open. */
  holdMs: number;
  /** Stop trying to open after this long. */
  giveUpMs: number;
  /**
   * Open without taking the lock (the file system seen through a medium that says it is not
   * one), so the harness can show that its double-holder check catches two holders.
   */
  skipLock?: boolean;
}

/** The real file system, under a medium that says it is not one: the store then takes no lock. */
const UNLOCKED: Medium = {
  isFileSystem: false,
  mkdirp: (dir) => fileSystem.mkdirp(dir),
  list: (dir) => fileSystem.list(dir),
  open: (file, options) => fileSystem.open(file, options),
  rename: (from, to) => fileSystem.rename(from, to),
  remove: (file) => fileSystem.remove(file),
  syncDir: (dir) => fileSystem.syncDir(dir),
};

/**
 * Appends `<pid> <event> <ns>` to the hold journal with one synchronous write (O_APPEND: whole
 * lines, in order, from any number of processes), before anything else happens: 'hold' once
 * open() resolved, 'release' once close() resolved. The time is process.hrtime (CLOCK_MONOTONIC
 * on Linux, one clock for every process of the machine). So a hold line is written while the
 * process holds the store, and it holds it until its release line or its death: a SIGKILL cannot
 * lose a line, and the interval between the two lines lies within the true hold.
 */
export function recordHold(journal: string, event: 'hold' | 'release'): void {
  fs.appendFileSync(journal, `${process.pid} ${event} ${process.hrtime.bigint()}\n`);
}

/** Writes a line to stdout synchronously, whatever kind of pipe stdout is. */
function emit(line: string): void {
  const buf = Buffer.from(line + '\n');
  let done = 0;
  while (done < buf.length) {
    try {
      done += fs.writeSync(1, buf, done);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
    }
  }
}

async function main(configPath: string): Promise<void> {
  const config = JSON.parse(fs.readFileSync(configPath, 'utf8')) as ChildConfig | RacerConfig;
  if (config.role === 'racer') await race(config);
  else await work(config);
}

async function work(config: ChildConfig): Promise<void> {
  let now = config.clockBase;
  emit('opening');
  const store = await open(config.dir, {
    sync: config.sync,
    syncIntervalMs: config.syncIntervalMs,
    maxSegmentBytes: config.maxSegmentBytes,
    clock: () => now,
    // Compaction starts on its own often, so kills land in it too.
    autoCompact: { minDeadRatio: 0.4, minDeadBytes: 32 * 1024 },
  });
  recordHold(config.journal, 'hold');
  emit('ready');
  const workload = new Workload(config.workload, config.seed, {
    firstIndex: config.firstIndex, clockBase: config.clockBase, state: new Map(config.state),
  });
  const inflight = new Set<Promise<void>>();
  for (let n = 0; n < config.opLimit; n++) {
    while (inflight.size >= config.window) await Promise.race(inflight);
    const step = workload.next();
    if (step.op.kind === 'pause') {
      await Promise.all(inflight);
      await new Promise((resolve) => setTimeout(resolve, (step.op as { ms: number }).ms));
      emit(`a ${step.index} ok`);
      continue;
    }
    now = step.now;
    // The report is part of the slot: a new call starts only after the last one's line is out,
    // so at most `window` calls are ever unreported.
    const call: Promise<void> = runStep(store, step).then((result) => emit(`a ${step.index} ${result}`));
    inflight.add(call);
    void call.finally(() => inflight.delete(call));
  }
  await Promise.all(inflight);
  await store.close();
  recordHold(config.journal, 'release');
  emit('closed');
}

async function race(config: RacerConfig): Promise<void> {
  const giveUp = Date.now() + config.giveUpMs;
  for (;;) {
    try {
      const store = await open(config.dir, { clock: () => config.clock, autoCompact: false, ...(config.skipLock ? { medium: UNLOCKED } : {}) });
      recordHold(config.journal, 'hold');
      emit('held');
      const until = Date.now() + config.holdMs;
      while (Date.now() < until) {
        for await (const key of store.keys()) await store.get(key).catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      await store.close();
      recordHold(config.journal, 'release');
      emit('closed');
      return;
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'LOGKV_LOCKED') throw err;
      if (Date.now() > giveUp) {
        emit('gave up');
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
}

main(process.argv[2]).catch((err: unknown) => {
  process.stderr.write(`crash workload failed: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(2);
});
