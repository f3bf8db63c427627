import { z } from 'zod';

const fraction = z.number().min(0).max(1);

/** Warm buffer for one GPU type: hold max(gpus, ceil(fraction × demand)) GPUs above demand in each region group. */
export const bufferSchema = z
  .object({
    gpus: z.number().int().min(0).max(100_000).default(0),
    fraction: z.number().min(0).max(10).default(0),
  })
  .strict();
export type Buffer = z.infer<typeof bufferSchema>;

/**
 * What an operator tunes for the optimizer. Every field has a default, so `{}` is a valid policy.
 * Money is USD here because operators write it; the model converts to its own units.
 */
export const planningPolicySchema = z
  .object({
    /** Length of one planning period. */
    periodMinutes: z
      .number()
      .int()
      .min(1)
      .max(24 * 60)
      .default(60),
    /** Warm buffer per GPU type; `default` applies to types not listed in `perGpu`. */
    buffer: z
      .object({
        default: bufferSchema.default({ gpus: 0, fraction: 0 }),
        perGpu: z.record(z.string(), bufferSchema).default({}),
      })
      .strict()
      .default({ default: { gpus: 0, fraction: 0 }, perGpu: {} }),
    /** Spend ceiling in USD per hour for the whole fleet (reserved capacity excluded: it is already paid). */
    budgetUsdPerHour: z.number().positive().max(10_000_000).nullable().default(null),
    /** Spot GPUs may be at most this share of each GPU type's capacity. */
    spotMaxShare: fraction.default(1),
    /** At most this share of a GPU type's capacity in one region. 1 turns the rule off. */
    maxRegionShare: fraction.default(1),
    /** At most this share of a GPU type's capacity with one vendor. 1 turns the rule off. */
    maxVendorShare: fraction.default(1),
    /** At most this share of the fleet's instances terminated per period (scale-down budget). 1 turns it off. */
    maxTerminateFraction: fraction.default(1),
    /** Instances younger than this are never terminated. */
    minLifetimeMinutes: z
      .number()
      .int()
      .min(0)
      .max(7 * 24 * 60)
      .default(0),
    /** Time billed while an instance boots before it serves; priced as a start-up cost per added instance. */
    provisioningMinutes: z.number().min(0).max(120).default(3),
    /** Expected spot interruptions per instance-hour, per vendor (`default` for vendors not listed). */
    spotInterruptionsPerHour: z.record(z.string(), z.number().min(0).max(10)).default({ default: 0.05 }),
    /** Work lost per interruption beyond re-provisioning (restart, reload), in minutes, priced at the spot price. */
    interruptionLostMinutes: z
      .number()
      .min(0)
      .max(24 * 60)
      .default(10),
    /** Vendors and regions to use (allow: only these; deny: never these). Regions as `region` or `vendor/region`. */
    vendors: z
      .object({ allow: z.array(z.string()).optional(), deny: z.array(z.string()).default([]) })
      .strict()
      .default({ deny: [] }),
    regions: z
      .object({ allow: z.array(z.string()).optional(), deny: z.array(z.string()).default([]) })
      .strict()
      .default({ deny: [] }),
    /** Region → region group overrides (`vendor/region` or `region` keys). */
    regionGroups: z.record(z.string(), z.string().min(1)).default({}),
    /** Penalty per unmet GPU-hour of demand; far above any price so that demand is covered whenever possible. */
    unmetPenaltyUsdPerGpuHour: z.number().positive().max(1e7).default(10_000),
    /** Penalty per GPU-hour of warm buffer not held; above any price, below the unmet penalty. */
    bufferPenaltyUsdPerGpuHour: z.number().positive().max(1e7).default(1_000),
    solver: z
      .object({
        backend: z.enum(['highs', 'glpk', 'greedy']).default('highs'),
        timeLimitMs: z.number().int().min(100).max(3_600_000).default(10_000),
        relativeGap: z.number().min(0).max(1).default(0.01),
      })
      .strict()
      .default({ backend: 'highs', timeLimitMs: 10_000, relativeGap: 0.01 }),
  })
  .strict();

export type PlanningPolicy = z.infer<typeof planningPolicySchema>;
export type PlanningPolicyInput = z.input<typeof planningPolicySchema>;

export function planningPolicy(input: PlanningPolicyInput = {}): PlanningPolicy {
  return planningPolicySchema.parse(input);
}

export function bufferFor(policy: PlanningPolicy, gpu: string): Buffer {
  return policy.buffer.perGpu[gpu] ?? policy.buffer.default;
}

export function interruptionsPerHour(policy: PlanningPolicy, vendor: string): number {
  return policy.spotInterruptionsPerHour[vendor] ?? policy.spotInterruptionsPerHour.default ?? 0;
}

/** Warm buffer GPUs for a type in a group given that period's demand there. */
export function bufferGpus(buffer: Buffer, demandGpus: number): number {
  return Math.max(buffer.gpus, Math.ceil(buffer.fraction * demandGpus - 1e-9));
}

/**
 * The warm buffer per GPU type that `demand`'s first period asks for: per (GPU type, region group) as the model
 * counts it, summed over the groups.
 */
export function bufferTargetGpus(
  policy: PlanningPolicy,
  demand: readonly { gpu: string; regionGroup: string; gpus: readonly number[] }[],
): Map<string, number> {
  const cells = new Map<string, { gpu: string; gpus: number }>();
  for (const d of demand) {
    const key = `${d.gpu}\u0000${d.regionGroup}`;
    const cell = cells.get(key) ?? { gpu: d.gpu, gpus: 0 };
    cell.gpus += d.gpus[0] ?? 0;
    cells.set(key, cell);
  }
  const targets = new Map<string, number>();
  for (const { gpu, gpus } of cells.values())
    targets.set(gpu, (targets.get(gpu) ?? 0) + bufferGpus(bufferFor(policy, gpu), gpus));
  return targets;
}
