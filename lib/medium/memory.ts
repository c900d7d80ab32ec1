/**
 * An in-memory medium that knows what a real disk would keep through a power loss.
 *
 * It models a POSIX file system the way ALICE (OSDI 2014) does, pessimistically:
 * - A file's bytes live in the page cache (what reads see) and on the disk (what survives). A
 *   write or truncate changes the page cache at once and is remembered as an unsynced change;
 *   `sync()` (fdatasync) makes the file's current bytes and size durable and forgets its changes.
 * - A directory's entries work the same way: a create, rename or remove changes the directory at
 *   once, and is durable only after `syncDir()` of that directory. This includes the entries
 *   `mkdirp` makes: a new directory is durable in its parent only after the parent is synced.
 *   A file whose entry is not durable is gone after a crash, whatever was synced into it.
 * - `crash(chooser)` builds the disk as it could be found after a power loss: every durable byte
 *   and entry, plus whichever unsynced changes the chooser says reached the disk, in whole or in
 *   part. Nothing promises unsynced changes reach the disk in order, whole, or at all, so a
 *   chooser may keep any subset, tear a write at any byte (leaving its rest as it was, zeroed, or
 *   garbage), or keep only some of its 512-byte sectors: sector writes are not atomic either.
 *
 * The medium is private to the process (`isFileSystem` is false). Paths are absolute POSIX paths
 * (relative ones are taken from '/'). Errors look like Node's system errors: an Error with `code`
 * ('ENOENT', 'EEXIST', ...), `errno`, `syscall` and `path`.
 */
import * as path from 'path';
import { Random, seededRandom } from './random';
import type { FileStat, Medium, MediumFile, OpenFileOptions } from './types';

// ---------------------------------------------------------------- errors

export type SystemErrorCode = 'ENOENT' | 'EEXIST' | 'EIO' | 'ENOSPC' | 'EISDIR' | 'ENOTDIR' | 'EBADF' | 'EROFS' | 'EPERM';

const ERRNO: Record<SystemErrorCode, [number, string]> = {
  ENOENT: [-2, 'no such file or directory'],
  EEXIST: [-17, 'file already exists'],
  EIO: [-5, 'i/o error'],
  ENOSPC: [-28, 'no space left on device'],
  EISDIR: [-21, 'illegal operation on a directory'],
  ENOTDIR: [-20, 'not a directory'],
  EBADF: [-9, 'bad file descriptor'],
  EROFS: [-30, 'read-only file system'],
  EPERM: [-1, 'operation not permitted'],
};

export interface SystemError extends Error {
  code: SystemErrorCode;
  errno: number;
  syscall: string;
  path?: string;
}

/** An error shaped like the ones Node's fs module throws: "ENOENT: no such file or directory, open '/x'". */
export function systemError(code: SystemErrorCode, syscall: string, file?: string): SystemError {
  const [errno, description] = ERRNO[code];
  const where = file === undefined ? '' : ` '${file}'`;
  const err = new Error(`${code}: ${description}, ${syscall}${where}`) as SystemError;
  err.code = code;
  err.errno = errno;
  err.syscall = syscall;
  if (file !== undefined) err.path = file;
  return err;
}

// ---------------------------------------------------------------- the model

/** An unsynced change to a file's bytes. `seq` orders every change the medium has seen. */
export type DataChange =
  | { readonly kind: 'write'; readonly seq: number; readonly position: number; readonly bytes: Buffer }
  | { readonly kind: 'truncate'; readonly seq: number; readonly size: number };

/** An unsynced change to a directory's entries. */
export type EntryChange =
  /** A create, a mkdir, or the arriving half of a rename from another directory. */
  | { readonly kind: 'link'; readonly seq: number; readonly name: string; readonly node: Node }
  /** A remove, or the leaving half of a rename to another directory. */
  | { readonly kind: 'unlink'; readonly seq: number; readonly name: string; readonly node: Node }
  /** A rename within one directory: after a crash, `to` names either its old file or `node`. */
  | { readonly kind: 'rename'; readonly seq: number; readonly from: string; readonly to: string; readonly node: Node };

