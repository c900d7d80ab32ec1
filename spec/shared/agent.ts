/**
 * A participant of a shared store for the specs, driven by commands: a child process (child.ts,
 * lines on stdin and stdout) or a worker thread (worker.ts, messages). Each command is JSON
 * {id, op, ...}; each answer is {id, ok, value?, code?}. Calls are started in the order the
 * commands arrive, so a spec controls the order of one participant's calls.
 */
import { open } from '../../lib';
import type { OpenOptions, Store } from '../../lib';
import { KeyvLogkv } from '../../lib/keyv';
import { roleOf } from '../../lib/shared/role';

async function collect<T>(iterator: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterator) out.push(item);
  return out;
}

export interface Command {
  id: number;
  op: 'open' | 'call' | 'dump' | 'role' | 'close' | 'size' | 'stats' | 'keyv' | 'exit';
  dir?: string;
  options?: OpenOptions;
  method?: string;
  args?: unknown[];
}

export interface Answer {
  id: number;
  ok: boolean;
  value?: unknown;
  code?: string;
}

let store: Store<unknown> | undefined;
/** A Keyv adapter over a shared store, as each worker of a cluster makes one. */
let adapter: KeyvLogkv | undefined;

/** Runs one command; the answer comes when it settles (calls of one participant may overlap). */
export async function run(command: Command): Promise<Answer> {
  const { id } = command;
  try {
    switch (command.op) {
      case 'open':
        store = await open(command.dir!, { shared: true, ...command.options });
        return { id, ok: true, value: roleOf(store) };
      case 'call': {
        const target = store as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
        const value = await target[command.method!](...(command.args ?? []));
        return { id, ok: true, value: value === undefined ? null : value };
      }
      case 'dump': {
        const out: Array<[string, unknown]> = [];
        for await (const pair of store!.entries()) out.push(pair);
        out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
        return { id, ok: true, value: out };
      }
      case 'role':
        return { id, ok: true, value: store === undefined || store.closed ? null : roleOf(store) };
      case 'size':
        return { id, ok: true, value: store!.size };
      case 'stats':
        return { id, ok: true, value: store!.stats() };
      case 'close':
        await store?.close();
        store = undefined;
        return { id, ok: true };
      case 'keyv': {
        adapter ??= new KeyvLogkv({ dir: command.dir, shared: true, sync: 'never' });
        const target = adapter as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
        const value = command.method === 'iterator' ? await collect(adapter.iterator(command.args?.[0] as string | undefined))
          : await target[command.method!](...(command.args ?? []));
        if (command.method === 'disconnect') adapter = undefined;
        return { id, ok: true, value: value === undefined ? null : value };
      }
      case 'exit':
        return { id, ok: true };
    }
  } catch (err) {
    return { id, ok: false, code: String((err as { code?: unknown }).code ?? err) };
  }
  return { id, ok: false, code: 'unknown op' };
}
