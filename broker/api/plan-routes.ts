/**
 * Plans (operator): the latest plans the control loop made, and one with its inputs, result and explanation (the
 * binding constraints and their marginal costs): "why did we buy this?" over the API.
 */
import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import { desc, eq } from 'drizzle-orm';
import { microsToUsd } from '../../lib/money.ts';
import type { BrokerCore } from '../broker.ts';
import { plans } from '../db/schema.ts';
import { requireOperator } from './auth.ts';
import { HttpProblem } from './problem.ts';
import { type Env, json, problems } from './route-docs.ts';
import { planDetailSchema, planSummarySchema } from './schemas.ts';

type PlanRow = typeof plans.$inferSelect;
type PlanDetail = z.infer<typeof planDetailSchema>;
interface StoredResult {
  pools?: PlanDetail['pools'];
  actions?: PlanDetail['actions'];
  unmet?: PlanDetail['unmet'];
  stockOuts?: string[];
}

function summary(row: PlanRow): z.infer<typeof planSummarySchema> {
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

function detail(row: PlanRow): PlanDetail {
  const result = row.result as StoredResult;
  return {
    ...summary(row),
    objective: row.objective as PlanDetail['objective'],
    inputs: row.inputs as PlanDetail['inputs'],
    pools: result.pools ?? [],
    actions: result.actions ?? [],
    unmet: result.unmet ?? [],
    stockOuts: result.stockOuts ?? [],
    explanation: row.explanation as PlanDetail['explanation'],
  };
}

export function registerPlanRoutes(app: OpenAPIHono<Env>, broker: BrokerCore): void {
  const { db } = broker.database;
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/plans',
      operationId: 'listPlans',
      summary: 'The latest plans, newest first (operator)',
      request: { query: z.object({ limit: z.coerce.number().int().min(1).max(1_000).default(20) }).strict() },
      responses: { 200: json(z.object({ plans: z.array(planSummarySchema) }), 'Plans'), ...problems },
    }),
    async (c) => {
      requireOperator(c);
      const { limit } = c.req.valid('query');
      const rows = await db.select().from(plans).orderBy(desc(plans.createdAt), desc(plans.id)).limit(limit);
      return c.json({ plans: rows.map(summary) }, 200);
    },
  );
  // Before `/v1/plans/{id}`, which would take "latest" for an id.
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/plans/latest',
      operationId: 'latestPlan',
      summary: 'The latest plan with its inputs, result and explanation (operator)',
      responses: { 200: json(planDetailSchema, 'The plan'), ...problems },
    }),
    async (c) => {
      requireOperator(c);
      const [row] = await db.select().from(plans).orderBy(desc(plans.createdAt), desc(plans.id)).limit(1);
      if (!row) throw new HttpProblem(404, 'Not found', 'no plan yet: the loop has not planned anything');
      return c.json(detail(row), 200);
    },
  );
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/plans/{id}',
      operationId: 'getPlan',
      summary: 'A plan with its inputs, result and explanation (operator)',
      request: { params: z.object({ id: z.string().min(1).max(128) }) },
      responses: { 200: json(planDetailSchema, 'The plan'), ...problems },
    }),
    async (c) => {
      requireOperator(c);
      const { id } = c.req.valid('param');
      const [row] = await db.select().from(plans).where(eq(plans.id, id));
      if (!row) throw new HttpProblem(404, 'Not found', `no plan "${id}"`);
      return c.json(detail(row), 200);
    },
  );
}
