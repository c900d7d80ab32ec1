/**
 * The owner's side of the channel: a Unix socket server that runs the calls its clients send
 * through the owner's own Store methods, so every request is validated as if a user of this
 * process made it, and answers each one (protocol.ts has the messages).
 *
 * Order: the calls of one connection are started in the order they arrive, synchronously, and a
 * Store method gives its write a place in the log before it returns; so one client's calls take
 * effect in the order it made them.
 *
 * Leaving: drain() stops running new calls (they are answered `retry`: not applied, for the next
 * owner) and resolves once every call already started has been answered; close() then ends the
 * connections, which tells the clients to take over.
 */
import * as fs from 'fs';
import * as net from 'net';
import { ErrorCodes, LogkvError } from '../errors';
import {
  FrameReader, FrameWriter, Message, PROTOCOL_VERSION, isFunctionMarker, isSocketFile, toWireError,
} from './protocol';

/** Runs Store method `method` with `args` in the owner; rejects as the method does. */
export type Dispatch = (method: string, args: unknown[]) => Promise<unknown>;

interface Connection {
  socket: net.Socket;
  out: FrameWriter;
  helloed: boolean;
  /** It said bye or left (or went away): nothing more comes from it. */
  done: boolean;
  /** It said left: it stays a participant of the store, and will take it over. */
  left: boolean;
}

/** How long a closing owner waits for a client to say `left` (one that hangs must not hold it forever). */
const LEAVING_TIMEOUT_MS = 2000;

export class OwnerServer {
  readonly #address: string;
  readonly #nonce: string;
  readonly #epoch: number;
  readonly #dispatch: Dispatch;
  readonly #server: net.Server;
  readonly #connections = new Set<Connection>();
  #inflight = 0;
  #draining = false;
  #drained: (() => void) | undefined;

  constructor(address: string, nonce: string, epoch: number, dispatch: Dispatch) {
    this.#address = address;
    this.#nonce = nonce;
    this.#epoch = epoch;
    this.#dispatch = dispatch;
    this.#server = net.createServer((socket) => this.#accept(socket));
  }

