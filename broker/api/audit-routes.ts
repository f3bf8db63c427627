/** The audit log (operator): token creations and tenant-limit changes, newest first. */
import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import type { BrokerCore } from '../broker.ts';
import { requireOperator } from './auth.ts';
import { type Env, json, problems, router } from './route-docs.ts';
import { auditEventSchema } from './schemas.ts';

export function auditRoutes(broker: BrokerCore): OpenAPIHono<Env> {
  const app = router();
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/audit',
      operationId: 'listAuditEvents',
      summary: 'Token creations and tenant-limit changes: who, when and what, newest first (operator)',
      request: {
        query: z.object({ limit: z.coerce.number().int().min(1).max(1_000).default(100) }).strict(),
      },
      responses: { 200: json(z.object({ events: z.array(auditEventSchema) }), 'Events'), ...problems },
    }),
    async (c) => {
      requireOperator(c);
      const events = await broker.audit.latest(c.req.valid('query').limit);
      return c.json({ events: events.map((e) => ({ ...e, detail: { ...e.detail } })) }, 200);
    },
  );
  return app;
}
