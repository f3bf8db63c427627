/**
 * Usage summed in the database: per tenant, kind, subject, GPU type, region and capacity type, the whole seconds
 * each interval ran inside `[fromMs, toMs)`. An interval's part inside the window is rounded up to a whole second
 * on its own (integer arithmetic: `(ms + 999) / 1000`); an open interval counts up to the last moment it was seen
 * running (`observedEndMs`: its meter's last checkpoint).
 */
import { and, eq, lt, sql } from 'drizzle-orm';
import { observedEndMs, usageIntervals as u } from '../../runtime/meter/schema.ts';
import type { Database } from '../db/open-database.ts';

export interface UsageGroup {
  readonly tenantId: string;
  readonly kind: 'lease' | 'container';
  readonly subject: string;
  readonly gpu: string;
  readonly region: string;
  readonly capacityType: string;
  /** Σ ceil(seconds) over the intervals. */
  readonly seconds: number;
  /** Σ ceil(seconds) × GPUs. */
  readonly gpuSeconds: number;
  readonly coreSeconds: number;
  readonly mibSeconds: number;
  /** Set when grouped by day too: `YYYY-MM-DD` of the interval's start inside the window. */
  readonly day?: string;
}

export async function usageGroups(
  db: Database,
  fromMs: number,
  toMs: number,
  options: { tenantId?: string; byDay?: boolean } = {},
): Promise<UsageGroup[]> {
  const end = observedEndMs;
  const partStart = sql`greatest(${u.startMs}, ${fromMs}::bigint)`;
  const seconds = sql`((least(${end}, ${toMs}::bigint) - ${partStart} + 999) / 1000)`;
  // Grouped by its output name: the expression repeated in GROUP BY would bind its parameter anew and no longer
  // match the selected one in PostgreSQL's eyes.
  const day = sql<string>`to_char(to_timestamp(${partStart} / 1000) at time zone 'UTC', 'YYYY-MM-DD')`.as(
    'day',
  );
  const filters = [lt(u.startMs, toMs), sql`${end} > ${fromMs}::bigint`];
  if (options.tenantId !== undefined) filters.push(eq(u.tenantId, options.tenantId));
  const keys = {
    tenantId: u.tenantId,
    kind: u.kind,
    subject: u.subject,
    gpu: u.gpu,
    region: u.region,
    capacityType: u.capacityType,
  };
  const sums = {
    seconds: sql<string>`sum(${seconds})`,
    gpuSeconds: sql<string>`sum(${seconds} * ${u.gpus})`,
    coreSeconds: sql<string>`sum(${seconds} * ${u.cores})`,
    mibSeconds: sql<string>`sum(${seconds} * ${u.memoryMib})`,
  };
  const query = options.byDay
    ? db
        .select({ ...keys, day, ...sums })
        .from(u)
        .where(and(...filters))
        .groupBy(u.tenantId, u.kind, u.subject, u.gpu, u.region, u.capacityType, sql`day`)
    : db
        .select({ ...keys, ...sums })
        .from(u)
        .where(and(...filters))
        .groupBy(u.tenantId, u.kind, u.subject, u.gpu, u.region, u.capacityType);
  const rows = await query;
  return rows.map((r) => ({
    ...r,
    kind: r.kind as UsageGroup['kind'],
    seconds: Number(r.seconds),
    gpuSeconds: Number(r.gpuSeconds),
    coreSeconds: Number(r.coreSeconds),
    mibSeconds: Number(r.mibSeconds),
  }));
}
