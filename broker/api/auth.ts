/** Bearer tokens: every `/v1` request names its principal (tenant or operator); some routes need an operator. */
import type { Context, MiddlewareHandler } from 'hono';
import type { BrokerCore } from '../broker.ts';
import { bearerToken } from '../tokens.ts';
import { HttpProblem } from './problem.ts';
import type { Env } from './route-docs.ts';

export function authenticate(broker: BrokerCore): MiddlewareHandler<Env> {
  return async (c, next) => {
    // Agents' own routes take an agent credential, which they check themselves (agent-routes.ts).
    if (c.req.path.startsWith('/v1/agent/')) return next();
    const token = bearerToken(c.req.header('authorization'));
    if (!token)
      throw new HttpProblem(401, 'Unauthorized', 'send Authorization: Bearer <token>', 'authorization');
    const principal = await broker.tokens.authenticate(token);
    if (!principal) throw new HttpProblem(401, 'Unauthorized', 'unknown or revoked token', 'authorization');
    c.set('principal', principal);
    await next();
  };
}

/** Throws a 403 problem unless the request's principal is an operator. */
export function requireOperator(c: Context<Env>): void {
  if (c.get('principal').role !== 'operator')
    throw new HttpProblem(403, 'Forbidden', 'this needs an operator token', 'authorization');
}
