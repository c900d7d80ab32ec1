/** Writable streams for specs of code that writes text: one that keeps it, one that starts failing. */
import { Writable } from 'stream';
import { systemError } from './helpers';

/** A Writable that keeps what it is given, as text. */
export function textCollector(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString('utf8'));
      callback();
    },
  });
  return { stream, text: () => chunks.join('') };
}

/** A Writable that takes `accepted` writes, then fails every later one with a system error `code`. */
export function failingAfter(accepted: number, code: string, highWaterMark = 64): Writable {
  let writes = 0;
  return new Writable({
    highWaterMark,
    write(_chunk, _encoding, callback) {
      writes++;
      callback(writes > accepted ? systemError(code) : undefined);
    },
  });
}
