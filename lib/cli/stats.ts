/** `logkv stats`: keys, segments, live, dead and disk bytes, compaction, and what recovery repaired. */
import * as fs from 'fs';
import * as path from 'path';
import { parseHintName } from '../hint';
import { formatBytes } from '../units';
import { Command, Context, EXIT } from './command';
import { json } from './output';
import { requireStoreDir, withStore } from './with-store';

export const statsCommand: Command = {
  usage: 'stats',
  summary: 'keys, segments, live/dead/disk bytes, compaction',
  help: 'Opening the store runs recovery; if it cut a torn tail, stats says so.',
  options: {},
  minArgs: 0,
  maxArgs: 0,
  run: runStats,
};

interface StatsOutput {
  dir: string;
  keys: number;
  segments: number;
  liveBytes: number;
  deadBytes: number;
  diskBytes: number;
  /** Segments written by compaction (each has a hint file). */
  compactedSegments: number;
  /** When the newest compacted segment was written (ms since the epoch), or null if none. */
  lastCompactionAt: number | null;
  /** What this open's recovery repaired, if anything. */
  recovery: unknown;
}

async function runStats(ctx: Context): Promise<number> {
  requireStoreDir(ctx.dir);
  const stats = await withStore(ctx.dir, async (store) => {
    const s = store.stats();
    const hints = compactionTrace(ctx.dir);
    const result: StatsOutput = {
      dir: ctx.dir,
      keys: s.keys,
      segments: s.segments,
      liveBytes: s.liveBytes,
      deadBytes: s.deadBytes,
      diskBytes: s.diskBytes,
      compactedSegments: hints.count,
      // A compaction in this process would be in stats(); a CLI process has run none, so the files tell.
      lastCompactionAt: s.lastCompaction?.finishedAt ?? hints.newestAt,
      recovery: store.recovery,
    };
    return result;
  });
  if (ctx.json) {
    await ctx.out.write(`${json(stats)}\n`);
    return EXIT.OK;
  }
  const bytes = (n: number): string => `${formatBytes(n)} (${n} bytes)`;
  const ratio = stats.diskBytes > 0 ? ` (${Math.round((stats.deadBytes / stats.diskBytes) * 100)}% of disk)` : '';
  const lines = [
    ['store', stats.dir],
    ['keys', String(stats.keys)],
    ['segments', String(stats.segments)],
    ['live bytes', bytes(stats.liveBytes)],
    ['dead bytes', bytes(stats.deadBytes) + ratio],
    ['disk bytes', bytes(stats.diskBytes)],
    ['compaction', stats.compactedSegments === 0 ? 'no compacted segments'
      : `${stats.compactedSegments} compacted segment(s), newest written ${new Date(stats.lastCompactionAt!).toISOString()}`],
  ];
  const recovery = stats.recovery as { truncated?: { file: string; offset: number; bytes: number; reason: string } };
  if (recovery.truncated !== undefined) {
    const t = recovery.truncated;
    lines.push(['recovery', `cut a torn tail of ${t.bytes} bytes (${t.reason}) at ${t.file}:${t.offset}`]);
  }
  await ctx.out.write(lines.map(([name, value]) => `${name.padEnd(11)} ${value}\n`).join(''));
  return EXIT.OK;
}

/** Hint files are written only by compaction, one per output segment: their count and newest time. */
function compactionTrace(dir: string): { count: number; newestAt: number | null } {
  let count = 0;
  let newestAt: number | null = null;
  for (const name of fs.readdirSync(dir)) {
    if (parseHintName(name) === undefined) continue;
    count++;
    const mtime = fs.statSync(path.join(dir, name)).mtimeMs;
    newestAt = newestAt === null ? Math.round(mtime) : Math.max(newestAt, Math.round(mtime));
  }
  return { count, newestAt };
}
