/**
 * The real file system. Writes and syncs go through libuv's thread pool so the event loop keeps
 * serving calls (and gathering the next group commit) while the disk works; positioned reads are
 * synchronous, because a read from the page cache is far cheaper than a trip through the pool.
 */
import * as fs from 'fs';
import type { FileStat, Medium, MediumFile, OpenFileOptions } from './types';

function writev(fd: number, chunks: readonly Uint8Array[], position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.writev(fd, chunks as NodeJS.ArrayBufferView[], position, (err, written) => (err ? reject(err) : resolve(written)));
  });
}

/** Writes up to this size are made synchronously (see FsFile.write). */
const SYNC_WRITE_BYTES = 64 * 1024;

class FsFile implements MediumFile {
  constructor(readonly path: string, private readonly fd: number) {}

  readSync(buf: Uint8Array, offset: number, length: number, position: number): number {
    let done = 0;
    while (done < length) {
      const n = fs.readSync(this.fd, buf, offset + done, length - done, position + done);
      if (n === 0) break;
      done += n;
    }
    return done;
  }

  async read(buf: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    let done = 0;
    while (done < length) {
      const bytesRead = await new Promise<number>((resolve, reject) => {
        fs.read(this.fd, buf, offset + done, length - done, position + done, (err, n) => err ? reject(err) : resolve(n));
      });
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return done;
  }

  async write(chunks: readonly Uint8Array[], position: number): Promise<void> {
    let total = 0;
    for (const chunk of chunks) total += chunk.length;
    let written: number;
    if (total <= SYNC_WRITE_BYTES) {
      // A small write only copies into the page cache: doing it here costs microseconds, while a
      // trip through the thread pool costs a wait for a thread and a turn of the event loop,
      // which is most of the latency of a durable single write.
      written = fs.writevSync(this.fd, chunks as NodeJS.ArrayBufferView[], position);
    } else {
      written = await writev(this.fd, chunks, position);
    }
    // writev may write less than asked (a signal, a full disk on some systems): finish the rest.
    while (written < total) {
      const rest = sliceFrom(chunks, written);
      const n = await writev(this.fd, rest, position + written);
      if (n === 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
      written += n;
    }
  }

  sync(): Promise<void> {
    return new Promise((resolve, reject) => fs.fdatasync(this.fd, (err) => (err ? reject(err) : resolve())));
  }

  truncate(size: number): Promise<void> {
    return new Promise((resolve, reject) => fs.ftruncate(this.fd, size, (err) => (err ? reject(err) : resolve())));
  }

  sizeSync(): number {
    return fs.fstatSync(this.fd).size;
  }

  close(): Promise<void> {
    return new Promise((resolve, reject) => fs.close(this.fd, (err) => (err ? reject(err) : resolve())));
  }
}

/** The chunks past the first `skip` bytes. */
export function sliceFrom(chunks: readonly Uint8Array[], skip: number): Uint8Array[] {
  const rest: Uint8Array[] = [];
  for (const chunk of chunks) {
    if (skip >= chunk.length) { skip -= chunk.length; continue; }
    rest.push(skip > 0 ? chunk.subarray(skip) : chunk);
    skip = 0;
  }
  return rest;
}

export class FsMedium implements Medium {
  readonly isFileSystem = true;

  async mkdirp(dir: string): Promise<void> {
    await fs.promises.mkdir(dir, { recursive: true });
  }

  list(dir: string): Promise<string[]> {
    return fs.promises.readdir(dir);
  }

  async open(path: string, options: OpenFileOptions = {}): Promise<MediumFile> {
    let flags = options.readOnly ? fs.constants.O_RDONLY : fs.constants.O_RDWR;
    if (options.create) flags |= fs.constants.O_CREAT;
    if (options.create && options.exclusive) flags |= fs.constants.O_EXCL;
    // A raw descriptor, not a FileHandle: callback calls on it are cheaper, and a FileHandle
    // that is garbage-collected would close the descriptor under us.
    const fd = await new Promise<number>((resolve, reject) => {
      fs.open(path, flags, 0o644, (err, fd) => (err ? reject(err) : resolve(fd)));
    });
    return new FsFile(path, fd);
  }

  rename(from: string, to: string): Promise<void> {
    return fs.promises.rename(from, to);
  }

  async remove(path: string): Promise<void> {
    await fs.promises.rm(path, { force: true });
  }

  async syncDir(dir: string): Promise<void> {
    const handle = await fs.promises.open(dir, fs.constants.O_RDONLY);
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  link(existing: string, newPath: string): Promise<void> {
    return fs.promises.link(existing, newPath);
  }

  async stat(file: string): Promise<FileStat> {
    // BigInt, so inode numbers and nanosecond times are exact.
    const st = await fs.promises.stat(file, { bigint: true });
    return { dev: String(st.dev), ino: String(st.ino), size: Number(st.size), mtimeNs: String(st.mtimeNs) };
  }
}

export const fileSystem: Medium = new FsMedium();
