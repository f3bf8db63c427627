/**
 * How the control loop meets the clouds' limits: quotas (published, or learned from a refusal), launches in
 * batches, and shortfall triggers that do not re-plan while booting instances already cover the demand. The real
 * broker on in-memory PGlite against the simulated clouds, on a virtual clock.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { VirtualClock } from '../lib/clock.ts';
import { loadCatalog } from '../providers/catalog/load-catalog.ts';
import type { Provider } from '../providers/provider.ts';
import type { SimScenarioInput } from '../providers/sim/scenario.ts';
import { createSimClouds } from '../providers/sim/sim-clouds.ts';
import { settle } from '../simulations/engine/drive.ts';
import { Broker } from './broker.ts';
import { openDatabase } from './db/open-database.ts';
import { actions } from './db/schema.ts';
import { LAUNCH_BATCH } from './loop.ts';
import type { BrokerPolicyInput } from './policy.ts';

const START = Date.UTC(2026, 10, 23);
const BOOT_MS = 60_000;
const REGIONS = ['us-east-1', 'us-east-2', 'us-west-2'];

let close: (() => Promise<void>) | undefined;
afterEach(async () => {
  await close?.();
  close = undefined;
});

/** A broker over simulated AWS selling only on-demand L4 (`g6.xlarge` in stock, 1 GPU each). */
async function brokerWith(
  scenario: SimScenarioInput,
  policy: BrokerPolicyInput,
  wrap: (p: Provider) => Provider = (p) => p,
) {
  const clock = new VirtualClock(START);
  const offerings = loadCatalog().filter((o) => o.gpu === 'L4' && o.vendor === 'aws');
  const clouds = createSimClouds({
    clock,
    offerings,
    scenario: {
      seed: 3,
      vendors: ['aws'],
      spot: { replay: false },
      ...scenario,
      settings: {
        aws: {
          throttle: null,
          bootFailureRate: 0,
          provisioningDelay: { 'on-demand': { kind: 'fixed', ms: BOOT_MS } },
          ...(scenario.settings?.aws ?? {}),
        },
      },
      stock: {
        onDemandPerZone: 0,
        spotPerZone: 0,
        rules: [{ match: { instanceType: 'g6.xlarge' }, onDemandPerZone: 64 }],
      },
    } as SimScenarioInput,
  });
  const database = await openDatabase({});
  const broker = new Broker({ database, clock, providers: clouds.map(wrap), seed: 5 });
  await broker.setPolicy({ spotMaxShare: 0, vendors: { allow: ['aws'], deny: [] }, ...policy }, 'test');
  await broker.start({ schedule: false });
  close = async () => {
    await broker.close();
    for (const c of clouds) await c.close();
    await database.close();
  };
  const advance = async (ms: number) => {
    await clock.advanceBy(ms);
    await settle();
  };
  const gpusByRegion = () => {
    const held = new Map<string, number>();
    for (const i of broker.fleet.all())
      if (i.state !== 'terminating') held.set(i.region, (held.get(i.region) ?? 0) + i.gpusPerInstance);
    return held;
  };
  return { broker, clock, database, advance, gpusByRegion };
}

const l4Buffer = (gpus: number): BrokerPolicyInput => ({
  buffer: { default: { gpus: 0, fraction: 0 }, perGpu: { L4: { gpus, fraction: 0 } } },
});

