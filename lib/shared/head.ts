/**
 * The head file (`HEAD` in the store's directory): how far the log goes, published by the owner
 * of a shared store for its clients, so a client learns it with one positioned read instead of a
 * round trip (docs/sharing.md).
 *
 * The owner rewrites it in place (one pwrite, no fsync) after each group of records reached the
 * OS and before that group's calls resolve, after a compaction switch, and when it takes the store
 * over. It only serves live processes: recovery never reads it, and after a crash it means nothing.
 * It is never replaced or removed, so a client's open descriptor always sees the current one.
 *
 * Layout (64 bytes, little-endian):
 *
 *   off  size  field
 *   0    4     magic        "LKVH"
 *   4    2     version      u16, 1
 *   6    2     reserved     0
 *   8    8     epoch        u64: the owner's lock generation (a new owner, a new epoch)
 *   16   8     floor        u64: the lowest segment id in the store; every segment below it is gone
 *                           or going (a compaction switch raised it)
 *   24   8     segment      u64: the newest write segment with records
 *   32   8     end          u64: where its records end: everything before it reached the OS whole
 *   40   16    nonce        random bytes a client must show the owner in its hello
 *   56   4     crc          u32: CRC-32 of bytes 0..55
 *   60   4     reserved     0
 *
 * The file is created with mode 0600: only the owner's user (and root) can read the nonce, so
 * only they can be clients (the socket itself has no permissions on Linux).
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { crc32 } from '../crc';

export const HEAD_NAME = 'HEAD';
const HEAD_BYTES = 64;
const HEAD_MAGIC = 0x484b564c; // "LKVH" read as a little-endian u32
const HEAD_VERSION = 1;
const U32 = 0x100000000;

/** What the head says. */
export interface Head {
  epoch: number;
  floor: number;
  segment: number;
  end: number;
  nonce: string;
}

function writeU64(buf: Buffer, value: number, at: number): void {
  buf.writeUInt32LE(value % U32, at);
  buf.writeUInt32LE(Math.floor(value / U32), at + 4);
}

function readU64(buf: Buffer, at: number): number {
  return buf.readUInt32LE(at) + buf.readUInt32LE(at + 4) * U32;
}

export function encodeHead(head: Head): Buffer {
  const buf = Buffer.alloc(HEAD_BYTES);
  buf.writeUInt32LE(HEAD_MAGIC, 0);
  buf.writeUInt16LE(HEAD_VERSION, 4);
  writeU64(buf, head.epoch, 8);
  writeU64(buf, head.floor, 16);
  writeU64(buf, head.segment, 24);
  writeU64(buf, head.end, 32);
  Buffer.from(head.nonce, 'hex').copy(buf, 40, 0, 16);
  buf.writeUInt32LE(crc32(buf.subarray(0, 56)), 56);
  return buf;
}

/** The head in `buf`, or undefined if it is not a whole one (torn by a concurrent write, or not a head file). */
export function decodeHead(buf: Buffer): Head | undefined {
  if (buf.length < HEAD_BYTES || buf.readUInt32LE(0) !== HEAD_MAGIC || buf.readUInt16LE(4) !== HEAD_VERSION) return undefined;
  if (buf.readUInt32LE(56) !== crc32(buf.subarray(0, 56))) return undefined;
  return {
    epoch: readU64(buf, 8), floor: readU64(buf, 16), segment: readU64(buf, 24), end: readU64(buf, 32),
    nonce: buf.toString('hex', 40, 56),
  };
}

export function newNonce(): string {
  return crypto.randomBytes(16).toString('hex');
}

/** The owner's side: the file, open for writing, rewritten in place. */
export class HeadWriter {
  readonly #fd: number;
  readonly #buf = Buffer.alloc(HEAD_BYTES);
  #last: Head;

  /** Opens (creating, mode 0600) the head file of `dir` and writes `head` into it. */
  constructor(dir: string, head: Head) {
    this.#fd = fs.openSync(path.join(dir, HEAD_NAME), fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    this.#last = head;
    this.#write(head);
  }

  get last(): Head {
    return this.#last;
  }

  /** Publishes `head` if it differs from the last one: one pwrite. */
  publish(head: Head): void {
    const last = this.#last;
    if (last.end === head.end && last.segment === head.segment && last.floor === head.floor && last.epoch === head.epoch) return;
    this.#last = head;
    this.#write(head);
  }

  #write(head: Head): void {
    encodeHead(head).copy(this.#buf);
    fs.writeSync(this.#fd, this.#buf, 0, HEAD_BYTES, 0);
  }

  close(): void {
    fs.closeSync(this.#fd);
  }
}

/** A client's side: the file, open for reading. */
export class HeadReader {
  readonly #fd: number;
  readonly #buf = Buffer.alloc(HEAD_BYTES);
  /** The bytes of the last whole head read, and what they say: most reads find them unchanged. */
  readonly #lastBytes = Buffer.alloc(HEAD_BYTES);
  #last: Head | undefined;

  /** Opens the head file of `dir`; throws (ENOENT, EACCES) if it cannot. */
  constructor(dir: string) {
    this.#fd = fs.openSync(path.join(dir, HEAD_NAME), fs.constants.O_RDONLY);
  }

  /**
   * The head as it is now: one pread. A read torn by the owner's concurrent rewrite fails its
   * CRC and is read again; undefined only if the file never holds a whole head.
   */
  read(): Head | undefined {
    for (let attempt = 0; attempt < 100; attempt++) {
      const got = fs.readSync(this.#fd, this.#buf, 0, HEAD_BYTES, 0);
      if (got !== HEAD_BYTES) continue;
      if (this.#last !== undefined && this.#buf.equals(this.#lastBytes)) return this.#last;
      const head = decodeHead(this.#buf);
      if (head === undefined) continue;
      this.#buf.copy(this.#lastBytes);
      this.#last = head;
      return head;
    }
    return undefined;
  }

  close(): void {
    fs.closeSync(this.#fd);
  }
}
