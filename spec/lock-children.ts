/**
 * Child processes for the lock specs. They run as plain `node` on a copy of the sources that this
 * module transpiles once (the entry and every relative import it reaches), so a child starts in
 * the time of a bare node, not of ts-node: the race spec kills and replaces one every round.
 */
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ts from 'typescript';

const ROOT = path.join(__dirname, '..');
let built: string | undefined;

/** Transpiles `entries` (paths from the repository root) and what they import into a temporary tree. */
export function build(entries: string[]): string {
  if (built === undefined) {
    built = fs.mkdtempSync(path.join(os.tmpdir(), 'logkv-spec-children-'));
    process.once('exit', () => fs.rmSync(built!, { recursive: true, force: true }));
  }
  const queue = entries.map((entry) => path.join(ROOT, entry));
  for (let file = queue.pop(); file !== undefined; file = queue.pop()) {
    const out = path.join(built, path.relative(ROOT, file)).replace(/\.ts$/, '.js');
    if (fs.existsSync(out)) continue;
    const source = fs.readFileSync(file, 'utf8');
    const js = ts.transpileModule(source, {
      fileName: file,
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
    }).outputText;
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, js);
    for (const [, spec] of source.matchAll(/from '(\.[^']*)'/g)) {
      const base = path.resolve(path.dirname(file), spec);
      queue.push(fs.existsSync(`${base}.ts`) ? `${base}.ts` : path.join(base, 'index.ts'));
    }
  }
  return built;
}

const live: ChildProcess[] = [];

/** A child speaking in lines: commands on stdin, answers on stdout. */
export class Child {
  readonly exited: Promise<void>;
  #lines: string[] = [];
  #partial = '';
  #wake: (() => void) | undefined;

  constructor(readonly process: ChildProcess) {
    live.push(process);
    // A child killed while a command is on its way: the write fails with EPIPE, which is no news.
    process.stdin!.on('error', () => undefined);
    process.stdout!.setEncoding('utf8');
    process.stdout!.on('data', (chunk: string) => {
      const parts = (this.#partial + chunk).split('\n');
      this.#partial = parts.pop()!;
      this.#lines.push(...parts);
      this.#wake?.();
    });
    this.exited = new Promise((resolve) => process.once('exit', () => { this.#wake?.(); resolve(); }));
  }

  get pid(): number {
    return this.process.pid!;
  }

  get running(): boolean {
    return this.process.exitCode === null && this.process.signalCode === null;
  }

  send(line: string): void {
    if (this.running) this.process.stdin!.write(line + '\n');
  }

  /** The next line that starts with one of `prefixes`; lines before it are dropped. */
  async next(...prefixes: string[]): Promise<string> {
    for (;;) {
      while (this.#lines.length > 0) {
        const line = this.#lines.shift()!;
        if (prefixes.some((p) => line.startsWith(p))) return line;
      }
      if (!this.running) throw new Error(`child ${this.pid} exited (${this.process.exitCode ?? this.process.signalCode}) waiting for ${prefixes.join('|')}`);
      await new Promise<void>((resolve) => { this.#wake = resolve; });
    }
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.running) {
      this.process.kill(signal);
      if (signal === 'SIGKILL') await this.exited;
    }
  }
}

/**
 * Starts `entry` (a path from the repository root) under plain node with `args`, optionally
 * behind a command prefix such as `unshare -u` (`wrap` gets the node command line and returns
 * the program and arguments to run).
 */
export function startChild(entry: string, args: string[], wrap?: (command: string[]) => string[]): Child {
  const out = build([entry]);
  let command = [process.execPath, path.join(out, entry.replace(/\.ts$/, '.js')), ...args];
  if (wrap !== undefined) command = wrap(command);
  const child = spawn(command[0], command.slice(1), {
    stdio: ['pipe', 'pipe', 'inherit'],
    // The transpiled tree has no node_modules of its own. No coverage from the children: c8
    // merging their partial coverage of lib/ into this process's skews the report.
    env: { ...process.env, NODE_PATH: path.join(ROOT, 'node_modules'), NODE_V8_COVERAGE: '' },
  });
  return new Child(child);
}

/** Kills every child still running; for afterEach. */
export async function killChildren(): Promise<void> {
  for (const child of live.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGCONT');
      child.kill('SIGKILL');
      await exited;
    }
  }
}
