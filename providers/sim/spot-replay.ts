/**
 * Maps the real spot traces onto simulated spot pools (one pool = a spot offering in one zone) and answers, for
 * any time, how much of the pool is obtainable and when its next preemption comes.
 *
 * Mapping, per pool and per kind (availability, preemption), unless a scenario rule names the trace:
 * - candidates are scored: measured on the same GPU in the same zone of the same vendor (8), the same vendor
 *   (4), the same GPU model (2), the same size class (1 GPU vs several; CPU traces count as 1); the best-scored ones are kept and
 *   one is picked by a generator seeded with (seed, kind, offering, zone). Azure has no measurements of its own
 *   and replays AWS's; GCP replays the GCP preemption traces.
 * - the clouds' start falls at a seeded point of the trace (`shiftMs`), and the trace repeats when it runs out
 *   (the seam between its end and its start is not a drop).
 *
 * Semantics:
 * - availability: stock = 0 when the trace is 0, otherwise `spotPerZone × value / nodes` (nodes: instances the
 *   measurement probed), at least 1.
 * - preemption: when the trace drops from a to a − k alive, k/a of the pool's running, not yet warned instances are
 *   reclaimed (a running remainder carries over, so the long-run rate is exact and a pool holding exactly what the
 *   trace held loses exactly what it lost).
 * A pool's traces are chosen the first time the pool is looked at and kept; named traces are loaded up front, so a
 * wrong name fails when the clouds are built, not in the middle of a call.
 */
import { ValidationError } from '../../lib/errors.ts';
import { hashString, Random } from '../../lib/random.ts';
import type { Offering } from '../catalog/offering.ts';
import { matches, type SimScenario } from './scenario.ts';
import { bundledSpotTraces, type SpotTrace, type SpotTraceKind, spotTraceByName } from './spot-trace.ts';

export interface ReplayedTrace {
  readonly trace: SpotTrace;
  /** Trace time (ms from its first sample) at the clouds' start. */
  readonly shiftMs: number;
}

export interface SpotPoolTraces {
  readonly availability: ReplayedTrace | undefined;
  readonly preemption: ReplayedTrace | undefined;
}

export interface TraceDrop {
  readonly atMs: number;
  /** Alive before the drop. */
  readonly alive: number;
  readonly lost: number;
}

export class SpotReplay {
  private readonly pools = new Map<string, SpotPoolTraces>();

  constructor(
    private readonly scenario: SimScenario,
    /** Clock time at which the clouds start; trace shifts are relative to it. */
    private readonly startMs: number,
    private readonly traces: readonly SpotTrace[] = bundledSpotTraces(),
  ) {
    for (const [n, rule] of scenario.spot.pools.entries())
      for (const kind of ['availability', 'preemption'] as const) {
        const name = rule[kind];
        if (typeof name !== 'string') continue;
        let trace: SpotTrace;
        try {
          trace = spotTraceByName(name);
        } catch (error) {
          throw new ValidationError(`scenario.spot.pools.${n}.${kind}`, (error as Error).message, {
            cause: error,
          });
        }
        this.named.set(name, trace);
      }
  }

  private readonly named = new Map<string, SpotTrace>();

  /** The traces replayed for a spot offering in a zone (both undefined when replay is off). */
  poolTraces(offering: Offering, zone: string): SpotPoolTraces {
    const key = `${offering.id}@${zone}`;
    let pool = this.pools.get(key);
    if (!pool) {
      pool = this.resolve(offering, zone);
      this.pools.set(key, pool);
    }
    return pool;
  }

  /** Trace value at a clock time, and the trace's maximum. */
  valueAt(replayed: ReplayedTrace, atMs: number): number {
    const { trace } = replayed;
    return trace.data[this.tickAt(replayed, atMs) % trace.data.length] as number;
  }

