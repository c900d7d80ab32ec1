/**
 * A one-line progress bar for the command line: bytes done of total, rate and time left.
 *
 * It draws only on a terminal (the stream's isTTY), so piped or logged output never fills with
 * carriage returns, and at most every `intervalMs`, so a fast loop is not slowed by drawing.
 * Without a known total it shows bytes and rate only. Numbers are rounded by lib/units.ts.
 */
import { formatBytes, formatDuration, formatRate } from './units';

export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(text: string): unknown;
}

export class ProgressBar {
  readonly #stream: ProgressStream;
  readonly #label: string;
  readonly #intervalMs: number;
  readonly #now: () => number;
  readonly #startedAt: number;
  #lastDrawAt = -Infinity;
  #drawn = false;

  constructor(stream: ProgressStream, label: string, options: { intervalMs?: number; now?: () => number } = {}) {
    this.#stream = stream;
    this.#label = label;
    this.#intervalMs = options.intervalMs ?? 100;
    this.#now = options.now ?? Date.now;
    this.#startedAt = this.#now();
  }

  /** Whether this bar draws at all. */
  get enabled(): boolean {
    return this.#stream.isTTY === true;
  }

  /** Redraws if enough time has passed; `total` may be undefined when unknown. */
  update(done: number, total: number | undefined): void {
    if (!this.enabled) return;
    const now = this.#now();
    if (now - this.#lastDrawAt < this.#intervalMs) return;
    this.#lastDrawAt = now;
    this.#stream.write(`\r${render(this.#label, done, total, now - this.#startedAt, this.#stream.columns ?? 80)}\x1b[K`);
    this.#drawn = true;
  }

  /** Clears the line, so what is printed next starts at column 0. */
  finish(): void {
    if (this.#drawn) this.#stream.write('\r\x1b[K');
    this.#drawn = false;
  }
}

/** The text of the bar: `label [#####-----]  45%  12.3 MiB / 27.0 MiB  5.2 MiB/s  ETA 3s`. */
export function render(label: string, done: number, total: number | undefined, elapsedMs: number, columns: number): string {
  const rate = elapsedMs > 0 ? (done / elapsedMs) * 1000 : 0;
  const rateText = formatRate(rate);
  if (total === undefined || total <= 0) return `${label}  ${formatBytes(done)}  ${rateText}`;
  const fraction = Math.min(1, Math.max(0, done / total));
  const eta = rate > 0 && done < total ? `ETA ${formatDuration(((total - done) / rate) * 1000)}` : '';
  const tail = `${String(Math.floor(fraction * 100)).padStart(3)}%  ${formatBytes(done)} / ${formatBytes(total)}  ${rateText}  ${eta}`;
  const width = Math.max(10, Math.min(40, columns - label.length - tail.length - 5));
  const filled = Math.round(fraction * width);
  return `${label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${tail}`.trimEnd();
}
