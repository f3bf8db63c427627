/**
 * Spend limits as middleware: a route that starts something new (a lease, a call) refuses a tenant at its spend
 * limit with 402 before it reads the request, so nothing is made, queued or billed.
 */
import type { MiddlewareHandler } from 'hono';
import type { BrokerCore } from '../broker.ts';
import type { Env } from './route-docs.ts';

export function spendCheck(broker: BrokerCore): MiddlewareHandler<Env> {
  return async (c, next) => {
    await broker.spend.check(c.get('principal').tenantId);
    await next();
  };
}
