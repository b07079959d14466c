import type { HistogramSummary } from './types.js';

/** Sub-buckets per power of two: values land in buckets at most 1/8 (12.5%) wide. */
const SUB_BUCKETS = 8;
/** Octaves covered above 1: up to 2^40 (about 12 days in microseconds). */
const OCTAVES = 41;

/**
 * A fixed-size histogram with logarithmic buckets (HdrHistogram-like, 8 buckets per
 * power of two). Recording is O(1) and allocation-free; percentiles are accurate to the
 * bucket width and clamped to the exact min/max seen.
 */
export class LogHistogram {
  readonly #counts = new Float64Array(SUB_BUCKETS * (OCTAVES + 1));
  #count = 0;
  #sum = 0;
  #min = Infinity;
  #max = -Infinity;

  record(value: number): void {
    if (!Number.isFinite(value)) return;
    const v = value < 0 ? 0 : value;
    this.#counts[bucketOf(v)]! += 1;
    this.#count += 1;
    this.#sum += v;
    if (v < this.#min) this.#min = v;
    if (v > this.#max) this.#max = v;
  }

  get count(): number {
    return this.#count;
  }

  /** The value below which `p` percent of the recorded values fall (upper bucket bound). */
  percentile(p: number): number {
    if (this.#count === 0) return 0;
    const rank = Math.max(1, Math.ceil((p / 100) * this.#count));
    let seen = 0;
    for (let i = 0; i < this.#counts.length; i++) {
      seen += this.#counts[i]!;
      if (seen < rank) continue;
      // The last bucket also holds everything beyond the covered range.
      if (i === this.#counts.length - 1) return this.#max;
      return Math.min(this.#max, Math.max(this.#min, upperBoundOf(i)));
    }
    return this.#max;
  }

  summary(): HistogramSummary {
    if (this.#count === 0) return { count: 0, min: 0, max: 0, mean: 0, p50: 0, p90: 0, p99: 0 };
    return {
      count: this.#count,
      min: this.#min,
      max: this.#max,
      mean: this.#sum / this.#count,
      p50: this.percentile(50),
      p90: this.percentile(90),
      p99: this.percentile(99),
    };
  }

  reset(): void {
    this.#counts.fill(0);
    this.#count = 0;
    this.#sum = 0;
    this.#min = Infinity;
    this.#max = -Infinity;
  }
}

/** 2^k for every octave: `2 ** k` and Math.log2 are libm calls, a visible cost at 200k records a second. */
const OCTAVE_BASES = Float64Array.from({ length: OCTAVES }, (_, octave) => 2 ** octave);

/** Bucket 0..7 hold [0, 1) linearly; then 8 buckets per octave [2^k, 2^(k+1)). */
export function bucketOf(v: number): number {
  if (v < 1) return Math.floor(v * SUB_BUCKETS);
  // clz32 truncates to an integer, which keeps floor(log2(v)), and is exact below 2^32.
  const octave = v < 2 ** 32 ? 31 - Math.clz32(v) : Math.min(OCTAVES - 1, Math.floor(Math.log2(v)));
  const base = OCTAVE_BASES[octave]!;
  const sub = Math.min(SUB_BUCKETS - 1, Math.floor(((v - base) / base) * SUB_BUCKETS));
  return SUB_BUCKETS * (octave + 1) + sub;
}

function upperBoundOf(bucket: number): number {
  if (bucket < SUB_BUCKETS) return (bucket + 1) / SUB_BUCKETS;
  const octave = Math.floor(bucket / SUB_BUCKETS) - 1;
  const sub = bucket % SUB_BUCKETS;
  const base = 2 ** octave;
  return base + ((sub + 1) * base) / SUB_BUCKETS;
}
