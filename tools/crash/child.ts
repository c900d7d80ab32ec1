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
 */
import * as fs from 'fs';
import { open } from '../../lib';
import type { SyncMode } from '../../lib';
import { ModelEntry, Workload, WorkloadConfig, runStep } from './workload';

export interface ChildConfig {
  dir: string;
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
  const config = JSON.parse(fs.readFileSync(configPath, 'utf8')) as ChildConfig;
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
  emit('closed');
}

main(process.argv[2]).catch((err: unknown) => {
  process.stderr.write(`crash workload failed: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(2);
});
