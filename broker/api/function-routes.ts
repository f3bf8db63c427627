/**
 * Functions on HTTP: bundles (content-addressed), apps, calls and container logs. A tenant sees only its own apps,
 * calls and logs; a bundle is stored under the tenant that uploaded it.
 *
 *   GET  /v1/bundles/{id}                      200 when the broker has it (the CLI then uploads nothing)
 *   PUT  /v1/bundles/{id}                      the bundle's bytes; the id must be their SHA-256
 *   PUT  /v1/apps/{app}                        { bundleId, functions: { name: options }, ephemeral? }
 *   GET  /v1/apps, GET /v1/apps/{app}          apps with their containers and calls
 *   DELETE /v1/apps/{app}[?keepWarm=true]      stops it: containers stop, unfinished calls fail (keepWarm: once its
 *                                              containers' scale-down window has passed, unless deployed again)
 *   POST /v1/apps/{app}/functions/{fn}/calls   { inputs: [[...args], …] } → 202 { callIds }
 *   GET  /v1/calls/{id}?waitMs=                the call (waits up to waitMs for it to finish)
 *   POST /v1/calls/wait                        { callIds, waitMs } → the calls among them that have finished
 *   DELETE /v1/calls/{id}                      cancels it
 *   GET  /v1/apps/{app}/logs                   NDJSON: the app's container output as it comes
 */
import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import { and, eq } from 'drizzle-orm';
import type { Context } from 'hono';
import { stream } from 'hono/streaming';
import type { BrokerCore } from '../broker.ts';
import { apps } from '../db/schema.ts';
import { CallWaits } from '../functions/call-waits.ts';
import type { Principal } from '../tokens.ts';
import { HttpProblem } from './problem.ts';
import { type Env, json, problems, router } from './route-docs.ts';
import {
  appNameSchema,
  appStatusSchema,
  bundleIdSchema,
  bundleUploadSchema,
  callViewSchema,
  deploySchema,
  layerIdSchema,
  layerSchema,
  logLineSchema,
} from './schemas.ts';
import { spendCheck } from './spend-check.ts';

const callIdParam = z.object({ id: z.string().min(1).max(128) });
/** Most inputs in one request, and most calls one wait may name. */
const MAX_INPUTS = 10_000;
const MAX_WAIT_MS = 60_000;

