/**
 * The command line's standard output: text written with backpressure (lib/text-sink.ts), so a
 * dump of millions of keys does not pile up in memory, and a reader that went away
 * (`logkv dump | head`) ends the command quietly instead of failing it.
 */
import { isErrno } from '../errors';
import { TextSink } from '../text-sink';

/** Thrown when stdout's reader has gone away (EPIPE): the dispatcher stops quietly, exit code 0. */
export class OutputClosed extends Error {}

export class Output {
  readonly #sink: TextSink;

  /** Listens to `stream`'s errors for as long as the process runs, so none goes unhandled. */
  constructor(stream: NodeJS.WritableStream) {
    this.#sink = new TextSink(stream);
  }

  /** Whether the reader has gone away. */
  get closed(): boolean {
    return isErrno(this.#sink.failure, 'EPIPE');
  }

  async write(text: string): Promise<void> {
    try {
      await this.#sink.write(text);
    } catch (err) {
      throw this.closed ? new OutputClosed() : err;
    }
  }
}

/** One line of JSON output. */
export function json(value: unknown): string {
  return JSON.stringify(value);
}
