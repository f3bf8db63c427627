/**
 * The HTTP API (hono + zod-openapi), composed: error handling, then the `/v1` middleware in order (client
 * version, follower forwarding, input guard, authentication), then one router file per resource (health, leases,
 * policy, tokens, billing, functions). Routes are declared with their schemas, validated on the way in and
 * described by the OpenAPI document at `/openapi.json`. Errors are problem+json (see problem.ts).
 */
import { OpenAPIHono } from '@hono/zod-openapi';
import { HTTPException } from 'hono/http-exception';
import type { BrokerCore } from '../broker.ts';
import { createConsole } from '../console/console-routes.ts';
import { registerAgentRoutes } from './agent-routes.ts';
import { registerAuditRoutes } from './audit-routes.ts';
import { authenticate, requireOperator } from './auth.ts';
import { registerBillingRoutes } from './billing-routes.ts';
import { clientVersion } from './client-version.ts';
import { registerContainerRoutes } from './container-routes.ts';
import { registerFleetRoutes } from './fleet-routes.ts';
import { followersForward } from './forward.ts';
import { registerFunctionRoutes } from './function-routes.ts';
import { registerHealthRoutes } from './health-routes.ts';
import { type GuardedRoute, inputGuard } from './input-guard.ts';
import { registerLeaseRoutes } from './lease-routes.ts';
import { registerPlanRoutes } from './plan-routes.ts';
import { registerPolicyRoutes } from './policy-routes.ts';
import { HttpProblem, problemFor } from './problem.ts';
import { BEARER, bearerScheme, documentConfig, type Env } from './route-docs.ts';
import { registerTokenRoutes } from './token-routes.ts';

/** The app's routes with what the OpenAPI registry says of their bodies (read once, after every route is added). */
function guardedRoutes(app: OpenAPIHono<Env>): GuardedRoute[] {
  const required = new Set<string>();
  for (const definition of app.openAPIRegistry.definitions) {
    if (definition.type !== 'route') continue;
    const { method, path, request } = definition.route;
    const body = request?.body;
    if (body?.required && Object.keys(body.content).some((type) => type.includes('json')))
      required.add(`${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`);
  }
  return app.routes.map((r) => ({
    method: r.method,
    path: r.path,
    jsonBodyRequired: required.has(`${r.method} ${r.path}`),
  }));
}

export function createApp(broker: BrokerCore): OpenAPIHono<Env> {
  let guarded: GuardedRoute[] | undefined;
  const app = new OpenAPIHono<Env>({
    defaultHook: (result) => {
      if (!result.success) {
        const issue = result.error.issues[0];
        const field = issue?.path.map(String).join('.') || 'body';
        throw new HttpProblem(400, 'Invalid request', `${field}: ${issue?.message ?? 'invalid'}`, field);
      }
    },
  });
  app.onError((error, c) => {
    let problem = problemFor(error);
    if (error instanceof HTTPException && error.status < 500)
      problem = problemFor(new HttpProblem(error.status, 'Invalid request', error.message, 'body'));
    if (problem.status >= 500) broker.logger.error({ err: error }, 'request failed');
    return c.body(JSON.stringify(problem), problem.status as 400, {
      'content-type': 'application/problem+json',
    });
  });
  app.notFound((c) =>
    c.body(
      JSON.stringify(problemFor(new HttpProblem(404, 'Not found', `no route ${c.req.method} ${c.req.path}`))),
      404,
      {
        'content-type': 'application/problem+json',
      },
    ),
  );

  app.use('/v1/*', clientVersion()); // an SDK this broker cannot serve is told so, naming both versions
  // A follower passes every API call to the leader; a request passed on once is never passed on again.
  app.use('/v1/*', followersForward(broker));
  // After forwarding (it reads the body; a follower passes the raw request on), before anything else reads input.
  app.use(
    '/v1/*',
    inputGuard(() => (guarded ??= guardedRoutes(app))),
  );
  app.use('/v1/*', authenticate(broker));

  registerHealthRoutes(app, broker);
  registerLeaseRoutes(app, broker);
  registerPolicyRoutes(app, broker);
  registerTokenRoutes(app, broker);
  registerPlanRoutes(app, broker);
  registerAuditRoutes(app, broker);
  registerAgentRoutes(app, broker);

  registerBillingRoutes(app, broker, requireOperator);
  registerFunctionRoutes(app, broker);
  registerFleetRoutes(app, broker);
  registerContainerRoutes(app, broker);

  // The console's pages, outside `/v1` and the OpenAPI document; they read the API above, in process.
  app.route(
    '/',
    createConsole(broker, (request) => app.fetch(request)),
  );

  app.openAPIRegistry.registerComponent('securitySchemes', BEARER, bearerScheme);
  app.doc31('/openapi.json', documentConfig);
  return app;
}
