/** Leases: request GPUs, list and read your leases, release one, run a command on one. Tenants see only their own. */
import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import { stream } from 'hono/streaming';
import { execOnAgent } from '../agents/remote-exec.ts';
import type { BrokerCore } from '../broker.ts';
import { HttpProblem } from './problem.ts';
import { type Env, json, problems, router } from './route-docs.ts';
import {
  execEventSchema,
  execRequestSchema,
  leaseListSchema,
  leaseRequestSchema,
  leaseSchema,
} from './schemas.ts';
import { spendCheck } from './spend-check.ts';

const idParam = z.object({ id: z.string().min(1).max(64) });
/** How long a read of a pending lease may wait for it to change (the calls' long poll has the same bound). */
const leaseWaitQuery = z.object({ waitMs: z.coerce.number().int().min(0).max(60_000).optional() }).strict();

export function leaseRoutes(broker: BrokerCore): OpenAPIHono<Env> {
  const app = router();
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/leases',
      operationId: 'requestLease',
      summary: 'Request GPUs',
      middleware: [spendCheck(broker)] as const,
      request: { body: { content: { 'application/json': { schema: leaseRequestSchema } }, required: true } },
      responses: {
        201: json(leaseSchema, 'The lease (ready, pending or failed with a reason)'),
        200: json(leaseSchema, 'The lease made earlier with this idempotency key'),
        ...problems,
      },
    }),
    async (c) => {
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
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/leases/{id}/exec',
      operationId: 'execOnLease',
      summary: "Run a command on a ready lease's machine, with exactly its GPUs visible; output streams back",
      description:
        'The answer is application/x-ndjson: `{stream, data}` lines (data in base64) as the command writes, then one `{exit}` line. Closing the connection kills the command.',
      request: {
        params: idParam,
        body: { content: { 'application/json': { schema: execRequestSchema } }, required: true },
      },
      responses: {
        200: {
          description: 'Output, then the exit',
          content: { 'application/x-ndjson': { schema: execEventSchema } },
        },
        409: {
          description: 'The lease is not ready, or its agent is not connected',
          content: problems[400].content,
        },
        ...problems,
      },
    }),
    async (c) => {
      const lease = await broker.leases.get(c.get('principal'), c.req.valid('param').id);
      const body = c.req.valid('json');
      if (lease.status !== 'ready')
        throw new HttpProblem(409, 'Conflict', `lease ${lease.id} is ${lease.status}, not ready`, 'id');
      const allocation = lease.allocations[body.node];
      if (!allocation)
        throw new HttpProblem(
          400,
          'Invalid request',
          `node: the lease has ${lease.allocations.length} machines`,
          'node',
        );
      const hub = broker.agents;
      if (!hub?.placeable(allocation.instanceId))
        throw new HttpProblem(
          409,
          'Conflict',
          `the agent of instance ${allocation.instanceId} is not connected and healthy; try again shortly`,
          'id',
        );
      c.header('content-type', 'application/x-ndjson');
      // A streamed body is a plain Response, which the typed route's answers cannot describe.
      return stream(c, async (out) => {
        const lines: string[] = [];
        let wake: (() => void) | undefined;
        const exec = execOnAgent(
          hub,
          allocation.instanceId,
          { command: body.command, args: body.args, gpuIndices: allocation.gpuIndices, env: body.env },
          (event) => {
            lines.push(
              `${JSON.stringify('exit' in event ? event : { stream: event.stream, data: event.data.toString('base64') })}\n`,
            );
            wake?.();
          },
        );
        out.onAbort(() => exec.kill());
        let finished = false;
        void exec.done.then(() => {
          finished = true;
          wake?.();
        });
        for (;;) {
          while (lines.length > 0) await out.write(lines.shift() as string);
          if (finished) break;
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = undefined;
        }
      }) as never;
    },
  );
  return app;
}
