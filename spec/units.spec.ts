/** lib/units.ts: the one rounding of sizes, rates and durations that the CLI and the benchmark print. */
import { expect } from 'chai';
import { formatBytes, formatDuration, formatRate } from '../lib/units';

describe('units', () => {
  it('formats bytes: whole bytes below 1 KiB, then one decimal in binary units', () => {
    const cases: Array<[number, string]> = [
      [0, '0 B'],
      [1, '1 B'],
      [1023, '1023 B'],
      [1023.4, '1023 B'],
      [1023.6, '1.0 KiB'], // rounds to 1024 bytes: a kibibyte, not '1024 B'
      [1024, '1.0 KiB'],
      [1536, '1.5 KiB'],
      [512 * 1024, '512.0 KiB'],
      [1024 ** 2 - 1, '1.0 MiB'], // 1023.999 KiB rounds to 1024.0: the next unit
      [1024 ** 2 - 60, '1023.9 KiB'],
      [256 * 1024 ** 2, '256.0 MiB'],
      [23.5 * 1024 ** 3, '23.5 GiB'],
      [5 * 1024 ** 3, '5.0 GiB'],
      [3 * 1024 ** 4, '3.0 TiB'],
      [2048 * 1024 ** 4, '2048.0 TiB'], // TiB is the largest unit
      [-2048, '-2.0 KiB'],
      [NaN, 'NaN B'],
    ];
    expect(cases.map(([bytes]) => formatBytes(bytes))).to.deep.equal(cases.map(([, text]) => text));
  });

  it('formats rates as bytes per second', () => {
    expect([formatRate(0), formatRate(2048), formatRate(1.5 * 1024 ** 2)]).to.deep.equal(['0 B/s', '2.0 KiB/s', '1.5 MiB/s']);
  });

  it('formats durations: ms below a second, then s, m and s, h and m', () => {
    const cases: Array<[number, string]> = [
      [0, '0 ms'],
      [5, '5 ms'],
      [999.4, '999 ms'],
      [999.6, '1s'],
      [1500, '2s'],
      [59_400, '59s'],
      [59_600, '1m00s'],
      [125_000, '2m05s'],
      [3_599_000, '59m59s'],
      [3_599_600, '1h00m'],
      [7_200_000, '2h00m'],
      [90_061_000, '25h01m'],
    ];
    expect(cases.map(([ms]) => formatDuration(ms))).to.deep.equal(cases.map(([, text]) => text));
  });
});
