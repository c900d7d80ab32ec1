/** lib/progress.ts: the command line's progress bar draws only on a terminal. */
import { expect } from 'chai';
import { ProgressBar, render } from '../lib/progress';

describe('progress bar', () => {
  it('writes nothing when the stream is not a terminal', () => {
    const written: string[] = [];
    const bar = new ProgressBar({ isTTY: false, write: (text: string) => written.push(text) }, 'x');
    bar.update(50, 100);
    bar.finish();
    expect(bar.enabled).to.equal(false);
    expect(written).to.deep.equal([]);
  });

  it('on a terminal, redraws one line at most every intervalMs and clears it at the end', () => {
    const written: string[] = [];
    let now = 0;
    const bar = new ProgressBar({ isTTY: true, columns: 100, write: (text: string) => written.push(text) }, 'loading',
      { intervalMs: 100, now: () => now });
    now = 1000;
    bar.update(512 * 1024, 1024 * 1024);
    now = 1050;
    bar.update(600 * 1024, 1024 * 1024); // too soon: skipped
    now = 2000;
    bar.update(1024 * 1024, 1024 * 1024);
    bar.finish();
    expect(written).to.have.length(3);
    expect(written[0]).to.match(/^\rloading \[#+-+\]  50%  512\.0 KiB \/ 1\.0 MiB  512\.0 KiB\/s  ETA 1s\x1b\[K$/);
    expect(written[1]).to.match(/^\rloading \[#+\] 100%  1\.0 MiB \/ 1\.0 MiB/);
    expect(written[2]).to.equal('\r\x1b[K');
  });

  it('without a total shows bytes and rate', () => {
    expect(render('x', 2048, undefined, 1000, 80)).to.equal('x  2.0 KiB  2.0 KiB/s');
  });
});
