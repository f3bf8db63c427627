/** Tokens: an operator creates a tenant's (or another operator's) token, shown once. */
import { createRoute, type OpenAPIHono } from '@hono/zod-openapi';
import type { BrokerCore } from '../broker.ts';
import { requireOperator } from './auth.ts';
import { type Env, json, problems, router } from './route-docs.ts';
import { tokenRequestSchema, tokenSchema } from './schemas.ts';

export function tokenRoutes(broker: BrokerCore): OpenAPIHono<Env> {
  const app = router();
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/tokens',
      operationId: 'createToken',
      summary: 'Create a token for a tenant (operator); the token is shown only in this response',
      request: { body: { content: { 'application/json': { schema: tokenRequestSchema } }, required: true } },
      responses: { 201: json(tokenSchema, 'The new token'), ...problems },
    }),
    async (c) => {
      requireOperator(c);
      const body = c.req.valid('json');
      const actor = c.get('principal').tenantName;
      const { token } = await broker.tokens.create(body.tenant, body.role, body.gpuQuota, (tx) =>
        broker.audit.record(tx, {
          actor,
          action: 'token.create',
          subject: body.tenant,
          detail: { role: body.role, ...(body.gpuQuota !== undefined ? { gpuQuota: body.gpuQuota } : {}) },
        }),
      );
      return c.json({ token, tenant: body.tenant, role: body.role }, 201);
    },
  );
  return app;
}
