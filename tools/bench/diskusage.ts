/** Bytes a directory tree takes. */
import * as fs from 'fs';
import * as path from 'path';

export interface DirBytes {
  /** Sum of the files' sizes. */
  apparent: number;
  /** Sum of the blocks the files occupy (st_blocks × 512): what the disk actually gives up. */
  allocated: number;
  files: number;
}

/** Walks `dir` (not following symlinks) and adds up its regular files. */
export function dirBytes(dir: string): DirBytes {
  const total: DirBytes = { apparent: 0, allocated: 0, files: 0 };
  const pending = [dir];
  while (pending.length > 0) {
    const current = pending.pop() as string;
    for (const entry of fs.readdirSync(current, { withFileTypes: true })) {
      const full = path.join(current, entry.name);
      if (entry.isDirectory()) {
        pending.push(full);
      } else if (entry.isFile()) {
        const stat = fs.statSync(full);
        total.apparent += stat.size;
        total.allocated += stat.blocks * 512;
        total.files += 1;
      }
    }
  }
  return total;
}

/** Reads every file under `dir` once, in 1 MiB chunks, so that it is in the page cache. */
export function warmPageCache(dir: string): void {
  const chunk = Buffer.allocUnsafe(1 << 20);
  const pending = [dir];
  while (pending.length > 0) {
    const current = pending.pop() as string;
    for (const entry of fs.readdirSync(current, { withFileTypes: true })) {
      const full = path.join(current, entry.name);
      if (entry.isDirectory()) {
        pending.push(full);
      } else if (entry.isFile()) {
        const fd = fs.openSync(full, 'r');
        try {
          while (fs.readSync(fd, chunk, 0, chunk.length, null) > 0);
        } finally {
          fs.closeSync(fd);
        }
      }
    }
  }
}
