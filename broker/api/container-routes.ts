/**
 * Containers and calls (`GET /v1/containers`): the functions' containers per machine, calls queued and running per
 * function, and the last failures with their reason. A tenant sees its own apps' containers and its own calls; an
 * operator sees everyone's.
 */
import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import type { BrokerCore } from '../broker.ts';
import { tenants } from '../db/schema.ts';
import { type Env, json, problems, router } from './route-docs.ts';
import { containersSchema } from './schemas.ts';

type Containers = z.infer<typeof containersSchema>;

export function containerRoutes(broker: BrokerCore): OpenAPIHono<Env> {
  const app = router();
  const { db } = broker.database;
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/containers',
      operationId: 'listContainers',
      summary: 'Containers per machine, calls queued and running per function, recent failures and why',
      request: {
        query: z
          .object({ failures: z.coerce.number().int().min(0).max(200).default(20) })
          .strict()
          .openapi({ description: 'failures: how many of the last failed calls to list' }),
      },
      responses: { 200: json(containersSchema, 'Containers and calls'), ...problems },
    }),
    async (c) => {
      const principal = c.get('principal');
      const all = principal.role === 'operator';
      const own = (tenantId: string) => all || tenantId === principal.tenantId;
      const names = new Map(
        (await db.select({ id: tenants.id, name: tenants.name }).from(tenants)).map((t) => [t.id, t.name]),
      );
      const name = (tenantId: string) => names.get(tenantId) ?? tenantId;

      const calls = new Map<string, Containers['calls'][number]>();
      for (const entry of broker.runtime.callsInFlight()) {
        if (!own(entry.tenantId)) continue;
        const key = `${entry.tenantId}\u0000${entry.appTenantId}\u0000${entry.app}\u0000${entry.functionName}`;
        const row = calls.get(key) ?? {
          tenant: name(entry.tenantId),
          app: entry.app,
          function: entry.functionName,
          queued: 0,
          running: 0,
        };
        if (entry.status === 'pending') row.queued += entry.count;
        else row.running += entry.count;
        calls.set(key, row);
      }
      const answer: Containers = {
        containers: broker.runtime
          .containers()
          .filter((k) => own(k.tenantId))
          .map((k) => ({
            id: k.containerId,
            tenant: name(k.tenantId),
            app: k.app,
            function: k.functionName,
            state: k.state,
            instanceId: k.instanceId,
            gpu: k.gpu,
            gpuIndices: [...k.gpuIndices],
            vendor: k.vendor,
            region: k.region,
            capacityType: k.capacityType,
            inFlight: k.inFlight,
            placedAtMs: k.placedAtMs,
            ...(k.readyAtMs === undefined ? {} : { readyAtMs: k.readyAtMs }),
            ...(k.coldStartMs === undefined ? {} : { coldStartMs: k.coldStartMs }),
            ...(k.reason === undefined ? {} : { reason: k.reason }),
          })),
        calls: [...calls.values()],
        failures: broker.recentFailures
          .latest(c.req.valid('query').failures, (f) => own(f.tenantId) || own(f.appTenantId))
          .map((f) => ({
            callId: f.callId,
            tenant: name(f.tenantId),
            app: f.app,
            function: f.functionName,
            attempts: f.attempts,
            error: `${f.error.name}: ${f.error.message}`,
            atMs: f.atMs,
          })),
      };
      return c.json(answer, 200);
    },
  );
  return app;
}