  /** Clients that are connected and did not say bye (one that said `left` will take over). */
  get clients(): number {
    let count = 0;
    for (const connection of this.#connections) if (connection.helloed && (!connection.done || connection.left)) count++;
    return count;
  }

  /**
   * Starts listening. An address still taken (an earlier owner in this process closing, or on
   * macOS a socket file nobody answers on any more) is retried for a while.
   */
  async listen(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await new Promise<void>((resolve, reject) => {
          this.#server.once('error', reject);
          this.#server.listen(this.#address, () => {
            this.#server.off('error', reject);
            resolve();
          });
        });
        this.#server.unref();
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 200) throw err;
        if (isSocketFile(this.#address) && !(await answers(this.#address))) fs.rmSync(this.#address, { force: true });
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
  }

  /**
   * Stops running new calls and tells every client the owner is leaving; resolves once every call
   * started has been answered and every client said `left` (after which no call of it can be on
   * its way), or went away, or a timeout passed.
   */
  drain(): Promise<void> {
    this.#draining = true;
    for (const connection of this.#connections) {
      if (connection.helloed && !connection.done) connection.out.send({ t: 'leaving' });
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish(), LEAVING_TIMEOUT_MS);
      const finish = (): void => {
        clearTimeout(timer);
        this.#drained = undefined;
        resolve();
      };
      this.#drained = () => {
        if (this.#inflight > 0) return;
        for (const connection of this.#connections) if (connection.helloed && !connection.done) return;
        finish();
      };
      this.#drained();
    });
  }

  /** Ends every connection (answers already written go out first) and stops listening. */
  async close(): Promise<void> {
    this.#draining = true;
    for (const connection of this.#connections) {
      connection.out.flush();
      // Once what was written is out, the connection is done: the client sends nothing more after
      // `left`, and its end must not have to come back before this owner is gone.
      connection.socket.end(() => connection.socket.destroy());
    }
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    if (isSocketFile(this.#address)) fs.rmSync(this.#address, { force: true });
  }

  #accept(socket: net.Socket): void {
    const connection: Connection = {
      socket, out: new FrameWriter((bytes) => { if (!socket.destroyed && socket.writable) socket.write(bytes); }), helloed: false, done: false, left: false,
    };
    socket.unref();
    this.#connections.add(connection);
    const reader = new FrameReader();
    socket.on('data', (chunk: Buffer) => {
      let messages: Message[];
      try {
        messages = reader.push(chunk);
      } catch {
        socket.destroy(); // not our protocol
        return;
      }
      for (const message of messages) this.#receive(connection, message);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      connection.done = true;
      connection.left = false;
      this.#connections.delete(connection);
      this.#drained?.();
    });
  }

  #receive(connection: Connection, message: Message): void {
    if (!connection.helloed) {
      if (message.t !== 'hello') {
        connection.socket.destroy();
        return;
      }
      this.#hello(connection, message);
      return;
    }
    if (message.t === 'bye' || message.t === 'left') {
      connection.done = true;
      connection.left = message.t === 'left';
      this.#drained?.();
      return;
    }
    if (message.t !== 'call') return;
    if (this.#draining) {
      connection.out.send({ t: 'retry', id: message.id });
      return;
    }
    this.#call(connection, message);
  }

  #hello(connection: Connection, message: Extract<Message, { t: 'hello' }>): void {
    let refusal: LogkvError | undefined;
    if (message.v !== PROTOCOL_VERSION) {
      refusal = new LogkvError(ErrorCodes.INVALID_ARGUMENT, `protocol version ${String(message.v)}; this owner speaks ${PROTOCOL_VERSION}`);
    } else if (message.nonce !== this.#nonce) {
      refusal = new LogkvError(ErrorCodes.LOCKED, 'the hello does not carry the nonce of the head file');
    } else if (this.#draining) {
      refusal = new LogkvError(ErrorCodes.CLOSED, 'the owner is closing');
    }
    if (refusal !== undefined) {
      connection.out.send({ t: 'refused', e: toWireError(refusal) });
      connection.out.flush();
      connection.socket.end();
      return;
    }
    connection.helloed = true;
    connection.out.send({ t: 'welcome', v: PROTOCOL_VERSION, pid: process.pid, epoch: this.#epoch });
  }

  #call(connection: Connection, message: Extract<Message, { t: 'call' }>): void {
    const { id } = message;
    const args = Array.isArray(message.a) ? message.a.map((arg, i) => withCallbacks(arg, i, connection, id)) : [];
    this.#inflight++;
    let running: Promise<unknown>;
    try {
      running = this.#dispatch(String(message.m), args);
    } catch (err) {
      running = Promise.reject(err);
    }
    running.then(
      (result) => connection.out.send({ t: 'done', id, r: result }),
      (err: unknown) => {
        // A call the closing store refused was not applied: the next owner runs it.
        if (this.#draining && err instanceof LogkvError && err.code === ErrorCodes.CLOSED) connection.out.send({ t: 'retry', id });
        else connection.out.send({ t: 'failed', id, e: toWireError(err) });
      },
    ).catch(() => {
      // The answer could not be encoded (a result the codec cannot carry): say so instead.
      connection.out.send({ t: 'failed', id, e: toWireError(new LogkvError(ErrorCodes.IO, 'the result cannot be sent to the client')) });
    }).finally(() => {
      this.#inflight--;
      this.#drained?.();
    });
  }
}

/** An argument with its function markers replaced by functions that call back the client. */
function withCallbacks(arg: unknown, index: number, connection: Connection, id: number): unknown {
  if (typeof arg !== 'object' || arg === null || Object.getPrototypeOf(arg) !== Object.prototype) return arg;
  let copy: Record<string, unknown> | undefined;
  for (const [name, value] of Object.entries(arg)) {
    if (!isFunctionMarker(value)) continue;
    copy ??= { ...(arg as Record<string, unknown>) };
    copy[name] = (...callbackArgs: unknown[]) => {
      try {
        connection.out.send({ t: 'cb', id, p: [index, name], a: callbackArgs });
      } catch {
        // A callback argument the codec cannot carry is not worth failing the call for.
      }
    };
  }
  return copy ?? arg;
}

/** Whether something answers on a socket file (else it is a dead owner's, to be removed). */
function answers(address: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.createConnection(address);
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}
