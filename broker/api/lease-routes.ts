/** Leases: request GPUs, list and read your leases, release one. Tenants see only their own. */
import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import type { BrokerCore } from '../broker.ts';
import { type Env, json, problems } from './route-docs.ts';
import { leaseListSchema, leaseRequestSchema, leaseSchema } from './schemas.ts';

const idParam = z.object({ id: z.string().min(1).max(64) });
/** How long a read of a pending lease may wait for it to change (the calls' long poll has the same bound). */
const leaseWaitQuery = z.object({ waitMs: z.coerce.number().int().min(0).max(60_000).optional() }).strict();

export function registerLeaseRoutes(app: OpenAPIHono<Env>, broker: BrokerCore): void {
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
      summary: 'One lease; with waitMs, waits up to that long while it is pending (a long poll)',
      request: { params: idParam, query: leaseWaitQuery },
      responses: { 200: json(leaseSchema, 'The lease'), ...problems },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const { waitMs } = c.req.valid('query');
      return c.json(await broker.leases.waitWhilePending(c.get('principal'), id, waitMs ?? 0), 200);
    },
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
}
