/**
 * A client's side of the channel: one connection to the owner, its hello, and the calls sent on
 * it. What happens to calls when the connection breaks is the client role's business (role.ts):
 * the link only reports each call's answer, or that the connection is gone.
 */
import * as net from 'net';
import { ErrorCodes, LogkvError } from '../errors';
import { FrameReader, FrameWriter, Message, PROTOCOL_VERSION, fromWireError } from './protocol';

/** What the link tells its user about a call. */
export interface CallEvents {
  /** Messages from the owner arrived (one chunk of them): what it published before it sent them is in the head. */
  arrived(): void;
  done(id: number, result: unknown): void;
  failed(id: number, err: LogkvError): void;
  retry(id: number): void;
  callback(id: number, path: [number, string], args: unknown[]): void;
  /** The owner is closing: calls not sent yet wait for the next owner. The link has answered `left`. */
  leaving(): void;
  /** The connection is gone (the owner closed it, died, or answered something that is not the protocol). */
  closed(): void;
}

export class OwnerLink {
  readonly #socket: net.Socket;
  readonly #out: FrameWriter;
  #closed = false;
  #leaving = false;
  readonly epoch: number;
  readonly ownerPid: number;

  private constructor(socket: net.Socket, out: FrameWriter, epoch: number, ownerPid: number) {
    this.#socket = socket;
    this.#out = out;
    this.epoch = epoch;
    this.ownerPid = ownerPid;
  }

  /**
   * Connects to the owner at `address` and says hello with `nonce`. Rejects with the connection's
   * error (ECONNREFUSED, ENOENT: nobody listens yet), with the owner's refusal, or after `timeoutMs`.
   */
  static connect(address: string, nonce: string, timeoutMs: number, events: CallEvents): Promise<OwnerLink> {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection(address);
      const out = new FrameWriter((bytes) => { if (!socket.destroyed) socket.write(bytes); });
      const reader = new FrameReader();
      let link: OwnerLink | undefined;
      const timer = setTimeout(() => fail(new LogkvError(ErrorCodes.LOCKED, 'the owner did not answer the hello')), timeoutMs);
      const fail = (err: unknown): void => {
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      socket.on('connect', () => out.send({ t: 'hello', v: PROTOCOL_VERSION, pid: process.pid, nonce }));
      socket.on('error', (err) => { if (link === undefined) fail(err); });
      socket.on('close', () => {
        if (link === undefined) {
          fail(new LogkvError(ErrorCodes.LOCKED, 'the owner closed the connection'));
        } else if (!link.#closed) {
          link.#closed = true;
          events.closed();
        }
      });
      socket.on('data', (chunk: Buffer) => {
        let messages: Message[];
        try {
          messages = reader.push(chunk);
        } catch {
          socket.destroy();
          return;
        }
        if (link !== undefined && messages.length > 0) events.arrived();
        for (const message of messages) {
          if (link === undefined) {
            if (message.t === 'welcome') {
              clearTimeout(timer);
              link = new OwnerLink(socket, out, Number(message.epoch), Number(message.pid));
              socket.unref();
              resolve(link);
            } else {
              fail(message.t === 'refused' ? fromWireError(message.e) : new LogkvError(ErrorCodes.IO, 'the owner broke the protocol'));
              return;
            }
            continue;
          }
          switch (message.t) {
            case 'done': events.done(message.id, message.r); break;
            case 'failed': events.failed(message.id, fromWireError(message.e)); break;
            case 'retry': events.retry(message.id); break;
            case 'cb': events.callback(message.id, message.p, message.a); break;
            case 'leaving':
              link!.#leaving = true;
              out.send({ t: 'left' });
              events.leaving();
              break;
            default: break;
          }
        }
      });
    });
  }

  get closed(): boolean {
    return this.#closed || this.#socket.destroyed;
  }

  /** The owner said it is leaving: nothing more may be sent on this link. */
  get leaving(): boolean {
    return this.#leaving;
  }

  /** Sends a call. The caller has made sure `args` can be encoded. */
  call(id: number, method: string, args: unknown[]): void {
    this.#out.send({ t: 'call', id, m: method, a: args });
  }

  /**
   * While calls are in flight the connection keeps the process alive (their answers are awaited);
   * otherwise it does not, so a process with an idle shared store can exit.
   */
  hold(held: boolean): void {
    if (held) this.#socket.ref();
    else this.#socket.unref();
  }

  /** Says goodbye and closes the connection; the owner runs nothing more from it. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.#leaving) this.#out.send({ t: 'bye' });
    this.#out.flush();
    this.#socket.end();
  }
}
