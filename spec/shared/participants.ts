/**
 * Drives participants of a shared store from a spec: child processes (real processes, which can
 * be SIGKILLed) and worker threads, all running agent.ts on the transpiled sources
 * (spec/lock-children.ts builds them once), so each starts in the time of a bare node.
 */
import * as path from 'path';
import { Worker } from 'worker_threads';
import type { OpenOptions } from '../../lib';
import { Child, build, startChild } from '../lock-children';
import type { Answer, Command } from './agent';

const ROOT = path.join(__dirname, '..', '..');

export class Participant {
  readonly #pending = new Map<number, (answer: Answer) => void>();
  #nextId = 0;

  private constructor(readonly kind: 'process' | 'thread', private readonly post: (command: Command) => void,
                      readonly child: Child | undefined, readonly worker: Worker | undefined) {}

  /** A child process, ready for commands. */
  static async process(): Promise<Participant> {
    const child = startChild('spec/shared/child.ts', []);
    await child.next('ready');
    const participant = new Participant('process', (command) => child.send(JSON.stringify(command)), child, undefined);
    void (async () => {
      for (;;) {
        let line: string;
        try {
          line = await child.next('a ');
        } catch {
          participant.#failAll();
          return;
        }
        participant.#answer(JSON.parse(line.slice(2)) as Answer);
      }
    })();
    return participant;
  }

  /** A worker thread of this process, ready for commands. */
  static async thread(): Promise<Participant> {
    const out = build(['spec/shared/worker.ts']);
    const worker = new Worker(path.join(out, 'spec', 'shared', 'worker.js'), {
      env: { ...process.env, NODE_PATH: path.join(ROOT, 'node_modules') },
    });
    const participant = new Participant('thread', (command) => worker.postMessage(command), undefined, worker);
    worker.on('message', (answer: Answer) => participant.#answer(answer));
    worker.on('exit', () => participant.#failAll());
    worker.on('error', () => participant.#failAll());
    return participant;
  }

  get pid(): number {
    return this.child?.pid ?? process.pid;
  }

  #answer(answer: Answer): void {
    const resolve = this.#pending.get(answer.id);
    this.#pending.delete(answer.id);
    resolve?.(answer);
  }

  #failAll(): void {
    for (const [id, resolve] of this.#pending) resolve({ id, ok: false, code: 'DEAD' });
    this.#pending.clear();
  }

  /** Sends a command; resolves with its answer. */
  command(command: Omit<Command, 'id'>): Promise<Answer> {
    const id = ++this.#nextId;
    return new Promise((resolve) => {
      this.#pending.set(id, resolve);
      this.post({ ...command, id } as Command);
    });
  }

  /** Opens `dir` shared; resolves with the role it got. */
  async open(dir: string, options: OpenOptions = {}): Promise<'owner' | 'client'> {
    const answer = await this.command({ op: 'open', dir, options: { sync: 'never', ...options } });
    if (!answer.ok) throw new Error(`open failed: ${answer.code}`);
    return answer.value as 'owner' | 'client';
  }

  /** Calls a Store method; resolves with its answer ({ok, value} or {ok: false, code}). */
  call(method: string, ...args: unknown[]): Promise<Answer> {
    return this.command({ op: 'call', method, args });
  }

  /** Calls a Store method that must succeed; resolves with its value. */
  async must(method: string, ...args: unknown[]): Promise<unknown> {
    const answer = await this.call(method, ...args);
    if (!answer.ok) throw new Error(`${method}(${JSON.stringify(args)}) failed: ${answer.code}`);
    return answer.value;
  }

  async dump(): Promise<Array<[string, unknown]>> {
    return (await this.command({ op: 'dump' })).value as Array<[string, unknown]>;
  }

  async role(): Promise<'owner' | 'client' | null> {
    return (await this.command({ op: 'role' })).value as 'owner' | 'client' | null;
  }

  async close(): Promise<void> {
    const answer = await this.command({ op: 'close' });
    if (!answer.ok) throw new Error(`close failed: ${answer.code}`);
  }

  async kill(): Promise<void> {
    if (this.child !== undefined) await this.child.kill('SIGKILL');
    else await this.worker!.terminate();
  }

  async exit(): Promise<void> {
    if (this.child !== undefined) {
      if (this.child.running) {
        this.child.send(JSON.stringify({ id: 0, op: 'exit' }));
        await this.child.exited;
      }
    } else {
      await this.worker!.terminate();
    }
  }
}
