/** `logkv check`: verify every record, value and hint file without opening the store. */
import { CheckReport, checkStore } from '../check';
import { ProgressBar } from '../progress';
import { formatBytes } from '../units';
import { Command, Context, EXIT } from './command';
import { json } from './output';
import { requireStoreDir } from './with-store';

export const checkCommand: Command = {
  usage: 'check',
  summary: 'verify every record, value and hint file',
  help: 'Reads every segment and hint file, verifies headers, CRCs and values, and lists each problem\n' +
    'with its file and offset. Changes nothing. Exits 1 if the store is damaged (a torn tail that\n' +
    'open() repairs by itself is reported but is not damage). A store that another process holds\n' +
    'shared is checked live, without its lock, up to where its owner has written.',
  options: {},
  minArgs: 0,
  maxArgs: 0,
  run: runCheck,
};

async function runCheck(ctx: Context): Promise<number> {
  requireStoreDir(ctx.dir);
  const bar = new ProgressBar(ctx.io.stderr, 'checking');
  let report: CheckReport;
  try {
    report = await checkStore(ctx.dir, { onProgress: (done, total) => bar.update(done, total) });
  } finally {
    bar.finish();
  }
  if (ctx.json) {
    await ctx.out.write(`${json(report)}\n`);
  } else {
    for (const p of report.problems) await ctx.out.write(`${p.file}:${p.offset}: ${p.severity}: ${p.problem}\n`);
    const damaged = report.problems.filter((p) => p.severity !== 'notice').length;
    const notices = report.problems.length - damaged;
    const what = `${report.segments} segment(s), ${report.records} records, ${formatBytes(report.bytes)}, ${report.hints} hint file(s)`;
    if (report.live !== undefined) {
      await ctx.out.write(`live: the store is open, shared, in process ${report.live.pid}; ` +
        'checked without its lock, up to where it had written\n');
    }
    await ctx.out.write(report.ok
      ? `ok: checked ${what}${notices > 0 ? `; ${notices} notice(s) of things open() handles by itself` : ''}\n`
      : `damaged: ${damaged} problem(s) in ${what}\n`);
  }
  return report.ok ? EXIT.OK : EXIT.FAILED;
}
