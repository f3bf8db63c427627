/** The policy: the version in force, a new version (operator), the history with diffs (operator). */
import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import { ValidationError } from '../../lib/errors.ts';
import type { BrokerCore } from '../broker.ts';
import { requireOperator } from './auth.ts';
import { HttpProblem } from './problem.ts';
import { type Env, json, problems } from './route-docs.ts';
import { policyVersionSchema } from './schemas.ts';

export function registerPolicyRoutes(app: OpenAPIHono<Env>, broker: BrokerCore): void {
  const policyView = (v: Awaited<ReturnType<BrokerCore['policies']['current']>>) => ({
    version: v.version,
    policy: v.policy as unknown as Record<string, unknown>,
    createdAtMs: v.createdAt,
    createdBy: v.createdBy,
    diff: [...v.diff],
  });
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/policy',
      operationId: 'getPolicy',
      summary: 'The policy in force',
      responses: { 200: json(policyVersionSchema, 'Current version'), ...problems },
    }),
    async (c) => c.json(policyView(await broker.policies.current()), 200),
  );
  app.openapi(
    createRoute({
      method: 'put',
      path: '/v1/policy',
      operationId: 'setPolicy',
      summary: 'Set a new policy version (operator); effective at the next tick',
      request: {
        body: {
          content: { 'application/json': { schema: z.record(z.string(), z.unknown()) } },
          required: true,
        },
      },
      responses: { 200: json(policyVersionSchema, 'The new version'), ...problems },
    }),
    async (c) => {
      requireOperator(c);
      try {
        return c.json(
          policyView(await broker.setPolicy(c.req.valid('json'), c.get('principal').tenantName)),
          200,
        );
      } catch (error) {
        if (error instanceof ValidationError)
          throw new HttpProblem(400, 'Invalid policy', error.message, error.field);
        throw error;
      }
    },
  );
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/policy/history',
      operationId: 'listPolicyVersions',
      summary: 'Every policy version, newest first (operator)',
      responses: { 200: json(z.object({ versions: z.array(policyVersionSchema) }), 'History'), ...problems },
    }),
    async (c) => {
      requireOperator(c);
      return c.json({ versions: (await broker.policies.history()).map(policyView) }, 200);
    },
  );
}
