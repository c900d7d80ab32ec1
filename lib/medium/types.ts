/**
 * The storage medium seam: every byte the engine reads or writes goes through these two
 * interfaces, so tests and the crash harness can swap the real file system for an in-memory or
 * fault-injecting one.
 *
 * Paths are plain strings joined with '/'. The engine only uses files directly inside its own
 * directory, so no medium needs nested directories beyond `mkdirp` of the store's directory.
 *
 * What a medium promises, and what it does not:
 * - `write` either writes every byte or rejects. After a rejection, any prefix of the bytes may
 *   be in the file (a torn write), so the engine truncates back before it writes again.
 * - Bytes written are visible to `readSync` at once (the page cache), but survive a power loss
 *   only after `sync` of that file has resolved.
 * - A created, renamed or removed file survives a power loss only after `syncDir` of its
 *   directory has resolved.
 * - `readSync` may return fewer bytes than asked only at the end of the file.
 */
export interface MediumFile {
  readonly path: string;
  /** Reads up to `length` bytes at `position` into `buf` at `offset`; returns the count read. */
  readSync(buf: Uint8Array, offset: number, length: number, position: number): number;
  /**
   * readSync() off the event loop (the file system's thread pool), where the medium can: returns
   * the count read, which is short only at the end of the file. Optional: a caller without it
   * uses readSync(). The snapshot load reads with it, to checksum one chunk while the next is read.
   */
  read?(buf: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  /** Writes all chunks, in order, starting at `position`. */
  write(chunks: readonly Uint8Array[], position: number): Promise<void>;
  /** Makes every byte written to this file so far durable (fdatasync). */
  sync(): Promise<void>;
  /** Cuts (or extends with zeros) the file to `size` bytes. Durable only after `sync`. */
  truncate(size: number): Promise<void>;
  /** The current size in bytes, as the OS sees it (written, not necessarily durable). */
  sizeSync(): number;
  /** Releases the handle. Does not sync. */
  close(): Promise<void>;
}

export interface OpenFileOptions {
  /** Create the file if it does not exist. */
  create?: boolean;
  /** With `create`: fail with EEXIST if the file exists. */
  exclusive?: boolean;
  /** Open for reading only. */
  readOnly?: boolean;
}

/** What `stat` tells of a file: which file a name refers to, its size, when its bytes last changed. */
export interface FileStat {
  /**
   * The file system and the file on it (device and inode numbers, as decimal strings). Two names
   * of one file (hard links) have the same pair; a file that replaced another under its name has
   * another pair, as long as the first still exists (a number may be reused once it is gone).
   */
  dev: string;
  ino: string;
  /** The size in bytes, as the OS sees it (written, not necessarily durable). */
  size: number;
  /**
   * When the file's bytes last changed (mtime, ns since the epoch, as a decimal string): every
   * write and truncate changes it. After a power loss it may be older than the bytes it describes.
   */
  mtimeNs: string;
}

export interface Medium {
  /** Creates the directory and its parents if missing. */
  mkdirp(dir: string): Promise<void>;
  /** Names (not paths) of the entries of `dir`. Rejects with ENOENT if `dir` does not exist. */
  list(dir: string): Promise<string[]>;
  /** Opens a file; rejects with ENOENT if it is missing and `create` is not set. */
  open(path: string, options?: OpenFileOptions): Promise<MediumFile>;
  /** Atomically replaces `to` with `from`. Durable only after `syncDir`. */
  rename(from: string, to: string): Promise<void>;
  /** Removes a file; resolves if it is already missing. Durable only after `syncDir`. */
  remove(path: string): Promise<void>;
  /** Makes the directory's entries (creations, renames, removals) durable. */
  syncDir(dir: string): Promise<void>;
  /**
   * Optional (the real file system and MemoryMedium have it): gives the file `existing` names a
   * second name, `newPath` (link(2)). Both names are then the same file, whose bytes either sees
   * change. Rejects with EEXIST if `newPath` exists, ENOENT if `existing` does not, and EXDEV if
   * they are on different file systems (EPERM or ENOTSUP where a file system has no hard links).
   * Durable only after `syncDir` of `newPath`'s directory. A medium without it cannot link: its
   * users copy.
   */
  link?(existing: string, newPath: string): Promise<void>;
  /** Optional (the real file system and MemoryMedium have it): what the file `path` names is (stat(2)). Rejects with ENOENT if missing. */
  stat?(path: string): Promise<FileStat>;
  /**
   * Whether this medium is the process's real file system. Only then does the store take the
   * inter-process lock; other media are private to the process.
   */
  readonly isFileSystem: boolean;
}
