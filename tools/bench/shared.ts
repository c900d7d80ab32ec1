/**
 * The shared-access benchmark (issue 11), logkv only: several processes on one store.
 *
 *   npm run bench:shared -- \
 *     [--dir DIR] [--writes 100000] [--keys 100000] [--gets 200000] [--kills 100] [--only write,get,failover]
 *     [--reps 3] [--profile DIR]
 *
 * - write: N sets with 64 in flight, from 1 process alone, then from 4 processes at once (one
 *   owner, three clients: N/4 each); aggregate ops/s from the first start to the last end; in
 *   sync 'always' (group commit) and 'never'; after an untimed warm-up, median of --reps interleaved reps.
 * - get: K keys, then random gets in the owner and in a client, awaited one at a time (seq1) and
 *   64 in flight (par64); the client's rate against the owner's.
 * - failover: an owner and three clients on K keys; the owner is SIGKILLed, a client writes
 *   until a write is acknowledged; the time from the kill to that acknowledgement, over many kills
 *   (a fresh client replaces each killed owner).
 * Each process runs plain JavaScript transpiled from the sources (no TypeScript compiler in its
 * heap). Prints markdown tables.
 */
import { ChildProcess, fork } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ts from 'typescript';

const REPO = path.resolve(__dirname, '..', '..');

function argument(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 && process.argv[at + 1] !== undefined ? process.argv[at + 1] : fallback;
}

const base = path.resolve(argument('dir', path.join(REPO, 'tools', 'bench', '.data', 'shared')));
const writes = Number(argument('writes', '100000'));
const keys = Number(argument('keys', '100000'));
const gets = Number(argument('gets', '200000'));
const kills = Number(argument('kills', '100'));
/** Interleaved repetitions of each write and read measurement; tables show medians. */
const reps = Number(argument('reps', '3'));
const only = new Set(argument('only', 'write,get,failover').split(','));
/** A directory for a CPU profile of every process (--cpu-prof), to see where the time goes. */
const profileDir = argument('profile', '');

function transpile(from: string, to: string): void {
  fs.mkdirSync(to, { recursive: true });
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    const source = path.join(from, entry.name);
    if (entry.isDirectory()) transpile(source, path.join(to, entry.name));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
      const { outputText } = ts.transpileModule(fs.readFileSync(source, 'utf8'), {
        compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.CommonJS, esModuleInterop: true }, fileName: source,
      });
      fs.writeFileSync(path.join(to, entry.name.replace(/\.ts$/, '.js')), outputText);
    }
  }
}

function build(): string {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'logkv-bench-shared-'));
  process.once('exit', () => fs.rmSync(out, { recursive: true, force: true }));
  transpile(path.join(REPO, 'lib'), path.join(out, 'lib'));
  fs.mkdirSync(path.join(out, 'tools', 'bench'), { recursive: true });
  const source = path.join(REPO, 'tools', 'bench', 'shared-child.ts');
  fs.writeFileSync(path.join(out, 'tools', 'bench', 'shared-child.js'), ts.transpileModule(fs.readFileSync(source, 'utf8'), {
    compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.CommonJS, esModuleInterop: true }, fileName: source,
  }).outputText);
  return path.join(out, 'tools', 'bench', 'shared-child.js');
}

interface Reply { op: string; [name: string]: unknown }

class Proc {
  readonly child: ChildProcess;
  #waiting: Array<(reply: Reply) => void> = [];
  #ended = false;

  constructor(script: string) {
    this.child = fork(script, [], {
      env: { ...process.env, NODE_PATH: path.join(REPO, 'node_modules') }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      execArgv: profileDir === '' ? [] : ['--cpu-prof', `--cpu-prof-dir=${path.resolve(profileDir)}`],
    });
    this.child.on('message', (reply: Reply) => {
      if (reply.op === 'error') throw new Error(`child ${this.child.pid}: ${String(reply.message)}`);
      this.#waiting.shift()?.(reply);
    });
  }

  ask(request: Record<string, unknown>): Promise<Reply> {
    return new Promise((resolve) => {
      this.#waiting.push(resolve);
      this.child.send(request);
    });
  }

  kill(): Promise<void> {
    return new Promise((resolve) => {
      this.child.once('exit', () => resolve());
      this.child.kill('SIGKILL');
    });
  }

