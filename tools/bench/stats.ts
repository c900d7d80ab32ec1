/** Order statistics over samples. Pure functions; no I/O. */

/** Sorts a copy of the samples ascending. */
export function sortedCopy(samples: ArrayLike<number>): Float64Array {
  return Float64Array.from(samples).sort();
}

/**
 * The nearest-rank percentile `p` (0..100) of ascending `sorted` samples: the smallest sample that
 * at least p% of the samples are less than or equal to. NaN for no samples.
 */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/** The median (the mean of the middle two for an even count). NaN for no samples. */
export function median(samples: ArrayLike<number>): number {
  const sorted = sortedCopy(samples);
  const n = sorted.length;
  if (n === 0) return NaN;
  return n % 2 === 1 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

export interface Spread {
  median: number;
  min: number;
  max: number;
}

/** Median, minimum and maximum of the samples (NaN each for no samples). */
export function spread(samples: ArrayLike<number>): Spread {
  const sorted = sortedCopy(samples);
  return {
    median: median(sorted),
    min: sorted.length ? sorted[0] : NaN,
    max: sorted.length ? sorted[sorted.length - 1] : NaN,
  };
}