describe('control loop against the clouds’ limits', () => {
  it('launches a large plan in batches, each its own action and key', async () => {
    const { broker, database } = await brokerWith(
      {},
      { ...l4Buffer(40), regions: { allow: ['us-east-1'], deny: [] } },
    );
    const tick = await broker.loop.tick();
    expect(tick.provisioned).toBe(40);
    const rows = (await database.db.select().from(actions)).filter((a) => a.kind === 'provision');
    expect(rows.map((r) => r.count)).toEqual([LAUNCH_BATCH, LAUNCH_BATCH, 40 - 2 * LAUNCH_BATCH]);
    const [first, ...rest] = rows.map((r) => r.id);
    expect(rest).toEqual([`${first}-b1`, `${first}-b2`]);
    expect(rows.every((r) => r.status === 'done')).toBe(true);
  });

  it('plans within the quotas a provider publishes: no launch is refused', async () => {
    const { broker, database, gpusByRegion } = await brokerWith(
      { settings: { aws: { quotas: [{ capacityType: 'on-demand', maxGpus: 16 }] } } },
      { ...l4Buffer(40), regions: { allow: REGIONS, deny: [] } },
    );
    const tick = await broker.loop.tick();
    expect(tick.provisioned).toBe(40);
    expect(tick.rounds).toBe(1);
    for (const [region, gpus] of gpusByRegion()) expect(gpus, region).toBeLessThanOrEqual(16);
    const failed = (await database.db.select().from(actions)).filter((a) => a.status === 'failed');
    expect(failed).toEqual([]);
  });

  it('learns a quota from a refusal when the provider publishes none, and plans within it', async () => {
    // The same clouds behind a client that cannot read quotas (as for the real clouds today).
    const withoutQuotas = (p: Provider): Provider => ({
      vendor: p.vendor,
      offerings: () => p.offerings(),
      provision: (r) => p.provision(r),
      terminate: (ids) => p.terminate(ids),
      list: (f) => p.list(f),
      events: (o) => p.events(o),
      close: () => p.close(),
    });
    const { broker, database, gpusByRegion } = await brokerWith(
      { settings: { aws: { quotas: [{ capacityType: 'on-demand', maxGpus: 16 }] } } },
      { ...l4Buffer(40), regions: { allow: REGIONS, deny: [] } },
      withoutQuotas,
    );
    const tick = await broker.loop.tick();
    const failed = (await database.db.select().from(actions)).filter((a) => a.status === 'failed');
    expect(failed.length).toBeGreaterThan(0);
    expect(failed.every((a) => a.error?.startsWith('QuotaExceededError:'))).toBe(true);
    expect(tick.rounds).toBeGreaterThanOrEqual(2);
    expect(tick.provisioned).toBe(40);
    for (const [region, gpus] of gpusByRegion()) expect(gpus, region).toBeLessThanOrEqual(16);
    // The next tick knows the limit: nothing more is refused.
    await broker.loop.tick();
    const refusedLater = (await database.db.select().from(actions)).filter((a) => a.status === 'failed');
    expect(refusedLater).toHaveLength(failed.length);
  });

  it('skips a shortfall re-plan while booting instances cover the demand, and runs one when they do not', async () => {
    const { broker, advance } = await brokerWith(
      {},
      { ...l4Buffer(0), regions: { allow: ['us-east-1'], deny: [] } },
    );
    const { token } = await broker.tokens.create('t', 'tenant');
    const principal = await broker.tokens.authenticate(token);
    if (!principal) throw new Error('no principal');
    await broker.leases.request(principal, { gpu: 'L4', count: 4, placement: 'any', capacityType: 'any' });
    const first = await broker.loop.tick();
    expect(first.provisioned).toBe(4);
    expect(broker.loop.coveredByFleet()).toBe(true);

    // Instances boot: a trigger now changes nothing, so it runs no tick.
    const planBefore = broker.loop.last?.planId;
    broker.loop.trigger();
    await advance(1_000);
    await broker.loop.idle();
    expect(broker.loop.triggersSkipped).toBe(1);
    expect(broker.loop.last?.planId).toBe(planBefore);

    // More asked for than held: the trigger re-plans at once, before the boot ends.
    await broker.leases.request(principal, { gpu: 'L4', count: 3, placement: 'any', capacityType: 'any' });
    expect(broker.loop.coveredByFleet()).toBe(false);
    broker.loop.trigger();
    await advance(1_000);
    await broker.loop.idle();
    expect(broker.loop.last?.planId).not.toBe(planBefore);
    expect(broker.loop.last?.provisioned).toBe(3);
    expect(broker.loop.triggersSkipped).toBe(1);
  });
});
