/**
 * Sizes, rates and durations as people read them. The command line (its output and its progress
 * bar) and the benchmark's report both print through these, so one number never prints two ways.
 * No I/O.
 */

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const;

/**
 * Bytes in binary units: whole bytes below 1 KiB, else one decimal in the largest unit that keeps
 * the rounded number below 1024: 0 → '0 B', 1536 → '1.5 KiB', 5 GiB → '5.0 GiB', 1048575 →
 * '1.0 MiB' (never '1024.0 KiB'). The decimal is kept even when it is 0, so a progress bar that
 * redraws does not jump in width. A negative size keeps its sign.
 */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return `${bytes} B`;
  if (bytes < 0) return `-${formatBytes(-bytes)}`;
  if (Math.round(bytes) < 1024) return `${Math.round(bytes)} B`;
  let value = bytes / 1024;
  let unit = 1;
  while (unit < BYTE_UNITS.length - 1 && Number(value.toFixed(1)) >= 1024) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${BYTE_UNITS[unit]}`;
}

/** Bytes per second, rounded as formatBytes: 2048 → '2.0 KiB/s'. */
export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`;
}

/**
 * A duration in the coarsest form that still says enough: '5 ms' below a second, then whole
 * seconds ('2s'), minutes and seconds ('2m05s'), hours and minutes ('2h00m'). Each step rounds
 * first, so 999.6 ms is '1s', not '1000 ms'.
 */
export function formatDuration(ms: number): string {
  if (Math.round(ms) < 1000) return `${Math.round(ms)} ms`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m${String(seconds % 60).padStart(2, '0')}s`;
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`;
}
