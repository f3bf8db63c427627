/**
 * When the clouds crash (their process is down: every call fails with ProviderUnavailableError, the outcome of a
 * launch in flight unknown), the loop keeps ticking. A launch whose outcome is unknown stays pending and is repeated
 * with its key at each tick; it also counts as capacity on its way, so that the ticks of the outage do not launch
 * the same capacity again each time. Once the clouds answer, exactly what was asked for is there.
 */
import { and, eq } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../lib/clock.ts';
import type { Provider } from '../providers/provider.ts';
import { ProviderUnavailableError } from '../providers/provider-errors.ts';
import { createSimClouds } from '../providers/sim/sim-clouds.ts';
import type { SimProvider } from '../providers/sim/sim-provider.ts';
import { emptyDatabase } from '../test/empty-database.ts';
import { FAST_AWS_SCENARIO } from '../test/fast-aws.ts';
import { leaseRequestSchema } from './api/schemas.ts';
import { BrokerCore } from './broker.ts';
import { actions } from './db/schema.ts';

const START = Date.UTC(2026, 10, 23);

/** Simulated AWS behind a switch: while `down`, every call fails as a cloud that is not there would. */
class CrashingCloud implements Provider {
  readonly vendor: string;
  down = false;
  /** Launch calls that reached the cloud while it was up. */
  launches = 0;

  constructor(private readonly inner: SimProvider) {
    this.vendor = inner.vendor;
  }

  private check(): void {
    if (this.down) throw new ProviderUnavailableError(this.vendor, undefined, 'connection refused');
  }
  async offerings() {
    this.check();
    return this.inner.offerings();
  }
  async quotas() {
    this.check();
    return this.inner.quotas();
  }
  async provision(request: Parameters<Provider['provision']>[0]) {
    this.check();
    this.launches++;
    return this.inner.provision(request);
  }
  async terminate(ids: readonly string[]) {
    this.check();
    return this.inner.terminate(ids);
  }
  async list(filter?: Parameters<Provider['list']>[0]) {
    this.check();
    return this.inner.list(filter);
  }
  events(options?: Parameters<Provider['events']>[0]) {
    return this.inner.events(options);
  }
  close() {
    return this.inner.close();
  }
}

describe('clouds that crash under a running broker', () => {
  it('launch nothing twice: an unknown launch is capacity on its way, repeated once they answer', async () => {
    const clock = new VirtualClock(START);
    const [sim] = createSimClouds({ clock, scenario: FAST_AWS_SCENARIO });
    const cloud = new CrashingCloud(sim as SimProvider);
    const database = await emptyDatabase();
    const broker = new BrokerCore({ database, clock, providers: [cloud], seed: 1 });
    try {
      await broker.start({ schedule: false });
      await broker.setPolicy(
        {
          buffer: { default: { gpus: 0, fraction: 0 }, perGpu: { H100: { gpus: 0, fraction: 0 } } },
          spotMaxShare: 0,
          vendors: { allow: ['aws'], deny: [] },
          regions: { allow: ['us-east-1'], deny: [] },
        },
        'test',
      );
      await broker.loop.tick();
      const tenant = await broker.tokens.authenticate((await broker.tokens.create('t', 'tenant')).token);
      if (!tenant) throw new Error('no tenant');

      // The clouds go down; a lease for two nodes' worth of GPUs waits while the loop ticks ten times.
      cloud.down = true;
      for (let n = 0; n < 2; n++)
        await broker.leases.request(
          tenant,
          leaseRequestSchema.parse({ gpu: 'H100', count: 8, placement: 'single-node' }),
        );
      for (let n = 0; n < 10; n++) {
        await broker.loop.tick();
        await clock.advanceBy(1_000);
      }
      const pending = await database.db
        .select()
        .from(actions)
        .where(and(eq(actions.status, 'pending'), eq(actions.kind, 'provision')));
      expect(pending.reduce((n, a) => n + a.count, 0)).toBe(2);
      expect(cloud.launches).toBe(0);

      // Back up: the pending launches are repeated, and nothing more is launched.
      cloud.down = false;
      for (let n = 0; n < 5; n++) {
        await broker.loop.tick();
        await clock.advanceBy(3_000);
      }
      const held = await sim?.list({});
      expect(held?.filter((i) => i.state !== 'terminated')).toHaveLength(2);
      expect(broker.leases.counts()).toEqual({ pending: 0, ready: 2 });
    } finally {
      await broker.close();
      await cloud.close();
      await database.close();
    }
  });
});
