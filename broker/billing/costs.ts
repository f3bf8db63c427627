/**
 * The cost side: what the fleet cost (instance time × its price, from the instances table) against what tenants
 * were billed (metered GPU-seconds), per GPU type over a window. Utilisation = billed GPU-seconds / provisioned
 * GPU-seconds: the figure operators tune the warm buffer with.
 */
import { and, isNull, lt, or, sql } from 'drizzle-orm';
import { costOfSecondsRoundedUp } from '../../lib/money.ts';
import type { Database } from '../db/open-database.ts';
import { instances } from '../db/schema.ts';
import { priceLines } from './invoices.ts';
import type { Rates } from './price-book.ts';
import { usageGroups } from './usage-groups.ts';

export interface GpuCosts {
  readonly gpu: string;
  readonly provisionedGpuSeconds: number;
  readonly billedGpuSeconds: number;
  /** billed / provisioned, 0 when nothing was provisioned. */
  readonly utilization: number;
  readonly costMicroUsd: number;
  readonly revenueMicroUsd: number;
  readonly marginMicroUsd: number;
}

export interface CostReport {
  readonly fromMs: number;
  readonly toMs: number;
  readonly byGpu: GpuCosts[];
  readonly total: Omit<GpuCosts, 'gpu'>;
}

export async function costReport(
  db: Database,
  fromMs: number,
  toMs: number,
  rates: Rates,
): Promise<CostReport> {
  const ended = sql`coalesce(${instances.terminatedAt}, ${toMs}::bigint)`;
  const rows = await db
    .select({
      gpu: instances.gpu,
      gpusPerInstance: instances.gpusPerInstance,
      microsPerHour: instances.microsPerHour,
      // Whole seconds of the instance inside the window, rounded up like usage.
      seconds: sql<string>`(least(${ended}, ${toMs}::bigint) - greatest(${instances.launchedAt}, ${fromMs}::bigint) + 999) / 1000`,
    })
    .from(instances)
    .where(
      and(
        lt(instances.launchedAt, toMs),
        or(isNull(instances.terminatedAt), sql`${instances.terminatedAt} > ${fromMs}::bigint`),
      ),
    );
  const cells = new Map<string, { provisioned: number; billed: number; cost: number; revenue: number }>();
  const cell = (gpu: string) => {
    const found = cells.get(gpu);
    if (found) return found;
    const fresh = { provisioned: 0, billed: 0, cost: 0, revenue: 0 };
    cells.set(gpu, fresh);
    return fresh;
  };
  for (const r of rows) {
    const seconds = Math.max(0, Number(r.seconds));
    const c = cell(r.gpu);
    c.provisioned += seconds * r.gpusPerInstance;
    c.cost += costOfSecondsRoundedUp(r.microsPerHour, seconds);
  }
  for (const line of priceLines(await usageGroups(db, fromMs, toMs), rates)) {
    const c = cell(line.gpu);
    c.billed += line.gpuSeconds;
    c.revenue += line.amountMicroUsd;
  }
  const view = (gpu: string, c: { provisioned: number; billed: number; cost: number; revenue: number }) => ({
    gpu,
    provisionedGpuSeconds: c.provisioned,
    billedGpuSeconds: c.billed,
    utilization: c.provisioned > 0 ? Math.round((c.billed / c.provisioned) * 10_000) / 10_000 : 0,
    costMicroUsd: c.cost,
    revenueMicroUsd: c.revenue,
    marginMicroUsd: c.revenue - c.cost,
  });
  const byGpu = [...cells.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([gpu, c]) => view(gpu, c));
  const sum = { provisioned: 0, billed: 0, cost: 0, revenue: 0 };
  for (const c of cells.values()) {
    sum.provisioned += c.provisioned;
    sum.billed += c.billed;
    sum.cost += c.cost;
    sum.revenue += c.revenue;
  }
  const { gpu: _gpu, ...total } = view('all', sum);
  return { fromMs, toMs, byGpu, total };
}
