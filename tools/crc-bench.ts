/**
 * What a record's CRC costs with each implementation, by length: Node's zlib.crc32 of a
 * subarray (what format.ts used before crc32Range), the crc-32 package of a subarray, and
 * crc32Short (crc.ts: slice-by-8 in JavaScript over a range, no subarray). The ranges lie at
 * random offsets of a 1 MiB buffer, as records lie in the block cache's slabs. Prints a table of
 * CPU ns per CRC, the median of `runs` runs; crc.ts's CRC_RANGE_NATIVE_FROM is where zlib wins.
 *
 *   npx ts-node --transpile-only tools/crc-bench.ts [--runs 5] [--count 1000000]
 */
import * as zlib from 'zlib';
import CRC32 = require('crc-32');
import { CRC_RANGE_NATIVE_FROM, crc32Js, crc32Short } from '../lib/crc';

function arg(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
}

const runs = arg('runs', 5);
const count = arg('count', 1_000_000);
const native = (zlib as unknown as { crc32?: (data: Uint8Array) => number }).crc32;
const slab = Buffer.alloc(1 << 20);
for (let i = 0; i < slab.length; i++) slab[i] = (i * 7919) & 255;

type Way = (start: number, end: number) => number;
const ways: Array<[string, Way | undefined]> = [
  ['zlib.crc32(subarray)', native === undefined ? undefined : (start, end) => native(slab.subarray(start, end))],
  ['crc-32 (subarray)', (start, end) => CRC32.buf(slab.subarray(start, end)) >>> 0],
  ['crc32Short (range)', (start, end) => crc32Short(slab, start, end)],
];

function nsPer(way: Way, length: number, offsets: Int32Array): number {
  let sink = 0;
  const before = process.cpuUsage();
  for (let i = 0; i < count; i++) {
    const start = offsets[i & 4095];
    sink ^= way(start, start + length);
  }
  const used = process.cpuUsage(before);
  if (sink === 0.5) console.log(sink); // keeps the loop's result alive
  return ((used.user + used.system) * 1000) / count;
}

const rows: string[] = ['| bytes | ' + ways.map(([name]) => name).join(' | ') + ' |', '| ---: |' + ' ---: |'.repeat(ways.length)];
for (const length of [32, 64, 128, 145, 192, 256, 384, 512, 1024, 4096]) {
  const offsets = new Int32Array(4096);
  for (let i = 0; i < offsets.length; i++) offsets[i] = Math.floor(Math.random() * (slab.length - length));
  for (let i = 0; i < 100; i++) {
    const start = offsets[i];
    const expected = crc32Js(slab.subarray(start, start + length));
    for (const [name, way] of ways) if (way !== undefined && way(start, start + length) !== expected) throw new Error(`${name} differs at ${length} bytes`);
  }
  const cells = ways.map(([, way]) => {
    if (way === undefined) return 'n/a';
    const samples = Array.from({ length: runs }, () => nsPer(way, length, offsets)).sort((a, b) => a - b);
    return samples[samples.length >> 1].toFixed(0);
  });
  rows.push(`| ${length} | ${cells.join(' | ')} |`);
}
console.log(`CPU ns per CRC, median of ${runs} runs of ${count} (node ${process.version}); crc32Range switches to zlib at ${CRC_RANGE_NATIVE_FROM} bytes`);
console.log(rows.join('\n'));