  /** The first drop strictly after `afterMs`, or undefined when the trace never drops. */
  nextDrop(replayed: ReplayedTrace, afterMs: number): TraceDrop | undefined {
    const { trace } = replayed;
    const drops = trace.dropIndices;
    if (drops.length === 0) return undefined;
    const n = trace.data.length;
    const next = this.tickAt(replayed, afterMs) + 1;
    const cycle = Math.floor(next / n);
    const within = next - cycle * n;
    const position = lowerBound(drops, within);
    const index = position < drops.length ? (drops[position] as number) : (drops[0] as number);
    const absolute = position < drops.length ? cycle * n + index : (cycle + 1) * n + index;
    const alive = trace.data[index - 1] as number;
    return {
      atMs: this.startMs - replayed.shiftMs + absolute * trace.gapMs,
      alive,
      lost: alive - (trace.data[index] as number),
    };
  }

  /** Absolute tick (counting from the trace's first sample, without wrapping) at a clock time. */
  private tickAt(replayed: ReplayedTrace, atMs: number): number {
    return Math.floor((Math.max(0, atMs - this.startMs) + replayed.shiftMs) / replayed.trace.gapMs);
  }

  private resolve(offering: Offering, zone: string): SpotPoolTraces {
    if (!this.scenario.spot.replay) return { availability: undefined, preemption: undefined };
    const rule = this.scenario.spot.pools.find((r) => matches(r.match, offering, zone));
    return {
      availability: this.pick('availability', offering, zone, rule),
      preemption: this.pick('preemption', offering, zone, rule),
    };
  }

  private pick(
    kind: SpotTraceKind,
    offering: Offering,
    zone: string,
    rule: SimScenario['spot']['pools'][number] | undefined,
  ): ReplayedTrace | undefined {
    const random = new Random(hashString(`${this.scenario.seed}|${kind}|${offering.id}|${zone}`));
    const named = rule?.[kind];
    if (named === null) return undefined;
    let trace: SpotTrace | undefined;
    if (named !== undefined) trace = spotTraceByName(named);
    else {
      const best = this.bestTraces(kind, offering, zone);
      trace = best.length === 0 ? undefined : random.pick(best);
    }
    if (!trace) return undefined;
    const duration = trace.data.length * trace.gapMs;
    return { trace, shiftMs: rule?.shiftMs ?? random.int(0, duration - 1) };
  }

  /** The best-scored traces for an offering in a zone, by name (the same for every pool that scores alike). */
  private readonly best = new Map<string, readonly SpotTrace[]>();
  /** `kind|vendor|zone|gpu` of every trace: the only zones in which a pool can score the same-zone points. */
  private measuredZones: Set<string> | undefined;

  private bestTraces(kind: SpotTraceKind, o: Offering, zone: string): readonly SpotTrace[] {
    const multi = o.gpusPerInstance > 1;
    // Everything the score reads: pools alike in these share one list (thousands of pools, a few dozen lists). The
    // zone counts only where a trace was measured in it; elsewhere every zone of the vendor scores alike.
    this.measuredZones ??= new Set(this.traces.map((t) => `${t.kind}|${t.vendor}|${t.zone}|${t.gpu}`));
    const measured = this.measuredZones.has(`${kind}|${o.vendor}|${zone}|${o.gpu}`);
    const key = `${kind}|${o.vendor}|${measured ? zone : '*'}|${o.gpu}|${multi}`;
    let best = this.best.get(key);
    if (best) return best;
    const candidates = this.traces.filter((t) => t.kind === kind);
    const vendorHasOwn = candidates.some((t) => t.vendor === o.vendor);
    const score = (t: SpotTrace) =>
      (t.vendor === o.vendor && t.zone === zone && t.gpu === o.gpu ? 8 : 0) +
      (t.vendor === o.vendor || (!vendorHasOwn && t.vendor === 'aws') ? 4 : 0) +
      (t.gpu === o.gpu ? 2 : 0) +
      ((t.gpusPerInstance ?? 1) > 1 === multi ? 1 : 0);
    const top = Math.max(...candidates.map(score));
    best = candidates.filter((t) => score(t) === top);
    this.best.set(key, best);
    return best;
  }
}

function lowerBound(sorted: Int32Array, value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((sorted[mid] as number) < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
