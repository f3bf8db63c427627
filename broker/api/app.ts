/**
 * The HTTP API (hono + zod-openapi): routes are declared with their schemas, validated on the way in, and
 * described by the OpenAPI document at `/openapi.json`. Errors are problem+json (see problem.ts). Every `/v1`
 * route needs a bearer token; tenants see only their own leases, operators see all and manage policy and tokens.
 */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { ValidationError } from '../../lib/errors.ts';
import type { BrokerCore } from '../broker.ts';
import { renderMetrics } from '../metrics.ts';
import { registerBillingRoutes } from './billing-routes.ts';
import { clientVersion } from './client-version.ts';
import { forwardToLeader } from './forward.ts';
import { registerFunctionRoutes } from './function-routes.ts';
import { type GuardedRoute, inputGuard } from './input-guard.ts';
import { HttpProblem, problemFor } from './problem.ts';
import {
  BEARER,
  bearerScheme,
  documentConfig,
  type Env,
  json,
  noToken,
  problems,
  publicProblems,
} from './route-docs.ts';
import {
  healthSchema,
  leaseListSchema,
  leaseRequestSchema,
  leaseSchema,
  policyVersionSchema,
  tokenRequestSchema,
  tokenSchema,
} from './schemas.ts';

const idParam = z.object({ id: z.string().min(1).max(64) });

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
  app.use('/v1/*', async (c, next) => {
    if (broker.loop.leader) return next();
    const leader = await broker.leaderUrl();
    if (!leader || leader === broker.advertisedUrl || c.req.header('x-forwarded-by'))
      throw new HttpProblem(
        503,
        'No leader',
        'this replica follows and no leader is known yet; retry shortly',
      );
    return forwardToLeader(c.req.raw, leader);
  });
  // After forwarding (it reads the body; a follower passes the raw request on), before anything else reads input.
  app.use(
    '/v1/*',
    inputGuard(() => (guarded ??= guardedRoutes(app))),
  );
  app.use('/v1/*', async (c, next) => {
    const header = c.req.header('authorization') ?? '';
    const token = /^Bearer\s+(\S+)$/i.exec(header)?.[1];
    if (!token)
      throw new HttpProblem(401, 'Unauthorized', 'send Authorization: Bearer <token>', 'authorization');
    const principal = await broker.tokens.authenticate(token);
    if (!principal) throw new HttpProblem(401, 'Unauthorized', 'unknown or revoked token', 'authorization');
    c.set('principal', principal);
    await next();
  });
  const operator = (c: Context<Env>) => {
    if (c.get('principal').role !== 'operator')
      throw new HttpProblem(403, 'Forbidden', 'this needs an operator token', 'authorization');
  };

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
  app.get('/metrics', (c) =>
    c.text(renderMetrics(broker), 200, { 'content-type': 'text/plain; version=0.0.4' }),
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

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/leases',
      operationId: 'requestLease',
      summary: 'Request GPUs',
      request: { body: { content: { 'application/json': { schema: leaseRequestSchema } }, required: true } },
      responses: {
        201: json(leaseSchema, 'The lease (ready, pending or failed with a reason)'),
        200: json(leaseSchema, 'The lease made earlier with this idempotency key'),
        ...problems,
      },
    }),
    async (c) => {
      await broker.spend.check(c.get('principal').tenantId);
      const { lease, created } = await broker.leases.request(c.get('principal'), c.req.valid('json'));
      return c.json(lease, created ? 201 : 200);
    },
  );
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/leases',
      operationId: 'listLeases',
      summary: 'Your leases',
      responses: { 200: json(leaseListSchema, 'Leases, oldest first'), ...problems },
    }),
    async (c) => c.json({ leases: await broker.leases.list(c.get('principal')) }, 200),
  );
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/leases/{id}',
      operationId: 'getLease',
      summary: 'One lease',
      request: { params: idParam },
      responses: { 200: json(leaseSchema, 'The lease'), ...problems },
    }),
    async (c) => c.json(await broker.leases.get(c.get('principal'), c.req.valid('param').id), 200),
  );
  app.openapi(
    createRoute({
      method: 'delete',
      path: '/v1/leases/{id}',
      operationId: 'releaseLease',
      summary: 'Release a lease (idempotent)',
      request: { params: idParam },
      responses: { 200: json(leaseSchema, 'The released lease'), ...problems },
    }),
    async (c) => c.json(await broker.leases.release(c.get('principal'), c.req.valid('param').id), 200),
  );

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
      operator(c);
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
      operator(c);
      return c.json({ versions: (await broker.policies.history()).map(policyView) }, 200);
    },
  );
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
      operator(c);
      const body = c.req.valid('json');
      const { token } = await broker.tokens.create(body.tenant, body.role, body.gpuQuota);
      return c.json({ token, tenant: body.tenant, role: body.role }, 201);
    },
  );

  registerBillingRoutes(app, broker, operator);
  registerFunctionRoutes(app, broker);

  app.openAPIRegistry.registerComponent('securitySchemes', BEARER, bearerScheme);
  app.doc31('/openapi.json', documentConfig);
  return app;
}
