/**
 * A bounded run of the crash harness, so `npm test` guards it: power mode (every crash boundary
 * of a scripted workload, ALICE-style) and kill mode (SIGKILL of a workload process), each sync
 * mode in both. `npm run crashtest -- --minutes N` is the long soak.
 */
import { expect } from 'chai';
import { HarnessResult, SYNC_MODES, report, runHarness } from '../tools/crash/main';

function verdict(result: HarnessResult, mode: string): string {
  return report(result, mode).join('\n');
}

describe('the crash harness (bounded run)', function () {
  this.timeout(120_000);

  it('power mode: every crash boundary of a workload in each sync mode recovers to an acknowledged state', async () => {
    const result = await runHarness({ mode: 'power', runs: SYNC_MODES.length, ops: 90, seed: 20_241_126 });
    const { figures } = result;
    expect(figures.failed, verdict(result, 'power')).to.equal(false);
    expect(figures.runs).to.equal(3);
    expect(figures.boundaries).to.be.greaterThan(100);
    expect(figures.crashPoints).to.be.greaterThan(figures.boundaries);
    expect(figures.nestedCrashes, 'some recoveries were crashed too').to.be.greaterThan(0);
    expect(figures.tornTailsCut, 'some crashes tore a write').to.be.greaterThan(0);
    expect(figures.opsVerified).to.be.greaterThan(0);
    expect(figures.opsVerified).to.be.at.most(figures.opsAcknowledged);
  });

  it('kill mode: a workload process SIGKILLed in each sync mode loses nothing acknowledged', async () => {
    const result = await runHarness({ mode: 'kill', runs: 2 * SYNC_MODES.length, seed: 7, maxKillDelayMs: 600 });
    const { figures } = result;
    expect(figures.failed, verdict(result, 'kill')).to.equal(false);
    expect(figures.runs).to.equal(6);
    expect(figures.kills + figures.cleanExits).to.equal(6);
    expect(figures.kills).to.be.greaterThan(0);
    expect(figures.crashPoints).to.equal(6);
  });
});