/**
 * What became of one unsynced data change in a crash: it reached the disk whole, not at all, or
 * in part. A torn `prefix` keeps the first `keptBytes` of the write; the rest of its range holds
 * what it held before (`'absent'`: if the write extended the file, the file ends at the cut),
 * zeros (`'zeros'`: the file's size covers the whole write) or random bytes (`'garbage'`, drawn
 * from `seed`). A torn `sectors` write keeps the 512-byte pieces (aligned to file offsets) whose
 * flag is true and leaves the others as they were; a gap past the old end reads as zeros.
 * A truncate cannot be torn: any torn fate counts as kept.
 */
export type ChangeFate =
  | 'kept'
  | 'lost'
  | { readonly torn: 'prefix'; readonly keptBytes: number; readonly rest: 'absent' | 'zeros' | 'garbage'; readonly seed?: number }
  | { readonly torn: 'sectors'; readonly sectors: readonly boolean[] };

export const SECTOR_BYTES = 512;

export interface UnsyncedFile {
  /** The file's paths in the post-crash tree (normally one). */
  readonly paths: readonly string[];
  /** Its unsynced changes, oldest first. */
  readonly changes: readonly DataChange[];
}

export interface UnsyncedDirectory {
  readonly path: string;
  /** Its unsynced entry changes, oldest first. */
  readonly changes: readonly EntryChange[];
}

/**
 * Decides which unsynced changes a crash keeps. `entries` is asked first, for every directory
 * with unsynced entries that survives; `data` then for every surviving file with unsynced data.
 * Each returns one fate per change, in order.
 */
export interface CrashChooser {
  entries(dir: UnsyncedDirectory): readonly boolean[];
  data(file: UnsyncedFile): readonly ChangeFate[];
}

/** The worst case: nothing that was not synced survives. */
export const DROP_UNSYNCED: CrashChooser = {
  entries: (dir) => dir.changes.map(() => false),
  data: (file) => file.changes.map(() => 'lost' as const),
};

/**
 * Everything in the page cache survives: what a crash of the process (SIGKILL), rather than of
 * the machine, leaves behind.
 */
export const KEEP_UNSYNCED: CrashChooser = {
  entries: (dir) => dir.changes.map(() => true),
  data: (file) => file.changes.map(() => 'kept' as const),
};

export interface RandomCrashOptions {
  /**
   * Let later changes survive while earlier ones are lost, as the page cache's writeback and a
   * disk's write cache allow. Without it, each file and directory keeps a prefix of its changes
   * (with the first lost write perhaps torn), as a journaling file system in ordered mode would.
   * @default true
   */
  reorder?: boolean;
  /** Let writes be torn. @default true */
  tear?: boolean;
}

/** A chooser that draws a legal post-crash state from `random`. */
export function randomCrash(random: Random, options: RandomCrashOptions = {}): CrashChooser {
  const reorder = options.reorder ?? true;
  const tear = options.tear ?? true;
  return {
    entries(dir) {
      if (reorder) return dir.changes.map(() => random.chance(0.5));
      const kept = random.int(dir.changes.length + 1);
      return dir.changes.map((_, i) => i < kept);
    },
    data(file) {
      if (reorder) {
        return file.changes.map((change) => {
          const roll = random();
          if (tear && change.kind === 'write' && roll < 0.25) return randomTear(random, change);
          return roll < 0.6 ? 'kept' : 'lost';
        });
      }
      const kept = random.int(file.changes.length + 1);
      return file.changes.map((change, i) => {
        if (i < kept) return 'kept';
        if (i === kept && tear && change.kind === 'write' && random.chance(0.7)) return randomTear(random, change);
        return 'lost';
      });
    },
  };
}

