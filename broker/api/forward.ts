/**
 * A follower replica passes API requests on to the leader, so clients can talk to any replica: leases and the
 * fleet live in the leader's memory (backed by the database), and only the leader may change them.
 */
import type { MiddlewareHandler } from 'hono';
import type { BrokerCore } from '../broker.ts';
import { HttpProblem } from './problem.ts';

/** Request headers that describe one hop of the connection, not the request. */
const HOP_BY_HOP = ['host', 'connection', 'keep-alive', 'content-length', 'transfer-encoding', 'upgrade'];

/** A follower passes every API call to the leader; a request passed on once is never passed on again. */
export function followersForward(broker: BrokerCore): MiddlewareHandler {
  return async (c, next) => {
    if (broker.loop.leader) return next();
    const leader = await broker.leaderUrl();
    if (!leader || leader === broker.advertisedUrl || c.req.header('x-forwarded-by'))
      throw new HttpProblem(
        503,
        'No leader',
        'this replica follows and no leader is known yet; retry shortly',
      );
    return forwardToLeader(c.req.raw, leader);
  };
}

export async function forwardToLeader(request: Request, leaderUrl: string): Promise<Response> {
  const incoming = new URL(request.url);
  const headers = new Headers(request.headers);
  for (const name of HOP_BY_HOP) headers.delete(name);
  headers.set('x-forwarded-by', 'gpubroker-follower');
  const hasBody = request.method !== 'GET' && request.method !== 'HEAD';
  let answer: Response;
  try {
    answer = await fetch(`${leaderUrl}${incoming.pathname}${incoming.search}`, {
      method: request.method,
      headers,
      ...(hasBody ? { body: await request.arrayBuffer() } : {}),
    });
  } catch (error) {
    throw new HttpProblem(
      503,
      'Leader unreachable',
      `this replica follows; the leader at ${leaderUrl} does not answer (${(error as Error).message}); retry shortly`,
    );
  }
  const out = new Headers(answer.headers);
  // fetch has already decoded the body; its length and encoding no longer apply.
  for (const name of ['content-length', 'content-encoding', 'transfer-encoding', 'connection'])
    out.delete(name);
  return new Response(answer.body, { status: answer.status, headers: out });
}
