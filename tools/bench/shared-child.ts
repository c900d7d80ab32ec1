/**
 * A process of the shared-access benchmark (shared.ts): it opens a store with `shared: true` and
 * runs what the parent asks over IPC, reporting times. Wall-clock times are
 * performance.timeOrigin + performance.now(), comparable across the processes of one machine.
 */
import { open } from '../../lib';
import type { Store, SyncMode } from '../../lib';
import { roleOf } from '../../lib/shared/role';

type Request =
  | { op: 'open'; dir: string; sync: SyncMode }
  | { op: 'fill'; keys: number; valueBytes: number }
  | { op: 'write'; count: number; inFlight: number; prefix: string; valueBytes: number }
  | { op: 'get'; keys: number; count: number; inFlight: number; perTask: boolean }
  | { op: 'probe' }
  | { op: 'role' }
  | { op: 'close' };

let store: Store<unknown> | undefined;
const now = (): number => performance.timeOrigin + performance.now();
const reply = (message: unknown): void => { process.send!(message); };

/** `count` calls of `make`, `inFlight` at a time. */
async function windowed(count: number, inFlight: number, make: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (next < count) await make(next++);
  }));
}

/** Writes until a write is acknowledged, from the moment it is asked: a failover's end, as a client sees it. */
async function probe(): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await store!.set('probe', i);
      reply({ op: 'probe', at: now(), role: roleOf(store!) });
      return;
    } catch {
      // LOGKV_OUTCOME_UNKNOWN while the owner dies: try again.
    }
  }
}

process.on('message', (request: Request) => {
  void (async () => {
    switch (request.op) {
      case 'open':
        store = await open(request.dir, { shared: true, sync: request.sync, autoCompact: false });
        reply({ op: 'open', role: roleOf(store) });
        break;
      case 'fill': {
        const value = 'v'.repeat(request.valueBytes);
        await windowed(request.keys, 256, (i) => store!.set(`key:${i}`, value));
        reply({ op: 'fill' });
        break;
      }
      case 'write': {
        const value = 'w'.repeat(request.valueBytes);
        const started = now();
        await windowed(request.count, request.inFlight, (i) => store!.set(`${request.prefix}:${i % 10_000}`, value));
        reply({ op: 'write', started, ended: now() });
        break;
      }
      case 'get': {
        let state = 12345;
        const random = (): number => { state = (state * 1103515245 + 12345) % 2147483648; return state; };
        const started = now();
        await windowed(request.count, request.inFlight, async () => {
          // Each get in a task of its own, as a server's requests are: a client reads the head for each.
          if (request.perTask) await new Promise((resolve) => setImmediate(resolve));
          const value = await store!.get(`key:${random() % request.keys}`);
          if (value === undefined) throw new Error('a key read back missing');
        });
        reply({ op: 'get', started, ended: now() });
        break;
      }
      case 'probe':
        await probe();
        break;
      case 'role':
        reply({ op: 'role', role: store === undefined ? null : roleOf(store) });
        break;
      case 'close':
        await store?.close();
        store = undefined;
        reply({ op: 'close' });
        // With the channel to the parent gone, nothing keeps the process alive: it exits on its
        // own (and writes its CPU profile when run with --cpu-prof).
        process.disconnect();
        break;
    }
  })().catch((err: unknown) => reply({ op: 'error', message: String((err as Error)?.stack ?? err) }));
});
