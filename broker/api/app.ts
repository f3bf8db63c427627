/**
 * The HTTP API (hono + zod-openapi), composed: error handling, then the `/v1` middleware in order (client
 * version, follower forwarding, input guard, authentication), then one router per resource, each a file of its own
 * mounted with `.route()` (health, leases, policy, tokens, plans, audit, agents, billing, functions, fleet,
 * containers). Routes are declared with their schemas, validated on the way in and
 * described by the OpenAPI document at `/openapi.json`. Errors are problem+json (see problem.ts).
 */
import type { OpenAPIHono } from '@hono/zod-openapi';
import { HTTPException } from 'hono/http-exception';
import type { BrokerCore } from '../broker.ts';
import { createConsole } from '../console/console-routes.ts';
import { agentRoutes } from './agent-routes.ts';
import { auditRoutes } from './audit-routes.ts';
import { authenticate, requireOperator } from './auth.ts';
import { billingRoutes } from './billing-routes.ts';
import { clientVersion } from './client-version.ts';
import { containerRoutes } from './container-routes.ts';
import { fleetRoutes } from './fleet-routes.ts';
import { followersForward } from './forward.ts';
import { functionRoutes } from './function-routes.ts';
import { healthRoutes } from './health-routes.ts';
import { type GuardedRoute, inputGuard } from './input-guard.ts';
import { leaseRoutes } from './lease-routes.ts';
import { planRoutes } from './plan-routes.ts';
import { policyRoutes } from './policy-routes.ts';
import { HttpProblem, problemFor } from './problem.ts';
import { BEARER, bearerScheme, documentConfig, type Env, router } from './route-docs.ts';
import { tokenRoutes } from './token-routes.ts';

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
  const app = router();
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

  // One router per resource (its own file), mounted after the middleware above so that it runs first.
  app
    .route('/', healthRoutes(broker))
    .route('/', leaseRoutes(broker))
    .route('/', policyRoutes(broker))
    .route('/', tokenRoutes(broker))
    .route('/', planRoutes(broker))
    .route('/', auditRoutes(broker))
    .route('/', agentRoutes(broker))
    .route('/', billingRoutes(broker, requireOperator))
    .route('/', functionRoutes(broker))
    .route('/', fleetRoutes(broker))
    .route('/', containerRoutes(broker));

  // The console's pages, outside `/v1` and the OpenAPI document; they read the API above, in process.
  app.route(
    '/',
    createConsole(broker, (request) => app.fetch(request)),
  );

  app.openAPIRegistry.registerComponent('securitySchemes', BEARER, bearerScheme);
  app.doc31('/openapi.json', documentConfig);
  return app;
}
