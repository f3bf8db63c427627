/** What every route file shares: the context's variables, and how answers are described in the OpenAPI document. */
import type { z } from '@hono/zod-openapi';
import type { Principal } from '../tokens.ts';
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

/** A JSON answer described by its schema. */
export const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { 'application/json': { schema } },
});
