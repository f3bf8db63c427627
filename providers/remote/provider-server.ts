/**
 * Providers served over HTTP, so that a cloud (simulated here) lives outside the broker's process as a real one
 * does: a broker that crashes and restarts, or several broker replicas, all see the same inventory.
 *
 *   GET  /v1/vendors                      → { vendors }
 *   GET  /v1/:vendor/offerings            → OfferingQuote[]
 *   GET  /v1/:vendor/quotas               → ProviderQuota[] (empty when the provider publishes none)
 *   POST /v1/:vendor/provision            ProvisionRequest → Instance[]
 *   POST /v1/:vendor/terminate            { instanceIds } → 204
 *   POST /v1/:vendor/list                 ListFilter → Instance[]
 *   GET  /v1/:vendor/seq                  → { seq }: the last event's sequence number
 *   GET  /v1/:vendor/events?after=SEQ     NDJSON: { hello, seq }, then { seq, event } per event after SEQ
 *
 * Errors are the contract's typed errors as JSON (`wire.ts`). Each vendor keeps its last events in a ring, so a
 * client that reconnects with `after` misses nothing that happened while it was away (within the ring).
 */

import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { stream } from 'hono/streaming';
import type { z } from 'zod';
import { listening } from '../../lib/listen.ts';
import type { Provider, ProviderEvent } from '../provider.ts';
import { InvalidRequestError, ProviderError, ProviderUnavailableError } from '../provider-errors.ts';
import { errorToWire, listFilterSchema, provisionRequestSchema, terminateRequestSchema } from './wire.ts';

const RING = 20_000;
const STATUS: Record<string, 400 | 403 | 409 | 422 | 429 | 503> = {
  insufficient_capacity: 409,
  quota_exceeded: 403,
  throttled: 429,
  invalid_request: 422,
  provider_unavailable: 503,
};

interface Channel {
  readonly provider: Provider;
  readonly ring: { seq: number; event: ProviderEvent }[];
  seq: number;
  readonly waiters: Set<() => void>;
}

export interface ProviderServer {
  readonly url: string;
  /** Cuts every open connection, event streams included (clients reconnect); the server keeps listening. */
  dropConnections(): void;
  close(): Promise<void>;
}

export function createProviderApp(providers: readonly Provider[], signal: AbortSignal): Hono {
  const channels = new Map<string, Channel>();
  for (const provider of providers) {
    const channel: Channel = { provider, ring: [], seq: 0, waiters: new Set() };
    channels.set(provider.vendor, channel);
    void (async () => {
      for await (const event of provider.events({ signal })) {
        channel.seq++;
        channel.ring.push({ seq: channel.seq, event });
        if (channel.ring.length > RING) channel.ring.splice(0, channel.ring.length - RING);
        for (const wake of channel.waiters) wake();
      }
    })();
  }

  // Sequence numbers count from this server's start: a client that sees another epoch cannot replay from its own.
  const epoch = randomUUID();
  const app = new Hono();
  app.onError((error, c) => {
    // Anything but a typed error is a fault of this server: the caller cannot know what happened.
    const typed =
      error instanceof ProviderError
        ? error
        : new ProviderUnavailableError(c.req.param('vendor') ?? 'remote', undefined, error.message);
    const wire = errorToWire(typed);
    return c.json(wire, STATUS[wire.code] ?? 503);
  });
  const channelOf = (vendor: string): Channel => {
    const channel = channels.get(vendor);
    if (!channel) throw new InvalidRequestError(vendor, 'vendor', `no provider "${vendor}" here`);
    return channel;
  };
  const body = async <S extends z.ZodType>(vendor: string, raw: Request, schema: S): Promise<z.infer<S>> => {
    let json: unknown;
    try {
      json = await raw.json();
    } catch {
      throw new InvalidRequestError(vendor, 'body', 'not valid JSON');
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new InvalidRequestError(vendor, issue?.path.join('.') || 'body', issue?.message ?? 'invalid');
    }
    return parsed.data;
  };

  app.get('/v1/vendors', (c) => c.json({ vendors: [...channels.keys()] }));
  app.get('/v1/:vendor/offerings', async (c) =>
    c.json(await channelOf(c.req.param('vendor')).provider.offerings()),
  );
  app.get('/v1/:vendor/quotas', async (c) => {
    const { provider } = channelOf(c.req.param('vendor'));
    return c.json(provider.quotas ? await provider.quotas() : []);
  });
  app.post('/v1/:vendor/provision', async (c) => {
    const vendor = c.req.param('vendor');
    const { provider } = channelOf(vendor);
    const request = await body(vendor, c.req.raw, provisionRequestSchema);
    return c.json(await provider.provision(request));
  });
  app.post('/v1/:vendor/terminate', async (c) => {
    const vendor = c.req.param('vendor');
    const { provider } = channelOf(vendor);
    await provider.terminate((await body(vendor, c.req.raw, terminateRequestSchema)).instanceIds);
    return c.body(null, 204);
  });
  app.post('/v1/:vendor/list', async (c) => {
    const vendor = c.req.param('vendor');
    const { provider } = channelOf(vendor);
    return c.json(await provider.list(await body(vendor, c.req.raw, listFilterSchema)));
  });
  app.get('/v1/:vendor/seq', (c) => c.json({ seq: channelOf(c.req.param('vendor')).seq }));
  app.get('/v1/:vendor/events', (c) => {
    const channel = channelOf(c.req.param('vendor'));
    const after = Number(c.req.query('after') ?? channel.seq);
    c.header('content-type', 'application/x-ndjson');
    return stream(c, async (out) => {
      const sameEpoch = c.req.query('epoch') === undefined || c.req.query('epoch') === epoch;
      let sent = sameEpoch && Number.isSafeInteger(after) ? Math.min(after, channel.seq) : channel.seq;
      let closed = false;
      let wake: (() => void) | undefined;
      const onClose = () => {
        closed = true;
        wake?.();
      };
      out.onAbort(onClose);
      signal.addEventListener('abort', onClose, { once: true });
      await out.write(`${JSON.stringify({ hello: true, epoch, seq: sent })}\n`);
      while (!closed) {
        // Sequence numbers are contiguous, so the first unsent event's index is arithmetic.
        const first = channel.ring[0]?.seq ?? channel.seq + 1;
        const backlog = channel.ring.slice(Math.max(0, sent + 1 - first));
        if (backlog.length > 0) {
          await out.write(backlog.map((e) => `${JSON.stringify(e)}\n`).join(''));
          sent = backlog.at(-1)?.seq ?? sent;
          continue;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
          channel.waiters.add(resolve);
        });
        if (wake) channel.waiters.delete(wake);
        wake = undefined;
      }
      signal.removeEventListener('abort', onClose);
    });
  });
  return app;
}

/** Serves `providers` on `host:port` (port 0: any free port). Closing does not close the providers. */
export async function serveProviders(
  providers: readonly Provider[],
  options: { port?: number; host?: string } = {},
): Promise<ProviderServer> {
  const stop = new AbortController();
  const app = createProviderApp(providers, stop.signal);
  const host = options.host ?? '127.0.0.1';
  const server = serve({ fetch: app.fetch, port: options.port ?? 0, hostname: host });
  await listening(server, host, options.port ?? 0);
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host}:${port}`,
    dropConnections: () => (server as Server).closeAllConnections(),
    async close() {
      stop.abort();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      (server as Server).closeAllConnections();
      await closed;
    },
  };
}
