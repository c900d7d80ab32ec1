/**
 * The channel between the owner of a shared store and its clients: where it listens, how
 * messages are framed and encoded, and what they are. docs/sharing.md is the reference; in brief:
 *
 * - Address: on Linux an abstract Unix socket (no file, nothing to clean up after a crash) named
 *   by the store directory's device and inode, `\0logkv-<dev>-<ino>`, so every path to the same
 *   directory (symlinks, bind mounts) reaches the same owner; elsewhere a socket file of that
 *   name under the OS temp directory (a stale one is removed when nobody answers on it).
 * - Framing: a u32 little-endian length, then that many bytes of one msgpack message, encoded
 *   with the store's own value codec (codec.ts), so every value a store holds travels exactly.
 * - Messages are maps with a type `t`:
 *
 *     client -> owner   hello  {v, pid, nonce}        the first message; nonce from the head file
 *                       call   {id, m, a}             run Store method m with arguments a
 *                       bye    {}                     the client closes: it sends nothing more
 *                       left   {}                     answer to leaving: it sends nothing more
 *     owner -> client   welcome {v, pid, epoch}       hello accepted
 *                       refused {e}                   hello refused (a version or a nonce mismatch)
 *                       done   {id, r}                call id resolved with r
 *                       failed {id, e}                call id rejected with e = {code, message, details}
 *                       retry  {id}                   call id was not applied: the owner is leaving;
 *                                                     send it to the next owner
 *                       cb     {id, p, a}             call id's argument p[0], property p[1] (a
 *                                                     function, such as compact's onProgress), is
 *                                                     called with arguments a
 *                       leaving {}                    the owner closes: it answers every call it gets
 *                                                     from now on `retry`, and ends the connection
 *                                                     once the client said `left` (so no call is
 *                                                     on its way when it does)
 *
 *   A call's function-valued option properties travel as the marker {$fn: 1}; the owner passes
 *   a function in their place that sends `cb` messages.
 * - Every call gets exactly one of done, failed or retry, unless the connection breaks first:
 *   then the client rejects it LOGKV_OUTCOME_UNKNOWN and never sends it again.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { decodeValue, encodeValue, prepareValue } from '../codec';
import { ErrorCode, ErrorCodes, LogkvError } from '../errors';

export const PROTOCOL_VERSION = 1;
/** The length prefix is a u32, so no frame is larger; a corrupt prefix cannot ask for more. */
const MAX_FRAME_BYTES = 0xffffffff;

export type Message =
  | { t: 'hello'; v: number; pid: number; nonce: string }
  | { t: 'call'; id: number; m: string; a: unknown[] }
  | { t: 'bye' }
  | { t: 'left' }
  | { t: 'leaving' }
  | { t: 'welcome'; v: number; pid: number; epoch: number }
  | { t: 'refused'; e: WireError }
  | { t: 'done'; id: number; r: unknown }
  | { t: 'failed'; id: number; e: WireError }
  | { t: 'retry'; id: number }
  | { t: 'cb'; id: number; p: [number, string]; a: unknown[] };

export interface WireError {
  code: string;
  message: string;
  details: Record<string, unknown>;
}

/** Where the owner of the store in `dir` listens. */
export function socketAddress(dir: string, platform: NodeJS.Platform = process.platform): string {
  const stat = fs.statSync(dir, { bigint: true });
  const name = `logkv-${stat.dev.toString(36)}-${stat.ino.toString(36)}`;
  if (platform === 'linux') return `\0${name}`;
  // A path, kept short: socket paths are limited to about 104 bytes.
  const hash = crypto.createHash('sha256').update(name).digest('hex').slice(0, 24);
  return path.join(os.tmpdir(), `logkv-${hash}.sock`);
}

/** Whether the address is a file that must be removed when stale (not an abstract socket). */
export function isSocketFile(address: string): boolean {
  return !address.startsWith('\0');
}

/** One frame: the length prefix and the encoded message. */
export function encodeFrame(message: Message): Buffer {
  const body = encodeValue(prepareValue(message));
  const frame = Buffer.allocUnsafe(4 + body.length);
  frame.writeUInt32LE(body.length, 0);
  body.copy(frame, 4);
  return frame;
}