export function functionRoutes(broker: BrokerCore): OpenAPIHono<Env> {
  const app = router();
  const { runtime, bundles } = broker;
  const { db } = broker.database;

  /** The call, if it exists and belongs to the principal's tenant (404 otherwise, as for another tenant's). */
  const ownCall = (principal: Principal, id: string) => {
    const view = runtime.get(id);
    if (!view || view.tenantId !== principal.tenantId)
      throw new HttpProblem(404, 'Not found', `no call "${id}"`);
    return view;
  };
  const callView = async (principal: Principal, id: string) => {
    const view = ownCall(principal, id);
    const finished = view.status === 'succeeded' || view.status === 'failed' || view.status === 'cancelled';
    const outcome = finished ? await runtime.result(id) : undefined;
    return {
      id,
      status: view.status,
      ...(outcome?.status === 'succeeded' ? { value: outcome.value } : {}),
      ...(view.error ? { error: view.error } : {}),
      attempts: view.attempts,
      createdAtMs: view.createdAtMs,
      ...(view.startedAtMs !== undefined ? { startedAtMs: view.startedAtMs } : {}),
      ...(view.finishedAtMs !== undefined ? { finishedAtMs: view.finishedAtMs } : {}),
    };
  };
  const waits = new CallWaits(runtime, broker.clock);
  /** Waits for the calls as CallWaits does, then the views of those that finished. */
  const finishedCalls = async (principal: Principal, callIds: readonly string[], waitMs: number) => {
    await waits.wait(callIds, waitMs);
    return Promise.all(callIds.filter((id) => waits.finished(id)).map((id) => callView(principal, id)));
  };
  const status = (principal: Principal, name: string, ephemeral: boolean) => {
    const view = runtime.getApp(principal.tenantId, name);
    if (!view) throw new HttpProblem(404, 'Not found', `no app "${name}"`);
    const containers = runtime
      .containers()
      .filter((c) => c.tenantId === principal.tenantId && c.app === name);
    const calls = runtime.callCounts(principal.tenantId, name);
    return {
      name,
      bundleId: view.bundleId.split('/')[1] ?? view.bundleId,
      version: view.version,
      functions: view.functions,
      ephemeral,
      containers: { total: containers.length, ready: containers.filter((c) => c.state === 'ready').length },
      calls,
    };
  };
  const stored = async (principal: Principal, name: string) => {
    const [row] = await db
      .select()
      .from(apps)
      .where(and(eq(apps.tenantId, principal.tenantId), eq(apps.name, name)));
    return row;
  };

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/bundles/{id}',
      operationId: 'getBundle',
      summary: 'Whether the broker has this bundle (yours)',
      request: { params: z.object({ id: bundleIdSchema }) },
      responses: { 200: json(z.object({ id: z.string() }), 'It has it'), ...problems },
    }),
    (c) => {
      const { id } = c.req.valid('param');
      if (!bundles.has(c.get('principal').tenantId, id))
        throw new HttpProblem(404, 'Not found', `no bundle ${id}`);
      return c.json({ id }, 200);
    },
  );
  // The body is the bundle's bytes, not JSON: the route is declared for the document and served by hand.
  app.openAPIRegistry.registerPath({
    method: 'put',
    path: '/v1/bundles/{id}',
    operationId: 'uploadBundle',
    summary: 'Upload a bundle: its bytes, whose SHA-256 must be the id',
    request: {
      params: z.object({ id: bundleIdSchema }),
      body: {
        content: {
          'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) },
        },
        required: true,
      },
    },
    responses: {
      201: json(bundleUploadSchema, 'Stored'),
      200: json(bundleUploadSchema, 'The broker had it already'),
      ...problems,
    },
  });
  app.put('/v1/bundles/:id', async (c: Context<Env>) => {
    const id = c.req.param('id') ?? '';
    const created = bundles.put(c.get('principal').tenantId, id, new Uint8Array(await c.req.arrayBuffer()));
    return c.json({ id, uploaded: created }, created ? 201 : 200);
  });

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/layers/{id}',
      operationId: 'getLayer',
      summary: 'An image layer of yours: its tarball’s SHA-256 and size (404: build and upload it)',
      request: { params: z.object({ id: layerIdSchema }) },
      responses: { 200: json(layerSchema, 'The layer'), ...problems },
    }),
    (c) => {
      const { id } = c.req.valid('param');
      const layer = broker.layers.info(c.get('principal').tenantId, id);
      if (!layer) throw new HttpProblem(404, 'Not found', `no layer ${id}`);
      return c.json(layer, 200);
    },
  );
  // The body is a gzip tarball of node_modules, streamed to disk: declared for the document, served by hand.
  app.openAPIRegistry.registerPath({
    method: 'put',
    path: '/v1/layers/{id}',
    operationId: 'uploadLayer',
    summary: "Upload an image layer: a gzip tarball of node_modules, named by the hash of the image's recipe",
    request: {
      params: z.object({ id: layerIdSchema }),
      body: {
        content: { 'application/gzip': { schema: z.string().openapi({ format: 'binary' }) } },
        required: true,
      },
    },
    responses: {
      201: json(layerSchema, 'Stored'),
      200: json(layerSchema, 'The broker had it already (the body is not read)'),
      ...problems,
    },
  });
  app.put('/v1/layers/:id', async (c: Context<Env>) => {
    const id = c.req.param('id') ?? '';
    const { layer, created } = await broker.layers.put(c.get('principal').tenantId, id, c.req.raw.body);
    return c.json(layer, created ? 201 : 200);
  });

  app.openapi(
    createRoute({
      method: 'put',
      path: '/v1/apps/{name}',
      operationId: 'deployApp',
      summary: 'Deploy an app (or re-deploy it with new code)',
      request: {
        params: z.object({ name: appNameSchema }),
        body: { content: { 'application/json': { schema: deploySchema } }, required: true },
      },
      responses: { 200: json(appStatusSchema, 'The app'), ...problems },
    }),
    async (c) => {
      const principal = c.get('principal');
      const { name } = c.req.valid('param');
      const body = c.req.valid('json');
      // Every function's options were checked (by the contract's schema) before anything changes. The runtime takes
      // them parsed; the database keeps them as written (the request's JSON, which hono keeps after validating it),
      // to be parsed again at start-up by the same schema.
      const functions = body.functions;
      const written = ((await c.req.json()) as { functions: Record<string, unknown> }).functions;
      if (!bundles.has(principal.tenantId, body.bundleId))
        throw new HttpProblem(
          400,
          'Invalid request',
          `bundleId: upload the bundle first (PUT /v1/bundles/${body.bundleId})`,
          'bundleId',
        );
      for (const [fn, options] of Object.entries(functions)) {
        const layer = options.image?.layer;
        if (layer && !broker.layers.info(principal.tenantId, layer))
          throw new HttpProblem(
            400,
            'Invalid request',
            `functions.${fn}.image.layer: upload the layer first (PUT /v1/layers/${layer})`,
            `functions.${fn}.image.layer`,
          );
      }
      runtime.deployApp({
        tenantId: principal.tenantId,
        app: name,
        bundleId: `${principal.tenantId}/${body.bundleId}`,
        functions,
      });
      // A run that ended left it warm; deployed again, it is kept.
      broker.endedRuns.forget(principal.tenantId, name);
      const now = broker.clock.now();
      await db
        .insert(apps)
        .values({
          tenantId: principal.tenantId,
          name,
          bundleId: body.bundleId,
          functions: written,
          ephemeral: body.ephemeral,
          createdAt: now,
          updatedAt: now,
        })
        .onConflictDoUpdate({
          target: [apps.tenantId, apps.name],
          set: {
            bundleId: body.bundleId,
            functions: written,
            ephemeral: body.ephemeral,
            updatedAt: now,
          },
        });
      return c.json(status(principal, name, body.ephemeral), 200);
    },
  );
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/apps',
      operationId: 'listApps',
      summary: 'Your apps',
      responses: { 200: json(z.object({ apps: z.array(appStatusSchema) }), 'Apps'), ...problems },
    }),
    async (c) => {
      const principal = c.get('principal');
      const rows = await db.select().from(apps).where(eq(apps.tenantId, principal.tenantId));
      const list = rows
        .filter((r) => runtime.getApp(principal.tenantId, r.name))
        .map((r) => status(principal, r.name, r.ephemeral));
      return c.json({ apps: list }, 200);
    },
  );
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/apps/{name}',
      operationId: 'getApp',
      summary: 'One app: containers and calls',
      request: { params: z.object({ name: appNameSchema }) },
      responses: { 200: json(appStatusSchema, 'The app'), ...problems },
    }),
    async (c) => {
      const principal = c.get('principal');
      const { name } = c.req.valid('param');
      return c.json(status(principal, name, (await stored(principal, name))?.ephemeral ?? false), 200);
    },
  );
  app.openapi(
    createRoute({
      method: 'delete',
      path: '/v1/apps/{name}',
      operationId: 'stopApp',
      summary:
        "Stop an app: its containers stop and its unfinished calls fail; with keepWarm (a run's end), once its containers' scale-down window has passed, unless it is deployed again before",
      request: {
        params: z.object({ name: appNameSchema }),
        query: z
          .object({
            keepWarm: z.enum(['true', 'false']).default('false').openapi({
              description:
                'true: stop it only once its idle containers would have scaled down, so that a deploy before then (the next `gpubroker run` of the same code) finds them warm',
            }),
          })
          .strict(),
      },
      responses: {
        200: json(
          z.object({
            name: z.string(),
            stopped: z.boolean(),
            stopsAtMs: z.number().int().optional().openapi({ description: 'With keepWarm: when it stops' }),
          }),
          'Stopped, or to stop',
        ),
        ...problems,
      },
    }),
    async (c) => {
      const principal = c.get('principal');
      const { name } = c.req.valid('param');
      if (!runtime.getApp(principal.tenantId, name))
        throw new HttpProblem(404, 'Not found', `no app "${name}"`);
      if (c.req.valid('query').keepWarm === 'true') {
        const stopsAtMs = broker.endedRuns.ended(principal.tenantId, name) as number;
        return c.json({ name, stopped: false, stopsAtMs }, 200);
      }
      await broker.stopApp(principal.tenantId, name);
      return c.json({ name, stopped: true }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/apps/{name}/functions/{fn}/calls',
      middleware: [spendCheck(broker)] as const,
      operationId: 'callFunction',
      summary:
        'Call a function once per input (each input is the argument list); with waitMs, also wait for them as POST /v1/calls/wait does',
      request: {
        params: z.object({ name: appNameSchema, fn: z.string().min(1).max(64) }),
        body: {
          content: {
            'application/json': {
              schema: z
                .object({
                  inputs: z.array(z.array(z.unknown())).min(1).max(MAX_INPUTS),
                  /**
                   * Waits up to this long for the calls (one of one; of more, a quarter, or those done 20 ms after
                   * the first) and answers those that finished in `calls`: a quick `remote` is one request.
                   */
                  waitMs: z.number().int().min(0).max(MAX_WAIT_MS).optional(),
                })
                .strict(),
            },
          },
          required: true,
        },
      },
      responses: {
        202: json(
          z
            .object({ callIds: z.array(z.string()), calls: z.array(callViewSchema).optional() })
            .openapi('CallsQueued'),
          'Queued (with waitMs: and those that finished meanwhile, in `calls`)',
        ),
        ...problems,
      },
    }),
    async (c) => {
      const principal = c.get('principal');
      const { name, fn } = c.req.valid('param');
      const { inputs, waitMs } = c.req.valid('json');
      const callIds = inputs.map((args) => runtime.call(principal.tenantId, name, fn, args));
      // On disk before the answer: a call the client was told about survives a crash.
      try {
        await broker.callJournal.accepted(
          callIds.map((callId, i) => ({
            callId,
            tenantId: principal.tenantId,
            appTenantId: principal.tenantId,
            app: name,
            functionName: fn,
            args: inputs[i] as unknown[],
            createdAtMs: runtime.get(callId)?.createdAtMs ?? broker.clock.now(),
          })),
        );
      } catch (error) {
        for (const callId of callIds) runtime.cancel(callId);
        throw error;
      }
      if (waitMs === undefined) return c.json({ callIds }, 202);
      return c.json({ callIds, calls: await finishedCalls(principal, callIds, waitMs) }, 202);
    },
  );
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/calls/{id}',
      operationId: 'getCall',
      summary: 'A call; with waitMs, waits up to that long for it to finish',
      request: {
        params: callIdParam,
        query: z.object({ waitMs: z.coerce.number().int().min(0).max(MAX_WAIT_MS).default(0) }).strict(),
      },
      responses: { 200: json(callViewSchema, 'The call'), ...problems },
    }),
    async (c) => {
      const principal = c.get('principal');
      const { id } = c.req.valid('param');
      ownCall(principal, id);
      await waits.wait([id], c.req.valid('query').waitMs);
      return c.json(await callView(principal, id), 200);
    },
  );
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/calls/wait',
      operationId: 'waitForCalls',
      summary:
        'Waits until some of the calls have finished (one of one; of more, a quarter, or those done 20 ms after the first) or waitMs; answers those that have',
      request: {
        body: {
          content: {
            'application/json': {
              schema: z
                .object({
                  callIds: z.array(z.string().min(1).max(128)).min(1).max(MAX_INPUTS),
                  waitMs: z.number().int().min(0).max(MAX_WAIT_MS).default(10_000),
                })
                .strict(),
            },
          },
          required: true,
        },
      },
      responses: { 200: json(z.object({ calls: z.array(callViewSchema) }), 'Finished calls'), ...problems },
    }),
    async (c) => {
      const principal = c.get('principal');
      const { callIds, waitMs } = c.req.valid('json');
      // Each id is checked, without making its view (a map's wait names up to 1,000).
      for (const id of callIds)
        if (runtime.callerOf(id) !== principal.tenantId)
          throw new HttpProblem(404, 'Not found', `no call "${id}"`);
      return c.json({ calls: await finishedCalls(principal, callIds, waitMs) }, 200);
    },
  );
  app.openapi(
    createRoute({
      method: 'delete',
      path: '/v1/calls/{id}',
      operationId: 'cancelCall',
      summary: 'Cancel a call',
      request: { params: callIdParam },
      responses: { 200: json(callViewSchema, 'The call'), ...problems },
    }),
    async (c) => {
      const principal = c.get('principal');
      const { id } = c.req.valid('param');
      ownCall(principal, id);
      runtime.cancel(id);
      return c.json(await callView(principal, id), 200);
    },
  );

  // Served as a stream of NDJSON lines: declared for the document and served by hand.
  app.openAPIRegistry.registerPath({
    method: 'get',
    path: '/v1/apps/{name}/logs',
    operationId: 'streamAppLogs',
    summary: "The app's container output as it comes, one JSON object a line, until the app stops",
    request: { params: z.object({ name: appNameSchema }) },
    responses: {
      200: {
        description: 'Log lines (NDJSON)',
        content: { 'application/x-ndjson': { schema: logLineSchema } },
      },
      ...problems,
    },
  });
  app.get('/v1/apps/:name/logs', (c: Context<Env>) => {
    const principal = c.get('principal');
    const name = c.req.param('name') ?? '';
    if (!runtime.getApp(principal.tenantId, name))
      throw new HttpProblem(404, 'Not found', `no app "${name}"`);
    c.header('content-type', 'application/x-ndjson');
    return stream(c, async (out) => {
      const lines: string[] = [];
      let wake: (() => void) | undefined;
      let closed = false;
      const unsubscribe = runtime.onLog((line) => {
        if (line.tenantId !== principal.tenantId || line.app !== name) return;
        lines.push(
          `${JSON.stringify({ containerId: line.containerId, function: line.functionName, stream: line.stream, text: line.text, atMs: line.atMs })}\n`,
        );
        wake?.();
      });
      out.onAbort(() => {
        closed = true;
        wake?.();
      });
      try {
        while (!closed) {
          if (lines.length > 0) {
            await out.write(lines.splice(0).join(''));
            continue;
          }
          if (!runtime.getApp(principal.tenantId, name)) break;
          await new Promise<void>((resolve) => {
            wake = resolve;
            setTimeout(resolve, 1000);
          });
          wake = undefined;
        }
      } finally {
        unsubscribe();
      }
    });
  });
  return app;
}
