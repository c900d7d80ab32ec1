/**
 * A child process of the benchmark: receives one Job on its IPC channel, runs it, replies with a
 * JobReply, and exits. One job per process keeps each store's memory and caches to itself.
 * Run by main.ts from the transpiled tree as `node --expose-gc child.js`.
 */
import type { Job, JobReply } from './protocol';
import { Unavailable } from './stores';
import { NotApplicable, runJob } from './workloads';

function reply(message: JobReply): void {
  if (!process.send) throw new Error('child.js must be started by main.ts with an IPC channel');
  process.send(message, () => process.exit(0));
}

async function main(job: Job): Promise<JobReply> {
  try {
    const metrics = await runJob(job);
    return { ok: true, metrics, notes: [] };
  } catch (error) {
    const err = error as Error;
    if (err instanceof NotApplicable) return { ok: false, status: 'n/a', message: err.message };
    if (err instanceof Unavailable) return { ok: false, status: 'unavailable', message: err.message };
    return { ok: false, status: 'error', message: err.stack ?? String(err) };
  }
}

process.once('message', (job: Job) => {
  main(job).then(reply, (error: unknown) =>
    reply({ ok: false, status: 'error', message: String(error) }),
  );
});