/** Splits a byte stream into messages. */
export class FrameReader {
  #chunks: Buffer[] = [];
  #buffered = 0;

  /** Adds bytes read from the socket; returns the whole messages they complete. Throws on a bad frame. */
  push(chunk: Buffer): Message[] {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    const messages: Message[] = [];
    for (;;) {
      if (this.#buffered < 4) break;
      const head = this.#peek(4);
      const length = head.readUInt32LE(0);
      if (length > MAX_FRAME_BYTES) throw new Error(`frame of ${length} bytes`);
      if (this.#buffered < 4 + length) break;
      const frame = this.#take(4 + length);
      const message = decodeValue(frame.subarray(4)) as Message;
      if (typeof message !== 'object' || message === null || typeof message.t !== 'string') throw new Error('not a message');
      messages.push(message);
    }
    return messages;
  }

  #peek(n: number): Buffer {
    if (this.#chunks[0].length >= n) return this.#chunks[0];
    this.#chunks = [Buffer.concat(this.#chunks)];
    return this.#chunks[0];
  }

  #take(n: number): Buffer {
    const first = this.#peek(n);
    const out = first.subarray(0, n);
    if (first.length === n) this.#chunks.shift();
    else this.#chunks[0] = first.subarray(n);
    this.#buffered -= n;
    return out;
  }
}

/**
 * Frames written in one turn of the event loop go out in one write: a burst of calls (or their
 * answers) costs one system call, not one each.
 */
export class FrameWriter {
  #pending: Buffer[] = [];
  #scheduled = false;

  constructor(private readonly write: (bytes: Buffer) => void) {}

  send(message: Message): void {
    this.#pending.push(encodeFrame(message));
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => this.flush());
  }

  flush(): void {
    this.#scheduled = false;
    if (this.#pending.length === 0) return;
    const bytes = this.#pending.length === 1 ? this.#pending[0] : Buffer.concat(this.#pending);
    this.#pending = [];
    this.write(bytes);
  }
}

const KNOWN_CODES: ReadonlySet<string> = new Set(Object.values(ErrorCodes));

export function toWireError(err: unknown): WireError {
  if (err instanceof LogkvError) return { code: err.code, message: err.message, details: plainDetails(err.details) };
  return { code: ErrorCodes.IO, message: err instanceof Error ? err.message : String(err), details: {} };
}

export function fromWireError(wire: WireError): LogkvError {
  const code = (KNOWN_CODES.has(wire.code) ? wire.code : ErrorCodes.IO) as ErrorCode;
  return new LogkvError(code, String(wire.message), typeof wire.details === 'object' && wire.details !== null ? wire.details : {});
}

/** Details that the codec can carry: the plain fields every code documents. */
function plainDetails(details: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(details)) {
    if (value === undefined) continue;
    try {
      prepareValue(value);
      out[name] = value;
    } catch {
      out[name] = String(value);
    }
  }
  return out;
}

/** Marks the function-valued properties of a call's plain-object arguments, which cannot travel. */
export function stripFunctions(args: unknown[]): { args: unknown[]; functions: Array<[number, string, Function]> } {
  const functions: Array<[number, string, Function]> = [];
  const out = args.map((arg, i) => {
    if (typeof arg !== 'object' || arg === null || Object.getPrototypeOf(arg) !== Object.prototype) return arg;
    let copy: Record<string, unknown> | undefined;
    for (const [name, value] of Object.entries(arg)) {
      if (typeof value !== 'function') continue;
      copy ??= { ...(arg as Record<string, unknown>) };
      copy[name] = { $fn: 1 };
      functions.push([i, name, value]);
    }
    return copy ?? arg;
  });
  // Trailing undefined arguments are dropped: the method sees them as missing either way.
  while (out.length > 0 && out[out.length - 1] === undefined) out.pop();
  return { args: out, functions };
}

/** Whether `value` is the marker stripFunctions() put where a function was. */
export function isFunctionMarker(value: unknown): boolean {
  return typeof value === 'object' && value !== null && (value as { $fn?: unknown }).$fn === 1 && Object.keys(value).length === 1;
}
