/**
 * Leases: request GPUs, list and read your leases, release one, run a command or open a shell on one. Tenants see
 * only their own.
 */
import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { stream } from 'hono/streaming';
import type { AgentHub } from '../agents/agent-hub.ts';
import { type ExecEvent, execOnAgent, type RemoteExec } from '../agents/remote-exec.ts';
import { ShellSessions } from '../agents/remote-shell.ts';
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

/** A shell's default command: bash where the machine has it, else sh. */
const DEFAULT_SHELL = ['/bin/sh', '-c', 'if [ -x /bin/bash ]; then exec /bin/bash; else exec /bin/sh; fi'];
/** A terminal's columns or rows. */
const winsize = z.number().int().min(1).max(10_000);

const shellRequestSchema = execRequestSchema
  .extend({
    /** Default: bash, or sh where the machine has no bash. */
    command: z.string().min(1).max(4096).optional(),
    cols: winsize.default(80),
    rows: winsize.default(24),
  })
  .strict()
  .openapi('ShellRequest');

/** One line of a shell's answer: its session first, then output and exit as an exec's. */
const shellEventSchema = z
  .union([z.object({ session: z.string().describe('where to send its input and resizes') }), execEventSchema])
  .openapi('ShellEvent');

const shellInputSchema = z
  .object({
    data: z
      .string()
      .max(1_000_000)
      .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'base64')
      .optional()
      .describe('base64 of the bytes typed'),
    /** Closes the shell's input after `data` (a shell reads end of file and exits). */
    eof: z.boolean().optional(),
    resize: z.object({ cols: winsize, rows: winsize }).strict().optional(),
  })
  .strict()
  .openapi('ShellInput');

const notReady = {
  description: 'The lease is not ready, or its agent is not connected',
  content: problems[400].content,
};

/** The machine of a ready lease that `exec` and `shell` run on: its allocation `node` and its connected agent. */
async function leaseMachine(broker: BrokerCore, c: Context<Env>, id: string, node: number) {
  const lease = await broker.leases.get(c.get('principal'), id);
  if (lease.status !== 'ready')
    throw new HttpProblem(409, 'Conflict', `lease ${lease.id} is ${lease.status}, not ready`, 'id');
  const allocation = lease.allocations[node];
  if (!allocation)
    throw new HttpProblem(
      400,
      'Invalid request',
      `node: the lease has ${lease.allocations.length} machines`,
      'node',
    );
  const hub: AgentHub | undefined = broker.agents;
  if (!hub?.placeable(allocation.instanceId))
    throw new HttpProblem(
      409,
      'Conflict',
      `the agent of instance ${allocation.instanceId} is not connected and healthy; try again shortly`,
      'id',
    );
  return { hub, allocation };
}

/**
 * An exec's events as an application/x-ndjson answer, each line as it comes; closing the connection kills it.
 * `start` gets `push` for the exec's events and lines of its own (`first`: ahead of those already waiting).
 */
function ndjson(
  c: Context<Env>,
  start: (push: (event: ExecEvent | { session: string }, first?: boolean) => void) => RemoteExec,
): never {
  c.header('content-type', 'application/x-ndjson');
  // A streamed body is a plain Response, which the typed route's answers cannot describe.
  return stream(c, async (out) => {
    const lines: string[] = [];
    let wake: (() => void) | undefined;
    const exec = start((event, first) => {
      const line = `${JSON.stringify(
        'stream' in event ? { stream: event.stream, data: event.data.toString('base64') } : event,
      )}\n`;
      if (first) lines.unshift(line);
      else lines.push(line);
      wake?.();
    });
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
}

export function leaseRoutes(broker: BrokerCore): OpenAPIHono<Env> {
  const app = router();
  const shells = new ShellSessions();
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
        409: notReady,
        ...problems,
      },
    }),
    async (c) => {
      const body = c.req.valid('json');
      const { hub, allocation } = await leaseMachine(broker, c, c.req.valid('param').id, body.node);
      return ndjson(c, (push) =>
        execOnAgent(
          hub,
          allocation.instanceId,
          { command: body.command, args: body.args, gpuIndices: allocation.gpuIndices, env: body.env },
          push,
        ),
      );
    },
  );
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/leases/{id}/shell',
      operationId: 'openShellOnLease',
      summary:
        "An interactive shell on a ready lease's machine, under a pseudo-terminal, with exactly its GPUs visible",
      description: [
        "The lease's agent runs the command (default: bash, or sh where bash is missing) under a pseudo-terminal of",
        '`cols` × `rows`, in the same sandbox and with the same GPUs as `exec`. The answer is application/x-ndjson:',
        'first `{session}`, the id that `POST /v1/leases/{id}/shell/{session}` types into and resizes, then the',
        "terminal's output as `{stream, data}` lines (data in base64), then one `{exit}` line. Closing the",
        'connection kills the shell.',
      ].join(' '),
      request: {
        params: idParam,
        body: { content: { 'application/json': { schema: shellRequestSchema } }, required: true },
      },
      responses: {
        200: {
          description: 'The session, the output, then the exit',
          content: { 'application/x-ndjson': { schema: shellEventSchema } },
        },
        409: notReady,
        ...problems,
      },
    }),
    async (c) => {
      const body = c.req.valid('json');
      const leaseId = c.req.valid('param').id;
      const { hub, allocation } = await leaseMachine(broker, c, leaseId, body.node);
      // An agent from before `lease shell` would run it without a terminal and drop its connection on the input.
      if (!hub.supports(allocation.instanceId, 'tty'))
        throw new HttpProblem(
          409,
          'Conflict',
          `the agent of instance ${allocation.instanceId} is too old for a shell (upgrade gpubroker on that machine); lease exec works`,
          'id',
        );
      const [command, ...args] = body.command === undefined ? DEFAULT_SHELL : [body.command, ...body.args];
      return ndjson(c, (push) => {
        // The session comes first: the exec's events only leave after this function returns.
        const exec = execOnAgent(
          hub,
          allocation.instanceId,
          {
            command: command as string,
            args,
            gpuIndices: allocation.gpuIndices,
            env: body.env,
            tty: { cols: body.cols, rows: body.rows },
          },
          push,
        );
        push({ session: shells.open(leaseId, exec) }, true);
        return exec;
      });
    },
  );
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/leases/{id}/shell/{session}',
      operationId: 'shellInput',
      summary: 'Type into a shell opened with `POST /v1/leases/{id}/shell`, close its input, or resize it',
      description:
        'Keystrokes are delivered in the order the requests arrive: a client sends one request at a time. A session that has ended is 404.',
      request: {
        params: idParam.extend({ session: z.string().min(1).max(64) }),
        body: { content: { 'application/json': { schema: shellInputSchema } }, required: true },
      },
      responses: { 204: { description: 'Passed on to the shell' }, ...problems },
    }),
    async (c) => {
      const { id, session } = c.req.valid('param');
      const input = c.req.valid('json');
      await broker.leases.get(c.get('principal'), id);
      const shell = shells.find(id, session);
      if (!shell)
        throw new HttpProblem(404, 'Not found', `no shell ${session} on lease ${id} (it ended?)`, 'session');
      if (input.resize) shell.resize(input.resize);
      if (input.data !== undefined || input.eof)
        shell.input(Buffer.from(input.data ?? '', 'base64'), input.eof);
      return c.body(null, 204);
    },
  );
  return app;
}
