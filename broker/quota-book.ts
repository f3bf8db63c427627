import type { Clock } from '../lib/clock.ts';
import type { Offering } from '../providers/catalog/offering.ts';
import type { ProviderQuota } from '../providers/provider.ts';
import type { QuotaExceededError } from '../providers/provider-errors.ts';
import { bufferFor, bufferGpus, type PlanningPolicy } from '../solver/policy.ts';
import { type DemandClass, type Quota, quotaCovers } from '../solver/types.ts';

/** Rounding to whole instances: a plan may hold up to this many GPUs past demand and buffer per GPU type. */
const ROUNDING_GPUS = 8;

/** How long a quota learned from a refusal holds: quotas change by request to the cloud, rarely. */
export const LEARNED_QUOTA_MS = 60 * 60_000;

/**
 * The GPU quotas the plans respect: those the providers publish (`Provider.quotas`), refreshed with the offerings,
 * and those learned when a launch was refused (`QuotaExceededError` carries the limit; it is kept for the refused
 * offering's region, GPU type and capacity type, the narrowest reading of it, and dropped after `LEARNED_QUOTA_MS`).
 * Without them a plan asks one region for more than the account may hold and every launch there fails.
 */
export class QuotaBook {
  private readonly published = new Map<string, readonly ProviderQuota[]>();
  private readonly learned = new Map<string, { quota: Quota; untilMs: number }>();

  constructor(private readonly clock: Clock) {}

  publish(vendor: string, quotas: readonly ProviderQuota[]): void {
    this.published.set(vendor, quotas);
  }

  learn(offering: Offering, error: QuotaExceededError): void {
    const quota: Quota = {
      vendor: offering.vendor,
      region: offering.region,
      gpu: offering.gpu,
      capacityType: offering.capacityType,
      maxGpus: Math.max(0, error.limit),
    };
    const key = `${quota.vendor}|${quota.region}|${quota.gpu}|${quota.capacityType}`;
    this.learned.set(key, { quota, untilMs: this.clock.now() + LEARNED_QUOTA_MS });
  }

  /**
   * The quotas a plan for this demand could reach. A quota row also keeps the solver from treating offerings of
   * different regions as interchangeable, which makes every solve larger, so a published quota above the GPUs held
   * in its scope plus, for each GPU type it covers, the peak demand, its warm buffer in every group and a rounding
   * margin is left out. Learned quotas always stay: they were reached once already. Were a left-out quota reached
   * after all, the refusal teaches it and the next round respects it.
   */
  forPlan(
    demand: readonly DemandClass[],
    policy: PlanningPolicy & { readonly warmRegionGroups: readonly string[] },
    held: readonly { readonly offering: Offering; readonly count: number }[],
  ): Quota[] {
    const peak = new Map<string, number>();
    const groups = new Map<string, Set<string>>();
    for (const d of demand) {
      peak.set(d.gpu, (peak.get(d.gpu) ?? 0) + Math.max(0, ...d.gpus));
      groups.set(d.gpu, (groups.get(d.gpu) ?? new Set(policy.warmRegionGroups)).add(d.regionGroup));
    }
    const reach = (gpu: string) => {
      const d = peak.get(gpu) ?? 0;
      const buffer = bufferGpus(bufferFor(policy, gpu), d) * (groups.get(gpu)?.size ?? 1);
      return d + buffer + ROUNDING_GPUS;
    };
    return this.quotas().filter((q) => {
      if (q.learned) return true;
      let most = 0;
      for (const { offering, count } of held)
        if (quotaCovers(q, offering)) most += count * offering.gpusPerInstance;
      if (q.gpu !== undefined) most += reach(q.gpu);
      else for (const gpu of peak.keys()) most += reach(gpu);
      return most > q.maxGpus;
    });
  }

  /** Every quota in force now (`learned` marks those taught by a refusal). */
  quotas(): (Quota & { learned?: true })[] {
    const now = this.clock.now();
    const all: (Quota & { learned?: true })[] = [];
    for (const [vendor, list] of this.published)
      for (const q of list)
        all.push({
          vendor,
          region: q.region,
          maxGpus: q.maxGpus,
          ...(q.gpu === undefined ? {} : { gpu: q.gpu }),
          ...(q.capacityType === undefined ? {} : { capacityType: q.capacityType }),
        });
    for (const [key, { quota, untilMs }] of this.learned)
      if (untilMs <= now) this.learned.delete(key);
      else all.push({ ...quota, learned: true });
    return all;
  }
}
