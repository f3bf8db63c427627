/**
 * Faults injected into a simulation, drawn from its seed (so that `--seed N` replays the same faults at the same
 * moments), as in deterministic simulation testing: the broker must keep its invariants through them.
 *
 *   outages=N      N provider outages at random moments of the window, 10 to 60 minutes each: half of them a
 *                  random vendor's API down everywhere (calls fail), half a random region's failure (its instances
 *                  die, its API fails)
 *   crashes=P      each container crashes with probability P at a random moment of its first ten minutes (the runtime
 *                  retries its inputs elsewhere, per the function's `retries`)
 *   storms=N       N spot preemption storms: every spot instance of every vendor is reclaimed at one moment
 *
 * `--faults outages=3,crashes=0.02,storms=1`.
 */
import { ValidationError } from '../../lib/errors.ts';
import type { Random } from '../../lib/random.ts';
import type { SimScenarioInput } from '../../providers/sim/scenario.ts';

export interface FaultPlan {
  readonly outages: number;
  readonly crashes: number;
  readonly storms: number;
}

export const NO_FAULTS: FaultPlan = { outages: 0, crashes: 0, storms: 0 };

/** `outages=3,crashes=0.02,storms=1`; keys left out are 0. */
export function parseFaults(text: string): FaultPlan {
  const plan: Record<keyof FaultPlan, number> = { ...NO_FAULTS };
  for (const part of text.split(',').filter((p) => p.trim() !== '')) {
    const match = /^\s*(outages|crashes|storms)=([0-9.]+)\s*$/.exec(part);
    if (!match) throw new ValidationError('--faults', `"${part}" is not outages=N, crashes=P or storms=N`);
    const key = match[1] as keyof FaultPlan;
    const value = Number(match[2]);
    if (key === 'crashes' ? !(value >= 0 && value <= 1) : !Number.isInteger(value) || value > 1_000)
      throw new ValidationError(
        '--faults',
        key === 'crashes' ? 'crashes is a probability from 0 to 1' : `${key} is a whole number up to 1000`,
      );
    plan[key] = value;
  }
  return plan;
}

/** Outages of random vendors' regions at random moments of `windowMs`, for the simulated clouds' scenario. */
export function injectedOutages(
  plan: FaultPlan,
  random: Random,
  windowMs: number,
  regions: readonly { vendor: string; region: string }[],
): NonNullable<SimScenarioInput['outages']> {
  const outages: NonNullable<SimScenarioInput['outages']> = [];
  if (regions.length === 0) return outages;
  for (let i = 0; i < plan.outages; i++) {
    const { vendor, region } = regions[random.int(0, regions.length - 1)] as {
      vendor: string;
      region: string;
    };
    const api = random.chance(0.5);
    outages.push({
      vendor,
      ...(api ? {} : { region }),
      kind: api ? 'api' : 'zone-failure',
      startMs: random.int(0, Math.max(0, windowMs - 1)),
      durationMs: random.int(10, 60) * 60_000,
    });
  }
  return outages.sort((a, b) => a.startMs - b.startMs);
}

/** The preemption storms: at each moment (ms after the start), every vendor's spot instances. */
export function injectedStorms(
  plan: FaultPlan,
  random: Random,
  windowMs: number,
  vendors: readonly string[],
): { atMs: number; vendor: string }[] {
  const moments = Array.from({ length: plan.storms }, () => random.int(0, Math.max(0, windowMs - 1)));
  return moments.sort((a, b) => a - b).flatMap((atMs) => vendors.map((vendor) => ({ atMs, vendor })));
}

/** When a new container crashes (ms after its start), or undefined when it does not. */
export function crashAfterMs(plan: FaultPlan, random: Random): number | undefined {
  if (plan.crashes <= 0 || !random.chance(plan.crashes)) return undefined;
  return random.int(1, 600_000);
}
