/**
 * Agents: join tokens and the list and revocation of agents (operator), and the two routes agents themselves use,
 * which authenticate with an agent credential rather than a tenant's token (`/v1/agent/…`, skipped by the bearer
 * middleware): the WebSocket they connect on (served by the hub on the upgrade; a plain GET gets 426), and their
 * bundles by content hash and image layers.
 */
import { Readable } from 'node:stream';
import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import type { BrokerCore } from '../broker.ts';
import { bearerToken } from '../tokens.ts';
import { requireOperator } from './auth.ts';
import { HttpProblem } from './problem.ts';
import { type Env, json, problems, router } from './route-docs.ts';
import { agentListSchema, agentSchema, joinTokenRequestSchema, joinTokenSchema } from './schemas.ts';

const iso = (ms: number) => new Date(ms).toISOString();

export function agentRoutes(broker: BrokerCore): OpenAPIHono<Env> {
  const app = router();
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/tokens/join',
      operationId: 'createJoinToken',
      summary: 'Create a join token (operator): it registers agents and does nothing else; shown only here',
      request: {
        body: { content: { 'application/json': { schema: joinTokenRequestSchema } }, required: true },
      },
      responses: { 201: json(joinTokenSchema, 'The new join token'), ...problems },
    }),
    async (c) => {
      requireOperator(c);
      const { ttlMs } = c.req.valid('json');
      const actor = c.get('principal').tenantName;
      const created = await broker.agentRegistry.createJoinToken({
        createdBy: actor,
        ...(ttlMs !== undefined ? { ttlMs } : {}),
      });
      await broker.audit.record(broker.database.db, {
        actor,
        action: 'join-token.create',
        subject: created.id,
        detail: { expiresAtMs: created.expiresAt },
      });
      return c.json(
        {
          token: created.token,
          id: created.id,
          expiresAt: created.expiresAt === null ? null : iso(created.expiresAt),
        },
        201,
      );
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/agents',
      operationId: 'listAgents',
      summary: 'Every agent that joined, with its connection while connected (operator)',
      responses: { 200: json(agentListSchema, 'Agents, newest first'), ...problems },
    }),
    async (c) => {
      requireOperator(c);
      return c.json({ agents: await agentViews(broker) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/v1/agents/{agentId}',
      operationId: 'revokeAgent',
      summary: "Revoke an agent's credential and disconnect it (operator); its containers are lost at once",
      request: { params: z.object({ agentId: z.string().min(1).max(200) }) },
      responses: { 200: json(agentSchema, 'The revoked agent'), ...problems },
    }),
    async (c) => {
      requireOperator(c);
      const { agentId } = c.req.valid('param');
      await broker.revokeAgent(agentId);
      const view = (await agentViews(broker)).find((a) => a.agentId === agentId);
      return c.json(view as z.infer<typeof agentSchema>, 200);
    },
  );

  // The agent connection is a WebSocket (served by the hub on the upgrade; `agent/protocol.ts`), which OpenAPI
  // cannot describe; reached without an upgrade it answers 426.
  app.get('/v1/agent/connect', () => {
    throw new HttpProblem(426, 'Upgrade Required', 'connect with a WebSocket (gpubroker agent)');
  });

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/agent/bundles/{tenantId}/{sha256}',
      operationId: 'agentBundle',
      summary: "A bundle by its SHA-256, for an agent (agent credential); the agent checks the bytes' hash",
      request: {
        params: z.object({
          tenantId: z.string().regex(/^[A-Za-z0-9_-]+$/),
          sha256: z.string().regex(/^[0-9a-f]{64}$/),
        }),
      },
      responses: {
        200: { description: 'The bundle', content: { 'text/javascript': { schema: z.string() } } },
        ...problems,
      },
    }),
    async (c) => {
      await requireAgentCredential(broker, c.req.header('authorization'));
      const { tenantId, sha256 } = c.req.valid('param');
      if (!broker.bundles.has(tenantId, sha256))
        throw new HttpProblem(404, 'Not found', `no bundle ${sha256}`);
      const bytes = await broker.bundles.read(tenantId, sha256);
      return c.body(new Uint8Array(bytes), 200, { 'content-type': 'text/javascript' });
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/agent/layers/{tenantId}/{id}',
      operationId: 'agentLayer',
      summary: "An image layer's tarball, for an agent (agent credential); the agent checks its SHA-256",
      request: {
        params: z.object({
          tenantId: z.string().regex(/^[A-Za-z0-9_-]+$/),
          id: z.string().regex(/^[0-9a-f]{64}$/),
        }),
      },
      responses: {
        200: { description: 'The layer', content: { 'application/gzip': { schema: z.string() } } },
        ...problems,
      },
    }),
    async (c) => {
      await requireAgentCredential(broker, c.req.header('authorization'));
      const { tenantId, id } = c.req.valid('param');
      const layer = broker.layers.info(tenantId, id);
      if (!layer) throw new HttpProblem(404, 'Not found', `no layer ${id}`);
      return new Response(Readable.toWeb(broker.layers.read(tenantId, id)) as ReadableStream, {
        status: 200,
        headers: { 'content-type': 'application/gzip', 'content-length': String(layer.bytes) },
      });
    },
  );
  return app;
}

/** The routes agents use take their own credential (a join token or a tenant's token opens nothing): 401 else. */
async function requireAgentCredential(broker: BrokerCore, authorization: string | undefined): Promise<void> {
  const token = bearerToken(authorization);
  const auth = token ? await broker.agentRegistry.authenticate(token) : undefined;
  if (!auth || auth.kind === 'join')
    throw new HttpProblem(401, 'Unauthorized', 'send an agent credential', 'authorization');
}

async function agentViews(broker: BrokerCore): Promise<z.infer<typeof agentSchema>[]> {
  const connected = new Map((broker.agents?.agents() ?? []).map((a) => [a.agentId, a]));
  return (await broker.agentRegistry.list()).map((record) => {
    const live = connected.get(record.id);
    return {
      agentId: record.id,
      instanceId: record.instanceId,
      hostname: record.hostname,
      labels: record.labels,
      joinedWith: record.joinedWith,
      createdAt: iso(record.createdAt),
      revokedAt: record.revokedAt === null ? null : iso(record.revokedAt),
      connection: live
        ? {
            gpus: live.gpus.map((g) => ({ index: g.index, name: g.name })),
            health: live.health,
            usdPerHour: live.usdPerHour ?? null,
            connectedAt: iso(live.connectedAtMs),
            lastSeenAt: iso(live.lastSeenAtMs),
            placeable: live.placeable,
          }
        : null,
    };
  });
}