/** A random torn fate for a write. */
export function randomTear(random: Random, change: { position: number; bytes: Buffer }): ChangeFate {
  const length = change.bytes.length;
  const style = random.int(4);
  if (style === 3) {
    const pieces = sectorPieces(change.position, length).length;
    return { torn: 'sectors', sectors: Array.from({ length: pieces }, () => random.chance(0.5)) };
  }
  const rest = style === 0 ? 'absent' : style === 1 ? 'zeros' : 'garbage';
  return { torn: 'prefix', keptBytes: random.int(length + 1), rest, seed: random.int(2 ** 32) };
}

/** The [start, end) ranges, relative to a write's start, of its pieces in 512-byte file sectors. */
export function sectorPieces(position: number, length: number): Array<[number, number]> {
  const pieces: Array<[number, number]> = [];
  let at = 0;
  while (at < length) {
    const sectorEnd = (Math.floor((position + at) / SECTOR_BYTES) + 1) * SECTOR_BYTES - position;
    const end = Math.min(length, sectorEnd);
    pieces.push([at, end]);
    at = end;
  }
  return pieces;
}

/** File contents that grow without copying on every append. */
class Bytes {
  buf: Buffer;
  size: number;

  constructor(initial: Buffer = Buffer.alloc(0)) {
    this.buf = Buffer.alloc(Math.max(64, initial.length));
    initial.copy(this.buf);
    this.size = initial.length;
  }

  view(): Buffer {
    return this.buf.subarray(0, this.size);
  }

  copy(): Buffer {
    return Buffer.from(this.view());
  }

  #reserve(size: number): void {
    if (size <= this.buf.length) return;
    const grown = Buffer.alloc(Math.max(size, this.buf.length * 2));
    this.buf.copy(grown, 0, 0, this.size);
    this.buf = grown;
  }

  write(bytes: Uint8Array, position: number): void {
    this.#reserve(position + bytes.length);
    // A write past the end leaves a hole, which reads as zeros. (The gap between size and the
    // buffer's end is zero already: truncate clears what it cuts.)
    this.buf.set(bytes, position);
    this.size = Math.max(this.size, position + bytes.length);
  }

  truncate(size: number): void {
    if (size < this.size) this.buf.fill(0, size, this.size);
    else this.#reserve(size);
    this.size = size;
  }
}

class FileNode {
  readonly kind = 'file';
  readonly current: Bytes;
  durable: Buffer;
  changes: DataChange[] = [];
  /** The inode number stat() reports: one per file, kept through crashes and forks. */
  ino = 0;
  /** The mtime stat() reports: the `seq` of the last write or truncate. */
  mtime = 0;
  /** `mtime` as of the last sync: what a crash that keeps none of the unsynced changes leaves. */
  syncedMtime = 0;

  constructor(content: Buffer = Buffer.alloc(0)) {
    this.current = new Bytes(content);
    this.durable = Buffer.from(content);
  }
}

class DirNode {
  readonly kind = 'dir';
  readonly entries = new Map<string, Node>();
  durable = new Map<string, Node>();
  changes: EntryChange[] = [];
}

export type Node = FileNode | DirNode;

/** The post-crash bytes of a file: its durable bytes, then its surviving changes in order. */
function replay(node: FileNode, fates: readonly ChangeFate[]): Buffer {
  const bytes = new Bytes(node.durable);
  node.changes.forEach((change, i) => {
    const fate = fates[i] ?? 'lost';
    if (fate === 'lost') return;
    if (change.kind === 'truncate') {
      bytes.truncate(change.size);
      return;
    }
    if (fate === 'kept') {
      bytes.write(change.bytes, change.position);
    } else if (fate.torn === 'prefix') {
      const kept = Math.max(0, Math.min(change.bytes.length, Math.floor(fate.keptBytes)));
      bytes.write(change.bytes.subarray(0, kept), change.position);
      const restLength = change.bytes.length - kept;
      if (restLength > 0 && fate.rest === 'zeros') bytes.write(Buffer.alloc(restLength), change.position + kept);
      if (restLength > 0 && fate.rest === 'garbage') {
        bytes.write(seededRandom(fate.seed ?? 0).bytes(restLength), change.position + kept);
      }
    } else {
      sectorPieces(change.position, change.bytes.length).forEach(([start, end], piece) => {
        if (fate.sectors[piece]) bytes.write(change.bytes.subarray(start, end), change.position + start);
      });
    }
  });
  return bytes.copy();
}

