/** What every route file shares: the context's variables, and how answers are described in the OpenAPI document. */
import { OpenAPIHono, type z } from '@hono/zod-openapi';
import { issueField } from '../../lib/errors.ts';
import type { Principal } from '../tokens.ts';
import { HttpProblem } from './problem.ts';
import { problemSchema } from './schemas.ts';

/** Set by the bearer-token middleware on every `/v1` route. */
export type Env = { Variables: { principal: Principal } };

const problem = (description: string) => ({
  description,
  content: { 'application/problem+json': { schema: problemSchema } },
});

/** The problem+json answers any `/v1` route may give. */
export const problems = {
  400: problem('Invalid request'),
  401: problem('Missing or unknown token'),
  402: problem('A spend limit was reached'),
  403: problem('Operator role needed'),
  404: problem('Not found'),
} as const;

/** The answer of a route outside `/v1` to a request it cannot serve: like every error, problem+json. */
export const publicProblems = { '4XX': problem('The request was refused') } as const;

/** A JSON answer described by its schema. */
export const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { 'application/json': { schema } },
});

/** The security scheme of every `/v1` route: `Authorization: Bearer <token>` (a `gpubroker token` token). */
export const BEARER = 'bearerToken';
export const bearerScheme = {
  type: 'http',
  scheme: 'bearer',
  description: 'An API token (`gpubroker token create`); tenants see their own resources, operators all',
} as const;
/** Routes outside `/v1` (health, metrics) take no token. */
export const noToken = { security: [] };

/** The OpenAPI document's own fields; the paths and components come from the routes. */
export const documentConfig = {
  openapi: '3.1.0',
  info: {
    title: 'gpubroker',
    version: '0.1.0',
    description: 'Leases of GPUs on a planned multi-cloud fleet.',
    license: { name: 'Apache-2.0', url: 'https://www.apache.org/licenses/LICENSE-2.0' },
  },
  servers: [{ url: '/', description: 'The broker that serves this document' }],
  security: [{ [BEARER]: [] }],
};

/**
 * A router for one resource, mounted on the app with `.route()` (its routes and their OpenAPI entries join the
 * app's). A request that fails its schema is a 400 problem naming the first field that failed.
 */
export function router(): OpenAPIHono<Env> {
  return new OpenAPIHono<Env>({
    defaultHook: (result) => {
      if (!result.success) {
        const named = issueField(result.error.issues[0]);
        const field = named.field || 'body';
        throw new HttpProblem(400, 'Invalid request', `${field}: ${named.message}`, field);
      }
    },
  });
}
