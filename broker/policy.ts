/**
 * The broker's policy: the planning policy the optimizer takes, plus how often and how far ahead the loop plans,
 * how long a stocked-out offering stays blocked, and where the warm buffer is held. Operators set it over
 * `PUT /v1/policy`; each change is a new version and takes effect at the next tick.
 */
import { Cron } from 'croner';
import { z } from 'zod';
import { validationErrorFromIssues } from '../lib/errors.ts';
import { planningPolicySchema } from '../solver/policy.ts';

export const brokerPolicySchema = planningPolicySchema
  .extend({
    /** When the loop ticks: a croner pattern with seconds (default every 30 s). */
    planSchedule: z
      .string()
      .default('*/30 * * * * *')
      .refine(
        (pattern) => {
          try {
            return new Cron(pattern, { paused: true }).nextRun() !== null;
          } catch {
            return false;
          }
        },
        { message: 'not a cron pattern croner accepts (e.g. "*/30 * * * * *")' },
      ),
    /** Planning periods the optimizer looks ahead (each `periodMinutes` long). */
    horizonPeriods: z.number().int().min(1).max(48).default(2),
    /** How long an offering that reported a stock-out is left out of plans. */
    unavailableTtlMs: z
      .number()
      .int()
      .min(0)
      .max(24 * 3_600_000)
      .default(10 * 60_000),
    /**
     * How long a lease whose instance was reclaimed (or lost) waits `pending` for replacement capacity when no free
     * GPUs can take it at once; after that it fails with the reason. 0: it fails at once.
     */
    leaseReplaceTimeoutMs: z
      .number()
      .int()
      .min(0)
      .max(24 * 3_600_000)
      .default(10 * 60_000),
    /** Region groups where the warm buffer of each GPU type is held even without demand there. */
    warmRegionGroups: z.array(z.string().min(1)).default(['us']),
    /** Region group of a lease that names no region. */
    defaultRegionGroup: z.string().min(1).default('us'),
    forecast: z
      .object({
        /** Demand samples older than this are forgotten. */
        windowMs: z
          .number()
          .int()
          .min(60_000)
          .max(7 * 24 * 3_600_000)
          .default(3_600_000),
        /** Weight of the newest sample in the smoothed level. */
        smoothing: z.number().min(0).max(1).default(0.3),
        /** Safety margin on top of max(recent peak, smoothed level). */
        margin: z.number().min(0).max(10).default(0),
      })
      .strict()
      .default({ windowMs: 3_600_000, smoothing: 0.3, margin: 0 }),
  })
  .strict();

export type BrokerPolicy = z.infer<typeof brokerPolicySchema>;
export type BrokerPolicyInput = z.input<typeof brokerPolicySchema>;

/** Validates a policy; throws ValidationError naming the field (`policy.buffer.default.gpus`). */
export function brokerPolicy(input: unknown = {}): BrokerPolicy {
  const parsed = brokerPolicySchema.safeParse(input);
  if (!parsed.success) throw validationErrorFromIssues('policy', parsed.error.issues);
  return parsed.data;
}
