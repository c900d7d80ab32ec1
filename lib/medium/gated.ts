/**
 * A medium that asks the store's lock before every change it hands to the disk.
 *
 * The lock's lease (lib/lock.ts) is only worth what its checks cover: a store whose lock was
 * taken over must not append a record, create or rename a file, or remove a segment the new
 * owner reads. Checking at this seam covers every such call the engine makes (the writer,
 * compaction, hints, the snapshot at close, recovery's repairs) without each of them having to
 * remember, and checks right before the call, not when the work was queued.
 *
 * Not gated: reads, listing, closing, and syncs (fdatasync of our own descriptor, fsync of the
 * directory). A sync changes no bytes; it only makes durable what we wrote while we held the
 * lock, which the new owner has read already, so refusing it would only turn a takeover into a
 * failed sync and leave our last writes less safe.
 */
import type { LogkvError } from '../errors';
import type { Medium, MediumFile, OpenFileOptions } from './types';

/** Undefined when a change may go to the disk now, else the error to fail it with. */
export type WriteGate = () => LogkvError | undefined;

function check(mayWrite: WriteGate): void {
  const refused = mayWrite();
  if (refused !== undefined) throw refused;
}

class GatedFile implements MediumFile {
  constructor(private readonly inner: MediumFile, private readonly mayWrite: WriteGate) {}

  get path(): string {
    return this.inner.path;
  }

  readSync(buf: Uint8Array, offset: number, length: number, position: number): number {
    return this.inner.readSync(buf, offset, length, position);
  }

  write(chunks: readonly Uint8Array[], position: number): Promise<void> {
    check(this.mayWrite);
    return this.inner.write(chunks, position);
  }

  sync(): Promise<void> {
    return this.inner.sync();
  }

  truncate(size: number): Promise<void> {
    check(this.mayWrite);
    return this.inner.truncate(size);
  }

  sizeSync(): number {
    return this.inner.sizeSync();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** `inner`, with `mayWrite` asked before each write, truncate, create, rename, remove, link and mkdir. */
export function gateWrites(inner: Medium, mayWrite: WriteGate): Medium {
  const { link, stat } = inner;
  return {
    ...(link === undefined ? {} : {
      async link(existing: string, newPath: string): Promise<void> {
        check(mayWrite);
        return link.call(inner, existing, newPath);
      },
    }),
    ...(stat === undefined ? {} : { stat: (file: string) => stat.call(inner, file) }),
    isFileSystem: inner.isFileSystem,
    async mkdirp(dir: string): Promise<void> {
      check(mayWrite);
      return inner.mkdirp(dir);
    },
    list: (dir: string) => inner.list(dir),
    async open(file: string, options?: OpenFileOptions): Promise<MediumFile> {
      if (options?.readOnly) return inner.open(file, options);
      check(mayWrite);
      return new GatedFile(await inner.open(file, options), mayWrite);
    },
    async rename(from: string, to: string): Promise<void> {
      check(mayWrite);
      return inner.rename(from, to);
    },
    async remove(file: string): Promise<void> {
      check(mayWrite);
      return inner.remove(file);
    },
    syncDir: (dir: string) => inner.syncDir(dir),
  };
}
