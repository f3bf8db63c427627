/**
 * A plan's row as the API shows it: in brief (`GET /v1/plans`) and whole (`/v1/plans/{id}`, a what-if's plan); and
 * the latest row, which `/v1/plans/latest` shows and a what-if is compared with.
 */
import type { z } from '@hono/zod-openapi';
import { desc } from 'drizzle-orm';
import { microsToUsd } from '../../lib/money.ts';
import type { Database } from '../db/open-database.ts';
import { plans } from '../db/schema.ts';
import type { planDetailSchema, planSummarySchema } from './schemas.ts';

type PlanRow = typeof plans.$inferSelect;
type PlanDetail = z.infer<typeof planDetailSchema>;
interface StoredResult {
  pools?: PlanDetail['pools'];
  actions?: PlanDetail['actions'];
  unmet?: PlanDetail['unmet'];
  stockOuts?: string[];
}

/** The latest plan's row; undefined before the loop planned anything. */
export async function latestPlanRow(db: Database): Promise<PlanRow | undefined> {
  const [row] = await db.select().from(plans).orderBy(desc(plans.createdAt), desc(plans.id)).limit(1);
  return row;
}

export function planSummary(row: PlanRow): z.infer<typeof planSummarySchema> {
  const result = row.result as StoredResult;
  const actions = result.actions ?? [];
  return {
    id: row.id,
    createdAtMs: row.createdAt,
    policyVersion: row.policyVersion,
    status: row.status,
    backend: row.backend,
    usdPerHour: microsToUsd(row.microsPerHour),
    solveMs: row.solveMs,
    unmetGpus: (result.unmet ?? []).reduce((sum, u) => sum + (u.gpus[0] ?? 0), 0),
    provision: actions.reduce((sum, a) => sum + a.provision, 0),
    terminate: actions.reduce((sum, a) => sum + a.terminate, 0),
  };
}

export function planDetail(row: PlanRow): PlanDetail {
  const result = row.result as StoredResult;
  return {
    ...planSummary(row),
    objective: row.objective as PlanDetail['objective'],
    inputs: row.inputs as PlanDetail['inputs'],
    pools: result.pools ?? [],
    actions: result.actions ?? [],
    unmet: result.unmet ?? [],
    stockOuts: result.stockOuts ?? [],
    explanation: row.explanation as PlanDetail['explanation'],
  };
}
