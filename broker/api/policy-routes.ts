/** The policy: the version in force, a new version (operator), the history with diffs (operator). */
import type { OpenAPIHono } from '@hono/zod-openapi';
import type { BrokerCore } from '../broker.ts';
import type { PolicyVersion } from '../policy-store.ts';
import type { Env } from './route-docs.ts';
import { router } from './route-docs.ts';
import { policyVersionSchema } from './schemas.ts';
import { registerVersionedRoutes } from './versioned-routes.ts';

export function policyRoutes(broker: BrokerCore): OpenAPIHono<Env> {
  const app = router();
  registerVersionedRoutes(app, {
    path: '/v1/policy',
    noun: 'policy',
    operation: 'Policy',
    schema: policyVersionSchema,
    setNote: 'effective at the next tick',
    current: () => broker.policies.current(),
    // Through the broker, which puts the new policy in force.
    set: (input, actor) => broker.setPolicy(input, actor),
    history: () => broker.policies.history(),
    view: (v: PolicyVersion) => ({
      version: v.version,
      policy: v.policy as unknown as Record<string, unknown>,
      createdAtMs: v.createdAt,
      createdBy: v.createdBy,
      diff: [...v.diff],
    }),
  });
  return app;
}
