/**
 * The routes of a versioned document (the policy, the price book; see broker/versioned-store.ts): `GET path` the
 * version in force, `PUT path` a new version (operator), `GET path/history` every version, newest first (operator).
 * One definition for both, so they cannot drift apart.
 */
import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import { ValidationError } from '../../lib/errors.ts';
import type { VersionMeta } from '../versioned-store.ts';
import { requireOperator } from './auth.ts';
import { HttpProblem } from './problem.ts';
import { type Env, json, problems } from './route-docs.ts';

export interface VersionedRoutes<V extends VersionMeta, View> {
  /** `/v1/policy`. */
  readonly path: string;
  /** What the document is called in summaries and errors (`policy`, `price book`). */
  readonly noun: string;
  /** The operationIds' stems: `Policy` → getPolicy, setPolicy; `PolicyVersions` → listPolicyVersions. */
  readonly operation: string;
  readonly schema: z.ZodType<View>;
  /** The GET's summary, when it says more than `The ${noun} in force`. */
  readonly getSummary?: string;
  /** Extra words for the PUT's summary (`effective at the next tick`). */
  readonly setNote?: string;
  readonly current: () => Promise<V>;
  readonly set: (input: unknown, actor: string) => Promise<V>;
  readonly history: () => Promise<V[]>;
  readonly view: (version: V) => View | Promise<View>;
}

export function registerVersionedRoutes<V extends VersionMeta, View>(
  app: OpenAPIHono<Env>,
  r: VersionedRoutes<V, View>,
): void {
  app.openapi(
    createRoute({
      method: 'get',
      path: r.path,
      operationId: `get${r.operation}`,
      summary: r.getSummary ?? `The ${r.noun} in force`,
      responses: { 200: json(r.schema, 'Current version'), ...problems },
    }),
    async (c) => c.json((await r.view(await r.current())) as never, 200),
  );
  app.openapi(
    createRoute({
      method: 'put',
      path: r.path,
      operationId: `set${r.operation}`,
      summary: `Set a new ${r.noun} version (operator)${r.setNote ? `; ${r.setNote}` : ''}`,
      request: {
        body: {
          content: { 'application/json': { schema: z.record(z.string(), z.unknown()) } },
          required: true,
        },
      },
      responses: { 200: json(r.schema, 'The new version'), ...problems },
    }),
    async (c) => {
      requireOperator(c);
      try {
        const version = await r.set(c.req.valid('json'), c.get('principal').tenantName);
        return c.json((await r.view(version)) as never, 200);
      } catch (error) {
        if (error instanceof ValidationError)
          throw new HttpProblem(400, `Invalid ${r.noun}`, error.message, error.field);
        throw error;
      }
    },
  );
  app.openapi(
    createRoute({
      method: 'get',
      path: `${r.path}/history`,
      operationId: `list${r.operation}Versions`,
      summary: `Every ${r.noun} version, newest first (operator)`,
      responses: { 200: json(z.object({ versions: z.array(r.schema) }), 'History'), ...problems },
    }),
    async (c) => {
      requireOperator(c);
      return c.json({ versions: await Promise.all((await r.history()).map(r.view)) } as never, 200);
    },
  );
}