  /** Closes the store and ends the process; once. */
  async end(): Promise<void> {
    if (this.#ended || this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.#ended = true;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    await this.ask({ op: 'close' });
    // It exits on its own once closed; one that hangs is ended.
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

const now = (): number => performance.timeOrigin + performance.now();
const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const fmt = (n: number): string => (n >= 10_000 ? `${(n / 1000).toFixed(1)}k` : n.toFixed(0));

function freshDir(name: string): string {
  const dir = path.join(base, name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

async function openAll(script: string, dir: string, count: number, sync: string): Promise<Proc[]> {
  const procs: Proc[] = [];
  for (let i = 0; i < count; i++) {
    const proc = new Proc(script);
    await proc.ask({ op: 'open', dir, sync });
    procs.push(proc);
  }
  return procs;
}

/** Aggregate sets/s of `procs` writing `writes` sets between them, 64 in flight each, after an untimed warm-up. */
async function writeRate(procs: Proc[]): Promise<number> {
  // The first thousands of calls run cold code (a client's write path is not the owner's): warm both up.
  await Promise.all(procs.map((p, i) => p.ask({ op: 'write', count: 5000, inFlight: 64, prefix: `warm${i}`, valueBytes: 100 })));
  const each = Math.floor(writes / procs.length);
  const replies = await Promise.all(procs.map((p, i) => p.ask({ op: 'write', count: each, inFlight: 64, prefix: `p${i}`, valueBytes: 100 })));
  const start = Math.min(...replies.map((r) => r.started as number));
  const end = Math.max(...replies.map((r) => r.ended as number));
  return (each * procs.length) / ((end - start) / 1000);
}

async function writeBench(script: string): Promise<string[]> {
  const lines = ['| sync | 1 process × 64 in flight | 4 processes × 64 in flight (aggregate) | ratio |', '|---|---|---|---|'];
  for (const sync of ['always', 'never']) {
    const rates: Record<number, number[]> = { 1: [], 4: [] };
    for (let rep = 0; rep < reps; rep++) {
      // Interleaved, each rep starting with the other one, so drift in the machine weighs on both.
      for (const count of rep % 2 === 0 ? [1, 4] : [4, 1]) {
        const procs = await openAll(script, freshDir(`write-${count}-${sync}`), count, sync);
        rates[count].push(await writeRate(procs));
        // Clients first, so the owner does not hand the store over on its way out.
        for (const p of procs.slice(1)) await p.end();
        await procs[0].end();
      }
    }
    const alone = median(rates[1]);
    const four = median(rates[4]);
    lines.push(`| ${sync} | ${fmt(alone)} ops/s | ${fmt(four)} ops/s | ${(four / alone).toFixed(2)} |`);
    process.stderr.write(`write ${sync}: alone ${rates[1].map(fmt).join(' ')}, four ${rates[4].map(fmt).join(' ')}\n`);
  }
  return lines;
}

async function getBench(script: string): Promise<string[]> {
  const dir = freshDir('get');
  const [owner, client] = await openAll(script, dir, 2, 'never');
  await owner.ask({ op: 'fill', keys, valueBytes: 100 });
  const lines = ['| reads | owner | client | client / owner |', '|---|---|---|---|'];
  const modes = [
    { label: 'awaited one at a time (seq1)', inFlight: 1, perTask: false },
    { label: 'one at a time, each in a task of its own (setImmediate)', inFlight: 1, perTask: true },
    { label: '64 in flight (par64)', inFlight: 64, perTask: false },
  ];
  for (const { label, inFlight, perTask } of modes) {
    const rates: Record<string, number[]> = { owner: [], client: [] };
    for (let rep = 0; rep < reps; rep++) {
      // Interleaved, and each rep starting with the other one, so drift in the machine weighs on both.
      const order = rep % 2 === 0 ? [['owner', owner], ['client', client]] as const : [['client', client], ['owner', owner]] as const;
      for (const [name, proc] of order) {
        const reply = await proc.ask({ op: 'get', keys, count: gets, inFlight, perTask });
        rates[name].push(gets / (((reply.ended as number) - (reply.started as number)) / 1000));
      }
    }
    const o = median(rates.owner);
    const c = median(rates.client);
    lines.push(`| get, ${label} | ${fmt(o)} ops/s | ${fmt(c)} ops/s | ${(c / o).toFixed(2)} |`);
    process.stderr.write(`get ${label}: owner ${rates.owner.map(fmt).join(' ')}, client ${rates.client.map(fmt).join(' ')}\n`);
  }
  await client.end();
  await owner.end();
  return lines;
}

async function failoverBench(script: string): Promise<string[]> {
  const dir = freshDir('failover');
  let procs = await openAll(script, dir, 4, 'always');
  await procs[0].ask({ op: 'fill', keys, valueBytes: 100 });
  const times: number[] = [];
  for (let kill = 0; kill < kills; kill++) {
    const roles = await Promise.all(procs.map((p) => p.ask({ op: 'role' })));
    const ownerAt = roles.findIndex((r) => r.role === 'owner');
    const owner = procs[ownerAt];
    const prober = procs.find((_, i) => i !== ownerAt)!;
    const killedAt = now();
    const killed = owner.kill();
    const probed = await prober.ask({ op: 'probe' });
    await killed;
    times.push((probed.at as number) - killedAt);
    const fresh = new Proc(script);
    await fresh.ask({ op: 'open', dir, sync: 'always' });
    procs = procs.filter((p) => p !== owner).concat(fresh);
    if ((kill + 1) % 20 === 0 || kill < 3) process.stderr.write(`failover: ${kill + 1} kills, median ${median(times).toFixed(1)} ms, max ${Math.max(...times).toFixed(1)} ms\n`);
  }
  const roles = await Promise.all(procs.map((p) => p.ask({ op: 'role' })));
  for (const [i, p] of procs.entries()) if (roles[i].role === 'client') await p.end();
  for (const p of procs) await p.end();
  const sorted = [...times].sort((a, b) => a - b);
  return [
    '| kills | store | median | p90 | max |', '|---|---|---|---|---|',
    `| ${times.length} | ${keys} keys, sync 'always', 1 owner + 3 clients | ${median(times).toFixed(1)} ms | ` +
      `${sorted[Math.floor(sorted.length * 0.9)].toFixed(1)} ms | ${sorted[sorted.length - 1].toFixed(1)} ms |`,
  ];
}

async function main(): Promise<void> {
  const script = build();
  fs.mkdirSync(base, { recursive: true });
  const out: string[] = [`Shared access, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? 'unknown'}), Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`, ''];
  if (only.has('write')) out.push(`### Writes: ${writes} sets of 100-byte values`, '', ...(await writeBench(script)), '');
  if (only.has('get')) out.push(`### Reads: ${gets} random gets of ${keys} keys`, '', ...(await getBench(script)), '');
  if (only.has('failover')) out.push('### Failover: SIGKILL of the owner to the first acknowledged write in a client', '', ...(await failoverBench(script)), '');
  process.stdout.write(out.join('\n') + '\n');
  fs.rmSync(base, { recursive: true, force: true });
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
