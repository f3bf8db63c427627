/**
 * Demand forecast per (GPU type, region group, gang size): the larger of the recent peak and an exponentially
 * smoothed level, plus a safety margin, held flat over the horizon. Pluggable: the loop takes any `Forecaster`.
 */
import type { DemandClass } from '../solver/types.ts';
import { type Demand, demandKey } from './demand.ts';
import type { BrokerPolicy } from './policy.ts';

export interface Forecaster {
  /** Records the demand seen now. */
  observe(atMs: number, demand: readonly Demand[], policy: BrokerPolicy): void;
  /**
   * Demand classes for the next `policy.horizonPeriods` periods. Changes nothing: a what-if asks with a policy
   * that is not in force.
   */
  forecast(atMs: number, policy: BrokerPolicy, gpuTypes: readonly string[]): DemandClass[];
}

interface Series {
  readonly gpu: string;
  readonly regionGroup: string;
  readonly gangSize: number;
  samples: { atMs: number; gpus: number }[];
  level: number;
}

export class PeakAndLevelForecaster implements Forecaster {
  private readonly series = new Map<string, Series>();

  observe(atMs: number, demand: readonly Demand[], policy: BrokerPolicy): void {
    const seen = new Set<string>();
    const alpha = policy.forecast.smoothing;
    for (const d of demand) {
      const key = demandKey(d);
      seen.add(key);
      this.sample(key, d, atMs, d.gpus, alpha);
    }
    // Classes with no open lease now still get a zero sample, so their peak and level decay.
    for (const [key, s] of this.series) if (!seen.has(key)) this.sample(key, s, atMs, 0, alpha);
    for (const s of this.series.values()) s.samples = inWindow(s, atMs, policy);
  }

  forecast(atMs: number, policy: BrokerPolicy, gpuTypes: readonly string[]): DemandClass[] {
    const classes: DemandClass[] = [];
    for (const s of this.series.values()) {
      const samples = inWindow(s, atMs, policy);
      const peak = Math.max(0, ...samples.map((p) => p.gpus));
      const level = Math.max(peak, s.level) * (1 + policy.forecast.margin);
      const gpus = Math.ceil(level / s.gangSize - 1e-9) * s.gangSize;
      if (gpus === 0 && samples.every((p) => p.gpus === 0)) continue;
      classes.push({
        gpu: s.gpu,
        regionGroup: s.regionGroup,
        gangSize: s.gangSize,
        gpus: flat(gpus, policy),
      });
    }
    // The warm buffer is held per GPU type and region group even where nothing is leased yet.
    const buffered = gpuTypes.filter((gpu) => (policy.buffer.perGpu[gpu] ?? policy.buffer.default).gpus > 0);
    for (const gpu of buffered)
      for (const regionGroup of policy.warmRegionGroups)
        if (!classes.some((c) => c.gpu === gpu && c.regionGroup === regionGroup))
          classes.push({ gpu, regionGroup, gangSize: 1, gpus: flat(0, policy) });
    return classes.sort((a, b) => key(a).localeCompare(key(b)));
  }

  private sample(key: string, d: Omit<Demand, 'gpus'>, atMs: number, gpus: number, alpha: number): void {
    let s = this.series.get(key);
    if (!s) {
      s = { gpu: d.gpu, regionGroup: d.regionGroup, gangSize: d.gangSize, samples: [], level: gpus };
      this.series.set(key, s);
    }
    s.samples.push({ atMs, gpus });
    s.level = s.level + alpha * (gpus - s.level);
  }
}

/** A series' samples within the policy's window at `atMs`. */
function inWindow(s: Series, atMs: number, policy: BrokerPolicy): Series['samples'] {
  return s.samples.filter((p) => p.atMs > atMs - policy.forecast.windowMs);
}

function flat(gpus: number, policy: BrokerPolicy): number[] {
  return Array.from({ length: policy.horizonPeriods }, () => gpus);
}

function key(c: DemandClass): string {
  return `${c.gpu}|${c.regionGroup}|${String(c.gangSize).padStart(4, '0')}`;
}
