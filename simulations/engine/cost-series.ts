/**
 * Cumulative fleet cost at each sample time, from every instance's launch, end and price (the instances table):
 * a sweep over launches and ends, integrating the hourly rate between them. The headline cost comes from the
 * billing code's `costReport`, which rounds each instance up to whole seconds; this series does not round.
 */
import { microsToUsd, unroundedCostOf } from '../../lib/money.ts';

export interface InstanceSpan {
  readonly launchedAt: number;
  readonly terminatedAt: number | null;
  readonly microsPerHour: number;
}

/** USD spent by the fleet up to each of `timesMs` (ascending, absolute clock times). */
export function cumulativeCostUsd(instances: readonly InstanceSpan[], timesMs: readonly number[]): number[] {
  const events: { atMs: number; deltaMicrosPerHour: number }[] = [];
  for (const i of instances) {
    events.push({ atMs: i.launchedAt, deltaMicrosPerHour: i.microsPerHour });
    if (i.terminatedAt !== null) events.push({ atMs: i.terminatedAt, deltaMicrosPerHour: -i.microsPerHour });
  }
  events.sort((a, b) => a.atMs - b.atMs);
  const result: number[] = [];
  let rate = 0;
  let micros = 0;
  let last = events[0]?.atMs ?? 0;
  let j = 0;
  for (const t of timesMs) {
    for (; j < events.length && (events[j]?.atMs as number) <= t; j++) {
      const e = events[j] as { atMs: number; deltaMicrosPerHour: number };
      micros += unroundedCostOf(rate, e.atMs - last);
      last = e.atMs;
      rate += e.deltaMicrosPerHour;
    }
    if (t > last) {
      micros += unroundedCostOf(rate, t - last);
      last = t;
    }
    result.push(microsToUsd(Math.round(micros)));
  }
  return result;
}
