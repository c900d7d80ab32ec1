/**
 * The ratio chart of docs/benchmarks.md, drawn by hand as SVG (no charting dependency): one group
 * of horizontal bars per (workload, metric), one bar per peer, on a log scale centred on 1.
 * A bar to the right of 1 means logkv is better by that factor; to the left, worse.
 */
import { findRow, formatRatio, metricKeys, ratioOf, storeColumns } from './format';
import type { BenchResults } from './protocol';

const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#59a14f', '#b07aa1', '#76b7b2', '#edc948'];

/** The chart spans 1/LIMIT to LIMIT; ratios beyond are drawn to the edge and labelled. */
const LIMIT = 100;

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Returns the SVG document, or null when no ratio could be computed (e.g. logkv did not run). */
export function ratioChart(results: BenchResults): string | null {
  const peers = storeColumns(results).filter((store) => store !== 'logkv');
  const groups = metricKeys(results, () => true)
    .map(([workload, metric]) => {
      const logkv = findRow(results, workload, metric, 'logkv');
      return { label: `${workload} · ${metric}`, ratios: peers.map((peer) => ratioOf(logkv, findRow(results, workload, metric, peer))) };
    })
    .filter((group) => group.ratios.some((ratio) => ratio !== null));
  if (groups.length === 0 || peers.length === 0) return null;

  const labelWidth = 250;
  const plotWidth = 520;
  const valueWidth = 80;
  const barHeight = 9;
  const groupGap = 10;
  const top = 58;
  const groupHeight = peers.length * barHeight + groupGap;
  const width = labelWidth + plotWidth + valueWidth + 10;
  const height = top + groups.length * groupHeight + 30;
  const decades = Math.log10(LIMIT);
  const x = (ratio: number): number => {
    const clamped = Math.min(LIMIT, Math.max(1 / LIMIT, ratio));
    return labelWidth + ((Math.log10(clamped) + decades) / (2 * decades)) * plotWidth;
  };
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="10" y="18" font-size="13" font-weight="bold">logkv / peer, log scale: right of 1 means logkv is better (N = ${results.options.n.toLocaleString('en-US')})</text>`);

  // Legend.
  let legendX = 10;
  peers.forEach((peer, i) => {
    out.push(`<rect x="${legendX}" y="28" width="10" height="10" fill="${PALETTE[i % PALETTE.length]}"/>`);
    out.push(`<text x="${legendX + 14}" y="37">${escapeXml(peer)}</text>`);
    legendX += 24 + peer.length * 6.5;
  });

  // Grid: one line per decade, the line at 1 drawn stronger.
  const bottom = top + groups.length * groupHeight;
  for (let exponent = -decades; exponent <= decades; exponent++) {
    const ratio = 10 ** exponent;
    const gx = x(ratio).toFixed(1);
    const strong = exponent === 0;
    out.push(`<line x1="${gx}" y1="${top - 6}" x2="${gx}" y2="${bottom}" stroke="${strong ? '#333' : '#ddd'}" stroke-width="${strong ? 1.5 : 1}"/>`);
    out.push(`<text x="${gx}" y="${bottom + 14}" text-anchor="middle" fill="#555">${ratio}×</text>`);
  }

  groups.forEach((group, g) => {
    const groupTop = top + g * groupHeight;
    out.push(`<text x="${labelWidth - 8}" y="${groupTop + (peers.length * barHeight) / 2 + 4}" text-anchor="end">${escapeXml(group.label)}</text>`);
    group.ratios.forEach((ratio, i) => {
      if (ratio === null) return;
      const y = groupTop + i * barHeight;
      const x0 = x(1);
      const x1 = x(ratio);
      const left = Math.min(x0, x1);
      const barWidth = Math.max(1, Math.abs(x1 - x0));
      const title = `${peers[i]}: ${formatRatio(ratio)}`;
      out.push(`<rect x="${left.toFixed(1)}" y="${y}" width="${barWidth.toFixed(1)}" height="${barHeight - 1}" fill="${PALETTE[i % PALETTE.length]}"><title>${escapeXml(title)}</title></rect>`);
      const clipped = ratio > LIMIT || ratio < 1 / LIMIT ? '…' : '';
      out.push(`<text x="${labelWidth + plotWidth + 6}" y="${y + barHeight - 1}" font-size="9" fill="${PALETTE[i % PALETTE.length]}">${escapeXml(formatRatio(ratio) + clipped)}</text>`);
    });
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
