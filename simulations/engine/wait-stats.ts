/** Wait times, ms: appended one at a time into a growable typed array, summarised once at the end. */
import type { WaitStats } from '../results.ts';

/** Points of the empirical CDF kept for the report. */
const CDF_POINTS = 200;

export class WaitRecorder {
  private values = new Float64Array(1024);
  private n = 0;

  add(ms: number): void {
    if (this.n === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.n++] = ms;
  }

  get count(): number {
    return this.n;
  }

  summary(): { stats: WaitStats; cdf: { ms: number; fraction: number }[] } {
    const sorted = this.values.slice(0, this.n).sort();
    const at = (q: number) => (this.n === 0 ? 0 : (sorted[Math.max(0, Math.ceil(q * this.n) - 1)] as number));
    const cdf: { ms: number; fraction: number }[] = [];
    if (this.n > 0)
      for (let k = 1; k <= CDF_POINTS; k++) {
        const fraction = k / CDF_POINTS;
        const ms = at(fraction);
        // Equal waits make one point, at the largest fraction that has them.
        if (cdf.length > 0 && cdf[cdf.length - 1]?.ms === ms) cdf.pop();
        cdf.push({ ms, fraction });
      }
    return { stats: { p50: at(0.5), p95: at(0.95), p99: at(0.99) }, cdf };
  }
}
