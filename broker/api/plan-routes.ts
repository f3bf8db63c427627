/**
 * Plans (operator): the latest plans the control loop made, and one with its inputs, result and explanation (the
 * binding constraints and their marginal costs): "why did we buy this?" over the API. What-ifs and the buffer curve
 * (what-if-routes.ts) sit under the same path.
 */
import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import { desc, eq } from 'drizzle-orm';
import type { BrokerCore } from '../broker.ts';
import { plans } from '../db/schema.ts';
import { requireOperator } from './auth.ts';
import { latestPlanRow, planDetail, planSummary } from './plan-view.ts';
import { HttpProblem } from './problem.ts';
import { type Env, json, problems, router } from './route-docs.ts';
import { planDetailSchema, planSummarySchema } from './schemas.ts';
import { registerWhatIfRoutes } from './what-if-routes.ts';

export function planRoutes(broker: BrokerCore): OpenAPIHono<Env> {
  const app = router();
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
      return c.json({ plans: rows.map(planSummary) }, 200);
    },
  );
  // Before `/v1/plans/{id}`, which would take "latest" and "buffer-curve" for ids.
  registerWhatIfRoutes(app, broker);
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
      const row = await latestPlanRow(db);
      if (!row) throw new HttpProblem(404, 'Not found', 'no plan yet: the loop has not planned anything');
      return c.json(planDetail(row), 200);
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
      return c.json(planDetail(row), 200);
    },
  );
  return app;
}