// ---------------------------------------------------------------- the medium

export class MemoryMedium implements Medium {
  readonly isFileSystem = false;
  readonly #root: DirNode;
  #seq = 0;
  #lastIno = 0;

  constructor() {
    this.#root = new DirNode();
  }

  // -------------------------------------------------------------- Medium

  async mkdirp(dir: string): Promise<void> {
    let node: DirNode = this.#root;
    for (const name of components(dir)) {
      const next = node.entries.get(name);
      if (next === undefined) {
        const created = new DirNode();
        node.entries.set(name, created);
        node.changes.push({ kind: 'link', seq: ++this.#seq, name, node: created });
        node = created;
      } else if (next.kind === 'file') {
        throw systemError('ENOTDIR', 'mkdir', dir);
      } else {
        node = next;
      }
    }
  }

  async list(dir: string): Promise<string[]> {
    return [...this.#dir(dir, 'scandir').entries.keys()];
  }

  async open(file: string, options: OpenFileOptions = {}): Promise<MediumFile> {
    const [parent, name] = this.#parent(file, 'open');
    let node = parent.entries.get(name);
    if (node?.kind === 'dir') throw systemError('EISDIR', 'open', file);
    if (node !== undefined && options.create && options.exclusive) throw systemError('EEXIST', 'open', file);
    if (node === undefined) {
      if (!options.create) throw systemError('ENOENT', 'open', file);
      node = new FileNode();
      node.ino = ++this.#lastIno;
      parent.entries.set(name, node);
      parent.changes.push({ kind: 'link', seq: ++this.#seq, name, node });
    }
    return new MemoryFile(file, node, options.readOnly === true, () => ++this.#seq);
  }

  async rename(from: string, to: string): Promise<void> {
    const [fromDir, fromName] = this.#parent(from, 'rename');
    const [toDir, toName] = this.#parent(to, 'rename');
    const node = fromDir.entries.get(fromName);
    if (node === undefined) throw systemError('ENOENT', 'rename', from);
    const target = toDir.entries.get(toName);
    if (target === node) return;
    if (target?.kind === 'dir') throw systemError('EISDIR', 'rename', to);
    if (node.kind === 'dir' && target !== undefined) throw systemError('ENOTDIR', 'rename', to);
    fromDir.entries.delete(fromName);
    toDir.entries.set(toName, node);
    if (fromDir === toDir) {
      fromDir.changes.push({ kind: 'rename', seq: ++this.#seq, from: fromName, to: toName, node });
    } else {
      // Across directories a crash may keep either half: the file in both places, or in neither.
      toDir.changes.push({ kind: 'link', seq: ++this.#seq, name: toName, node });
      fromDir.changes.push({ kind: 'unlink', seq: ++this.#seq, name: fromName, node });
    }
  }

  async remove(file: string): Promise<void> {
    const parent = this.#lookup(path.posix.dirname(normalize(file)));
    if (parent?.kind !== 'dir') return;
    const name = path.posix.basename(normalize(file));
    const node = parent.entries.get(name);
    if (node === undefined) return;
    if (node.kind === 'dir') throw systemError('EISDIR', 'rm', file);
    parent.entries.delete(name);
    parent.changes.push({ kind: 'unlink', seq: ++this.#seq, name, node });
  }

  async syncDir(dir: string): Promise<void> {
    const node = this.#dir(dir, 'fsync');
    node.durable = new Map(node.entries);
    node.changes = [];
  }

  /** A second name for a file, as link(2) makes it; a change to either name's file shows in both. */
  async link(existing: string, newPath: string): Promise<void> {
    const node = this.#lookup(normalize(existing));
    if (node === undefined) throw systemError('ENOENT', 'link', existing);
    if (node.kind === 'dir') throw systemError('EPERM', 'link', existing);
    const [parent, name] = this.#parent(newPath, 'link');
    if (parent.entries.has(name)) throw systemError('EEXIST', 'link', newPath);
    parent.entries.set(name, node);
    parent.changes.push({ kind: 'link', seq: ++this.#seq, name, node });
  }

  /** The file's identity (one device, an inode number per file), size and mtime (a change counter). */
  async stat(file: string): Promise<FileStat> {
    const node = this.#file(file, 'stat');
    return { dev: '1', ino: String(node.ino), size: node.current.size, mtimeNs: String(node.mtime) };
  }

  // -------------------------------------------------------------- crashes

  /**
   * The disk as a power loss at this moment could leave it, as a new medium whose every byte and
   * entry is durable. This medium is not changed: the harness takes many crash states from one run.
   */
  crash(chooser: CrashChooser = DROP_UNSYNCED): MemoryMedium {
    const after = new MemoryMedium();
    after.#seq = this.#seq;
    after.#lastIno = this.#lastIno;
    const files = new Map<FileNode, { copy: FileNode; paths: string[] }>();
    const rebuild = (from: DirNode, to: DirNode, at: string): void => {
      const entries = new Map(from.durable);
      if (from.changes.length > 0) {
        const fates = chooser.entries({ path: at, changes: from.changes });
        from.changes.forEach((change, i) => { if (fates[i]) applyEntryChange(entries, change); });
      }
      for (const [name, node] of [...entries].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
        const where = path.posix.join(at, name);
        if (node.kind === 'dir') {
          const copy = new DirNode();
          rebuild(node, copy, where);
          to.entries.set(name, copy);
        } else {
          let seen = files.get(node);
          if (seen === undefined) files.set(node, (seen = { copy: new FileNode(), paths: [] }));
          seen.paths.push(where);
          to.entries.set(name, seen.copy);
        }
      }
      to.durable = new Map(to.entries);
    };
    rebuild(this.#root, after.#root, '/');
    for (const [node, { copy, paths }] of files) {
      const fates = node.changes.length > 0 ? chooser.data({ paths, changes: node.changes }) : [];
      const content = replay(node, fates);
      copy.current.write(content, 0);
      copy.durable = content;
      copy.ino = node.ino;
      // The mtime of the newest change that survived, in whole or in part; else the synced one.
      let mtime = node.syncedMtime;
      node.changes.forEach((change, i) => { if ((fates[i] ?? 'lost') !== 'lost') mtime = Math.max(mtime, change.seq); });
      copy.mtime = copy.syncedMtime = mtime;
    }
    return after;
  }

  /**
   * A copy of this medium as it is now, unsynced changes still unsynced: what the next process
   * finds after this one is killed (the kernel and its page cache live on). A power loss later
   * (`crash()` of the copy) can still take what the killed process never synced.
   */
  fork(): MemoryMedium {
    const copy = new MemoryMedium();
    copy.#seq = this.#seq;
    copy.#lastIno = this.#lastIno;
    const copies = new Map<Node, Node>();
    const copyOf = (node: Node): Node => {
      let done = copies.get(node);
      if (done !== undefined) return done;
      if (node.kind === 'file') {
        const file = new FileNode(node.durable);
        file.current.truncate(0);
        file.current.write(node.current.view(), 0);
        file.changes = [...node.changes];
        file.ino = node.ino;
        file.mtime = node.mtime;
        file.syncedMtime = node.syncedMtime;
        done = file;
        copies.set(node, done);
      } else {
        const dir = node === this.#root ? copy.#root : new DirNode();
        copies.set(node, dir);
        for (const [name, child] of node.entries) dir.entries.set(name, copyOf(child));
        for (const [name, child] of node.durable) dir.durable.set(name, copyOf(child));
        dir.changes = node.changes.map((change) => ({ ...change, node: copyOf(change.node) }));
        done = dir;
      }
      return done;
    };
    copyOf(this.#root);
    return copy;
  }

  /** The newest unsynced write still in the page cache of a file that has a name, if any. */
  lastUnsyncedWrite(): { path: string; seq: number; position: number; length: number } | undefined {
    let last: { path: string; seq: number; position: number; length: number } | undefined;
    this.#walk((file, node) => {
      for (const change of node.changes) {
        if (change.kind === 'write' && (last === undefined || change.seq > last.seq)) {
          last = { path: file, seq: change.seq, position: change.position, length: change.bytes.length };
        }
      }
    });
    return last;
  }

  /** How much is not yet durable: data changes and entry changes still pending. */
  unsynced(): { files: number; dataChanges: number; entryChanges: number } {
    let files = 0;
    let dataChanges = 0;
    let entryChanges = 0;
    const seen = new Set<Node>();
    const visit = (dir: DirNode): void => {
      entryChanges += dir.changes.length;
      for (const node of dir.entries.values()) {
        if (seen.has(node)) continue;
        seen.add(node);
        if (node.kind === 'dir') visit(node);
        else if (node.changes.length > 0) { files++; dataChanges += node.changes.length; }
      }
    };
    visit(this.#root);
    return { files, dataChanges, entryChanges };
  }

  // -------------------------------------------------------------- helpers for tests and tools

  /** The current bytes of a file (what a read sees, not necessarily durable). */
  readFile(file: string): Buffer {
    return this.#file(file, 'open').current.copy();
  }

  /** Whether `file` names a file or directory now. */
  exists(file: string): boolean {
    return this.#lookup(normalize(file)) !== undefined;
  }

  /** Every file's path, sorted. */
  files(): string[] {
    const out: string[] = [];
    this.#walk((file) => out.push(file));
    return out.sort();
  }

  /**
   * Changes one byte of a file in place, in the page cache and on the disk alike, as bit rot or
   * a misdirected write would: not a write through the file, so no change is recorded.
   */
  corrupt(file: string, offset: number, mutate: (byte: number) => number): void {
    const node = this.#file(file, 'open');
    if (!Number.isInteger(offset) || offset < 0 || offset >= node.current.size) {
      throw new RangeError(`offset ${offset} is outside ${file} (${node.current.size} bytes)`);
    }
    node.current.buf[offset] = mutate(node.current.buf[offset]) & 0xff;
    if (offset < node.durable.length) node.durable[offset] = mutate(node.durable[offset]) & 0xff;
  }

  #walk(visit: (file: string, node: FileNode) => void): void {
    const seen = new Set<Node>();
    const recurse = (dir: DirNode, at: string): void => {
      for (const [name, node] of dir.entries) {
        const where = path.posix.join(at, name);
        if (node.kind === 'dir') recurse(node, where);
        else if (!seen.has(node)) { seen.add(node); visit(where, node); }
      }
    };
    recurse(this.#root, '/');
  }

  #lookup(normalized: string): Node | undefined {
    let node: Node = this.#root;
    for (const name of components(normalized)) {
      if (node.kind !== 'dir') return undefined;
      const next: Node | undefined = node.entries.get(name);
      if (next === undefined) return undefined;
      node = next;
    }
    return node;
  }

  #dir(dir: string, syscall: string): DirNode {
    const node = this.#lookup(normalize(dir));
    if (node === undefined) throw systemError('ENOENT', syscall, dir);
    if (node.kind !== 'dir') throw systemError('ENOTDIR', syscall, dir);
    return node;
  }

  #file(file: string, syscall: string): FileNode {
    const node = this.#lookup(normalize(file));
    if (node === undefined) throw systemError('ENOENT', syscall, file);
    if (node.kind !== 'file') throw systemError('EISDIR', syscall, file);
    return node;
  }

  /** The directory that holds `file`, and the file's name in it. */
  #parent(file: string, syscall: string): [DirNode, string] {
    const normalized = normalize(file);
    const name = path.posix.basename(normalized);
    if (name === '') throw systemError('EISDIR', syscall, file);
    const parent = this.#lookup(path.posix.dirname(normalized));
    if (parent === undefined) throw systemError('ENOENT', syscall, file);
    if (parent.kind !== 'dir') throw systemError('ENOTDIR', syscall, file);
    return [parent, name];
  }
}

function applyEntryChange(entries: Map<string, Node>, change: EntryChange): void {
  if (change.kind === 'link') {
    entries.set(change.name, change.node);
  } else if (change.kind === 'unlink') {
    if (entries.get(change.name) === change.node) entries.delete(change.name);
  } else {
    entries.set(change.to, change.node);
    if (entries.get(change.from) === change.node) entries.delete(change.from);
  }
}

function normalize(file: string): string {
  return path.posix.resolve('/', file);
}

function components(file: string): string[] {
  return normalize(file).split('/').filter((part) => part.length > 0);
}

/**
 * What a failed fdatasync may do to a file on Linux (docs/durability.md, assumption 5; PostgreSQL's
 * "fsyncgate", 2018): the kernel writes back what it can, reports the error, and marks the rest of
 * the file's dirty pages clean, so they never reach the disk and are gone once evicted. This
 * applies that now to a MemoryMedium file's unsynced changes: each meets its fate from `chooser`
 * (kept whole, lost, or torn), the survivors become durable, and the page cache shows what the
 * disk then holds (the pages evicted at once, the one legal outcome a test can tell apart from
 * the error never having happened). A later sync() cannot bring a lost change back. Directory
 * entries are not touched. `file` must be a handle from a MemoryMedium.
 */
export function writebackError(file: MediumFile, chooser: Pick<CrashChooser, 'data'>): void {
  if (!(file instanceof MemoryFile)) throw new TypeError('a writeback error needs a file of a MemoryMedium');
  file.writebackError(chooser);
}

class MemoryFile implements MediumFile {
  #closed = false;

  constructor(readonly path: string, private readonly node: FileNode, private readonly readOnly: boolean,
              private readonly nextSeq: () => number) {}

  #check(syscall: string, writing: boolean): void {
    if (this.#closed || (writing && this.readOnly)) throw systemError('EBADF', syscall);
  }

  readSync(buf: Uint8Array, offset: number, length: number, position: number): number {
    this.#check('read', false);
    const current = this.node.current;
    const n = Math.max(0, Math.min(length, current.size - position));
    if (n > 0) buf.set(current.buf.subarray(position, position + n), offset);
    return n;
  }

  async write(chunks: readonly Uint8Array[], position: number): Promise<void> {
    this.#check('write', true);
    const bytes = Buffer.concat(chunks);
    this.node.current.write(bytes, position);
    const seq = this.nextSeq();
    this.node.changes.push({ kind: 'write', seq, position, bytes });
    this.node.mtime = seq;
  }

  async sync(): Promise<void> {
    this.#check('fdatasync', false);
    this.node.durable = this.node.current.copy();
    this.node.changes = [];
    this.node.syncedMtime = this.node.mtime;
  }

  async truncate(size: number): Promise<void> {
    this.#check('ftruncate', true);
    this.node.current.truncate(size);
    const seq = this.nextSeq();
    this.node.changes.push({ kind: 'truncate', seq, size });
    this.node.mtime = seq;
  }

  sizeSync(): number {
    this.#check('fstat', false);
    return this.node.current.size;
  }

  /** See the exported writebackError(). */
  writebackError(chooser: Pick<CrashChooser, 'data'>): void {
    const node = this.node;
    if (node.changes.length === 0) return;
    const content = replay(node, chooser.data({ paths: [this.path], changes: node.changes }));
    node.current.truncate(0);
    node.current.write(content, 0);
    node.durable = content;
    node.changes = [];
  }

  async close(): Promise<void> {
    this.#check('close', false);
    this.#closed = true;
  }
}
