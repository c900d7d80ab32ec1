/**
 * Text written to a Node stream with backpressure, for writers of many lines (a dump of millions
 * of keys, the command line's output): each write waits for 'drain' when the stream's buffer is
 * full, so memory holds one buffer's worth rather than the whole output.
 *
 * A stream reports a failure (a reader that went away: EPIPE) by an 'error' event that may come
 * after the write that caused it returned. The sink listens for it from construction until
 * detach(), so the event never goes unhandled meanwhile, and the next write rejects with it.
 */

export class TextSink {
  readonly #stream: NodeJS.WritableStream;
  #failure: Error | undefined;
  readonly #onError = (err: Error): void => {
    this.#failure ??= err;
  };

  constructor(stream: NodeJS.WritableStream) {
    this.#stream = stream;
    stream.on('error', this.#onError);
  }

  /** The stream's first error, if it has failed. */
  get failure(): Error | undefined {
    return this.#failure;
  }

  /**
   * Writes `text`, resolving once the stream can take more. Rejects with the stream's error if it
   * has failed (before or during this write), or with ERR_STREAM_DESTROYED if it was closed.
   */
  async write(text: string): Promise<void> {
    this.#throwIfUnwritable();
    if (!this.#stream.write(text)) await this.#writable();
    this.#throwIfUnwritable();
  }

  /** Stops listening to the stream; its later errors are its owner's to handle. */
  detach(): void {
    this.#stream.off('error', this.#onError);
  }

  /** Resolves on 'drain', or on 'error' or 'close' (after which 'drain' never comes). */
  #writable(): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        this.#stream.off('drain', done);
        this.#stream.off('error', done);
        this.#stream.off('close', done);
        resolve();
      };
      this.#stream.on('drain', done);
      this.#stream.on('error', done);
      this.#stream.on('close', done);
    });
  }

  #throwIfUnwritable(): void {
    if (this.#failure !== undefined) throw this.#failure;
    if ((this.#stream as { destroyed?: boolean }).destroyed === true) {
      throw Object.assign(new Error('the stream was closed before the writing finished'), { code: 'ERR_STREAM_DESTROYED' });
    }
  }
}
