/**
 * What-if planning: a policy change merged onto the policy in force, and optionally demand in place of the forecast,
 * checked here and then planned by the loop's own path (`ControlLoop.whatIf`); the result is compared with the latest
 * plan. Nothing here launches, terminates or stores anything.
 */
import { ValidationError } from '../lib/errors.ts';
import { microsToUsd, usdToMicros } from '../lib/money.ts';
import type { DemandClass } from '../solver/types.ts';
import { type BrokerPolicy, brokerPolicy } from './policy.ts';

/**
 * `change` merged onto `base`: plain objects key by key, anything else (numbers, strings, arrays, null) replaces.
 * Built with `Object.fromEntries`, so a `__proto__` key is a key like any other (and the strict schema refuses it).
 */
export function mergePolicy(base: unknown, change: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(change)) return change;
  const keys = new Set([...Object.keys(base), ...Object.keys(change)]);
  return Object.fromEntries(
    [...keys].map((key) => [
      key,
      Object.hasOwn(change, key) ? mergePolicy(base[key], change[key]) : base[key],
    ]),
  );
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The policy in force with `change` merged onto it, validated as `PUT /v1/policy` validates (`policy.…` fields). */
export function whatIfPolicy(current: BrokerPolicy, change: Record<string, unknown>): BrokerPolicy {
  return brokerPolicy(mergePolicy(current, change));
}

/** Demand asked for instead of the forecast: GPUs in each period, or one number for every period. */
export interface DemandOverride {
  readonly gpu: string;
  readonly regionGroup: string;
  readonly gangSize: number;
  readonly gpus: number | readonly number[];
}

/**
 * An override as forecast classes over the policy's horizon. The GPU type, the region group and the gang size must
 * be on sale, each count a whole number of gangs, each class listed once: a ValidationError names `demand.N.…`.
 */
export function overrideClasses(
  override: readonly DemandOverride[],
  policy: BrokerPolicy,
  offerings: readonly {
    readonly gpu: string;
    readonly regionGroup: string;
    readonly gpusPerInstance: number;
  }[],
): DemandClass[] {
  const groups = [...new Set(offerings.map((o) => o.regionGroup))].sort();
  const seen = new Set<string>();
  return override.map((d, n) => {
    const field = (name?: string) => ['demand', n, name].filter((p) => p !== undefined).join('.');
    const sizes = offerings.filter((o) => o.gpu === d.gpu).map((o) => o.gpusPerInstance);
    if (sizes.length === 0) throw new ValidationError(field('gpu'), `no offering sells "${d.gpu}"`);
    if (!groups.includes(d.regionGroup))
      throw new ValidationError(
        field('regionGroup'),
        `unknown region group "${d.regionGroup}"; groups: ${groups.join(', ')}`,
      );
    const largest = Math.max(...sizes);
    if (d.gangSize > largest)
      throw new ValidationError(field('gangSize'), `${d.gpu} instances have at most ${largest} GPUs`);
    const key = `${d.gpu}|${d.regionGroup}|${d.gangSize}`;
    if (seen.has(key))
      throw new ValidationError(
        field(),
        `${d.gpu}@${d.regionGroup} in gangs of ${d.gangSize} is listed twice`,
      );
    seen.add(key);
    const gpus =
      typeof d.gpus === 'number'
        ? Array.from({ length: policy.horizonPeriods }, () => d.gpus as number)
        : [...d.gpus];
    if (gpus.length !== policy.horizonPeriods)
      throw new ValidationError(
        field('gpus'),
        `${gpus.length} periods given; the policy plans ${policy.horizonPeriods} (or give one number for all)`,
      );
    const notWhole = gpus.find((g) => g % d.gangSize !== 0);
    if (notWhole !== undefined)
      throw new ValidationError(
        field('gpus'),
        `${notWhole} GPUs is not a whole number of ${d.gangSize}-GPU gangs`,
      );
    return { gpu: d.gpu, regionGroup: d.regionGroup, gangSize: d.gangSize, gpus };
  });
}

/** What a diff reads of a plan. */
export interface PlanFigures {
  readonly usdPerHour: number;
  readonly unmetGpus: number;
  readonly pools: readonly PoolFigures[];
}

interface PoolFigures {
  readonly offeringId: string;
  readonly vendor: string;
  readonly region: string;
  readonly regionGroup: string;
  readonly instanceType: string;
  readonly gpu: string;
  readonly gpusPerInstance: number;
  readonly capacityType: string;
  readonly count: number;
}

export interface Change {
  readonly from: number;
  readonly to: number;
  readonly change: number;
}

export interface PlanDiff {
  readonly usdPerHour: Change;
  readonly unmetGpus: Change;
  /** The pools whose instance count changes, as `from` → `to` instances. */
  readonly pools: (Omit<PoolFigures, 'count'> & Change)[];
}

/**
 * `to` against `from`; a missing plan (none made yet, or nothing to plan) holds nothing and costs nothing. Money is
 * subtracted in micro-USD, so that equal costs differ by exactly 0.
 */
export function planDiff(from: PlanFigures | undefined, to: PlanFigures | undefined): PlanDiff {
  const cost = (p: PlanFigures | undefined) => usdToMicros(p?.usdPerHour ?? 0);
  const pools = new Map<string, Omit<PoolFigures, 'count'> & Change>();
  for (const [side, plan] of [
    ['from', from],
    ['to', to],
  ] as const)
    for (const { count, ...pool } of plan?.pools ?? []) {
      const entry = pools.get(pool.offeringId) ?? { ...pool, from: 0, to: 0, change: 0 };
      pools.set(pool.offeringId, { ...entry, [side]: entry[side] + count });
    }
  return {
    usdPerHour: {
      from: microsToUsd(cost(from)),
      to: microsToUsd(cost(to)),
      change: microsToUsd(cost(to) - cost(from)),
    },
    unmetGpus: change(from?.unmetGpus ?? 0, to?.unmetGpus ?? 0),
    pools: [...pools.values()]
      .map((p) => ({ ...p, change: p.to - p.from }))
      .filter((p) => p.change !== 0)
      .sort((a, b) => a.offeringId.localeCompare(b.offeringId)),
  };
}

function change(from: number, to: number): Change {
  return { from, to, change: to - from };
}
