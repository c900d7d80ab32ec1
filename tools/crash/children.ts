/**
 * Every child process the crash harness starts goes through here (kill mode's workload and racer
 * processes, shared mode's writers), so that a harness stopped by SIGTERM or SIGINT takes them
 * with it. A signal sent to the harness alone reaches none of them (Ctrl-C in a terminal signals
 * the whole process group, `kill PID` does not), and a shared-mode writer writes until it is told
 * to stop: without this, a stopped soak left them running, on a store nobody would check.
 *
 * Only the command line (tools/crash.ts) installs the handlers: a spec that runs the harness as a
 * library call keeps its own process's signal handling.
 */
import type { ChildProcess } from 'child_process';
import * as os from 'os';

/** The pids of the children that have not exited yet (a pid leaves when its exit is seen). */
const running = new Set<number>();

/** `child`, just spawned, as one the harness kills if it is stopped: wrap every spawn() in it. */
export function trackChild<C extends ChildProcess>(child: C): C {
  const pid = child.pid;
  // No pid: the start failed, and the child's 'error' event says so to whoever started it.
  if (pid !== undefined) {
    running.add(pid);
    // Once node has seen the exit the pid has been reaped and may be reused: never signal it again.
    child.once('exit', () => running.delete(pid));
  }
  return child;
}

/**
 * On SIGTERM or SIGINT: SIGKILL every child still running, by pid, then exit with 128 + the
 * signal's number (143, 130), as a shell reports a process a signal ended. SIGKILL, not a polite
 * signal: the harness will not be there to wait for a writer's close, nor to check what it left.
 */
export function killChildrenOnSignals(): void {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      for (const pid of running) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Gone already (ESRCH), its exit not yet seen.
        }
      }
      process.exit(128 + os.constants.signals[signal]);
    });
  }
}
