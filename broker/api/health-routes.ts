/** `/healthz` and `/metrics`: no token, for load balancers and Prometheus. */
import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import type { BrokerCore } from '../broker.ts';
import { type Env, json, noToken, publicProblems, router } from './route-docs.ts';
import { healthSchema } from './schemas.ts';

export function healthRoutes(broker: BrokerCore): OpenAPIHono<Env> {
  const app = router();
  app.openapi(
    createRoute({
      method: 'get',
      path: '/healthz',
      operationId: 'getHealth',
      summary: 'Whether the broker is up, whether it leads, and when it last ticked',
      ...noToken,
      responses: { 200: json(healthSchema, 'Up'), ...publicProblems },
    }),
    (c) =>
      c.json({ ok: true, leader: broker.loop.leader, lastTickAtMs: broker.loop.last?.atMs ?? null }, 200),
  );
  app.get('/metrics', async (c) =>
    c.text(await broker.metrics.render(), 200, { 'content-type': broker.metrics.contentType }),
  );
  app.openAPIRegistry.registerPath({
    method: 'get',
    path: '/metrics',
    operationId: 'getMetrics',
    summary: 'Prometheus metrics: fleet, leases, plan, runtime',
    ...noToken,
    responses: {
      200: {
        description: 'Metrics in the Prometheus text format',
        content: { 'text/plain; version=0.0.4': { schema: z.string() } },
      },
      ...publicProblems,
    },
  });
  return app;
}
